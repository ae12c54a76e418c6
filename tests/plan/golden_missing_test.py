#!/usr/bin/env python3
"""golden.py fails on a recipe that has no golden plan, naming it and --update, and writes
nothing into tests/plan: a missing golden must never pass by being written on the way.
    golden_missing_test.py MIXTAPE RECIPE WORKDIR"""
import os, shutil, subprocess, sys

mixtape, recipe, work = sys.argv[1:4]
here = os.path.dirname(os.path.abspath(__file__))
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
unlisted = os.path.join(work, "no-golden-for-this-recipe.toml")
shutil.copy(recipe, unlisted)
golden = os.path.join(here, "no-golden-for-this-recipe.plan.json")
r = subprocess.run([sys.executable, os.path.join(here, "golden.py"), mixtape, unlisted, os.path.join(work, "plan")],
                   capture_output=True, text=True, timeout=300)
failures = []
if os.path.exists(golden):
    os.remove(golden)
    failures.append(f"golden.py wrote {golden}")
if r.returncode != 1 or f"no golden plan {golden}" not in r.stdout or "--update" not in r.stdout:
    failures.append(f"golden.py without a golden: exit {r.returncode}, expected 1 naming the golden and --update\n"
                    f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
for f in failures:
    print("FAIL:", f)
print(f"{1 - min(len(failures), 1)} passed, {min(len(failures), 1)} failed")
sys.exit(1 if failures else 0)
