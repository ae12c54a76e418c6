#!/usr/bin/env python3
"""recipes/sft.toml ("CPT then instruction-tune") end to end:
  - `mixtape data prepare` turns recipes/sft/instructions.jsonl into a dataset whose
    documents are prompt + response, with their prompt lengths;
  - the plan's instruct node trains with objective "sft" and within-document attention;
  - the eval of instructions.val scores the responses only (fewer tokens than the split);
  - the effect: instruction tuning lowers the held-out response loss well below the
    pretrained model's.
    sft_test.py MIXTAPE WORKDIR"""
import json, os

from e2e_common import RECIPES, final_evals, finish, run_recipe, start

mixtape, work, env, run = start(threads=1)
failures = []
checks = 5


prep = run(["data", "prepare", os.path.join(RECIPES, "sft", "instructions.jsonl"),
            "--out", os.path.join(work, "data", "instructions")])
if prep.returncode != 0:
    failures.append("prepare failed:\n" + prep.stderr[-2000:])
    finish(failures, checks)

# The recipe as it is (seconds on one thread), beside the data it names.
run_dir = run_recipe(run, work, "sft", failures, checks)

plan = json.load(open(os.path.join(run_dir, "plan.json")))
settings = {n["name"]: n.get("settings", {}) for n in plan["nodes"]}
if settings["instruct"].get("objective") != "sft" or settings["instruct"].get("attention") != "within_document":
    failures.append(f"instruct is not an sft node with within-document attention: {settings['instruct']}")
if "objective" in settings["pretrain"]:
    failures.append(f"pretrain has an objective: {settings['pretrain']}")

evals = final_evals(run_dir)
try:
    before, after = evals[("pretrain", "instructions")], evals[("instruct", "instructions")]
    val_tokens = plan["streams"]["instructions"]["val_tokens"]
    print(f"instructions.val response loss: pretrain {before['loss']:.3f}, instruct {after['loss']:.3f};"
          f" {after['tokens']} of {val_tokens} tokens scored")
    # Responses and their end-of-text are about a third of each example: well below the split.
    if not 0 < after["tokens"] < val_tokens / 2 or before["tokens"] != after["tokens"]:
        failures.append(f"the eval does not score the responses only: {after['tokens']} of {val_tokens} tokens")
    if not after["loss"] < 0.75 * before["loss"]:
        failures.append(f"instruction tuning did not lower the response loss: {before['loss']} -> {after['loss']}")
    prose_before, prose_after = evals[("pretrain", "prose")], evals[("instruct", "prose")]
    if prose_before["tokens"] != prose_after["tokens"]:
        failures.append("prose.val is not scored on the same tokens before and after")
except KeyError as missing:
    failures.append(f"no final eval of {missing}: {sorted(evals)}")
finish(failures, checks)
