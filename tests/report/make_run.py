#!/usr/bin/env python3
"""Write a synthetic run directory of the quickstart plan, in the format of docs/run-format.md.

    make_run.py RUN_DIR [--partial] [--recipe NAME] [--seed N]

The curves are shaped like real continual pre-training: prose loss falls during pretrain;
during adapt (code) code loss falls and prose loss rises, much more without replay (r0) than
with 5% replay (r5). The eval also scores two downstream tasks: `facts` (multiple choice),
learned in pretrain and forgotten in adapt without replay, while with replay it dips and
recovers (a stability gap); `arith` (generation), learned in adapt. adapt has in-loop points
every 64Ki tokens. Deterministic: the same arguments write the same bytes.

--partial: the run was killed during adapt[replay=r5]: its node has no DONE marker, its
metrics stop at step 70 with the last line cut in half, and its final eval never ran.
--recipe: rename the recipe in plan.json (to test escaping).
--seed: another seed for the noise (default 7): a second run of the same plan to compare.
Train records carry wall-clock fields: pretrain at 41000 tokens/s, adapt at 38500, from
2026-12-01 (unix 1796083200).
"""
import argparse
import json
import math
import os
import random
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
PLAN = os.path.join(HERE, "..", "plan", "quickstart.plan.json")
INIT_LOSS = math.log(264)  # a uniform guess over the byte vocabulary


def lr_at(schedule, tokens):
    """The schedule's LR at `tokens` stage tokens (warmup/linear ramps, cosine, else constant)."""
    for phase in schedule["phases"]:
        begin, length = phase["begin"], phase["length"]
        if tokens < begin + length or phase is schedule["phases"][-1]:
            u = min(max((tokens - begin) / length, 0.0), 1.0) if length > 0 else 1.0
            lo, hi = phase["from"], phase["to"]
            if phase["shape"] == "cosine":
                return hi + (lo - hi) * 0.5 * (1 + math.cos(math.pi * u))
            if phase["shape"] in ("warmup", "linear"):
                return lo + (hi - lo) * u
            return lo
    return 0.0


def pretrain_loss(stream, t):
    if stream == "prose":
        return 1.9 + (INIT_LOSS - 1.9) * math.exp(-t / 180e3)
    return 3.3 + (INIT_LOSS - 3.3) * math.exp(-t / 220e3)  # code: a little transfer from prose


def losses(node, stage_tokens, pretrain_end):
    """Per-stream eval loss of `node`'s model after `stage_tokens` tokens of its stage."""
    if node["exec"]["chain_tokens"] == 0:
        return {s: pretrain_loss(s, stage_tokens) for s in ("prose", "code")}
    replay = node["ledger"]["tokens_by_stream"].get("prose", 0) / node["ledger"]["tokens"]
    start = {s: pretrain_loss(s, pretrain_end) for s in ("prose", "code")}
    rise = 0.8 / (1 + 40 * replay)  # forgetting, damped by replay
    code_floor = 1.45 + replay
    return {
        "prose": start["prose"] + rise * (1 - math.exp(-stage_tokens / 120e3)),
        "code": code_floor + (start["code"] - code_floor) * math.exp(-stage_tokens / 130e3),
    }


TASKS = {
    "facts": {"path": "evals/facts.jsonl", "kind": "choice", "shots": 0, "fewshot_seed": 1234,
              "target_delimiter": " ", "fewshot_delimiter": "\n\n", "until": [], "max_new_tokens": 0,
              "limit": 0, "items": 200},
    "arith": {"path": "evals/arith.jsonl", "kind": "generate", "shots": 0, "fewshot_seed": 1234,
              "target_delimiter": " ", "fewshot_delimiter": "\n\n", "until": ["\n"], "max_new_tokens": 16,
              "limit": 0, "items": 100},
}


def task_scores(node, stage_tokens, pretrain_end):
    """{task: main metric} of `node`'s model after `stage_tokens` tokens of its stage."""
    def pretrain_facts(t):
        return 0.25 + 0.45 * (1 - math.exp(-t / 300e3))
    if node is None:
        return {"facts": 0.25, "arith": 0.0}
    if node["exec"]["chain_tokens"] == 0:
        return {"facts": pretrain_facts(stage_tokens), "arith": 0.02 * (1 - math.exp(-stage_tokens / 300e3))}
    replay = node["ledger"]["tokens_by_stream"].get("prose", 0) / node["ledger"]["tokens"]
    start = pretrain_facts(pretrain_end)
    if replay == 0:
        facts = start - 0.35 * (1 - math.exp(-stage_tokens / 100e3))
    else:  # a dip early in the stage, then replay brings it back
        u = stage_tokens / 80e3
        facts = start - 0.15 * u * math.exp(1 - u) + 0.05 * stage_tokens / 524288
    return {"facts": facts, "arith": 0.02 + (0.43 - replay) * (1 - math.exp(-stage_tokens / 150e3))}


def task_records(base, scores):
    """The task records of one eval point: `base` holds the fields they share."""
    out = []
    for name in sorted(TASKS):
        task = TASKS[name]
        n = task["items"]
        metrics = ("acc", "acc_norm") if task["kind"] == "choice" else ("exact_match", "contains")
        values = {metrics[0]: round(scores[name], 4), metrics[1]: round(min(1.0, scores[name] + 0.03), 4)}
        record = dict(base, task=name, kind=task["kind"], items=n)
        for metric, v in values.items():
            record[metric] = v
            record[metric + "_stderr"] = round(math.sqrt(v * (1 - v) / (n - 1)), 4)
        out.append(line(record))
    return out


def line(record):
    return json.dumps(record, sort_keys=True) + "\n"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--partial", action="store_true")
    parser.add_argument("--recipe")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with open(PLAN) as f:
        plan = json.load(f)
    plan["recipe_dir"] = HERE  # the golden leaves out this machine-specific key
    if args.recipe is not None:
        plan["recipe"] = args.recipe
    for n in plan["nodes"]:
        if n["kind"] == "eval":
            n["settings"]["tasks"] = TASKS
        elif n["kind"] == "train":
            for during in n["exec"]["eval_during"].values():
                during["tasks"] = TASKS
                if n["exec"]["chain_tokens"] > 0:
                    during["stage_tokens"] = [k * 65536 for k in range(8)]
    nodes = {n["name"]: n for n in plan["nodes"]}
    pretrain_end = next(n["ledger"]["tokens"] for n in plan["nodes"]
                        if n["kind"] == "train" and n["exec"]["chain_tokens"] == 0)
    killed = "adapt[replay=r5]" if args.partial else None

    shutil.rmtree(args.run_dir, ignore_errors=True)
    os.makedirs(args.run_dir)
    with open(os.path.join(args.run_dir, "plan.json"), "w") as f:
        json.dump(plan, f, indent=2, sort_keys=True)
        f.write("\n")

    rng = random.Random(args.seed)
    for node in plan["nodes"]:
        if node["kind"] == "eval" and node["inputs"][0] == killed:
            continue  # never ran
        out = os.path.join(args.run_dir, node["dir"])
        os.makedirs(out)
        lines = []
        if node["kind"] == "train":
            s = node["settings"]
            batch = s["seq_len"] * s["batch_sequences"]
            begin, end = s["steps"]
            chain0 = node["exec"]["chain_tokens"]
            weights = dict(zip(s["mixture"]["streams"], s["mixture"]["weights"][0]))
            during = sorted(node["exec"].get("eval_during", {}).items())
            rate = 41000.0 if chain0 == 0 else 38500.0
            for step in range(begin, end + 1):
                stage_tokens = step * batch
                chain = chain0 + stage_tokens - begin * batch
                for name, points in during:
                    if stage_tokens not in points["stage_tokens"]:
                        continue
                    model = losses(node, stage_tokens, pretrain_end)
                    for stream, split in points["splits"]:
                        loss = model[stream] + rng.uniform(-0.01, 0.01)
                        lines.append(line({
                            "type": "eval", "node": node["name"], "eval": name, "point": "during",
                            "stage": node["exec"]["stage"], "stage_tokens": stage_tokens,
                            "chain_tokens": chain, "stream": stream, "split": split,
                            "loss": round(loss, 5), "ppl": round(math.exp(loss), 4),
                            "tokens": 65536}))
                    lines += task_records({
                        "type": "eval", "node": node["name"], "eval": name, "point": "during",
                        "stage": node["exec"]["stage"], "stage_tokens": stage_tokens,
                        "chain_tokens": chain}, task_scores(node, stage_tokens, pretrain_end))
                if step == begin:
                    continue
                model = losses(node, stage_tokens, pretrain_end)
                by_stream = {st: round(model[st] + rng.uniform(-0.05, 0.05), 5) for st in weights}
                lines.append(line({
                    "type": "train", "node": node["name"], "stage": node["exec"]["stage"],
                    "step": step, "stage_tokens": stage_tokens, "chain_tokens": chain,
                    "loss": round(sum(weights[st] * by_stream[st] for st in weights), 5),
                    "lr": lr_at(s["lr"], (step - 1) * batch),
                    "grad_norm": round(0.5 + rng.uniform(0, 0.3), 4),
                    "loss_by_stream": by_stream,
                    "loss_tokens_by_stream": {st: round(weights[st] * batch) for st in weights},
                    "time": round(1796083200 + chain / rate, 3), "elapsed_s": round((step - begin) * batch / rate, 3),
                    "tokens_per_s": rate}))
                if node["name"] == killed and step == begin + 70:
                    lines[-1] = lines[-1][: len(lines[-1]) // 2]  # killed mid-write
                    break
        elif node["kind"] == "eval":
            model_node = nodes[node["inputs"][0]]
            if model_node["kind"] == "init":
                model = {"prose": INIT_LOSS, "code": INIT_LOSS}
                scores = task_scores(None, 0, pretrain_end)
            else:
                steps = model_node["settings"]["steps"]
                batch = model_node["settings"]["seq_len"] * model_node["settings"]["batch_sequences"]
                model = losses(model_node, steps[1] * batch, pretrain_end)
                scores = task_scores(model_node, steps[1] * batch, pretrain_end)
            for stream, split in node["settings"]["splits"]:
                loss = model[stream] + rng.uniform(-0.01, 0.01)
                lines.append(line({
                    "type": "eval", "node": model_node["name"], "eval": node["name"].split("@")[0],
                    "point": "final", "stage": None, "stage_tokens": 0,
                    "chain_tokens": node["exec"]["chain_tokens"], "stream": stream, "split": split,
                    "loss": round(loss, 5), "ppl": round(math.exp(loss), 4), "tokens": 65536}))
            lines += task_records({
                "type": "eval", "node": model_node["name"], "eval": node["name"].split("@")[0],
                "point": "final", "stage": None, "stage_tokens": 0,
                "chain_tokens": node["exec"]["chain_tokens"]}, scores)
        if lines:
            with open(os.path.join(out, "metrics.jsonl"), "w") as f:
                f.writelines(lines)
        if node["name"] != killed:
            open(os.path.join(out, "DONE"), "w").close()


if __name__ == "__main__":
    main()
