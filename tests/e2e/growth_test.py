#!/usr/bin/env python3
"""recipes/growth.toml, reduced (a sixteenth of the tokens), end to end:
  - the plan writes the grown architecture into the growing stage's first node (4 blocks,
    width 64, heads and KV heads doubled, head untied), and its FLOPs are the grown model's;
  - the grown node's model has the grown shapes;
  - function preservation: the grown stage's step-0 eval loss equals the small stage's final
    one (the eval of the same split by the same rule), to fp32 rounding;
  - training goes on from there: the grown stage ends with a lower loss than it started;
  - `mixtape export` writes a Hugging Face folder with the grown sizes, which loads back as
    an `hf:` init whose eval gives the grown node's final loss.
    growth_test.py MIXTAPE WORKDIR"""
import glob, json, os, re, shutil, subprocess, sys

from e2e_common import RECIPES, finish, read_safetensors, start

mixtape, work, env, run = start(threads=2)
failures = []
checks = 7


text = open(os.path.join(RECIPES, "growth.toml")).read()
text = text.replace('tokens = "512Ki"', 'tokens = "32Ki"').replace('every = "256Ki"', 'every = "16Ki"')
text = text.replace('max_tokens = "32Ki"', 'max_tokens = "8Ki"')
recipe = os.path.join(work, "growth.toml")
open(recipe, "w").write(text)
run_dir = os.path.join(work, "run")

r = run(["run", recipe, "--run-dir", run_dir, "--quiet"])
if r.returncode != 0:
    failures.append("run failed:\n" + r.stderr[-3000:])
    finish(failures, checks)

plan = json.load(open(os.path.join(run_dir, "plan.json")))
nodes = {n["name"]: n for n in plan["nodes"]}
dirs = {name: os.path.join(run_dir, n["dir"]) for name, n in nodes.items()}
grow = nodes["grown"]["settings"].get("grow")
want = {"layers": 4, "d_model": 64, "heads": 4, "kv_heads": 2, "tie_embeddings": False}
if not grow or any(grow["model"][k] != v for k, v in want.items()) or grow["noise"] != 0:
    failures.append(f"the plan's grow of 'grown' is not the grown architecture: {grow}")
flops = {name: nodes[name]["ledger"]["flops"] for name in ("grown", "continued")}
if not flops["grown"] > 3 * flops["continued"]:
    failures.append(f"the grown node's FLOPs are not the larger model's: {flops}")

header, _ = read_safetensors(os.path.join(dirs["grown"], "model.safetensors"))
blocks = {int(m.group(1)) for k in header for m in [re.match(r"model\.layers\.(\d+)\.", k)] if m}
if blocks != {0, 1, 2, 3} or header["model.embed_tokens.weight"]["shape"][1] != 64 or "lm_head.weight" not in header:
    failures.append(f"the grown model's tensors are not 4 blocks of width 64: {sorted(blocks)}, "
                    f"{header.get('model.embed_tokens.weight')}")

# Eval losses of prose.val: the small model's last, the grown stage's first and last.
loss = {}
for path in glob.glob(os.path.join(run_dir, "*", "metrics.jsonl")):
    for line in open(path):
        rec = json.loads(line)
        if rec.get("type") == "eval" and "loss" in rec:
            loss[(rec["node"], rec["point"], rec["stage_tokens"])] = rec["loss"]
try:
    before = loss[("small", "final", 32 * 1024)]
    after = loss[("grown", "during", 0)]
    end = loss[("grown", "final", 32 * 1024)]
    print(f"prose.val loss: small at its end {before}, grown at step 0 {after}, grown at its end {end}")
    if abs(after - before) > 1e-5 * abs(before):
        failures.append(f"the loss right after growth ({after}) is not the loss before it ({before})")
    if not end < after:
        failures.append(f"training did not go on from the grown model: {after} -> {end}")
except KeyError as missing:
    failures.append(f"no eval record {missing}: {sorted(loss)[:12]}")
    end = None

# Export, and the exported folder as an init: its config has the grown sizes and its eval
# the grown node's loss.
out = os.path.join(work, "exported")
e = run(["export", run_dir, "grown", "--hf", out])
if e.returncode != 0:
    failures.append("export failed:\n" + e.stderr[-1500:])
    finish(failures, checks)
config = json.load(open(os.path.join(out, "config.json")))
sizes = {k: config.get(k) for k in ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
                                    "tie_word_embeddings")}
if sizes != {"num_hidden_layers": 4, "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
             "tie_word_embeddings": False}:
    failures.append(f"the exported config does not have the grown sizes: {sizes}")
reload = re.sub(r"\[model\]\n", f'[model]\ninit = "hf:{out}"\n', text)
reload = re.sub(r"\n(layers|d_model|heads|kv_heads) = \d+", "", reload)
reload = reload.replace('name = "growth"', 'name = "reload"')
# One step at LR 0: a recipe has a stage; the eval is of the init, the exported folder.
reload = reload[:reload.index("[[stage]]")] + \
    '[[stage]]\nname = "step"\ntokens = "2Ki"\nbatch = "16 sequences"\nmix = "prose"\nlr = "constant(0)"\n' + \
    '[[eval]]\nname = "ppl"\nstreams = ["prose.val"]\nmax_tokens = "8Ki"\non = ["init"]\n'
reload_recipe = os.path.join(work, "reload.toml")
open(reload_recipe, "w").write(reload)
reload_dir = os.path.join(work, "reload")
r = run(["run", reload_recipe, "--run-dir", reload_dir, "--quiet"])
reloaded = [json.loads(line)["loss"] for path in glob.glob(os.path.join(reload_dir, "*", "metrics.jsonl"))
            for line in open(path) if '"loss"' in line and '"eval"' in line]
if r.returncode != 0 or len(reloaded) != 1 or end is None or abs(reloaded[0] - end) > 1e-5 * abs(end):
    failures.append(f"the exported model, loaded as an init, does not give the grown node's loss {end}: "
                    f"{reloaded}\n{r.stderr[-1500:]}")
finish(failures, checks)
