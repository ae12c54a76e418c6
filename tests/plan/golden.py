#!/usr/bin/env python3
"""Golden plans: `mixtape plan RECIPE --out -` must equal tests/plan/<recipe>.plan.json, byte for
byte (stable across runs and machines). On a mismatch, print a unified diff. A missing golden is
a failure, never written on the way: only --update writes it.
    golden.py MIXTAPE RECIPE WORKDIR [--update]"""
import difflib, os, subprocess, sys

mixtape, recipe, work = sys.argv[1:4]
update = "--update" in sys.argv
name = os.path.splitext(os.path.basename(recipe))[0]
golden = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".plan.json")
os.makedirs(work, exist_ok=True)
r = subprocess.run([mixtape, "plan", recipe, "--out", "-", "--run-dir", os.path.join(work, "run")],
                   capture_output=True, timeout=300)
if r.returncode != 0:
    print(r.stderr.decode())
    print(f"0 passed, 1 failed: mixtape plan exited {r.returncode}")
    sys.exit(1)
# The recipe's absolute directory differs between machines; everything else must not.
got = "".join(l for l in r.stdout.decode().splitlines(True) if not l.startswith('  "recipe_dir": '))
if update:
    with open(golden, "w") as f:
        f.write(got)
    print(f"wrote {golden}")
    sys.exit(0)
if not os.path.exists(golden):
    print(f"0 passed, 1 failed: no golden plan {golden} for {recipe}; review the plan and write it with\n"
          f"  {sys.argv[0]} {mixtape} {recipe} {work} --update")
    sys.exit(1)
want = open(golden).read()
if got != want:
    sys.stdout.writelines(difflib.unified_diff(want.splitlines(True), got.splitlines(True), golden, "mixtape plan"))
    print(f"0 passed, 1 failed: the plan of {recipe} differs from {golden} (rerun with --update if intended)")
    sys.exit(1)
print(f"1 passed, 0 failed")
