#!/usr/bin/env bash
# Training tokens/s of the quickstart model: Mixtape (bench/train_bench.cpp) against two PyTorch
# eager references at the same shapes, seeds and thread count — bench/train_bench_ref.py
# (torch.optim.AdamW single-tensor and foreach) and ../shared/bench/anchor_llama.py at the
# quickstart's shapes (plain nn.Modules; skipped with a note where ../shared is absent).
# Rounds alternate all of them so that load from other processes falls on all alike.
#
# Mixtape keeps freed host memory in malloc's arenas (runtime/train HostMemory.h); the
# references run as a PyTorch user runs them (glibc's defaults), and once more with the same
# malloc policy through GLIBC_TUNABLES ("+retain"), so the table shows what the policy gives
# either side. The goal ratio (issue 21: >= 1.1x; >= 0.9x with --contended) is Mixtape's mean
# tokens/s over the rounds against the faster default reference's; the ratio against the
# faster "+retain" reference is printed beside it.
#
#   bench/train_bench.sh [--contended] [BUILD_DIR]        (default: build)
#   --contended: a busy process (one core's worth) runs through every round, started and
#                stopped here.
#   env: THREADS (default: nproc), ROUNDS (5), STEPS (40), WARMUP (5), PYTHON (python3),
#        SHARED (../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
contended=0
if [[ ${1:-} == --contended ]]; then
  contended=1
  shift
fi
build=${1:-build}
threads=${THREADS:-$(nproc)}
rounds=${ROUNDS:-5}
steps=${STEPS:-40}
warmup=${WARMUP:-5}
anchor=${SHARED:-../shared}/bench/anchor_llama.py

bench="$build/bench/train_bench"
if [[ ! -x $bench ]]; then
  echo "train_bench.sh: $bench not found; build it: ninja -C $build train_bench" >&2
  exit 1
fi
source bench/torch_python.sh
if [[ ! -f $anchor ]]; then
  echo "train_bench.sh: $anchor not found; comparing with bench/train_bench_ref.py only" >&2
  anchor=""
fi

results=$(mktemp)
busy=""
cleanup() {
  [[ -n $busy ]] && kill "$busy" 2>/dev/null
  rm -f "$results"
}
trap cleanup EXIT
if ((contended)); then
  (while :; do :; done) &
  busy=$!
  echo "train_bench.sh: a busy loop (pid $busy) competes for the CPU in every run" >&2
fi

# Mixtape's malloc policy for the "+retain" references: the thresholds retainFreedHostMemory sets.
retain="GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=2147483647"
# The anchor at the quickstart's shapes: it takes its threads from OMP_NUM_THREADS.
anchor_args=(--device cpu --layers 2 --d 64 --heads 4 --kv-heads 2 --ffn 192 --vocab 264 --seq 128
  --batch 32 --theta 10000 --steps "$steps" --warmup "$warmup")
run_anchor() { # label, env...
  local label=$1
  shift
  env "$@" OMP_NUM_THREADS="$threads" "$python" "$anchor" "${anchor_args[@]}" |
    "$python" -c "import json,sys; r=json.load(sys.stdin); r['impl']='$label'; r['mean_tokens_per_s']=r['tokens_per_s']; print(json.dumps(r))"
}
common=(--steps "$steps" --warmup "$warmup" --threads "$threads")
for ((r = 1; r <= rounds; ++r)); do
  "$bench" "${common[@]}" | tee -a "$results"
  "$python" bench/train_bench_ref.py "${common[@]}" | tee -a "$results"
  "$python" bench/train_bench_ref.py "${common[@]}" --foreach | tee -a "$results"
  env "$retain" "$python" bench/train_bench_ref.py "${common[@]}" |
    sed 's/"impl": "pytorch-eager"/"impl": "pytorch-eager+retain"/' | tee -a "$results"
  if [[ -n $anchor ]]; then
    run_anchor anchor-llama | tee -a "$results"
    run_anchor anchor-llama+retain "$retain" | tee -a "$results"
  fi
done

"$python" - "$results" "$(lscpu | sed -n 's/^Model name: *//p')" "$threads" "$contended" <<'EOF'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs.setdefault(r["impl"], []).append(r["mean_tokens_per_s"])
print(f"\n{sys.argv[2]}, {sys.argv[3]} threads{', contended' if sys.argv[4] == '1' else ''}")
print(f"{'impl':<24}{'runs':>5}{'mean tok/s':>12}{'min':>9}{'max':>9}")
mean = {}
for impl, tps in runs.items():
    mean[impl] = statistics.mean(tps)
    print(f"{impl:<24}{len(tps):>5}{mean[impl]:>12.0f}{min(tps):>9}{max(tps):>9}")
for kind, goal in (("default", True), ("+retain", False)):
    refs = [k for k in mean if k != "mixtape" and k.endswith("+retain") != (kind == "default")]
    ref = max(refs, key=mean.get)
    lo, hi = min(runs["mixtape"]) / max(runs[ref]), max(runs["mixtape"]) / min(runs[ref])
    print(f"mixtape / {ref}: {mean['mixtape'] / mean[ref]:.2f}x (means; single runs {lo:.2f}-{hi:.2f}x)"
          + (f"; goal >= {0.9 if sys.argv[4] == '1' else 1.1}x" if goal else ""))
EOF
