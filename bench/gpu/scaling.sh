#!/usr/bin/env bash
# Data-parallel scaling (issue 7): train_bench under PyTorch's torchrun on 1, 2, 4 and 8 GPUs
# of this machine (as many as it has), GPT-2 124M with 16 sequences of 1024 per GPU (weak
# scaling), NCCL through the runtime's DataParallel; from 2 GPUs on, also with --no-overlap
# (every gradient bucket all-reduced after backward) to show what the overlap saves. Prints
# the world's tokens/s and the efficiency against one GPU in the same script. Runs unchanged
# on an 8-GPU node.
#
# DEVICE=cpu runs the same on the CPU (the quickstart model, 1 and 2 processes of 1 thread,
# Gloo): how ctest checks this script (bench/scaling-cpu) where there is no GPU.
#
#   bash bench/gpu/scaling.sh [BUILD_DIR=build-gpu]        (needs python3 -m torch.distributed.run)
#   env: DEVICE (cuda), STEPS (20), WARMUP (5), PYTHON (python3)
set -euo pipefail
build=${1:-build-gpu}
device=${DEVICE:-cuda}
steps=${STEPS:-20}
warmup=${WARMUP:-5}
bench="$build/bench/train_bench"
[[ -x $bench ]] || { echo "scaling.sh: $bench not built" >&2; exit 1; }
source "$(dirname "$0")/../torch_python.sh"
if [[ $device == cuda ]]; then
  sizes=(1 2 4 8)
  available=$(nvidia-smi -L | wc -l)
  model=(--model gpt2-124m --device cuda)
else
  sizes=(1 2)
  available=$(nproc)
  model=(--model quickstart --device cpu --threads 1)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for n in "${sizes[@]}"; do
  ((n > available)) && break
  for overlap in "" --no-overlap; do
    [[ $n == 1 && -n $overlap ]] && continue
    # --no_python: train_bench is a binary (without it torchrun starts `python3 train_bench`,
    # which exits 1 at once). --redirects/--tee 1: each worker's output goes to --log_dir and
    # to ours, prefixed "[defaultR]:"; Debian's torchrun (1.13 on Python 3.11) cannot parse
    # the default, 0.
    "$python" -m torch.distributed.run --standalone --nproc_per_node "$n" --no_python \
      --redirects 1 --tee 1 --log_dir "$work/logs-$n$overlap" \
      "$bench" "${model[@]}" --data-parallel $overlap --steps "$steps" --warmup "$warmup" \
      | sed -n 's/^\(\[[^]]*\]:\)\{0,1\}\({.*\)$/\2/p' \
      | sed "s/^{/{\"overlap\": $([[ -z $overlap ]] && echo true || echo false), /" | tee -a "$work/results"
  done
done
"$python" - "$work/results" "$device" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
one = next((r["tokens_per_s"] for r in runs if r["ranks"] == 1), None)
what = "GPUs" if sys.argv[2] == "cuda" else "procs"
print(f"\n{what:>5}{'overlap':>9}{'tokens/s':>12}{'ms/step':>9}{'per rank':>10}{'efficiency':>12}")
for r in runs:
    eff = r["tokens_per_s"] / (one * r["ranks"]) if one else float("nan")
    print(f"{r['ranks']:>5}{'yes' if r['overlap'] else 'no':>9}{r['tokens_per_s']:>12}{r['step_ms']:>9.1f}"
          f"{r['tokens_per_s'] / r['ranks']:>10.0f}{eff:>12.2f}")
PY
