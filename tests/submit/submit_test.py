#!/usr/bin/env python3
"""`mixtape submit --slurm` against stand-ins for sbatch and srun (slurm_real_test.py runs a
real single-node cluster): the scripts parse, names from the recipe
reach `mixtape exec` intact and are never run by the shell, the values of --time, --partition
and --account reach #SBATCH verbatim (or are refused), jobs depend on their inputs' jobs.
    submit_test.py MIXTAPE WORKDIR"""
import json, os, shutil, stat, subprocess, sys

mixtape, work = sys.argv[1:3]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
home = os.path.join(work, "home")
os.makedirs(home)
canary = os.path.join(home, "canary")
open(canary, "w").write("still here\n")
bin_dir = os.path.join(work, "bin")
os.makedirs(bin_dir)
log = os.path.join(work, "calls.jsonl")

def tool(name, body):
    path = os.path.join(bin_dir, name)
    open(path, "w").write("#!/usr/bin/env python3\nimport json, sys, os\n" + body)
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)

# sbatch: records its arguments, answers a job id; srun: records the command it would run.
tool("sbatch", f"""
calls = open({log!r}).read().count('"sbatch"') if os.path.exists({log!r}) else 0
open({log!r}, "a").write(json.dumps(["sbatch"] + sys.argv[1:]) + "\\n")
print(1000 + calls)
""")
tool("srun", f"""
open({log!r}, "a").write(json.dumps(["srun"] + sys.argv[1:]) + "\\n")
""")

hostile = "x; rm -rf ~ $(touch pwned) `id`"
recipe = os.path.join(work, "recipe.toml")
text = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e", "tiny.toml")).read()
text = text.replace('name = "tiny"', 'name = "' + hostile + '"')
open(recipe, "w").write(text)
env = dict(os.environ, HOME=home, PATH=bin_dir + os.pathsep + os.environ["PATH"])
failures = []

run_dir = os.path.join(work, "run dir's $(touch pwned)")
account = "lab;touch${IFS}pwned"  # were #SBATCH lines run by the shell
r = subprocess.run([mixtape, "submit", recipe, "--slurm", "--dry-run", "--run-dir", run_dir,
                    "--out", os.path.join(work, "scripts"), "--partition", "gpu,debug", "--time", "24:00:00",
                    "--account", account],
                   capture_output=True, text=True, env=env, cwd=work, timeout=300)
if r.returncode != 0:
    failures.append(f"dry run failed: {r.stderr}")
scripts = sorted(f for f in os.listdir(os.path.join(work, "scripts")) if f.endswith(".sbatch"))
if os.path.exists(log):
    failures.append("a dry run called sbatch")
for s in scripts + ["submit.sh"]:
    path = os.path.join(work, "scripts", s)
    if subprocess.run(["bash", "-n", path]).returncode != 0:
        failures.append(f"{s} does not parse")
    if s != "submit.sh":
        directives = [l.rstrip("\n") for l in open(path) if l.startswith("#SBATCH --")]
        for want in ["#SBATCH --partition=gpu,debug", "#SBATCH --time=24:00:00", "#SBATCH --account=" + account]:
            if want not in directives:
                failures.append(f"{s}: no '{want}' (values go to #SBATCH verbatim): {directives}")

# What sbatch's own reader of #SBATCH lines would split or cut is refused, not rewritten.
for option, value in [("--time", "24:00:00 --exclusive"), ("--partition", "gpu\nrm -rf ~"),
                      ("--account", "a#b"), ("--partition", "'gpu'")]:
    r = subprocess.run([mixtape, "submit", recipe, "--slurm", "--dry-run", "--out", os.path.join(work, "refused"),
                        option, value], capture_output=True, text=True, env=env, cwd=work, timeout=300)
    want = (f"mixtape submit: {option} '{value}': an #SBATCH value cannot hold spaces, quotes, backslashes, "
            "'#' or control characters")
    if r.returncode != 2 or want not in r.stderr:
        failures.append(f"{option} {value!r}: exit {r.returncode}, expected 2 and {want!r}\n{r.stderr}")

# Run every script with the stand-in srun: each runs `mixtape exec` with intact node names.
for s in scripts:
    subprocess.run(["bash", os.path.join(work, "scripts", s)], env=env, cwd=work, timeout=60)
calls = [json.loads(l) for l in open(log)] if os.path.exists(log) else []
nodes = [a for c in calls if c[0] == "srun" for i, a in enumerate(c) if i > 0 and c[i - 1] == "--node"]
runs = [c[c.index("--run-dir") + 1] for c in calls if c[0] == "srun"]
if not runs or any(d != run_dir for d in runs) or "adapt" not in nodes or "ppl@adapt" not in nodes:
    failures.append(f"names and paths did not reach mixtape exec intact: {runs[:1]} {nodes}")
plan = json.load(open(os.path.join(run_dir, "plan.json")))
if sorted(nodes) != sorted(n["name"] for n in plan["nodes"]):
    failures.append(f"the jobs do not run every node once: {sorted(nodes)}")
if open(canary).read() != "still here\n" or os.path.exists(os.path.join(work, "pwned")):
    failures.append("the shell ran part of a name")

# Real submission through the stand-in sbatch: dependencies name the input jobs' ids.
os.remove(log)
r = subprocess.run([mixtape, "submit", recipe, "--slurm", "--run-dir", os.path.join(work, "run2")],
                   capture_output=True, text=True, env=env, cwd=work, timeout=300)
calls = [json.loads(l) for l in open(log)] if os.path.exists(log) else []
sb = [c for c in calls if c[0] == "sbatch"]
if r.returncode != 0 or len(sb) != len(scripts):
    failures.append(f"submission: exit {r.returncode}, {len(sb)} sbatch calls for {len(scripts)} jobs\n{r.stderr}")
else:
    deps = [next((a for a in c if a.startswith("--dependency=")), "") for c in sb]
    if deps[0] != "" or any(d == "" for d in deps[1:]):
        failures.append(f"only the first job (init) may start at once: {deps}")
    for i, d in enumerate(deps[1:], 1):
        ids = [int(x) for x in d.split(":")[1:]]
        if any(x >= 1000 + i for x in ids):
            failures.append(f"job {i} waits for a job submitted after it: {d}")

for f in failures:
    print("FAIL:", f)
print(f"{7 - min(len(failures), 7)} passed, {min(len(failures), 7)} failed")
sys.exit(1 if failures else 0)
