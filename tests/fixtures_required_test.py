#!/usr/bin/env python3
"""A test whose fixture is missing never passes: without CI it is skipped (exit 77 for the
Python scripts, GTEST_SKIP for GoogleTest), and under CI=1 it fails. Checked by pointing
MIXTAPE_FIXTURES (tests/skipping.py, tests/unit/Fixtures.h) at a folder that does not exist.
    fixtures_required_test.py MIXTAPE SAFETENSORS_TESTS WORKDIR"""
import os, shutil, subprocess, sys

mixtape, gtests, work = sys.argv[1:4]
here = os.path.dirname(os.path.abspath(__file__))
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
missing = os.path.join(work, "no-fixtures-here")
failures = []
checks = 0


def run(command, ci):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["MIXTAPE_FIXTURES"] = missing
    if ci:
        env["CI"] = "1"
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


scripts = [[sys.executable, os.path.join(here, "data", "cli_test.py"), mixtape, "prepare-hf-tokenizer",
            os.path.join(work, "cli")],
           [sys.executable, os.path.join(here, "e2e", "hf_test.py"), mixtape, "continue", os.path.join(work, "hf")]]
for command in scripts:
    for ci, want in ((False, 77), (True, 1)):
        checks += 1
        r = run(command, ci)
        if r.returncode != want or f"no fixture at {missing}" not in r.stdout:
            failures.append(f"{os.path.basename(command[1])} without fixtures{' under CI' if ci else ''}: exit "
                            f"{r.returncode}, expected {want} naming {missing}\n{r.stdout[-2000:]}{r.stderr[-2000:]}")

test = "SafeTensors.HuggingFaceFilesRoundTripByteIdentical"
for ci in (False, True):
    checks += 1
    r = run([gtests, f"--gtest_filter={test}"], ci)
    skipped = r.returncode == 0 and "[  SKIPPED ] " + test in r.stdout
    failed = r.returncode != 0 and "[  FAILED  ] " + test in r.stdout
    if (failed if ci else skipped) is not True or f"no fixture at {missing}" not in r.stdout:
        failures.append(f"{test} without fixtures{' under CI' if ci else ''}: exit {r.returncode}, expected "
                        f"{'a failure' if ci else 'a skip'} naming {missing}\n{r.stdout[-3000:]}{r.stderr[-2000:]}")

for f in failures:
    print("FAIL:", f)
print(f"{checks - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
