#!/usr/bin/env python3
"""End-to-end runs of tests/e2e/tiny.toml:
  resume   -- kill -9 at several points, run the same command again: final weights and optimizer
              state byte-identical to an uninterrupted run; finished nodes are skipped
  refuse   -- `mixtape exec` refuses a provisional plan and a plan of another version
  nan      -- a diverging learning rate stops the node with a diagnostic naming the step
  northstar -- tests/e2e/north-star-small.toml (every construct of the north-star the runtime
              covers) runs end to end: every node done, every eval point logged
  ablation-by -- recipes/ablation-by-source.toml: units by a metadata column partition the
              stream, each unit node trains the tokens the ledger says into a model of its
              own, and the report ranks the combinations
    run_test.py MIXTAPE SCENARIO WORKDIR"""
import glob, json, os, shutil, signal, subprocess, sys, time

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

def metrics_lines(run_dir):
    return sum(len(open(p, "rb").read().splitlines()) for p in glob.glob(os.path.join(run_dir, "*", "metrics.jsonl")))

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
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait()
        r = run(["run", recipe, "--run-dir", d, "--quiet"])
        if r.returncode != 0:
            failures.append(f"resume after kill at {kill_after} metrics lines failed:\n{r.stderr}")
            continue
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
    if r.returncode != 1 or f"malformed plan: two nodes are named '{name}'" not in r.stderr:
        failures.append(f"a plan with a node named twice ran: exit {r.returncode}\n{r.stderr}")
    total = 3

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
else:
    sys.exit(f"unknown scenario {scenario}")

for f in failures:
    print("FAIL:", f)
print(f"{total - min(len(failures), total)} passed, {min(len(failures), total)} failed")
sys.exit(1 if failures else 0)
