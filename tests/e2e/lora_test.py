#!/usr/bin/env python3
"""recipes/lora.toml, reduced (a quarter of the tokens, no tasks), end to end:
  - the plan and the progress lines say what each node trains ("trainable ... of ...");
  - LoRA nodes write the merged model under the base's plain names, their optimizer state
    holds the factors only, and the weights LoRA does not adapt (embeddings, norms, head)
    leave the stage bit-identical; `mixtape export` writes those plain names too;
  - the slow learner's frozen embeddings are the bits it started from, and not in its
    optimizer state;
  - the effect (Biderman et al. 2024): LoRA learns code less than full training (a higher
    code.val loss) and forgets prose and facts less (a smaller rise of their val loss).
    lora_test.py MIXTAPE WORKDIR"""
import glob, json, os, re, shutil, subprocess, sys

from e2e_common import RECIPES, finish, read_safetensors, start

mixtape, work, env, run = start(threads=1)
failures = []
checks = 10


# The reduced variant: the same stages and sweep on fewer tokens, and no tasks (the study's
# question is asked of the val losses).
text = open(os.path.join(RECIPES, "lora.toml")).read()
text = re.sub(r"\n\[tasks\.[^\[]*", "\n", text)
text = text.replace('tasks = ["facts", "code_cloze"]\n', "")
text = text.replace('tokens = "1Mi"', 'tokens = "256Ki"').replace('tokens = "512Ki"', 'tokens = "128Ki"')
text = text.replace('max_tokens = "32Ki"', 'max_tokens = "16Ki"')
recipe = os.path.join(work, "lora.toml")
open(recipe, "w").write(text)
run_dir = os.path.join(work, "run")

plan = run(["plan", recipe, "--run-dir", run_dir])
if plan.returncode != 0 or not re.search(r"adapt\[rank=r4,alpha=r4\]: trainable [\d.]+[kM] of [\d.]+[kM]", plan.stdout):
    failures.append(f"the plan does not say what adapt trains:\n{plan.stdout[-1500:]}{plan.stderr[-800:]}")

r = run(["run", recipe, "--run-dir", run_dir])
if r.returncode != 0:
    failures.append("run failed:\n" + r.stderr[-3000:])
    finish(failures, checks)
if not re.search(r"\[adapt[^\]]*\]\] trainable [\d.]+[kM] of [\d.]+[kM] parameters", r.stderr):
    failures.append("no progress line says what adapt trains:\n" + r.stderr[-1500:])

plan_json = json.load(open(os.path.join(run_dir, "plan.json")))
dirs = {n["name"]: os.path.join(run_dir, n["dir"]) for n in plan_json["nodes"]}


def tensors(node, file="model.safetensors"):
    header, data = read_safetensors(os.path.join(dirs[node], file))
    return {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items()}


learn = tensors("learn")
adapt_nodes = [n for n in dirs if n.startswith("adapt[")]
for node in adapt_nodes:
    model = tensors(node)
    if sorted(model) != sorted(learn):
        failures.append(f"{node}: model.safetensors does not hold the base's plain names: {sorted(set(model) ^ set(learn))[:4]}")
        continue
    untouched = [k for k in learn if not re.search(r"(self_attn|mlp)\.\w+_proj\.weight$", k)]
    changed = [k for k in untouched if model[k] != learn[k]]
    adapted = [k for k in learn if k not in untouched and model[k] != learn[k]]
    if changed or len(adapted) != 2 * 7:
        failures.append(f"{node}: weights LoRA does not adapt changed ({changed[:3]}) or adapted ones did not "
                        f"({len(adapted)} of 14 changed)")
    moments = list(tensors(node, "optimizer.safetensors"))
    if not moments or any(".lora_" not in k for k in moments):
        failures.append(f"{node}: optimizer state of other tensors than the factors: {moments[:4]}")

slow = tensors("slow")
if slow["model.embed_tokens.weight"] != learn["model.embed_tokens.weight"] or \
        slow["model.layers.1.mlp.up_proj.weight"] == learn["model.layers.1.mlp.up_proj.weight"]:
    failures.append("slow: the frozen embeddings moved, or the rest did not")
if any(k.startswith("model.embed_tokens.") for k in tensors("slow", "optimizer.safetensors")):
    failures.append("slow: the frozen embeddings have optimizer state")

# Export of a LoRA node: the merged weights under plain names, as any other node's.
out = os.path.join(work, "exported")
e = run(["export", run_dir, adapt_nodes[0], "--hf", out])
if e.returncode != 0:
    failures.append("export of a LoRA node failed:\n" + e.stderr[-1500:])
else:
    header, data = read_safetensors(os.path.join(out, "model.safetensors"))
    exported = {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items()}
    if exported != tensors(adapt_nodes[0]):
        failures.append("the export of a LoRA node is not its merged model")

# The report's LR chart draws the slow learner's groups: embeddings at 0 (frozen), layers.0 and
# final_norm at a tenth.
rep = run(["report", run_dir])
lr_svg = os.path.join(run_dir, "report", "lr.svg")
if rep.returncode != 0 or not os.path.exists(lr_svg) or \
        not all(f"slow {g}" in open(lr_svg).read() for g in ("embeddings", "layers.0", "final_norm")):
    failures.append("the LR chart lacks the slow learner's groups:\n" + rep.stderr[-800:])

# The effect: final val losses of each model.
loss = {}
for path in glob.glob(os.path.join(run_dir, "*", "metrics.jsonl")):
    for line in open(path):
        rec = json.loads(line)
        if rec.get("type") == "eval" and rec.get("point") == "final" and "task" not in rec:
            loss[(rec["node"], rec["stream"])] = rec["loss"]
full = "full"
lora = next(n for n in adapt_nodes if "r4" in n)
try:
    learned = {m: loss[(m, "code")] for m in ("learn", full, lora)}
    forgot = {m: sum(loss[(m, s)] - loss[("learn", s)] for s in ("prose", "facts")) for m in (full, lora)}
    print("code.val loss:", learned, "\nrise of prose.val + facts.val:", forgot)
    if not learned[full] < learned[lora] < learned["learn"]:
        failures.append(f"expected full training to learn code most, LoRA less, both some: {learned}")
    if not forgot[lora] < forgot[full]:
        failures.append(f"expected LoRA to forget prose and facts less than full training: {forgot}")
except KeyError as missing:
    failures.append(f"no final eval of {missing}: {sorted(loss)}")
finish(failures, checks)
