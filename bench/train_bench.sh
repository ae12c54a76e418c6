#!/usr/bin/env bash
# Training tokens/s of the quickstart model: Mixtape (bench/train_bench.cpp) against PyTorch
# eager (bench/train_bench_ref.py, torch.optim.AdamW single-tensor and foreach), same shapes,
# same seeds, same thread count. Rounds alternate the three so that load from other processes
# falls on all of them alike; each run reports the tokens/s of its median step. Prints each run,
# then the median and best of those per implementation, and the ratio Mixtape / the faster
# PyTorch variant. Goal (issue 5): >= 1.1.
#
#   bench/train_bench.sh [BUILD_DIR]        (default: build)
#   env: THREADS (default: nproc), ROUNDS (5), STEPS (40), WARMUP (5), PYTHON (python3)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
threads=${THREADS:-$(nproc)}
rounds=${ROUNDS:-5}
steps=${STEPS:-40}
warmup=${WARMUP:-5}

bench="$build/bench/train_bench"
if [[ ! -x $bench ]]; then
  echo "train_bench.sh: $bench not found; build it: ninja -C $build train_bench" >&2
  exit 1
fi
source bench/torch_python.sh

results=$(mktemp)
trap 'rm -f "$results"' EXIT
common=(--steps "$steps" --warmup "$warmup" --threads "$threads")
for ((r = 1; r <= rounds; ++r)); do
  "$bench" "${common[@]}" | tee -a "$results"
  "$python" bench/train_bench_ref.py "${common[@]}" | tee -a "$results"
  "$python" bench/train_bench_ref.py "${common[@]}" --foreach | tee -a "$results"
done

"$python" - "$results" <<'EOF'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs.setdefault(r["impl"], []).append(r)
print(f"\n{'impl':<24}{'runs':>5}{'median tok/s':>14}{'best tok/s':>12}"
      f"{'fwd ms':>9}{'bwd ms':>9}{'opt ms':>9}")
summary = {}
for impl, rs in runs.items():
    tps = [r["tokens_per_s"] for r in rs]
    phase = lambda k: statistics.median(r[k] for r in rs)
    summary[impl] = (statistics.median(tps), max(tps))
    print(f"{impl:<24}{len(rs):>5}{summary[impl][0]:>14.0f}{summary[impl][1]:>12.0f}"
          f"{phase('forward_ms'):>9.1f}{phase('backward_ms'):>9.1f}{phase('optimizer_ms'):>9.1f}")
ref = max((k for k in summary if k != "mixtape"), key=lambda k: summary[k][0])
print(f"\nmixtape / {ref}: {summary['mixtape'][0] / summary[ref][0]:.2f}x (medians), "
      f"{summary['mixtape'][1] / summary[ref][1]:.2f}x (best runs); goal >= 1.1x")
EOF
