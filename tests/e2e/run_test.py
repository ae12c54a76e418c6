#!/usr/bin/env python3
"""End-to-end runs of tests/e2e/tiny.toml:
  resume   -- kill -9 at several points (the run is alive and dies of SIGKILL), run the same
              command again: it says it resumes from the newest checkpoint the killed run left
              (none: from the start), and the final weights and optimizer state are
              byte-identical to an uninterrupted run; finished nodes are skipped
  refuse   -- `mixtape exec` refuses a provisional plan and a plan of another version
  nan      -- a diverging learning rate stops the node with a diagnostic naming the step
  nan-skip -- with on_nonfinite = "skip" (hashed), non-finite steps are dropped and counted,
              and a run of them stops the node with a diagnostic naming the steps
  northstar -- tests/e2e/north-star-small.toml (every construct of the north-star the runtime
              covers) runs end to end: every node done, every eval point logged
  evals-retained -- only the in-loop eval points change: the rerun trains nothing, evaluates the
              new points its retained checkpoints hold (the same losses a run with those points
              logs), names the others, and `plan --explain` says which is which (golden text)
  stream-loss -- the training loss per stream of a two-stream mixture: token-weighted, the
              stream means give the step's loss; the replayed, pretrained stream is the easier
  train-split -- an eval of NAME.train (documents of the training split in a seeded order):
              logged beside the val splits at every point, over max_tokens, and the same
              losses in a second run directory
  sigterm  -- SIGTERM mid-training (one process, --nproc 2): the step ends, a checkpoint is
              written, exit 143; the rerun resumes there with the uninterrupted run's bytes
  disk-full -- the run directory on tmpfs of 2.2-3.4 MB: exit 1 naming the file and the full
              disk; with room again the rerun resumes to the bytes of a run that never failed
  run-dir-lock -- a second run on a live run's directory exits at once naming HOST:PID; killing
              the holder frees it; another recipe's directory is refused unless --force
  edited-shard -- a .bin edited in place at the same size after its manifest was written:
              `mixtape run` refuses it before the first step (exit 1, naming the file, both
              checksums and the manifest); an unchanged shard is hashed once, then the
              verification cache answers; --verify-data full hashes again and catches an
              edit that kept the mtime
  tasks    -- tests/e2e/tasks.toml: choice and generate tasks scored in the loop and at the end;
              every record's numbers are recomputed here from its per-item file and the task
              file (lm-eval's acc, acc_norm, stderr), a rerun scores nothing again, --nproc 2
              gives the same numbers, an edited task file is refused until planned again and
              then re-scores only the evals, and the report writes forgetting.json
  dcpt     -- recipes/dcpt.toml with a quarter of its tokens: an init per model size (weights of
              that size), code loss falls and prose loss rises with the code share, and
              `mixtape fit` prints the D-CPT law of both losses, a best ratio and its charts
  ablation-by -- recipes/ablation-by-source.toml: units by a metadata column partition the
              stream, each unit node trains the tokens the ledger says into a model of its
              own, and the report ranks the combinations
    run_test.py MIXTAPE SCENARIO WORKDIR"""
import glob, json, os, re, shutil, signal, subprocess, sys, time

from e2e_common import finish, newest_checkpoint, read_safetensors

mixtape, scenario, work = sys.argv[1:4]
here = os.path.dirname(os.path.abspath(__file__))
recipe = os.path.join(here, "tiny.toml")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
env = dict(os.environ, MIXTAPE_NUM_THREADS="1")
failures = []

def run(args, **kw):
    return subprocess.run([mixtape, *args], capture_output=True, text=True, env=env, timeout=600, **kw)

def outputs(run_dir):
    """Bytes of every node's final weights and optimizer state, by node directory."""
    out = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "*", "*.safetensors"))):
        with open(path, "rb") as f:
            out[os.path.relpath(path, run_dir)] = f.read()
    return out

def all_finite(path):
    """Whether every F32 value of a safetensors file is finite (read from the format's spec:
    an 8-byte little-endian header size, a JSON header, then the data)."""
    import array, math, struct
    data = open(path, "rb").read()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] != "F32":
            continue
        begin, end = t["data_offsets"]
        values = array.array("f", data[8 + size + begin:8 + size + end])
        if not all(math.isfinite(v) for v in values):
            return False
    return True

def metrics_steps(run_dir, node):
    """Train records of `node` written so far (0 while it has none)."""
    paths = glob.glob(os.path.join(run_dir, node + "-*", "metrics.jsonl"))
    return sum('"type":"train"' in l for l in open(paths[0])) if paths else 0

def metrics_lines(run_dir):
    return sum(len(open(p, "rb").read().splitlines()) for p in glob.glob(os.path.join(run_dir, "*", "metrics.jsonl")))

def resume_point(run_dir):
    """(node name, step) where a rerun of a killed run must resume: the newest checkpoint, which
    must agree with the steps the node's metrics.jsonl logged (the checkpoint of every K steps
    is written after step K's record, so the kill may fall between the two); None: from the
    start."""
    newest = newest_checkpoint(run_dir)
    if not newest:
        return None
    node_dir, node, step = newest
    settings = node["settings"]
    every = node["exec"]["checkpoint_every"] // (settings["batch_sequences"] * settings["seq_len"])
    logged = 0
    for line in open(os.path.join(node_dir, "metrics.jsonl"), "rb").read().splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # the last line, cut by the kill
            continue
        if record.get("type") == "train":
            logged = max(logged, record["step"])
    due = logged // every * every
    if step != due and not (logged % every == 0 and step == due - every):
        failures.append(f"{node_dir}: newest checkpoint at step {step}, but {logged} steps logged with a "
                        f"checkpoint every {every}")
    return node["name"], step

if scenario == "resume":
    ref = os.path.join(work, "reference")
    r = run(["run", recipe, "--run-dir", ref, "--quiet"])
    if r.returncode != 0:
        failures.append("uninterrupted run failed:\n" + r.stderr)
    want = outputs(ref)
    if not want:
        failures.append("the uninterrupted run wrote no weights")
    # Skipping: a second run trains nothing.
    r = run(["run", recipe, "--run-dir", ref])
    if r.returncode != 0 or "done, skipped" not in r.stderr or "step " in r.stderr.replace("done, skipped", ""):
        failures.append("a finished run was not skipped:\n" + r.stderr[-2000:])
    for kill_after in [5, 23, 41, 70, 105]:
        d = os.path.join(work, f"killed-{kill_after}")
        p = subprocess.Popen([mixtape, "run", recipe, "--run-dir", d, "--quiet"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while p.poll() is None and time.time() < deadline and metrics_lines(d) < kill_after:
            time.sleep(0.005)
        p.send_signal(signal.SIGKILL)
        if p.wait() != -signal.SIGKILL:
            failures.append(f"kill at {kill_after}: the run was not killed by SIGKILL but ended with "
                            f"{p.returncode} after {metrics_lines(d)} metrics lines")
            continue
        # Not --quiet: the progress says where the run resumes.
        resumed = resume_point(d)
        r = run(["run", recipe, "--run-dir", d])
        if r.returncode != 0:
            failures.append(f"resume after kill at {kill_after} metrics lines failed:\n{r.stderr[-3000:]}")
            continue
        said = re.findall(r"^\[(.*)\] resuming from the checkpoint at step (\d+)$", r.stderr, re.M)
        want_said = [(resumed[0], str(resumed[1]))] if resumed else []
        if kill_after in (23, 41, 70) and not resumed:
            failures.append(f"kill at {kill_after} metrics lines: no checkpoint to resume from")
        if said != want_said:
            failures.append(f"kill at {kill_after}: the rerun said {said}, expected {want_said} (the newest "
                            f"checkpoint of the killed run)\n{r.stderr[-2000:]}")
        got = outputs(d)
        if got.keys() != want.keys():
            failures.append(f"kill at {kill_after}: outputs {sorted(got)} != {sorted(want)}")
        for k in want:
            if got.get(k) != want[k]:
                failures.append(f"kill at {kill_after}: {k} differs from the uninterrupted run")
        for done in glob.glob(os.path.join(d, "*", "DONE")):
            node = json.load(open(os.path.join(os.path.dirname(done), "node.json")))
            if open(done).read().strip() != node["hash"]:
                failures.append(f"kill at {kill_after}: {done} does not hold its node's hash")
    total = 2 + 5

elif scenario == "refuse":
    plan_path = os.path.join(work, "plan.json")
    r = run(["plan", recipe, "--out", plan_path, "--run-dir", os.path.join(work, "run")])
    plan = json.load(open(plan_path))
    plan["provisional"] = True
    plan["provisional_reasons"] = ["stream 'prose': no data"]
    json.dump(plan, open(plan_path, "w"))
    r = run(["exec", plan_path, "--quiet"])
    if r.returncode != 1 or "provisional" not in r.stderr:
        failures.append(f"a provisional plan ran: exit {r.returncode}\n{r.stderr}")
    plan["provisional"] = False
    version, plan["version"] = plan["version"], 99
    json.dump(plan, open(plan_path, "w"))
    r = run(["exec", plan_path, "--quiet"])
    if r.returncode != 1 or "version" not in r.stderr:
        failures.append(f"a plan of another version ran: exit {r.returncode}\n{r.stderr}")
    # Inputs name nodes: a name given twice would resolve them to the wrong one.
    plan["version"] = version
    plan["nodes"].append(dict(plan["nodes"][0]))
    json.dump(plan, open(plan_path, "w"))
    r = run(["exec", plan_path, "--quiet"])
    name = plan["nodes"][0]["name"]
    if r.returncode != 1 or f"malformed plan: nodes[{len(plan['nodes']) - 1}]: two nodes are named '{name}'" not in r.stderr:
        failures.append(f"a plan with a node named twice ran: exit {r.returncode}\n{r.stderr}")
    total = 3

elif scenario == "run-dir-lock":
    # A second run on a live run's directory exits at once naming the holder; the kernel
    # frees the lock when the holder is killed, and the next run resumes. A recipe whose
    # name maps to the same folder is refused unless --force.
    import socket
    d = os.path.join(work, "run")
    first = subprocess.Popen([mixtape, "run", recipe, "--run-dir", d], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not glob.glob(os.path.join(d, "pretrain-*", "metrics.jsonl")):
        time.sleep(0.02)
    # Stopped, the holder keeps its lock and cannot finish first on a fast or quiet machine.
    os.killpg(first.pid, signal.SIGSTOP)
    started = time.time()
    r = run(["run", recipe, "--run-dir", d, "--quiet"])
    holder = open(os.path.join(d, "lock")).read().strip()
    if r.returncode != 1 or f"run directory {d} is locked by {socket.gethostname()}:" not in r.stderr or \
            holder.split(":")[-1] not in r.stderr or time.time() - started > 10 or first.poll() is not None:
        failures.append(f"a second run on a live run directory: exit {r.returncode}, first still running: "
                        f"{first.poll() is None}\n{r.stderr[-1500:]}")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    r = run(["run", recipe, "--run-dir", d])
    # (Where it resumes depends on how far the holder got; e2e/resume checks resuming.)
    if first.returncode != -signal.SIGKILL or r.returncode != 0 or "is locked" in r.stderr:
        failures.append(f"after the holder was killed: exit {r.returncode}\n{r.stderr[-1500:]}")
    other = os.path.join(work, "other.toml")
    text = open(recipe).read()
    name = re.search(r'^name = "([^"]*)"', text, re.M).group(1)
    open(other, "w").write(text.replace(f'name = "{name}"', f'name = "{name}/other"', 1))
    r = run(["run", other, "--run-dir", d, "--quiet"])
    if r.returncode != 1 or f"run directory {d} holds the plan of recipe '{name}', not '{name}/other'" not in r.stderr:
        failures.append(f"another recipe's run directory was taken over: exit {r.returncode}\n{r.stderr[-1500:]}")
    r = run(["run", other, "--run-dir", d, "--quiet", "--force", "--node", "init"])
    if r.returncode != 0 or json.load(open(os.path.join(d, "plan.json")))["recipe"] != f"{name}/other":
        failures.append(f"--force did not run there: exit {r.returncode}\n{r.stderr[-1500:]}")
    total = 4
elif scenario == "sigterm":
    # SIGTERM mid-training (one process, and a --nproc 2 launcher): the step finishes, a
    # checkpoint is written at it, the exit status is 128 + 15, and the rerun resumes there
    # and ends with the bytes of an uninterrupted run.
    ref = os.path.join(work, "reference")
    r = run(["run", recipe, "--run-dir", ref, "--quiet"])
    if r.returncode != 0:
        sys.exit("the reference run failed:\n" + r.stderr)
    for nproc in (1, 2):
        d = os.path.join(work, f"stopped-{nproc}")
        p = subprocess.Popen([mixtape, "run", recipe, "--run-dir", d, "--nproc", str(nproc)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.time() + 120
        while time.time() < deadline and metrics_steps(d, "pretrain") < 3:
            time.sleep(0.02)
        p.send_signal(signal.SIGTERM)
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        if nproc > 1 and "no process group for CPU tensors" in err:
            print("--nproc 2: not tried, this build has no Gloo")
            continue
        m = re.search(r"stopped by SIGTERM after stage step (\d+), checkpoint written to (\S+);", err)
        if p.returncode != 128 + signal.SIGTERM or not m or not os.path.exists(os.path.join(m.group(2), "state.json")):
            failures.append(f"--nproc {nproc}: SIGTERM did not stop with a checkpoint: exit {p.returncode}\n{err[-2000:]}")
            continue
        r = run(["run", recipe, "--run-dir", d])
        if r.returncode != 0 or f"resuming from the checkpoint at step {m.group(1)}" not in r.stderr:
            failures.append(f"--nproc {nproc}: the rerun did not resume at step {m.group(1)}\n{r.stderr[-2000:]}")
        elif outputs(d) != outputs(ref):
            failures.append(f"--nproc {nproc}: stopped and resumed, the weights differ from the uninterrupted run")
    total = 2
elif scenario == "disk-full":
    # The run directory on a small tmpfs (a mount namespace of our own: no root needed where
    # user namespaces are allowed): the run fails with exit 1 naming the file and the full
    # disk, never an abort, nothing half-written taken as valid; with room again the rerun
    # resumes and ends with the bytes of a run that never hit a full disk.
    if os.environ.get("MIXTAPE_DISK_FULL_NS") != "1":
        probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
        if probe.returncode != 0:
            print("skipped: no mount namespace here (unshare --user --mount failed)")
            sys.exit(77)
        sys.exit(subprocess.run(["unshare", "--user", "--map-root-user", "--mount", sys.executable, *sys.argv],
                                env=dict(os.environ, MIXTAPE_DISK_FULL_NS="1")).returncode)
    ref = os.path.join(work, "reference")
    r = run(["run", recipe, "--run-dir", ref, "--quiet"])
    if r.returncode != 0:
        sys.exit("the reference run failed:\n" + r.stderr)
    small = os.path.join(work, "small")
    os.makedirs(small)
    for size_kb in (2200, 2600, 3000, 3400):
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", small], check=True)
        d = os.path.join(small, "run")
        r = run(["run", recipe, "--run-dir", d, "--quiet"])
        if r.returncode != 1 or "No space left on device" not in r.stderr or small not in r.stderr:
            failures.append(f"{size_kb} KiB: not a clear error naming the file and the full disk: exit "
                            f"{r.returncode}\n{r.stderr[-2000:]}")
        subprocess.run(["mount", "-o", "remount,size=64m", small], check=True)
        r = run(["run", recipe, "--run-dir", d, "--quiet"])
        if r.returncode != 0:
            failures.append(f"{size_kb} KiB: the rerun with room failed: exit {r.returncode}\n{r.stderr[-2000:]}")
        elif outputs(d) != outputs(ref):
            failures.append(f"{size_kb} KiB: the rerun's weights differ from a run that never hit a full disk")
        subprocess.run(["umount", small], check=True)
    total = 8
elif scenario == "nan":
    bad = os.path.join(work, "diverge.toml")
    text = open(recipe).read().replace("peak = 3e-3", "peak = 1e12")
    open(bad, "w").write(text)
    r = run(["run", bad, "--run-dir", os.path.join(work, "run"), "--quiet"])
    if r.returncode != 1 or "pretrain" not in r.stderr or "step" not in r.stderr or "loss is" not in r.stderr:
        failures.append(f"divergence was not stopped with a diagnostic: exit {r.returncode}\n{r.stderr}")
    if glob.glob(os.path.join(work, "run", "pretrain*", "DONE")):
        failures.append("the diverged node was marked done")
    total = 2
elif scenario == "nan-skip":
    plans = {}
    for name, extra in [("stop", ""), ("skip", 'on_nonfinite = "skip"\n')]:
        path = os.path.join(work, name + ".toml")
        text = open(recipe).read().replace("peak = 3e-3", "peak = 1e12")
        open(path, "w").write(text.replace('checkpoint = { every = "8Ki", keep = 2 }\n',
                                           'checkpoint = { every = "8Ki", keep = 2 }\n' + extra))
        out = os.path.join(work, name + ".plan.json")
        run(["plan", path, "--out", out, "--run-dir", os.path.join(work, "run-" + name)])
        plans[name] = {n["name"]: n for n in json.load(open(out))["nodes"]}
    if plans["skip"]["pretrain"]["hash"] == plans["stop"]["pretrain"]["hash"] or \
            plans["skip"]["pretrain"]["settings"].get("on_nonfinite") != "skip" or \
            plans["skip"]["adapt"]["settings"].get("on_nonfinite") != "skip":
        failures.append("on_nonfinite is not a hashed, inherited setting")
    d = os.path.join(work, "run-skip")
    r = run(["run", os.path.join(work, "skip.toml"), "--run-dir", d])
    pretrain = glob.glob(os.path.join(d, "pretrain-*", "metrics.jsonl"))
    records = [json.loads(l) for l in open(pretrain[0])] if pretrain else []
    skips = [x for x in records if x["type"] == "skip"]
    trains = [x for x in records if x["type"] == "train"]
    if r.returncode != 1 or "the loss or gradient norm was not finite 8 steps in a row" not in r.stderr or \
            "on_nonfinite" not in r.stderr:
        failures.append(f"a diverged skipping node was not stopped: exit {r.returncode}\n{r.stderr[-2000:]}")
    elif len(skips) < 8 or [x["skipped_steps"] for x in skips] != list(range(1, len(skips) + 1)) or \
            any(x.get("nonfinite_loss", x.get("nonfinite_grad_norm")) not in ("NaN", "inf", "-inf") for x in skips) or \
            any("skipped_steps" not in x for x in trains):
        failures.append(f"skip records: {skips[-3:]}")
    elif f"stage steps {skips[-1]['step'] - 7} to {skips[-1]['step']}:" not in r.stderr or "skipped " not in r.stderr:
        failures.append(f"the diagnostic does not name the skipped steps or progress lacks the count:\n{r.stderr[-1500:]}")
    if glob.glob(os.path.join(d, "pretrain*", "DONE")):
        failures.append("the diverged node was marked done")
    # on_nonfinite = "stop" with a checkpoint every step: the first non-finite loss or
    # gradient norm stops the node before its update; every checkpoint left is finite and
    # resumable, every metrics line strict JSON (no NaN literals).
    d = os.path.join(work, "run-stop")
    every_step = open(os.path.join(work, "stop.toml")).read().replace('every = "8Ki"', 'every = "1Ki"') \
        .replace("peak = 1e12", "peak = 1e6")
    open(os.path.join(work, "stop.toml"), "w").write(every_step)
    r = run(["run", os.path.join(work, "stop.toml"), "--run-dir", d])
    checkpoints = glob.glob(os.path.join(d, "pretrain-*", "checkpoints", "*", "shard-*.safetensors"))
    bad = [p for p in checkpoints + glob.glob(os.path.join(d, "*", "optimizer.safetensors")) if not all_finite(p)]
    def strict(line):
        try:
            json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
            return True
        except ValueError:
            return False
    lines = [l for p in glob.glob(os.path.join(d, "*", "metrics.jsonl")) for l in open(p)]
    if r.returncode != 1 or not any(f"is {w}" in r.stderr for w in ("NaN", "infinite")) or \
            "weights left as they were" not in r.stderr:
        failures.append(f"a diverged node did not stop before its update: exit {r.returncode}\n{r.stderr[-2000:]}")
    elif not checkpoints or bad:
        failures.append(f"checkpoints with non-finite values: {bad} (of {len(checkpoints)})")
    elif not lines or not all(strict(l) for l in lines):
        failures.append("metrics.jsonl holds a line that is not strict JSON")
    total = 4
elif scenario == "northstar":
    d = os.path.join(work, "run")
    r = run(["run", os.path.join(here, "north-star-small.toml"), "--run-dir", d, "--quiet"])
    if r.returncode != 0:
        failures.append(f"north-star-small failed:\n{r.stderr[-3000:]}")
    plan = json.load(open(os.path.join(d, "plan.json")))
    for node in plan["nodes"]:
        if not os.path.exists(os.path.join(d, node["dir"], "DONE")):
            failures.append(f"node {node['name']} is not done")
    shapes = {p["shape"] for n in plan["nodes"] if n["kind"] == "train" for p in n["settings"]["lr"]["phases"]}
    want = {"warmup", "constant", "linear", "cosine", "exp", "inverse_sqrt", "1-sqrt"}
    if not want <= shapes:
        failures.append(f"schedule shapes trained: {sorted(shapes)}, missing {sorted(want - shapes)}")
    finals = 0
    for node in plan["nodes"]:
        path = os.path.join(d, node["dir"], "metrics.jsonl")
        if node["kind"] == "eval" and os.path.exists(path):
            finals += sum(1 for l in open(path) if '"final"' in l)
    evals = sum(1 for n in plan["nodes"] if n["kind"] == "eval")
    if finals != 2 * evals:
        failures.append(f"{finals} final eval records for {evals} eval nodes of 2 splits")
    total = 4
elif scenario == "evals-retained":
    d = os.path.join(work, "run")
    r = run(["run", recipe, "--run-dir", d, "--quiet"])
    if r.returncode != 0:
        failures.append("the first run failed:\n" + r.stderr)
    before = outputs(d)
    def records(kind):
        out = []
        for path in sorted(glob.glob(os.path.join(d, "*", "metrics.jsonl"))):
            out += [json.loads(l) for l in open(path) if f'"type":"{kind}"' in l]
        return out
    trained = len(records("train"))
    # Only the eval points change (every 16Ki -> 8Ki): no hash changes.
    denser = os.path.join(work, "denser.toml")
    open(denser, "w").write(open(recipe).read().replace('during = { every = "16Ki" }', 'during = { every = "8Ki" }'))
    r = run(["plan", denser, "--run-dir", d, "--explain", "pretrain"])
    explain = r.stdout[r.stdout.find("  in-loop evals:"):]
    golden = """  in-loop evals: the node is done; 3 points are not logged: `mixtape run` evaluates 1 from retained weights without training, 2 would need retraining
    ppl at stage tokens 8192 (step 16; prose.val, code.val): needs retraining: no checkpoint was retained at step 16
    ppl at stage tokens 24576 (step 48; prose.val, code.val): needs retraining: no checkpoint was retained at step 48
    ppl at stage tokens 40960 (step 80; prose.val, code.val): from the retained checkpoint at step 80
"""
    if r.returncode != 0 or explain != golden:
        failures.append(f"plan --explain before the rerun: exit {r.returncode}\n{explain}\nwanted\n{golden}{r.stderr}")
    r = run(["run", denser, "--run-dir", d])
    if r.returncode != 0 or "] step " in r.stderr or len(records("train")) != trained or outputs(d) != before:
        failures.append(f"the rerun trained (exit {r.returncode}):\n{r.stderr[-2000:]}")
    for want in ["[pretrain] warning: eval 'ppl' at stage tokens 8192 is not logged and needs retraining",
                 "[pretrain] warning: eval 'ppl' at stage tokens 24576 is not logged and needs retraining",
                 "[pretrain] eval 'ppl' at stage tokens 40960, from the retained checkpoint at step 80",
                 "[adapt] eval 'ppl' at stage tokens 8192, from the retained checkpoint at step 16"]:
        if want not in r.stderr:
            failures.append(f"the rerun does not say: {want}\n{r.stderr[-2000:]}")
    served = {(e["node"], e["stage_tokens"], e["stream"]): e["loss"] for e in records("eval") if e.get("from_checkpoint")}
    if sorted(served) != [("adapt", 8192, "code"), ("adapt", 8192, "prose"),
                          ("pretrain", 40960, "code"), ("pretrain", 40960, "prose")]:
        failures.append(f"evals served from checkpoints: {sorted(served)}")
    # A run that had those points from the start logs the same losses in its training loop.
    fresh = os.path.join(work, "fresh")
    r = run(["run", denser, "--run-dir", fresh, "--quiet"])
    logged = {}
    for path in glob.glob(os.path.join(fresh, "*", "metrics.jsonl")):
        for e in (json.loads(l) for l in open(path) if '"during"' in l):
            logged[(e["node"], e["stage_tokens"], e["stream"])] = e["loss"]
    for key, loss in served.items():
        if logged.get(key) != loss:
            failures.append(f"{key}: served loss {loss}, the training loop's {logged.get(key)}")
    # Served once: the next run evaluates nothing more, and explain says what is left.
    evals = len(records("eval"))
    r = run(["run", denser, "--run-dir", d, "--quiet"])
    if r.returncode != 0 or len(records("eval")) != evals:
        failures.append(f"a third run evaluated again: {len(records('eval'))} eval records, not {evals}")
    r = run(["plan", denser, "--run-dir", d, "--explain", "adapt"])
    if "  in-loop evals: the node is done and every point is logged\n" not in r.stdout:
        failures.append("plan --explain adapt after serving:\n" + r.stdout[-1000:])
    total = 6
elif scenario == "stream-loss":
    d = os.path.join(work, "run")
    r = run(["run", recipe, "--run-dir", d, "--quiet"])
    if r.returncode != 0:
        failures.append("the run failed:\n" + r.stderr)
    steps = []
    for path in glob.glob(os.path.join(d, "adapt-*", "metrics.jsonl")):
        steps = [json.loads(l) for l in open(path) if '"type":"train"' in l]
    if len(steps) != 32:
        failures.append(f"{len(steps)} adapt steps logged, not 32")
    for s in steps:
        by, tokens = s.get("loss_by_stream", {}), s.get("loss_tokens_by_stream", {})
        # A step of 8 sequences at 10% prose often has none: a stream without samples is left out.
        if sorted(by) != sorted(tokens) or not set(by) <= {"code", "prose"} or sum(tokens.values()) != 512:
            failures.append(f"step {s['step']}: per-stream fields {by} {tokens}")
            break
        mean = sum(by[k] * tokens[k] for k in by) / sum(tokens.values())
        if abs(mean - s["loss"]) > 1e-6 * s["loss"]:
            failures.append(f"step {s['step']}: weighted stream losses {mean} != loss {s['loss']}")
            break
    # The pretrained prose is much easier than the new code domain early in adapt.
    early = [s["loss_by_stream"] for s in steps[:12] if "prose" in s["loss_by_stream"]]
    if len(early) < 3 or not all(by["prose"] + 0.5 < by["code"] for by in early):
        failures.append(f"prose (pretrained) is not easier than code early in adapt: {early}")
    total = 3
elif scenario == "train-split":
    with open(recipe) as f:
        text = f.read().replace('streams = ["prose.val", "code.val"]', 'streams = ["prose.val", "code.val", "code.train"]')
    split_recipe = os.path.join(work, "split.toml")
    with open(split_recipe, "w") as f:
        f.write(text)
    def evals(d):
        r = run(["run", split_recipe, "--run-dir", d, "--quiet"])
        if r.returncode != 0:
            failures.append(f"the run in {d} failed:\n{r.stderr[-3000:]}")
        return [json.loads(l) for p in sorted(glob.glob(os.path.join(d, "*", "metrics.jsonl")))
                for l in open(p) if '"type":"eval"' in l]
    first = evals(os.path.join(work, "a"))
    at = lambda e: (e["node"], e["point"], e["stage_tokens"])
    points = sorted({at(e) for e in first})
    train = [e for e in first if e["split"] == "train"]
    if len(points) < 2 or sorted(at(e) for e in train) != points:
        failures.append(f"code.train is not logged once at each eval point {points}: {train}")
    for e in train:
        val = [v for v in first if v["split"] == "val" and v["stream"] == "code" and at(v) == at(e)]
        if e["stream"] != "code" or e["tokens"] != 4096 or not 0 < e["loss"] < 10:
            failures.append(f"a code.train record: {e}")
        elif len(val) != 1 or val[0]["loss"] == e["loss"]:
            failures.append(f"code.train is not other documents than code.val: {e} {val}")
    if evals(os.path.join(work, "b")) != first:
        failures.append("a second run directory logs other eval records")
    total = 3
elif scenario == "tasks":
    import math
    src = os.path.join(here, "..", "..", "recipes", "tasks")
    for name in ("facts-choice.jsonl", "facts-qa.jsonl"):
        shutil.copy(os.path.join(src, name), work)
    shutil.copy(os.path.join(here, "tasks.toml"), work)
    recipe = os.path.join(work, "tasks.toml")
    run_dir = os.path.join(work, "run")
    first = run(["run", recipe, "--run-dir", run_dir])
    if first.returncode != 0:
        finish([f"run failed: {first.stderr[-2000:]}"], 1)
    items = {name: [json.loads(l) for l in open(os.path.join(work, f)) if l.strip()]
             for name, f in (("choice", "facts-choice.jsonl"), ("qa", "facts-qa.jsonl"))}
    records = []
    for metrics in glob.glob(os.path.join(run_dir, "*", "metrics.jsonl")):
        for line in open(metrics):
            r = json.loads(line)
            if r.get("type") == "eval" and "task" in r:
                records.append((os.path.dirname(metrics), r))
    points = {(r["node"], r["point"], r["stage_tokens"], r["task"]) for _, r in records}
    # Final: init, learn, shift; in-loop: learn at 0 and 16Ki, shift at 0 (16Ki is its end).
    want = {(n, "final", t, task) for n, t in (("init", 0), ("learn", 32768), ("shift", 16384))
            for task in ("facts", "facts_fewshot", "qa")}
    want |= {(n, "during", t, task) for n, t in (("learn", 0), ("learn", 16384), ("shift", 0))
             for task in ("facts", "facts_fewshot", "qa")}
    if points != want:
        failures.append(f"task records {sorted(points - want)} unexpected, {sorted(want - points)} missing")

    def stderr(values):
        n = len(values)
        mean = sum(values) / n
        return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) / math.sqrt(n)

    checked = 0
    for node_dir, r in records:
        name = r["task"] + (".items.jsonl" if r["point"] == "final" else f"@{r['chain_tokens']}.items.jsonl")
        path = os.path.join(node_dir, name)
        if not os.path.exists(path):
            failures.append(f"{r['node']} {r['point']} {r['task']}: no {name}")
            continue
        per_item = [json.loads(l) for l in open(path)]
        if len(per_item) != r["items"]:
            failures.append(f"{path}: {len(per_item)} lines for {r['items']} items")
            continue
        if r["kind"] == "choice":
            acc, norm = [], []
            for it in per_item:
                item = items["choice"][it["index"]]
                ll = it["loglik"]
                if it["gold"] != item["gold"] or len(ll) != len(item["choices"]):
                    failures.append(f"{path}: item {it['index']} does not match the task file")
                best = max(range(len(ll)), key=lambda i: (ll[i], -i))
                scores = [ll[i] / len(item["choices"][i]) for i in range(len(ll))]
                best_norm = max(range(len(ll)), key=lambda i: (scores[i], -i))
                acc.append(1.0 if best == item["gold"] else 0.0)
                norm.append(1.0 if best_norm == item["gold"] else 0.0)
            got = (r["acc"], r["acc_norm"], r["acc_stderr"], r["acc_norm_stderr"])
            expect = (sum(acc) / len(acc), sum(norm) / len(norm), stderr(acc), stderr(norm))
        else:
            em = []
            for it in per_item:
                answer = items["qa"][it["index"]]["answer"]
                if it["answer"] != answer:
                    failures.append(f"{path}: item {it['index']}'s answer is not the task file's")
                em.append(1.0 if it["output"].strip() == answer.strip() else 0.0)
                if it["exact_match"] != em[-1]:
                    failures.append(f"{path}: item {it['index']}: exact_match {it['exact_match']} for {it['output']!r}")
            got = (r["exact_match"], r["exact_match_stderr"])
            expect = (sum(em) / len(em), stderr(em))
        if any(abs(a - b) > 1e-12 for a, b in zip(got, expect)):
            failures.append(f"{path}: the record says {got}, its items give {expect}")
        checked += 1
    if checked != len(want):
        failures.append(f"{checked} records checked of {len(want)}")

    # Nothing is scored again; the same numbers from two ranks.
    again = run(["run", recipe, "--run-dir", run_dir])
    if again.returncode != 0 or glob.glob(os.path.join(run_dir, "*", "*.items.jsonl.tmp*")):
        failures.append(f"rerun: {again.stderr[-800:]}")
    if sum(1 for _ in records) != sum(1 for m in glob.glob(os.path.join(run_dir, "*", "metrics.jsonl"))
                                      for l in open(m) if '"task"' in l):
        failures.append("the rerun logged task records again")
    two = run(["run", recipe, "--run-dir", os.path.join(work, "two"), "--nproc", "2"])
    if two.returncode == 77 or "Gloo" in two.stderr and two.returncode != 0:
        print("skipping the --nproc 2 check:", two.stderr.strip()[-300:])
    elif two.returncode != 0:
        failures.append(f"--nproc 2: {two.stderr[-1500:]}")
    else:
        for node_dir, r in records:
            other = glob.glob(os.path.join(work, "two", os.path.basename(node_dir), "metrics.jsonl"))
            theirs = [json.loads(l) for l in open(other[0])] if other else []
            match = [x for x in theirs if x.get("task") == r["task"] and x["point"] == r["point"]
                     and x["stage_tokens"] == r["stage_tokens"]]
            if len(match) != 1 or {k: v for k, v in match[0].items()} != r:
                failures.append(f"--nproc 2: {r['node']} {r['point']} {r['task']} differs: {match} vs {r}")

    # An edited task file: refused under the old plan, then only evals are scored again.
    with open(os.path.join(work, "facts-choice.jsonl"), "a") as f:
        f.write(json.dumps({"context": "Q: Is this new?\nA:", "choices": ["yes", "no"], "gold": 0}) + "\n")
    eval_dirs = glob.glob(os.path.join(run_dir, "downstream.*"))
    for d in eval_dirs:
        shutil.rmtree(d)
    stale = run(["exec", os.path.join(run_dir, "plan.json"), "--run-dir", run_dir])
    if stale.returncode == 0 or "changed since the plan was made" not in stale.stderr:
        failures.append(f"a stale task file was scored: exit {stale.returncode}: {stale.stderr[-600:]}")
    replanned = run(["run", recipe, "--run-dir", run_dir])
    trained = re.findall(r"\[(learn|shift)\] step", replanned.stderr)
    if replanned.returncode != 0 or trained:
        failures.append(f"after planning again: exit {replanned.returncode}, trained {len(trained)} steps: "
                        f"{replanned.stderr[-600:]}")

    report = run(["report", run_dir])
    forgetting = os.path.join(run_dir, "report", "forgetting.json")
    if report.returncode != 0 or not os.path.exists(forgetting):
        failures.append(f"report: {report.stderr[-600:]}")
    elif '"task": "facts"' not in open(forgetting).read().replace('"task":"facts"', '"task": "facts"'):
        failures.append("forgetting.json has no entry for the task facts")
    finish(failures, 8)

elif scenario == "ablation-by":
    d = os.path.join(work, "run")
    r = run(["run", os.path.join(here, "..", "..", "recipes", "ablation-by-source.toml"), "--run-dir", d, "--quiet"])
    if r.returncode != 0:
        failures.append(f"ablation-by-source failed:\n{r.stderr[-3000:]}")
    plan = json.load(open(os.path.join(d, "plan.json")))
    units = {name: s for name, s in plan["streams"].items() if "by" in s.get("unit", {})}
    if sorted(s["unit"]["value"] for s in units.values()) != ["accumulate", "branch", "class", "filter"]:
        failures.append(f"units by source: {sorted(units)}")
    for field in ["train_documents", "train_tokens"]:
        if sum(s[field] for s in units.values()) != plan["streams"]["code"][field]:
            failures.append(f"the units' {field} do not add up to code's")
    trained, weights = 0, set()
    for node in plan["nodes"]:
        if not os.path.exists(os.path.join(d, node["dir"], "DONE")):
            failures.append(f"node {node['name']} is not done")
        if node["kind"] != "train" or not node["name"].startswith("code-by-source/"):
            continue
        steps = [json.loads(l) for l in open(os.path.join(d, node["dir"], "metrics.jsonl")) if '"train"' in l]
        weights.add(open(os.path.join(d, node["dir"], "model.safetensors"), "rb").read())
        if steps[-1]["stage_tokens"] != node["ledger"]["tokens"]:
            failures.append(f"{node['name']}: {steps[-1]['stage_tokens']} tokens trained, the ledger says "
                            f"{node['ledger']['tokens']}")
        trained += steps[-1]["stage_tokens"]
    # Same seed model and settings: only their documents can make the unit models differ.
    if len(weights) != len(units):
        failures.append(f"{len(units)} units trained {len(weights)} distinct models")
    if [a["unit_tokens"] for a in plan["ablations"]] != [trained]:
        failures.append(f"ablation ledger {plan['ablations']} against {trained} unit tokens trained")
    r = run(["report", d])
    if r.returncode != 0 or "ablation code-by-source: candidate mixtures" not in r.stdout or \
            "code-by-source{accumulate,filter}" not in r.stdout:
        failures.append(f"the report does not rank the combinations:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    total = 4
elif scenario == "edited-shard":
    env["MIXTAPE_CACHE_DIR"] = os.path.join(work, "cache")
    data = os.path.join(work, "data")
    r = run(["data", "synth", "--out", data, "--docs", "200", "--domains", "prose"])
    if r.returncode != 0:
        sys.exit("mixtape data synth failed:\n" + r.stderr)
    edited_recipe = os.path.join(work, "edited.toml")
    with open(edited_recipe, "w") as f:
        f.write('[recipe]\nname = "edited"\nseed = 3\n\n'
                '[model]\nfamily = "llama"\nlayers = 1\nd_model = 32\nheads = 2\nseq_len = 64\n\n'
                '[streams.prose]\nshards = "data/prose"\n\n'
                '[[stage]]\nname = "pretrain"\ntokens = "2Ki"\nbatch = "8 sequences"\nmix = "prose"\n'
                'lr = "warmup(10%, peak = 3e-3) then cosine(final = 3e-4)"\n')
    bin_path = os.path.join(data, "prose.bin")
    manifest_path = os.path.join(data, "prose.manifest.json")
    recorded = next(f["xxh3_64"] for f in json.load(open(manifest_path))["files"] if f["name"] == "prose.bin")

    def refused(r, what):
        want = (rf"{re.escape(bin_path)}: checksum mismatch: XXH3-64 is ([0-9a-f]{{16}}) \(\d+ bytes\) but "
                rf"{re.escape(manifest_path)} records {recorded} \(\d+ bytes\)")
        m = re.search(want, r.stderr)
        if r.returncode != 1 or not m or m.group(1) == recorded:
            failures.append(f"{what}: not refused with exit 1 and the checksums (exit {r.returncode}):\n"
                            f"{r.stderr[-2000:]}")
        if glob.glob(os.path.join(work, what, "*", "metrics.jsonl")):
            failures.append(f"{what}: a node trained on the edited shard")

    r = run(["run", edited_recipe, "--run-dir", os.path.join(work, "first")])
    if r.returncode != 0 or "verified against" not in r.stderr:
        failures.append(f"the first run did not verify the data and train:\n{r.stderr[-2000:]}")
    r = run(["run", edited_recipe, "--run-dir", os.path.join(work, "second")])
    if r.returncode != 0 or "verified against" in r.stderr:
        failures.append(f"the second run hashed the unchanged data again:\n{r.stderr[-2000:]}")
    # The first token's low byte, +1: still a byte id, so only the checksum can tell.
    stat = os.stat(bin_path)
    with open(bin_path, "r+b") as f:
        first = f.read(1)[0]
        f.seek(0)
        f.write(bytes([first ^ 1]))
    os.utime(bin_path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    refused(run(["run", edited_recipe, "--run-dir", os.path.join(work, "full"), "--verify-data", "full"]), "full")
    os.utime(bin_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1000))
    refused(run(["run", edited_recipe, "--run-dir", os.path.join(work, "edited")]), "edited")
    total = 4
elif scenario == "dcpt":
    # recipes/dcpt.toml with a quarter of its tokens (the same 2 x 4 x 3 grid), so that it runs
    # in about a minute on 2 cores.
    text = open(os.path.join(here, "..", "..", "recipes", "dcpt.toml")).read()
    for old, new in [('tokens = "512Ki"', 'tokens = "128Ki"'), ('tokens = "256Ki"', 'tokens = "64Ki"'),
                     ('horizon = "256Ki"', 'horizon = "64Ki"'), ('"64Ki", t128 = "128Ki", t256 = "256Ki"',
                     '"16Ki", t128 = "32Ki", t256 = "64Ki"'), ('max_tokens = "16Ki"', 'max_tokens = "8Ki"')]:
        if old not in text:
            sys.exit(f"recipes/dcpt.toml no longer has {old}: update the dcpt scenario")
        text = text.replace(old, new)
    small = os.path.join(work, "dcpt.toml")
    open(small, "w").write(text)
    d = os.path.join(work, "run")
    r = run(["run", small, "--run-dir", d, "--quiet"])
    if r.returncode != 0:
        sys.exit(f"dcpt failed:\n{r.stderr[-3000:]}")
    plan = json.load(open(os.path.join(d, "plan.json")))
    inits = [n for n in plan["nodes"] if n["kind"] == "init"]
    if sorted((n["name"], n["settings"]["model"]["layers"], n["settings"]["model"]["d_model"]) for n in inits) != \
            [("init[size=large,width=large]", 2, 64), ("init[size=small,width=small]", 1, 32)]:
        failures.append(f"inits: {[n['name'] for n in inits]}")
    # Each size trained its own model: the weights' shapes are the size's.
    for node in plan["nodes"]:
        if node["kind"] == "train" and node["name"].startswith("pretrain["):
            header, _ = read_safetensors(os.path.join(d, node["dir"], "model.safetensors"))
            width = header["model.embed_tokens.weight"]["shape"][1]
            if width != (32 if "small" in node["name"] else 64):
                failures.append(f"{node['name']}: embedding width {width}")
    # The effect the law fits: more code lowers the code loss and raises the prose loss.
    final = {}
    for path in glob.glob(os.path.join(d, "*", "metrics.jsonl")):
        for line in open(path):
            rec = json.loads(line)
            if rec.get("type") == "eval" and rec.get("point") == "final":
                final[(rec["node"], rec["stream"])] = rec["loss"]
    cpt = sorted({node for node, _ in final if node.startswith("cpt[")})
    if len(cpt) != 24:
        failures.append(f"{len(cpt)} evaluated cpt nodes, not 24: {cpt}")
    for node in cpt:
        if "ratio=r10" not in node:
            continue
        other = node.replace("ratio=r10", "ratio=r90")
        if not final[(other, "code")] < final[(node, "code")]:
            failures.append(f"code loss: {other} {final[(other, 'code')]} not below {node} {final[(node, 'code')]}")
        if not final[(other, "prose")] > final[(node, "prose")]:
            failures.append(f"prose loss: {other} {final[(other, 'prose')]} not above {node} {final[(node, 'prose')]}")
    r = run(["fit", d, "--domain", "code", "--general", "prose"])
    best = re.search(r"^best ratio: ([0-9.]+)$", r.stdout, re.M)
    if r.returncode != 0 or "domain loss (code.val)" not in r.stdout or "general loss (prose.val)" not in r.stdout \
            or "24 runs of stage 'cpt'" not in r.stdout or not best or not 0 <= float(best.group(1)) <= 1:
        failures.append(f"mixtape fit:\n{r.stdout[-3000:]}{r.stderr[-2000:]}")
    for chart in ["fit-domain.svg", "fit-general.svg"]:
        if not os.path.exists(os.path.join(d, "fit", chart)):
            failures.append(f"no {chart}")
    sys.stdout.write(r.stdout)
    total = 6
else:
    sys.exit(f"unknown scenario {scenario}")

finish(failures, total)
