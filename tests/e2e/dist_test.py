#!/usr/bin/env python3
"""Data-parallel runs of a shortened tests/e2e/tiny.toml over `--nproc 2` (c10d Gloo, CPU):
  match   -- 2 ranks x 4 sequences give the loss curve, evals and final weights of 1 rank x 8
  kill    -- kill -9 one rank mid-run: every rank exits within the timeout, the error names
             the rank, no done marker for the interrupted node
  hang    -- SIGSTOP one rank: the other's collective times out, the stopped one is killed
  resume  -- kill -9 the launcher mid-run (its workers go with it), run again: the ranks
             resume from rank 0's checkpoint and end byte-identical to an uninterrupted run
  zero1   -- 2 ranks with ZeRO-1 (the recipe's `zero1 = true`) give the loss curve, evals, final weights and
             optimizer state of 2 plain ranks and of 1 rank
  zero1-resume -- kill a 2-rank ZeRO-1 run after a checkpoint, resume it on 1 process without
             ZeRO-1: the checkpoint holds the whole optimizer state; the end matches
  full    -- 2 ranks with `--shard full` (FSDP) give the loss curve, evals, final weights and
             optimizer state of 2 plain ranks and of 1 rank
  full4   -- the same on 4 ranks
  full-resume -- kill a 2-rank `full` run after a checkpoint and resume it on 1 process; kill
             a 1-process run and resume it on 2 ranks with `full` (built from the checkpoint
             alone: the input's model is set aside meanwhile); kill a `full` run and resume
             it on 2 plain ranks: each ends as its uninterrupted run
  kill-full -- `kill` with `--shard full`: a rank dies while the others gather parameters
  sharded-checkpoint -- a 2-rank `full` run's checkpoint is each rank's shard and an index
             (nothing gathered); killed after it, the run resumes on 1 process, and on 4
             ranks with `optimizer`, each ending as the uninterrupted run (1e-6: the gradients
             sum in another order); `mixtape export --checkpoint` consolidates it to the
             tensors the shards hold; a missing or cut shard is an error naming it
  uneven  -- 3 ranks cannot split a batch of 8 sequences: a diagnostic, exit 1
  torchrun -- `mixtape exec PLAN` as 2 workers of PyTorch's torchrun (its agent serves the
             store) gives the loss curve and weights of 1 process; skipped (77) without a
             python3 that has torch
    dist_test.py MIXTAPE SCENARIO WORKDIR
Exits 77 (skipped) when this build has no Gloo."""
import glob, json, os, re, shutil, signal, struct, subprocess, sys, time

from e2e_common import finish, newest_checkpoint, read_safetensors

mixtape, scenario, work = sys.argv[1:4]
here = os.path.dirname(os.path.abspath(__file__))
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
env = dict(os.environ, MIXTAPE_NUM_THREADS="1")
failures = []

# tiny.toml, shorter: 16 + 8 steps, a checkpoint every 4 steps and an eval during adapt.
recipe = os.path.join(work, "tiny-dp.toml")
text = open(os.path.join(here, "tiny.toml")).read()
for old, new in [('tokens = "48Ki"', 'tokens = "8Ki"'), ('tokens = "16Ki"', 'tokens = "4Ki"'),
                 ('every = "8Ki"', 'every = "2Ki"'), ('every = "16Ki"', 'every = "2Ki"')]:
    assert old in text, old
    text = text.replace(old, new)
open(recipe, "w").write(text)

def run(args, timeout=600):
    return subprocess.run([mixtape, *args], capture_output=True, text=True, env=env, timeout=timeout)

def records(run_dir):
    out = []
    for path in sorted(glob.glob(os.path.join(run_dir, "*", "metrics.jsonl"))):
        out += [json.loads(l) for l in open(path)]
    return out

def tensors(path):
    """safetensors -> {name: list of floats} (F32 only, enough for these models)."""
    header, data = read_safetensors(path)
    out = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        assert t["dtype"] == "F32", t["dtype"]
        out[name] = struct.unpack(f"<{(b - a) // 4}f", data[a:b])
    return out

def workers(launcher_pid):
    """{rank: pid} of the launcher's children."""
    out = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
            if int(fields[1]) != launcher_pid:
                continue
            pid = int(stat.split("/")[2])
            environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            rank = [e for e in environ if e.startswith(b"RANK=")]
            if rank:
                out[int(rank[0][5:])] = pid
        except (OSError, ValueError, IndexError):
            pass
    return out

def train_lines(run_dir):
    return sum(1 for r in records(run_dir) if r.get("type") == "train") if os.path.isdir(run_dir) else 0

def start_and_wait(run_dir, timeout_s, lines, extra=(), nproc=2):
    """An `nproc`-rank run, once it has logged `lines` train records and its workers are up."""
    p = subprocess.Popen([mixtape, "run", recipe, "--nproc", str(nproc), "--timeout", str(timeout_s), "--run-dir",
                          run_dir, "--quiet", *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while p.poll() is None and time.time() < deadline and \
            (train_lines(run_dir) < lines or (nproc > 1 and len(workers(p.pid)) < nproc)):
        time.sleep(0.01)
    return p, workers(p.pid)

def kill_after_checkpoint(run_dir, extra=(), nproc=2):
    """Starts a run, kills its launcher past the checkpoint at step 4; returns the newest checkpoint."""
    p, _ = start_and_wait(run_dir, 60, 7, extra, nproc)
    p.send_signal(signal.SIGKILL)
    if p.wait() != -signal.SIGKILL:
        failures.append(f"the launcher was not killed by SIGKILL but ended with {p.returncode}")
    time.sleep(0.5)
    newest = newest_checkpoint(run_dir)
    if not newest:
        failures.append(f"no checkpoint in {run_dir} before the kill: the test resumes nothing")
    return newest

def where_stuck(pids):
    """What each live process is doing: its threads' stacks where gdb is installed, else their
    kernel wait channels (for a hang that only shows up now and then, under load)."""
    out = []
    for pid in pids:
        if not alive(pid):
            continue
        if shutil.which("gdb"):
            try:
                r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt 30"],
                                   capture_output=True, text=True, timeout=60)
            except subprocess.TimeoutExpired:
                out.append(f"pid {pid}: gdb did not answer")
                continue
            frames = [l for l in r.stdout.splitlines() if l.startswith(("#", "Thread "))]
            out.append(f"pid {pid}:\n" + "\n".join(frames[:200]))
        else:
            waits = []
            for task in sorted(glob.glob(f"/proc/{pid}/task/*")):
                try:
                    waits.append(open(task + "/comm").read().strip() + ": " + open(task + "/wchan").read())
                except OSError:
                    pass
            out.append(f"pid {pid}: " + ", ".join(waits))
    return "\n".join(out)

def alive(pid):
    try:
        os.kill(pid, 0)
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

def compare(one, two, what, tolerance=1e-4, files="model.safetensors"):
    """Failures where run directory `two` strays from `one` by more than `tolerance`
    (relative, loss and grad norm; absolute, weights); returns the largest differences."""
    a, b = records(one), records(two)
    if len(a) != len(b) or not a:
        failures.append(f"{len(a)} metrics records from {what[0]}, {len(b)} from {what[1]} (rank 0 alone logs)")
    worst = 0.0
    numbers = ("loss", "ppl", "bpb", "grad_norm", "loss_by_stream", "loss_lm", "loss_distill", "loss_l2")
    wall_clock = ("time", "elapsed_s", "tokens_per_s", "mfu", "peak_memory_bytes")  # differ from run to run
    a, b = ([{k: v for k, v in r.items() if k not in wall_clock} for r in rs] for rs in (a, b))
    for x, y in zip(a, b):
        if {k: v for k, v in x.items() if k not in numbers} != {k: v for k, v in y.items() if k not in numbers} or \
                sorted(x.get("loss_by_stream", {})) != sorted(y.get("loss_by_stream", {})):
            failures.append(f"records differ beyond the numbers: {x} vs {y}")
            break
        # The loss per stream is summed over the ranks' shares like the loss.
        pairs = [(x[k], y[k]) for k in ("loss", "bpb", "grad_norm") if k in x]
        pairs += [(v, y["loss_by_stream"][s]) for s, v in x.get("loss_by_stream", {}).items()]
        for u, v in pairs:
            worst = max(worst, abs(u - v) / max(abs(u), 1e-12))
    if worst > tolerance:
        failures.append(f"loss curves differ by {worst:.2e} (relative) between {what[0]} and {what[1]}")
    weights = 0.0
    for path in glob.glob(os.path.join(one, "*", files)):
        other = os.path.join(two, os.path.relpath(path, one))
        if not os.path.exists(other):
            failures.append(f"{what[1]} wrote no {os.path.relpath(path, one)}")
            continue
        ta, tb = tensors(path), tensors(other)
        if sorted(ta) != sorted(tb):
            failures.append(f"{os.path.relpath(path, one)}: other tensors from {what[1]}")
            continue
        diff = max(abs(u - v) for k in ta for u, v in zip(ta[k], tb[k]))
        weights = max(weights, diff)
        if diff > tolerance:
            failures.append(f"{os.path.relpath(path, one)}: differ by up to {diff:.2e} between {what[0]} and {what[1]}")
    if sorted(os.listdir(one)) != sorted(os.listdir(two)):
        failures.append(f"run directories differ: {sorted(os.listdir(one))} vs {sorted(os.listdir(two))}")
    print(f"{what[0]} vs {what[1]}: largest relative difference of loss and grad norm {worst:.2e}, "
          f"of {files} {weights:.2e}")

def skip_without_gloo(r):
    if "no process group for CPU tensors" in r.stderr:
        print("skipped: this build has no Gloo")
        sys.exit(77)

if scenario == "match":
    one, two = os.path.join(work, "one"), os.path.join(work, "two")
    r1 = run(["run", recipe, "--run-dir", one, "--quiet"])
    r2 = run(["run", recipe, "--run-dir", two, "--nproc", "2", "--timeout", "60", "--quiet"])
    if r1.returncode != 0:
        failures.append("1 process failed:\n" + r1.stderr[-3000:])
    if r2.returncode != 0:
        skip_without_gloo(r2)
        failures.append("2 processes failed:\n" + r2.stderr[-3000:])
    compare(one, two, ("1 process", "2 processes"))
    total = 4

elif scenario == "zero1":
    one, two, zero = (os.path.join(work, d) for d in ("one", "two", "zero1"))
    r1 = run(["run", recipe, "--run-dir", one, "--quiet"])
    r2 = run(["run", recipe, "--run-dir", two, "--nproc", "2", "--timeout", "60", "--quiet"])
    # Chosen in the recipe here (the stage key, inherited by adapt); zero1-resume uses --zero1.
    sharded = os.path.join(work, "tiny-zero1.toml")
    open(sharded, "w").write(text.replace("micro_batch = 4\n", "micro_batch = 4\nzero1 = true\n"))
    rz = run(["run", sharded, "--run-dir", zero, "--nproc", "2", "--timeout", "60", "--quiet"])
    for r, what in ((r1, "1 process"), (r2, "2 processes"), (rz, "2 processes with ZeRO-1")):
        if r.returncode != 0:
            skip_without_gloo(r)
            failures.append(what + " failed:\n" + r.stderr[-3000:])
    # Only the global gradient norm is summed in another order (shards, not tensors).
    compare(two, zero, ("2 processes", "2 with ZeRO-1"), 1e-5)
    compare(two, zero, ("2 processes", "2 with ZeRO-1"), 1e-5, "optimizer.safetensors")
    compare(one, zero, ("1 process", "2 with ZeRO-1"), 1e-5)
    total = 12

elif scenario == "zero1-resume":
    ref, d = os.path.join(work, "reference"), os.path.join(work, "killed")
    r = run(["run", recipe, "--run-dir", ref, "--nproc", "2", "--timeout", "60", "--quiet", "--zero1"])
    skip_without_gloo(r)
    if r.returncode != 0:
        failures.append("uninterrupted run failed:\n" + r.stderr[-3000:])
    newest = kill_after_checkpoint(d, ["--zero1"])
    r = run(["run", recipe, "--run-dir", d])
    if r.returncode != 0:
        failures.append("resumed run on 1 process failed:\n" + r.stderr[-3000:])
    if newest and f"[pretrain] resuming from the checkpoint at step {newest[2]}\n" not in r.stderr:
        failures.append(f"the run did not report resuming at step {newest[2]}:\n" + r.stderr[-3000:])
    if not re.search(r"\[pretrain\] warning: resuming at step \d+ on 1 rank\(s\) with micro-batches of \d+ "
                     r"\(the checkpoint's: 2 rank\(s\)", r.stderr):
        failures.append("resuming on another number of ranks did not warn:\n" + r.stderr[-3000:])
    compare(ref, d, ("2 processes with ZeRO-1", "resumed on 1 process"), 1e-5)
    total = 6

elif scenario in ("full", "full4"):
    nproc = "2" if scenario == "full" else "4"
    one, plain, full = (os.path.join(work, d) for d in ("one", "plain", "full"))
    r1 = run(["run", recipe, "--run-dir", one, "--quiet"])
    rp = run(["run", recipe, "--run-dir", plain, "--nproc", nproc, "--timeout", "60", "--quiet"])
    rf = run(["run", recipe, "--run-dir", full, "--nproc", nproc, "--timeout", "60", "--quiet", "--shard", "full"])
    for r, what in ((r1, "1 process"), (rp, f"{nproc} processes"), (rf, f"{nproc} processes with --shard full")):
        if r.returncode != 0:
            skip_without_gloo(r)
            failures.append(what + " failed:\n" + r.stderr[-3000:])
    # The gradients are the plain ranks' (2 ranks: a + b in any order; 4: Gloo's ring sums
    # a unit's buffer in other chunks than a bucket's); the global norm sums squares of
    # shards in double, not of tensors in float, so clipping differs in the last bits.
    tolerance = 1e-6
    compare(plain, full, (f"{nproc} processes", f"{nproc} with --shard full"), tolerance)
    compare(plain, full, (f"{nproc} processes", f"{nproc} with --shard full"), tolerance, "optimizer.safetensors")
    compare(one, full, ("1 process", f"{nproc} with --shard full"), tolerance)
    total = 12

elif scenario == "full-resume":
    cases = [("2 ranks full, resumed on 1 process", ["--shard", "full"], 2, [], 1),
             ("1 process, resumed on 2 ranks full", [], 1, ["--shard", "full"], 2),
             ("2 ranks full, resumed on 2 plain ranks", ["--shard", "full"], 2, ["--shard", "none"], 2)]
    refs = {}
    for what, before, n_before, after, n_after in cases:
        key = (tuple(before), n_before)
        if key not in refs:
            refs[key] = os.path.join(work, f"reference-{n_before}{'-'.join(before)}")
            r = run(["run", recipe, "--run-dir", refs[key], "--nproc", str(n_before), "--timeout", "60", "--quiet",
                     *before])
            skip_without_gloo(r)
            if r.returncode != 0:
                failures.append(f"uninterrupted run {key} failed:\n" + r.stderr[-3000:])
        d = os.path.join(work, "killed-" + re.sub(r"\W+", "-", what))
        newest = kill_after_checkpoint(d, before, n_before)
        # Under `full` each rank reads its shards from the checkpoint; nothing reads the input's
        # model (the done node before the killed one), set aside for the resume.
        aside = []
        if "full" in after:
            aside = [os.path.join(n, "model.safetensors") for n in glob.glob(os.path.join(d, "*"))
                     if os.path.exists(os.path.join(n, "DONE"))]
            if len(aside) != 1:
                failures.append(f"{what}: {len(aside)} done nodes before the killed one, not its input alone")
            for path in aside:
                os.rename(path, path + ".aside")
        r = run(["run", recipe, "--run-dir", d, "--nproc", str(n_after), "--timeout", "60", *after])
        for path in aside:
            os.rename(path + ".aside", path)
        if r.returncode != 0:
            failures.append(f"{what}: the resumed run failed:\n" + r.stderr[-3000:])
        if newest and f"[pretrain] resuming from the checkpoint at step {newest[2]}\n" not in r.stderr:
            failures.append(f"{what}: the run did not report resuming at step {newest[2]}:\n" + r.stderr[-3000:])
        compare(refs[key], d, ("uninterrupted", what), 1e-6)
    total = 12

elif scenario == "sharded-checkpoint":
    ref = os.path.join(work, "reference")
    r = run(["run", recipe, "--run-dir", ref, "--nproc", "2", "--timeout", "60", "--quiet", "--shard", "full"])
    skip_without_gloo(r)
    if r.returncode != 0:
        failures.append("uninterrupted run failed:\n" + r.stderr[-3000:])
    for what, after, n_after in (("resumed on 1 process", [], 1),
                                 ("resumed on 4 ranks with optimizer", ["--shard", "optimizer"], 4)):
        d = os.path.join(work, "killed-" + str(n_after))
        newest = kill_after_checkpoint(d, ["--shard", "full"], 2)
        if not newest:
            continue
        ckpt = os.path.join(newest[0], "checkpoints", "step-%08d" % newest[2])
        files = sorted(os.listdir(ckpt))
        want = ["index.json", "shard-00000-of-00002.safetensors", "shard-00001-of-00002.safetensors", "state.json"]
        if files != want:
            failures.append(f"the checkpoint holds {files}, not {want}")
        # Read as docs/cluster.md describes it: each tensor is its slices, end to end.
        index = json.load(open(os.path.join(ckpt, "index.json")))
        if (index["world_size"], index["shard_mode"]) != (2, "full"):
            failures.append(f"index: world {index['world_size']}, mode {index['shard_mode']}")
        whole = {}
        for name, t in index["tensors"].items():
            values, at = [], 0
            for piece in sorted(t["slices"], key=lambda p: p["begin"]):
                if piece["begin"] != at:
                    failures.append(f"index: {name} has a gap or overlap at element {at}")
                values += tensors(os.path.join(ckpt, piece["file"]))[name]
                at += piece["length"]
            size = 1
            for dim in t["shape"]:
                size *= dim
            if at != size:
                failures.append(f"index: the slices of {name} hold {at} of its {size} elements")
            whole[name] = values
        if n_after == 1:
            out = os.path.join(work, "export")
            rx = run(["export", d, newest[1]["name"], "--checkpoint", str(newest[2]), "--hf", out])
            if rx.returncode != 0:
                failures.append("export of the sharded checkpoint failed:\n" + rx.stderr[-3000:])
            else:
                exported = tensors(os.path.join(out, "model.safetensors"))
                weights = {k: v for k, v in whole.items() if not k.endswith((".exp_avg", ".exp_avg_sq"))}
                if not weights or any(list(exported.get(k, ())) != v for k, v in weights.items()):
                    failures.append("the exported weights are not the ones the shards hold")
            # Faults on a copy: a shard cut, then gone.
            broken = os.path.join(work, "broken")
            shutil.copytree(d, broken)
            shard = os.path.join(broken, os.path.relpath(ckpt, d), "shard-00001-of-00002.safetensors")
            data = open(shard, "rb").read()
            for fault in ("cut", "missing"):
                if fault == "cut":
                    open(shard, "wb").write(data[:len(data) // 2])
                else:
                    os.remove(shard)
                rx = run(["export", broken, newest[1]["name"], "--checkpoint", str(newest[2]), "--hf",
                          os.path.join(work, "export-" + fault)])
                if rx.returncode != 1 or shard not in rx.stderr:
                    failures.append(f"a {fault} shard: exit {rx.returncode}, not 1 with an error naming it:\n"
                                    + rx.stderr[-2000:])
        r = run(["run", recipe, "--run-dir", d, "--nproc", str(n_after), "--timeout", "60", *after])
        if r.returncode != 0:
            failures.append(f"{what}: the resumed run failed:\n" + r.stderr[-3000:])
        if f"resuming from the checkpoint at step {newest[2]}\n" not in r.stderr:
            failures.append(f"{what}: the run did not report resuming at step {newest[2]}:\n" + r.stderr[-3000:])
        compare(ref, d, ("uninterrupted", what), 1e-6)
    total = 12

elif scenario in ("kill", "hang", "kill-full"):
    d = os.path.join(work, "run")
    timeout_s = 5
    p, ranks = start_and_wait(d, timeout_s, 3, ["--shard", "full"] if scenario == "kill-full" else [])
    if len(ranks) != 2 or p.poll() is not None:
        out, err = p.communicate()
        if "no process group for CPU tensors" in err:
            print("skipped: this build has no Gloo")
            sys.exit(77)
        failures.append(f"no two running workers to {scenario}: {ranks}\n{err[-3000:]}")
        total = 1
    else:
        victim = 1
        os.kill(ranks[victim], signal.SIGSTOP if scenario == "hang" else signal.SIGKILL)
        start = time.time()
        try:
            out, err = p.communicate(timeout=4 * timeout_s + 30)
        except subprocess.TimeoutExpired:
            stuck = where_stuck([p.pid, *ranks.values()])
            p.kill()
            out, err = p.communicate()
            failures.append("the launcher did not return: a silent hang; where its processes were:\n" + stuck)
        took = time.time() - start
        if p.returncode == 0:
            failures.append("the launcher exited 0 after a rank " + ("hung" if scenario == "hang" else "died"))
        want = "rank 0 of 2 exited with status 1" if scenario == "hang" else "rank 1 of 2 was killed by signal 9"
        if want not in err:
            failures.append(f"the error does not say '{want}':\n{err[-3000:]}")
        if scenario == "hang" and "rank 1 killed after" not in err:
            failures.append(f"the hung rank was not named as killed:\n{err[-3000:]}")
        limit = 2 * timeout_s + 15 if scenario == "hang" else timeout_s + 15
        if took > limit:
            failures.append(f"the ranks took {took:.0f} s to stop (limit {limit} s)")
        if any(alive(pid) for pid in ranks.values()):
            failures.append("a worker outlived the launcher")
        if glob.glob(os.path.join(d, "pretrain*", "DONE")):
            failures.append("the interrupted node has a done marker")
        print(f"every rank stopped {took:.1f} s after the {scenario}")
        total = 5

elif scenario == "resume":
    ref, d = os.path.join(work, "reference"), os.path.join(work, "killed")
    r = run(["run", recipe, "--run-dir", ref, "--nproc", "2", "--timeout", "60", "--quiet"])
    if "no process group for CPU tensors" in r.stderr:
        print("skipped: this build has no Gloo")
        sys.exit(77)
    if r.returncode != 0:
        failures.append("uninterrupted run failed:\n" + r.stderr[-3000:])
    p, ranks = start_and_wait(d, 60, 7)  # past the checkpoint at step 4
    p.send_signal(signal.SIGKILL)
    if p.wait() != -signal.SIGKILL:
        failures.append(f"the launcher was not killed by SIGKILL but ended with {p.returncode}")
    time.sleep(0.5)
    if any(alive(pid) for pid in ranks.values()):
        failures.append("a worker outlived its killed launcher")
    newest = newest_checkpoint(d)
    if not newest:
        failures.append("no checkpoint before the kill: the test resumes nothing")
    r = run(["run", recipe, "--run-dir", d, "--nproc", "2", "--timeout", "60"])
    if r.returncode != 0:
        failures.append("resumed run failed:\n" + r.stderr[-3000:])
    if newest and f"[rank 0] [pretrain] resuming from the checkpoint at step {newest[2]}\n" not in r.stderr:
        failures.append(f"rank 0 did not report resuming at step {newest[2]}:\n" + r.stderr[-3000:])
    if "the checkpoint's:" in r.stderr:
        failures.append("resuming on as many ranks warned:\n" + r.stderr[-3000:])
    for path in sorted(glob.glob(os.path.join(ref, "*", "*.safetensors"))):
        other = os.path.join(d, os.path.relpath(path, ref))
        if not os.path.exists(other) or open(path, "rb").read() != open(other, "rb").read():
            failures.append(f"{os.path.relpath(path, ref)} differs from the uninterrupted run")
    total = 4

elif scenario == "torchrun":
    pythons = [p for p in (sys.executable, "/usr/bin/python3") if p and os.path.exists(p)]
    python = next((p for p in pythons if subprocess.run([p, "-c", "import torch.distributed.run"],
                                                         capture_output=True).returncode == 0), None)
    if python is None:
        print("skipped: no python3 with torch (torchrun) here: apt-get install python3-torch")
        sys.exit(77)
    one, two = os.path.join(work, "one"), os.path.join(work, "two")
    r1 = run(["run", recipe, "--run-dir", one, "--quiet"])
    if r1.returncode != 0:
        failures.append("1 process failed:\n" + r1.stderr[-3000:])
    plan = os.path.join(two, "plan.json")
    os.makedirs(two)
    rp = run(["plan", recipe, "--out", plan, "--run-dir", two])
    if rp.returncode != 0:
        failures.append("plan failed:\n" + rp.stderr[-3000:])
    # --no_python: mixtape is a binary, not a script. --redirects/--tee 1: Debian's torchrun
    # (1.13 on Python 3.11) cannot parse their default, 0; the workers' output goes to --log_dir.
    rt = subprocess.run([python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                         "--no_python", "--redirects", "1", "--tee", "1", "--log_dir", os.path.join(work, "logs"),
                         mixtape, "exec", plan, "--quiet", "--timeout", "60"],
                        capture_output=True, text=True, env=env, timeout=600)
    if rt.returncode != 0:
        skip_without_gloo(rt)
        failures.append(f"torchrun exited {rt.returncode}:\n" + rt.stdout[-2000:] + rt.stderr[-3000:])
    ranks = sorted(os.path.basename(d) for d in glob.glob(os.path.join(work, "logs", "*", "attempt_0", "*")))
    if ranks != ["0", "1"]:
        failures.append(f"torchrun's logs show workers {ranks}, not 0 and 1")
    compare(one, two, ("1 process", "2 torchrun workers"))
    total = 4

elif scenario == "uneven":
    r = run(["run", recipe, "--run-dir", os.path.join(work, "run"), "--nproc", "3", "--timeout", "30", "--quiet"])
    if "no process group for CPU tensors" in r.stderr:
        print("skipped: this build has no Gloo")
        sys.exit(77)
    if r.returncode != 1 or "does not split over 3 ranks" not in r.stderr:
        failures.append(f"3 ranks on a batch of 8: exit {r.returncode}\n{r.stderr[-3000:]}")
    total = 1
else:
    sys.exit(f"unknown scenario {scenario}")

finish(failures, total)
