#!/usr/bin/env python3
"""recipes/distill.toml, reduced (a quarter of the tokens), end to end:
  - the train records of the distilled and anchored stages carry the objective's parts
    (loss = loss_lm + weight * loss_distill + loss_l2), the plain stage's none;
  - the plain stage writes its moving average, ema.safetensors, and `plain.ema` is evaluated
    as a model of its own;
  - the effect (Hinton et al. 2015; Li and Hoiem 2017): the distilled stage forgets prose and
    facts less than plain training at the same code loss — plain's forgetting is read off its
    in-loop trace where its code.val loss equals the distilled stage's final one.
    distill_test.py MIXTAPE WORKDIR"""
import glob, json, os, re, shutil, subprocess, sys

from e2e_common import RECIPES, finish, read_safetensors, start

mixtape, work, env, run = start(threads=1)
failures = []
checks = 6

text = open(os.path.join(RECIPES, "distill.toml")).read()
text = text.replace('tokens = "1Mi"', 'tokens = "256Ki"').replace('tokens = "512Ki"', 'tokens = "128Ki"')
text = text.replace('max_tokens = "32Ki"', 'max_tokens = "16Ki"').replace('every = "32Ki"', 'every = "16Ki"')
recipe = os.path.join(work, "distill.toml")
open(recipe, "w").write(text)
run_dir = os.path.join(work, "run")
r = subprocess.run([mixtape, "run", recipe, "--run-dir", run_dir], capture_output=True, text=True, env=env,
                   timeout=600)
if r.returncode != 0:
    failures.append("run failed:\n" + r.stderr[-3000:])
    finish(failures, checks)

plan = json.load(open(os.path.join(run_dir, "plan.json")))
dirs = {n["name"]: os.path.join(run_dir, n["dir"]) for n in plan["nodes"]}
records = {}
for path in glob.glob(os.path.join(run_dir, "*", "metrics.jsonl")):
    for line in open(path):
        rec = json.loads(line)
        records.setdefault(rec["node"], []).append(rec)

# The objective's parts.
train = {node: [r for r in records.get(node, []) if r["type"] == "train"] for node in ("plain", "distilled", "anchored")}
weight = 1.0
bad = [r for r in train["distilled"] if "loss_distill" not in r or "loss_lm" not in r or
       abs(r["loss"] - (r["loss_lm"] + weight * r["loss_distill"])) > 1e-9 * abs(r["loss"])]
if bad or not train["distilled"]:
    failures.append(f"distilled: records without loss_lm and loss_distill summing to loss: {bad[:2]}")
bad = [r for r in train["anchored"] if "loss_l2" not in r or abs(r["loss"] - (r["loss_lm"] + r["loss_l2"])) > 1e-9]
if bad or not train["anchored"] or train["anchored"][-1]["loss_l2"] <= 0:
    failures.append(f"anchored: records without loss_lm and loss_l2 summing to loss: {bad[:2]}")
if any(k in r for r in train["plain"] for k in ("loss_lm", "loss_distill", "loss_l2")):
    failures.append("plain: its records carry regularizer terms")

# The moving average: beside the model, a different tensor of the same names.
ema_file = os.path.join(dirs["plain"], "ema.safetensors")
if not os.path.exists(ema_file):
    failures.append("plain wrote no ema.safetensors")
else:
    ema, model = read_safetensors(ema_file), read_safetensors(os.path.join(dirs["plain"], "model.safetensors"))
    if sorted(ema[0]) != sorted(model[0]) or ema[1] == model[1]:
        failures.append("ema.safetensors does not hold the model's tensors, or holds the model itself")

# Final points name the model evaluated ("plain.ema" for the average).
final = {(r["node"], r["stream"]): r["loss"] for recs in records.values() for r in recs
         if r["type"] == "eval" and r.get("point") == "final" and r["eval"] == "forgetting"}
if ("plain.ema", "code") not in final:
    failures.append(f"no final eval of plain.ema: {sorted(final)[:8]}")


def forgetting(node):
    return sum(final[(node, s)] - final[("learn", s)] for s in ("prose", "facts"))


# The effect at the same code loss: plain's trace (in-loop evals; chain tokens ascending),
# interpolated where its code.val loss falls to the distilled stage's final code loss.
trace = {}
for r in records.get("plain", []):
    if r["type"] == "eval" and r["eval"] == "trace":
        trace.setdefault(r["chain_tokens"], {})[r["stream"]] = r["loss"]
points = [trace[t] for t in sorted(trace) if len(trace[t]) == 3]
at_end = {s: final[("plain", s)] for s in ("facts", "prose", "code")}
points.append(at_end)
start = {s: final[("learn", s)] for s in ("facts", "prose", "code")}
target = final[("distilled", "code")]
matched = None
for before, after in zip(points, points[1:]):
    if before["code"] >= target >= after["code"]:
        f = (before["code"] - target) / (before["code"] - after["code"]) if before["code"] != after["code"] else 1
        matched = sum(before[s] + f * (after[s] - before[s]) - start[s] for s in ("prose", "facts"))
        break
models = ("plain", "plain.ema", "distilled", "anchored")
print("code.val:", {n: final[(n, "code")] for n in ("learn",) + models})
print("rise of prose.val + facts.val:", {n: forgetting(n) for n in models},
      "\nplain at the distilled stage's code loss:", matched)
if not target < start["code"]:
    failures.append(f"the distilled stage learned no code: {target} vs {start['code']}")
if matched is None:
    failures.append(f"plain's trace never reaches the distilled stage's code loss {target}: "
                    f"{[p['code'] for p in points]}")
elif not forgetting("distilled") < matched:
    failures.append(f"expected distillation to forget less than plain training at the same code loss: "
                    f"{forgetting('distilled')} vs {matched}")
finish(failures, checks)
