#!/usr/bin/env python3
"""`mixtape submit --slurm` against stand-ins for sbatch, srun, scontrol, squeue and sacct
(slurm_real_test.py runs a real single-node cluster): the scripts parse, names from the recipe
reach `mixtape exec` intact and are never run by the shell, the values of --time, --partition,
--account and --sbatch-arg reach #SBATCH verbatim (or are refused), jobs depend on their inputs'
jobs and ask for what their nodes need (train jobs the GPUs, init and merge jobs none), log into
the run directory; a USR1 to the batch shell reaches mixtape and requeues the job once mixtape
has exited, a TERM is passed on without a requeue; --status reads the recorded job ids back.
    submit_test.py MIXTAPE WORKDIR"""
import json, os, shlex, shutil, signal, stat, subprocess, sys, time

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
tool("scontrol", f"""
open({log!r}, "a").write(json.dumps(["scontrol"] + sys.argv[1:]) + "\\n")
""")
# squeue knows the first job (running), sacct the second (finished).
tool("squeue", f"""
open({log!r}, "a").write(json.dumps(["squeue"] + sys.argv[1:]) + "\\n")
print("1000|RUNNING|1:23|None")
""")
tool("sacct", f"""
open({log!r}, "a").write(json.dumps(["sacct"] + sys.argv[1:]) + "\\n")
print("1001|COMPLETED|00:00:42|0:0")
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
                    "--account", account, "--gpus-per-node", "8", "--sbatch-arg=--qos=high",
                    "--sbatch-arg", "--constraint=a100|h100"],
                   capture_output=True, text=True, env=env, cwd=work, timeout=300)
if r.returncode != 0:
    failures.append(f"dry run failed: {r.stderr}")
scripts = sorted(f for f in os.listdir(os.path.join(work, "scripts")) if f.endswith(".sbatch"))
if os.path.exists(log):
    failures.append("a dry run called sbatch")
def check_resources(scripts_dir, run_dir, gpus):
    """What each job asks for: its nodes' needs (train: the GPUs; evals without training: one;
    init and merges: none). Returns the kinds of nodes of each job."""
    plan = json.load(open(os.path.join(run_dir, "plan.json")))["nodes"]
    checked = set()
    for name in sorted(f for f in os.listdir(scripts_dir) if f.endswith(".sbatch")):
        lines = open(os.path.join(scripts_dir, name)).read().splitlines()
        srun = next(l for l in lines if l.startswith("srun "))
        kinds = {n["kind"] for n in plan if f"--node '{n['name']}'" in srun}
        asks = [l for l in lines if l.split("=")[0] in ("#SBATCH --nodes", "#SBATCH --ntasks", "#SBATCH --gpus",
                                                        "#SBATCH --gpus-per-node", "#SBATCH --ntasks-per-node")]
        want = ([f"#SBATCH --nodes=1", f"#SBATCH --gpus-per-node={gpus}", f"#SBATCH --ntasks-per-node={gpus}"]
                if "train" in kinds else
                ["#SBATCH --nodes=1", "#SBATCH --ntasks=1"] + (["#SBATCH --gpus=1"] if "eval" in kinds else []))
        if asks != want:
            failures.append(f"{name} ({sorted(kinds)}): resources {asks}, wanted {want}")
        checked.add(tuple(sorted(kinds)))
    return checked

for s in scripts + ["submit.sh"]:
    path = os.path.join(work, "scripts", s)
    if subprocess.run(["bash", "-n", path]).returncode != 0:
        failures.append(f"{s} does not parse")
    if s != "submit.sh":
        directives = [l.rstrip("\n") for l in open(path) if l.startswith("#SBATCH --")]
        for want in ["#SBATCH --partition=gpu,debug", "#SBATCH --time=24:00:00", "#SBATCH --account=" + account,
                     "#SBATCH --qos=high", "#SBATCH --constraint=a100|h100", "#SBATCH --requeue",
                     "#SBATCH --signal=B:USR1@120", "#SBATCH --open-mode=append"]:
            if want not in directives:
                failures.append(f"{s}: no '{want}' (values go to #SBATCH verbatim): {directives}")


kinds = check_resources(os.path.join(work, "scripts"), run_dir, 8)
# A sweep whose two variants a merge combines (a closing job of its own) and an eval of the init.
swept = os.path.join(work, "swept.toml")
open(swept, "w").write(text.replace('on = ["adapt"]', 'on = ["adapt[*]", "init"]') + """
[sweep]
replay = { key = "adapt.mix", values = { r0 = "code", r10 = "0.9 code + 0.1 prose" } }

[[merge]]
name = "soup"
of = ["adapt[replay=r0]", "adapt[replay=r10]"]
method = "linear"
""")
r = subprocess.run([mixtape, "submit", swept, "--slurm", "--dry-run", "--run-dir", os.path.join(work, "swept"),
                    "--gpus-per-node", "4"], capture_output=True, text=True, env=env, cwd=work, timeout=300)
if r.returncode != 0:
    failures.append(f"dry run of the sweep failed: {r.stderr}")
else:
    kinds |= check_resources(os.path.join(work, "swept", "slurm"), os.path.join(work, "swept"), 4)
for want in [("train",), ("eval", "train"), ("eval", "init"), ("merge",)]:
    if want not in kinds:
        failures.append(f"no job of {want} nodes to check: {kinds}")

# What sbatch's own reader of #SBATCH lines would split or cut is refused, not rewritten.
for option, value in [("--time", "24:00:00 --exclusive"), ("--partition", "gpu\nrm -rf ~"),
                      ("--account", "a#b"), ("--partition", "'gpu'"), ("--sbatch-arg", "--comment=a b"),
                      ("--sbatch-arg", "qos=high")]:
    r = subprocess.run([mixtape, "submit", recipe, "--slurm", "--dry-run", "--out", os.path.join(work, "refused"),
                        option + "=" + value], capture_output=True, text=True, env=env, cwd=work, timeout=300)
    want = (f"mixtape submit: {option} '{value}': an #SBATCH value cannot hold spaces, quotes, backslashes, "
            "'#' or control characters" if option != "--sbatch-arg" else
            f"mixtape submit: --sbatch-arg '{value}': an #SBATCH line takes one option (starting with '-') "
            "without spaces, quotes, backslashes, '#' or control characters")
    if r.returncode != 2 or want not in r.stderr:
        failures.append(f"{option} {value!r}: exit {r.returncode}, expected 2 and {want!r}\n{r.stderr}")

# submit.sh sends each job's output to the run directory, whatever folder holds the scripts.
submit_sh = open(os.path.join(work, "scripts", "submit.sh")).read()
outputs = [next(a for a in shlex.split(l[l.index("sbatch"):-1]) if a.startswith("--output="))
           for l in submit_sh.splitlines() if l.startswith("job")]
log_dir = os.path.join(run_dir, "slurm")
if len(outputs) != len(scripts) or not all(o.startswith(f"--output={log_dir}/") and o.endswith("-%j.out")
                                           for o in outputs):
    failures.append(f"submit.sh does not log into {log_dir}:\n{submit_sh}")

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

# Preemption: Slurm's USR1 reaches the batch shell alone (--signal=B:). It passes it to srun,
# waits until srun exits (mixtape checkpoints first), then requeues the job. A TERM is passed on
# and nothing requeued.
tool("srun", f"""
import signal, time
open({log!r}, "a").write(json.dumps(["srun"] + sys.argv[1:]) + "\\n")
def stop(n, frame):
    time.sleep(0.5)  # the checkpoint: the shell must wait for it
    open({log!r}, "a").write(json.dumps(["srun got", n]) + "\\n")
    sys.exit(128 + n)
signal.signal(signal.SIGUSR1, stop)
signal.signal(signal.SIGTERM, stop)
open({log!r} + ".started", "w").close()
time.sleep(30)
""")
train_script = next(os.path.join(work, "scripts", s) for s in scripts if "adapt" in s)
for sig, want_exit, want_requeue in [(signal.SIGUSR1, 0, True), (signal.SIGTERM, 128 + signal.SIGTERM, False)]:
    for f in (log, log + ".started"):
        if os.path.exists(f):
            os.remove(f)
    p = subprocess.Popen(["bash", train_script], env=dict(env, SLURM_JOB_ID="4242"), cwd=work,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 20
    while not os.path.exists(log + ".started") and time.time() < deadline:
        time.sleep(0.05)
    p.send_signal(sig)
    out = p.communicate(timeout=30)[0]
    calls = [json.loads(l) for l in open(log)] if os.path.exists(log) else []
    requeued = ["scontrol", "requeue", "4242"] in calls
    got = ["srun got", int(sig)] in calls
    # The requeue comes after srun is done, never while mixtape still writes its checkpoint.
    order_ok = not requeued or calls.index(["srun got", int(sig)]) < calls.index(["scontrol", "requeue", "4242"])
    if p.returncode != want_exit or not got or requeued != want_requeue or not order_ok:
        failures.append(f"{sig.name} to the batch shell: exit {p.returncode} (wanted {want_exit}), srun got it: {got}, "
                        f"requeued: {requeued} (wanted {want_requeue}), calls {calls}\n{out}")

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

# --status: the recorded ids, asked of squeue and sacct; done nodes counted from the run directory.
jobs = json.load(open(os.path.join(work, "run2", "slurm", "jobs.json"))) if os.path.exists(
    os.path.join(work, "run2", "slurm", "jobs.json")) else {"jobs": []}
ids = [j["id"] for j in jobs["jobs"]]
if ids != [str(1000 + i) for i in range(len(scripts))]:
    failures.append(f"jobs.json records {ids}")
r = subprocess.run([mixtape, "submit", "--status", os.path.join(work, "run2")], capture_output=True, text=True,
                   env=env, timeout=60)
lines = r.stdout.splitlines()
if r.returncode != 0 or len(lines) != 1 + len(ids) or not lines[1].startswith("1000 ") or " RUNNING " not in lines[1] \
        or " COMPLETED " not in lines[2] or not all(l.split()[-1].startswith("0/") for l in lines[1:]) \
        or any(" unknown " not in l for l in lines[3:]):
    failures.append(f"--status: exit {r.returncode}\n{r.stdout}{r.stderr}")
r = subprocess.run([mixtape, "submit", "--status", os.path.join(work, "nowhere")], capture_output=True, text=True,
                   env=env, timeout=60)
if r.returncode != 1 or "jobs.json" not in r.stderr:
    failures.append(f"--status of a folder without jobs: exit {r.returncode}: {r.stderr}")

for f in failures:
    print("FAIL:", f)
print(f"{12 - min(len(failures), 12)} passed, {min(len(failures), 12)} failed")
sys.exit(1 if failures else 0)
