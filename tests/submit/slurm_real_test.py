#!/usr/bin/env python3
"""`mixtape submit --slurm` against a real single-node Slurm cluster on localhost: installs
Debian's slurm-wlm and munge when they are missing (apt-get, as root), starts munged,
slurmctld and slurmd from a private configuration in WORKDIR (no systemd, no cgroups),
submits a shortened quickstart plan with --time 24:00:00 into a partition whose MaxTime allows
it, preempts the pretrain job as its time limit would (`scancel -b -s USR1`: the batch shell
alone), waits for its jobs, and checks that every node finished (its DONE marker), that every
job got that time limit, that no job started before the jobs it depends on had ended (afterok),
that the preempted job checkpointed, requeued itself and resumed, with a pretrain model
byte-identical to one trained without a stop, and that `mixtape submit --status` agrees.
    slurm_real_test.py MIXTAPE recipes/quickstart.toml WORKDIR
Part of the full suite (label slurm, not fast); MIXTAPE_SLURM_TEST=0 skips it. Exits 77
(skipped) with the reason when told to, or where Slurm cannot start (not root,
no packages, a daemon that will not come up). Everything runs under one deadline
(MIXTAPE_SLURM_TIMEOUT seconds, default 900), and the daemons it started are stopped."""
import ctypes, glob, json, os, re, shutil, signal, socket, subprocess, sys, time

SKIP = 77
mixtape, recipe, work = (os.path.abspath(a) for a in sys.argv[1:4])
deadline = time.time() + float(os.environ.get("MIXTAPE_SLURM_TIMEOUT", "900"))
failures = []
daemons = []  # Popen objects of what this test started


def skip(why):
    print(f"skipped: {why}")
    sys.exit(SKIP)


def left():
    return max(1.0, deadline - time.time())


def sh(args, timeout=60, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=min(timeout, left()), **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent():
    # A daemon in the foreground that outlives a killed test would hold its ports forever.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start(args, log):
    daemons.append(subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env,
                                    preexec_fn=die_with_parent))
    return daemons[-1]


def tail(path, n=15):
    try:
        return "".join(open(path, errors="replace").readlines()[-n:])
    except OSError:
        return "(no log)\n"


def wait_for(what, check, seconds, logs):
    """Polls `check` for up to `seconds`; skips the test naming `what` and the logs' tails."""
    end = min(time.time() + seconds, deadline)
    while time.time() < end:
        if check():
            return
        if any(d.poll() is not None for d in daemons):
            break
        time.sleep(0.5)
    skip(f"Slurm cannot start here: {what}\n" + "".join(f"--- {l}\n{tail(l)}" for l in logs))


def stop_daemons():
    for d in reversed(daemons):
        if d.poll() is None:
            d.terminate()
    for d in reversed(daemons):
        try:
            d.wait(timeout=10)
        except subprocess.TimeoutExpired:
            d.kill()
            d.wait()


if os.environ.get("MIXTAPE_SLURM_TEST") == "0":
    skip("MIXTAPE_SLURM_TEST=0")

# --- Packages -----------------------------------------------------------------------------
tools = ["munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel"]
if not all(shutil.which(t) for t in tools):
    if os.geteuid() != 0:
        skip("slurm-wlm or munge is not installed, and installing them needs root")
    print("installing slurm-wlm and munge with apt-get ...", flush=True)
    apt_env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for args in (["apt-get", "update"],
                 ["apt-get", "install", "-y", "--no-install-recommends", "slurm-wlm", "munge"]):
        try:
            r = sh(args, timeout=600, env=apt_env)
        except subprocess.TimeoutExpired:
            skip(f"'{' '.join(args)}' did not finish in time")
        if r.returncode != 0:
            skip(f"'{' '.join(args)}' failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    if not all(shutil.which(t) for t in tools):
        skip("slurm-wlm and munge installed, but some of " + ", ".join(tools) + " are not on PATH")
if os.geteuid() != 0:
    skip("the test runs slurmd as root (SlurmdUser=root) and is not root")

# --- A private cluster: munge, slurmctld, slurmd ------------------------------------------
shutil.rmtree(work, ignore_errors=True)
cluster = os.path.join(work, "cluster")
for d in ("state", "spool", "munge"):
    os.makedirs(os.path.join(cluster, d))
os.chmod(os.path.join(cluster, "munge"), 0o700)
host = socket.gethostname().split(".")[0]
munge_socket = os.path.join(cluster, "munge", "munge.socket")
conf = os.path.join(cluster, "slurm.conf")
jobcomp = os.path.join(cluster, "jobcomp.txt")
cpus = os.cpu_count() or 1
open(conf, "w").write(f"""\
ClusterName=mixtape-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={cluster}/state
SlurmdSpoolDir={cluster}/spool
SlurmctldPidFile={cluster}/slurmctld.pid
SlurmdPidFile={cluster}/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={jobcomp}
MpiDefault=none
ReturnToService=2
SlurmdTimeout=300
MinJobAge=3600
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=2-00:00:00 State=UP
""")
env = dict(os.environ, SLURM_CONF=conf)
key = os.path.join(cluster, "munge", "munge.key")
r = sh(["mungekey", "--create", "--keyfile", key])
if r.returncode != 0:
    skip(f"mungekey failed: {r.stderr}")
os.chmod(key, 0o600)
logs = {name: os.path.join(cluster, name + ".log") for name in ("munged", "slurmctld", "slurmd")}
ids = []  # the submitted jobs
try:
    start(["munged", "--foreground", "--force", "--socket", munge_socket, "--key-file", key,
           "--pid-file", os.path.join(cluster, "munge", "munged.pid"),
           "--seed-file", os.path.join(cluster, "munge", "munged.seed"), "--log-file", logs["munged"]],
          logs["munged"] + ".out")
    wait_for("munged did not open its socket", lambda: os.path.exists(munge_socket), 20,
             [logs["munged"], logs["munged"] + ".out"])
    start(["slurmctld", "-D", "-f", conf, "-L", logs["slurmctld"]], logs["slurmctld"] + ".out")
    wait_for("slurmctld does not answer 'scontrol ping'",
             lambda: "UP" in sh(["scontrol", "ping"], env=env).stdout, 30,
             [logs["slurmctld"], logs["slurmctld"] + ".out"])
    start(["slurmd", "-D", "-f", conf, "-N", host, "-L", logs["slurmd"]], logs["slurmd"] + ".out")
    wait_for(f"node {host} does not become idle",
             lambda: "idle" in sh(["sinfo", "-h", "-n", host, "-o", "%T"], env=env).stdout, 60,
             [logs["slurmd"], logs["slurmd"] + ".out", logs["slurmctld"]])
    print(f"Slurm is up: slurmctld and slurmd on {host}, {cpus} CPUs", flush=True)

    # --- Submit, wait, check --------------------------------------------------------------
    # The quickstart's shape (init, pretrain, two adapt variants in parallel, evals), shorter.
    text = open(recipe).read()
    for old, new in [('tokens = "1Mi"', 'tokens = "64Ki"'), ('tokens = "512Ki"', 'tokens = "32Ki"'),
                     ('max_tokens = "64Ki"', 'max_tokens = "8Ki"')]:
        assert old in text, f"{recipe} has no '{old}' to shorten"
        text = text.replace(old, new)
    short = os.path.join(work, "quickstart-short.toml")
    open(short, "w").write(text)
    # Its task files, beside it as beside the original.
    shutil.copytree(os.path.join(os.path.dirname(recipe), "tasks"), os.path.join(work, "tasks"), dirs_exist_ok=True)
    run_dir = os.path.join(work, "run")
    r = sh([mixtape, "submit", short, "--slurm", "--run-dir", run_dir, "--time", "24:00:00"], timeout=300,
           env=env, cwd=work)
    ids = re.findall(r"^  job (\d+): ", r.stdout, re.M)
    if r.returncode != 0 or not ids:
        failures.append(f"mixtape submit: exit {r.returncode}\n{r.stdout}{r.stderr}")
    print(r.stdout, end="", flush=True)
    # Which job waits for which: submit.sh spells the dependencies by job index.
    after = {}
    for line in open(os.path.join(run_dir, "slurm", "submit.sh")) if ids else []:
        m = re.match(r"job(\d+)=\$\(sbatch ", line)
        if m:
            after[ids[int(m.group(1))]] = [ids[int(d)] for d in re.findall(r"\$\{job(\d+)\}", line)]
    # Preempt pretrain (job 1) a few steps in, as a time limit would: USR1 to its batch shell.
    pretrain_job, preempted = ids[1] if len(ids) > 1 else None, False
    while pretrain_job and not preempted and time.time() < deadline:
        logged = [l for p in glob.glob(os.path.join(run_dir, "pretrain-*", "metrics.jsonl"))
                  for l in open(p) if '"type":"train"' in l]
        if len(logged) >= 3:
            r = sh(["scancel", "-b", "-s", "USR1", pretrain_job], env=env)
            preempted = r.returncode == 0
            print(f"scancel -b -s USR1 {pretrain_job} after {len(logged)} steps: exit {r.returncode} {r.stderr}",
                  flush=True)
            if not preempted:
                failures.append(f"scancel -b -s USR1 {pretrain_job}: {r.stderr}")
            break
        # CONFIGURING: a loaded node may take a while to launch the batch script.
        state = sh(["squeue", "-h", "-j", pretrain_job, "-o", "%T"], env=env).stdout.strip()
        if state not in ("", "PENDING", "CONFIGURING", "RUNNING"):
            print(f"pretrain job {pretrain_job} left the queue unpreempted: {state}", flush=True)
            break
        time.sleep(0.2)
    if pretrain_job and not preempted:
        failures.append("the pretrain job was never seen training, so never preempted")
    released = False
    while ids and time.time() < deadline:
        queued = sh(["squeue", "-h", "-o", "%i %T %r", "-j", ",".join(ids)], env=env).stdout.split("\n")
        queued = [q for q in queued if q.strip()]
        if not queued:
            break
        # Slurm holds a requeued job about two minutes (reason BeginTime); the test does not wait.
        if preempted and not released and f"{pretrain_job} PENDING BeginTime" in queued:
            r = sh(["scontrol", "update", f"JobId={pretrain_job}", "StartTime=now"], env=env)
            released = True
            print(f"pretrain job {pretrain_job} requeued; scontrol update StartTime=now: exit {r.returncode}",
                  flush=True)
        if any("DependencyNeverSatisfied" in q for q in queued):
            failures.append("a job's dependency can never be satisfied (an input job failed):\n" + "\n".join(queued))
            break
        time.sleep(2)
    else:
        if ids:
            failures.append(f"the jobs did not finish within the deadline: {queued}")
    # jobcomp/filetxt: one line per finished job, "Key=Value" fields.
    done = {}
    if os.path.exists(jobcomp):
        for line in open(jobcomp):
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            done[fields.get("JobId")] = fields
    for job in ids:
        f = done.get(job)
        if not f or f.get("JobState") != "COMPLETED":
            outs = glob.glob(os.path.join(run_dir, "slurm", f"*-{job}.out"))
            failures.append(f"job {job}: {f.get('JobState') if f else 'no record'}\n" +
                            "".join(tail(o, 20) for o in outs))
        elif f.get("TimeLimit") != "1440":  # minutes
            failures.append(f"job {job}: time limit {f.get('TimeLimit')} minutes, not the 24:00:00 of --time")
    parse = lambda t: time.mktime(time.strptime(t, "%Y-%m-%dT%H:%M:%S"))
    for job, deps in after.items():
        for d in deps:
            if job in done and d in done and parse(done[job]["StartTime"]) < parse(done[d]["EndTime"]):
                failures.append(f"job {job} started at {done[job]['StartTime']}, before job {d} it depends on "
                                f"ended at {done[d]['EndTime']}")
    plan = json.load(open(os.path.join(run_dir, "plan.json"))) if ids else {"nodes": []}
    marker = {n["name"]: os.path.join(run_dir, n["dir"], "DONE") for n in plan["nodes"]}
    missing = [n for n, m in marker.items() if not os.path.exists(m)]
    if missing:
        failures.append(f"nodes without a done marker: {missing}")
    for n in plan["nodes"]:
        for name in n["inputs"]:
            if n["name"] not in missing and name not in missing and \
               os.path.getmtime(marker[name]) > os.path.getmtime(marker[n["name"]]):
                failures.append(f"node {n['name']} finished before its input {name}")
    # The preempted job: checkpointed at the signal, requeued itself, resumed from the checkpoint.
    if preempted:
        log_text = "".join(open(o, errors="replace").read()
                           for o in glob.glob(os.path.join(run_dir, "slurm", f"*-{pretrain_job}.out")))
        for want in ("stopped by SIGUSR1 after stage step", f"requeueing job {pretrain_job}",
                     "[pretrain] resuming from the checkpoint at step"):
            if want not in log_text:
                failures.append(f"the preempted job's log does not say {want!r}:\n{log_text[-3000:]}")
        # The same model as without a stop (CPU training resumes bit for bit).
        ref = os.path.join(work, "reference")
        r = sh([mixtape, "exec", os.path.join(run_dir, "plan.json"), "--run-dir", ref, "--node", "init",
                "--node", "pretrain", "--quiet"], timeout=300, env=env)
        models = [glob.glob(os.path.join(d, "pretrain-*", "model.safetensors")) for d in (run_dir, ref)]
        if r.returncode != 0 or not all(models) or \
                open(models[0][0], "rb").read() != open(models[1][0], "rb").read():
            failures.append(f"the preempted pretrain differs from an uninterrupted one (exit {r.returncode})"
                            f"\n{r.stderr[-2000:]}")
    # --status: every job known (squeue remembers ended jobs for MinJobAge) and its nodes done.
    if ids:
        r = sh([mixtape, "submit", "--status", run_dir], env=env)
        rows = [l.split() for l in r.stdout.splitlines()[1:]]
        if r.returncode != 0 or [row[0] for row in rows] != ids or \
                any(row[2] != "COMPLETED" or row[4].split("/")[0] != row[4].split("/")[1] for row in rows):
            failures.append(f"mixtape submit --status: exit {r.returncode}\n{r.stdout}{r.stderr}")
    print(f"{len(ids)} jobs, {len(marker)} nodes; dependencies: {after}")
finally:
    if ids and all(d.poll() is None for d in daemons):
        sh(["scancel", "--full", *ids], env=env)  # a no-op for finished jobs
    stop_daemons()

for f in failures:
    print("FAIL:", f)
print(f"{7 - min(len(failures), 7)} passed, {min(len(failures), 7)} failed")
sys.exit(1 if failures else 0)
