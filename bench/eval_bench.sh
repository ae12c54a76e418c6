#!/usr/bin/env bash
# Choice-task scoring items/s of the quickstart model (issue 16): Mixtape
# (bench/eval_bench.cpp, exec::continuationLogLikelihoods) against PyTorch eager
# (bench/eval_bench_ref.py) scoring the same requests of facts-choice with the same weights:
# eval_bench --dump writes them once, and the reference checks that its log-likelihoods match
# Mixtape's (max abs difference <= 1e-4) or fails. Rounds alternate the two so that load from
# other processes falls on both alike; each run reports the items/s of its median pass. Prints
# each run, the machine, threads and versions, the median items/s of each side (and the
# median ms of a pass, and of the forward passes of one row per request, longest first —
# the reference's work, which Mixtape's pass packs into fewer rows), and the ratio
# Mixtape / PyTorch of the medians with its spread over rounds. Goal (issue 16): >= 1.5.
#
#   bench/eval_bench.sh [BUILD_DIR]        (default: build)
#   env: THREADS (default: nproc), ROUNDS (3), REPS (7), BATCH (32), ITEMS (0: all), PYTHON
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
threads=${THREADS:-$(nproc)}
rounds=${ROUNDS:-3}
reps=${REPS:-7}
batch=${BATCH:-32}
items=${ITEMS:-0}

bench="$build/bench/eval_bench"
if [[ ! -x $bench ]]; then
  echo "eval_bench.sh: $bench not found; build it: ninja -C $build eval_bench" >&2
  exit 1
fi
source bench/torch_python.sh

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
results="$work/results.jsonl"
common=(--threads "$threads" --reps "$reps")
# The requests, the weights and Mixtape's log-likelihoods, once (not timed).
"$bench" --batch "$batch" --items "$items" --reps 1 --warmup 0 --dump "$work/dump" >/dev/null
for ((r = 1; r <= rounds; ++r)); do
  "$bench" "${common[@]}" --batch "$batch" --items "$items" | tee -a "$results"
  "$python" bench/eval_bench_ref.py "$work/dump" "${common[@]}" | tee -a "$results"
done

echo
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$python" - "$results" <<'EOF'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs.setdefault(r["impl"], []).append(r)
m, p = runs["mixtape"], runs["pytorch-eager"]
print(f"threads: {m[0]['threads']}; batch {m[0]['batch']}; {m[0]['items']} items, {m[0]['requests']} requests, "
      f"{m[0]['tokens']} tokens a pass")
print(f"mixtape: {m[0]['numerics']}")
print(f"pytorch: torch {p[0]['torch']}; max |loglik difference| {max(r['max_abs_diff'] for r in p):.2e}")
print(f"\n{'impl':<16}{'runs':>5}{'median items/s':>16}{'rounds min':>12}{'rounds max':>12}"
      f"{'pass ms':>10}{'row-per-request forward ms':>28}")
for name, rs in (("mixtape", m), ("pytorch-eager", p)):
    v = [r["items_per_s"] for r in rs]
    ms = lambda k: statistics.median_high(r[k] for r in rs)
    print(f"{name:<16}{len(rs):>5}{statistics.median_high(v):>16.1f}{min(v):>12.1f}{max(v):>12.1f}"
          f"{ms('pass_ms'):>10.1f}{ms('unpacked_forward_ms' if name == 'mixtape' else 'forward_ms'):>28.1f}")
ratios = [a["items_per_s"] / b["items_per_s"] for a, b in zip(m, p)]
med = statistics.median_high(r["items_per_s"] for r in m) / statistics.median_high(r["items_per_s"] for r in p)
print(f"\nmixtape / pytorch-eager: {med:.2f}x (medians); rounds {min(ratios):.2f}-{max(ratios):.2f}x; goal >= 1.5x")
EOF
