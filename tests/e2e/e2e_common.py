"""What the end-to-end scripts share: the work folder and the mixtape command, reading
safetensors files, the newest checkpoint of a killed run, running a recipe as it is, the
final evals, and the closing report."""
import glob, json, os, shutil, struct, subprocess, sys

RECIPES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "recipes")


def start(threads=1):
    """For a script called as SCRIPT MIXTAPE WORKDIR: (mixtape, work, env, run) with WORKDIR
    emptied, env the environment of a CPU run on `threads` threads, and run(args) running
    mixtape there (its completed process, output captured)."""
    mixtape, work = sys.argv[1:3]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    env = dict(os.environ, MIXTAPE_NUM_THREADS=str(threads), MIXTAPE_DEVICE="cpu")

    def run(args):
        return subprocess.run([mixtape, *args], capture_output=True, text=True, env=env, timeout=600)

    return mixtape, work, env, run


def read_safetensors(path):
    """(header dict without __metadata__, data bytes)"""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    return header, raw[8 + n:]


def newest_checkpoint(run_dir):
    """(node directory, node.json, step) of the newest complete checkpoint of the node that is
    not done, read as docs/run-format.md describes the run directory (a checkpoint counts once
    its state.json is there); None when no such node has one."""
    for node_dir in sorted(glob.glob(os.path.join(run_dir, "*"))):
        if os.path.exists(os.path.join(node_dir, "DONE")) or not os.path.exists(os.path.join(node_dir, "node.json")):
            continue
        steps = [json.load(open(state))["step"] for state in
                 glob.glob(os.path.join(node_dir, "checkpoints", "step-*", "state.json"))]
        if steps:
            return node_dir, json.load(open(os.path.join(node_dir, "node.json"))), max(steps)
    return None


def run_recipe(run, work, name, failures, total):
    """Runs recipes/NAME.toml as it is, copied into WORK (beside the data it names), into
    WORK/run and returns that folder; a failed run is recorded and finishes the script."""
    recipe = os.path.join(work, name + ".toml")
    shutil.copy(os.path.join(RECIPES, name + ".toml"), recipe)
    run_dir = os.path.join(work, "run")
    r = run(["run", recipe, "--run-dir", run_dir])
    if r.returncode != 0:
        failures.append("run failed:\n" + r.stderr[-3000:])
        finish(failures, total)
    return run_dir


def final_evals(run_dir):
    """{(node, stream): record} of the final eval records in every node's metrics.jsonl."""
    evals = {}
    for path in glob.glob(os.path.join(run_dir, "*", "metrics.jsonl")):
        for line in open(path):
            rec = json.loads(line)
            if rec.get("type") == "eval" and rec.get("point") == "final":
                evals[(rec["node"], rec["stream"])] = rec
    return evals


def finish(failures, total):
    """Prints each failure and the count of checks passed; exits 1 if any failed."""
    for f in failures:
        print("FAIL:", f)
    failed = min(len(failures), total)
    print(f"{total - failed} passed, {failed} failed")
    sys.exit(1 if failures else 0)
