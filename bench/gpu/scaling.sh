#!/usr/bin/env bash
# Data-parallel scaling of the GPU benchmark (issue 7): train_bench's GPT-2 124M under torchrun
# on 1, 2, 4 and 8 GPUs of this machine (as many as it has), 16 sequences of 1024 per GPU
# (weak scaling), NCCL through the runtime's DataParallel. Prints the world's tokens/s and the
# efficiency against one GPU in the same script. Runs unchanged on an 8-GPU node.
#
#   bash bench/gpu/scaling.sh [BUILD_DIR=build-gpu]        (needs python3 -m torch.distributed.run)
set -euo pipefail
build=${1:-build-gpu}
bench="$build/bench/train_bench"
[[ -x $bench ]] || { echo "scaling.sh: $bench not built" >&2; exit 1; }
gpus=$(nvidia-smi -L | wc -l)
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for n in 1 2 4 8; do
  ((n > gpus)) && break
  # --no_python: train_bench is a binary, not a script for python to run (without it
  # torchrun starts `python3 train_bench`, which exits 1 at once).
  python3 -m torch.distributed.run --standalone --nproc_per_node "$n" --no_python \
    "$bench" --model gpt2-124m --device cuda --data-parallel --steps 20 --warmup 5 \
    | grep '^{' | tee -a "$results"
done
python3 - "$results" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
one = next((r["tokens_per_s"] for r in runs if r["ranks"] == 1), None)
print(f"\n{'GPUs':>5}{'tokens/s':>12}{'ms/step':>9}{'per GPU':>10}{'efficiency':>12}")
for r in runs:
    eff = r["tokens_per_s"] / (one * r["ranks"]) if one else float("nan")
    print(f"{r['ranks']:>5}{r['tokens_per_s']:>12}{r['step_ms']:>9.1f}{r['tokens_per_s'] / r['ranks']:>10.0f}{eff:>12.2f}")
PY
