#!/usr/bin/env python3
"""recipes/vocab-extension.toml, reduced (fewer tokens and steps after the edge), end to end:
  - `mixtape plan` puts the extension on the extended stage's first node only (old_tokens 1000,
    tokens and vocab 1085), and each init_new gives that node another hash;
  - a tokenizer that moves an old token is refused, naming the first id that differs;
  - the extended node's export is a Hugging Face folder with vocab_size 1085 and the new
    tokenizer's file; the run logs bits per byte beside the loss;
  - the effect: at the extension's step 0, the loss on prose in the new tokenizer (rich in the
    new word tokens) is lower with subword_mean than with random, and mean lies between.
    vocab_extension_test.py MIXTAPE WORKDIR"""
import glob, json, os, re, shutil, subprocess, sys

from e2e_common import RECIPES, finish, start

mixtape, work, env, run = start(threads=1)
failures = []
checks = 7


def write(name, text):
    path = os.path.join(work, name)
    open(path, "w").write(text)
    return path


# The recipe's paths are relative to recipes/: the reduced copy in WORK names them absolutely.
text = open(os.path.join(RECIPES, "vocab-extension.toml")).read()
text = text.replace("hf:../tests/", "hf:" + os.path.join(RECIPES, "..", "tests") + "/")
text = text.replace("hf:tokenizers/", "hf:" + os.path.join(RECIPES, "tokenizers") + "/")
text = text.replace('tokens = "512Ki"', 'tokens = "128Ki"').replace('tokens = "256Ki"', 'tokens = "8Ki"')
text = text.replace('max_tokens = "32Ki"', 'max_tokens = "16Ki"')
recipe = write("vocab-extension.toml", text)
run_dir = os.path.join(work, "run")

plan = run(["plan", recipe, "--run-dir", run_dir, "--out", os.path.join(work, "plan.json")])
if plan.returncode != 0:
    failures.append("plan failed:\n" + plan.stderr[-2000:])
    finish(failures, checks)
nodes = json.load(open(os.path.join(work, "plan.json")))["nodes"]
extensions = {n["name"]: n["settings"].get("vocab_extension") for n in nodes if n["kind"] == "train"}
extended = {name: e for name, e in extensions.items() if e}
if sorted(extended) != ["extend[init=mean]", "extend[init=random]", "extend[init=subword]"] or \
        any((e["old_tokens"], e["tokens"], e["vocab"]) != (1000, 1085, 1085) for e in extended.values()):
    failures.append(f"the extension is not on the extended stage's first nodes as planned: {extensions}")
if len({n["hash"] for n in nodes if n["name"] in extended}) != 3:
    failures.append("init_new does not change the extended node's hash")

# A tokenizer that moves an old token: the plan names the first id that differs.
moved = json.load(open(os.path.join(RECIPES, "tokenizers", "bpe-prose.json"), encoding="utf-8"))
vocab = moved["model"]["vocab"]
first, second = [t for t, i in sorted(vocab.items(), key=lambda kv: kv[1]) if i in (500, 501)]
vocab[first], vocab[second] = 501, 500
json.dump(moved, open(os.path.join(work, "moved.json"), "w", encoding="utf-8"), ensure_ascii=False)
bad = write("moved.toml", text.replace("hf:" + os.path.join(RECIPES, "tokenizers", "bpe-prose.json"),
                                       "hf:" + os.path.join(work, "moved.json")))
r = run(["plan", bad, "--out", os.path.join(work, "moved-plan.json")])
if r.returncode == 0 or not re.search(r"does not extend .*: token 500 is '.*' in the old tokenizer but '.*' in the new "
                                      r"one \(.*moved\.json\) \[tokenizer-mismatch\]", r.stderr):
    failures.append(f"a tokenizer that moves token 500 was not refused by name (exit {r.returncode}):\n{r.stderr[-1500:]}")

r = run(["run", recipe, "--run-dir", run_dir])
if r.returncode != 0:
    failures.append("run failed:\n" + r.stderr[-3000:])
    finish(failures, checks)

# The extended model exports with its vocabulary and tokenizer.
out = os.path.join(work, "exported")
e = run(["export", run_dir, "extend[init=subword]", "--hf", out])
if e.returncode != 0:
    failures.append("export of the extended node failed:\n" + e.stderr[-1500:])
else:
    config = json.load(open(os.path.join(out, "config.json")))
    tokens = json.load(open(os.path.join(out, "tokenizer.json"), encoding="utf-8"))
    if config.get("vocab_size") != 1085 or len(tokens["model"]["vocab"]) != 1085:
        failures.append(f"the export has vocab_size {config.get('vocab_size')} and "
                        f"{len(tokens['model']['vocab'])} tokens, not 1085")

# Step 0 of each extended variant: the in-loop eval right after the extension.
start, bpb = {}, []
for path in glob.glob(os.path.join(run_dir, "*", "metrics.jsonl")):
    for line in open(path):
        rec = json.loads(line)
        if rec.get("type") != "eval" or "task" in rec:
            continue
        bpb.append(rec.get("bpb"))
        if rec.get("stage") == "extend" and rec["stage_tokens"] == 0 and rec["stream"] == "prose_x":
            start[rec["node"].split("=")[1].rstrip("]")] = rec["loss"]
if not bpb or not all(isinstance(b, float) and 0 < b < 16 for b in bpb):
    failures.append(f"eval records without bits per byte: {bpb[:6]}")
print("prose_x.val loss at the extension's step 0:", start)
if sorted(start) != ["mean", "random", "subword"]:
    failures.append(f"no step-0 eval of each extended variant on prose_x.val: {start}")
elif not start["subword"] < start["random"]:
    failures.append(f"expected subword_mean to start lower than random: {start}")
elif not start["subword"] < start["mean"]:
    failures.append(f"expected subword_mean to start lower than the mean of all rows: {start}")
finish(failures, checks)
