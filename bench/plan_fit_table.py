#!/usr/bin/env python3
"""Which Llama-3 shapes fit which GPUs, by `mixtape plan`'s memory plan (computed, not
measured; docs/cluster.md, "Which models fit which GPUs"). For each shape and GPU memory,
the least GPU count (powers of two) whose plan fits at 8192 tokens, with what the plan picked.
    bench/plan_fit_table.py build/tools/mixtape/mixtape"""
import os, subprocess, sys, tempfile

mixtape = sys.argv[1] if len(sys.argv) > 1 else "build/tools/mixtape/mixtape"
# Recipes spell no tied head: the 1B and 3B shapes count their head (1.50B and 3.61B parameters).
shapes = {
    "Llama-3.2-1B": dict(layers=16, d=2048, heads=32, kv=8, ffn=8192),
    "Llama-3.2-3B": dict(layers=28, d=3072, heads=24, kv=8, ffn=8192),
    "Llama-3.1-8B": dict(layers=32, d=4096, heads=32, kv=8, ffn=14336),
    "Llama-3.1-70B": dict(layers=80, d=8192, heads=64, kv=8, ffn=28672),
}


def recipe(s, gpus, memory):
    return f"""[recipe]
name = "fit"
[model]
family = "llama"
layers = {s["layers"]}
d_model = {s["d"]}
heads = {s["heads"]}
kv_heads = {s["kv"]}
ffn = {s["ffn"]}
vocab = 128256
seq_len = 8192
[resources]
gpus = {gpus}
gpu_memory = "{memory}"
[streams.web]
shards = "absent/web-*.bin"
tokenizer = "bytes"
[[stage]]
name = "cpt"
tokens = "1B"
batch = "{max(gpus, 64)} sequences"
mix = "web"
lr = "constant(1e-4)"
"""


with tempfile.TemporaryDirectory() as work:
    path = os.path.join(work, "fit.toml")
    print("| model | GPU memory | GPUs | shard | micro-batch | checkpointing | total per GPU |")
    print("|---|---|---|---|---|---|---|")
    for memory in ("80GiB", "141GiB"):
        for name, shape in shapes.items():
            for gpus in (1, 2, 4, 8, 16, 32, 64, 128):
                open(path, "w").write(recipe(shape, gpus, memory))
                r = subprocess.run([mixtape, "plan", path, "--run-dir", os.path.join(work, "run")],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    if "wont-fit" not in r.stderr:
                        sys.exit(r.stderr)
                    continue
                row = next(l for l in r.stdout.splitlines() if l.split()[:1] == ["cpt"]).split()
                ckpt = " ".join(row[3:5]) if row[3] == "every" else row[3]
                total = " ".join(row[-4:-2])
                print(f"| {name} | {memory} | {gpus} | {row[1]} | {row[2]} | {ckpt} | {total} |")
                break
            else:
                print(f"| {name} | {memory} | > 128 | | | | |")
