#!/usr/bin/env bash
# Peak memory per rank of each shard mode: bench/memory_bench (a ~150M-parameter Llama, a
# few steps) on 1, 2 and 4 ranks of this machine over Gloo, with torchrun's variables.
# Prints a markdown table of the largest increase over the ranks (MiB; see memory_bench.cpp
# for what is counted) beside the model state one rank holds without sharding.
#   bench/memory_bench.sh BUILD_DIR [RANKS...]     (default ranks: 1 2 4)
set -euo pipefail
build=${1:?usage: memory_bench.sh BUILD_DIR [RANKS...]}
shift
[[ $# -gt 0 ]] && ranks=("$@") || ranks=(1 2 4)
bench=$build/bench/memory_bench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
avail_mib=$(($(awk '/MemAvailable/ {print $2}' /proc/meminfo) / 1024))
echo "| ranks | shard | parameters | peak increase per rank (MiB, largest) | mixtape plan's prediction (MiB) | measured / predicted |"
echo "|---|---|---|---|---|---|"
for n in "${ranks[@]}"; do
  # An unsharded rank holds about 16 bytes per parameter (weights, gradients, two moments).
  if (( n * 2600 + 2048 > avail_mib )); then
    echo "skipping $n ranks: $avail_mib MiB available, about $((n * 2600 + 2048)) needed" >&2
    continue
  fi
  for shard in none optimizer full; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    pids=()
    for ((r = 0; r < n; r++)); do
      RANK=$r LOCAL_RANK=$r WORLD_SIZE=$n MASTER_ADDR=127.0.0.1 MASTER_PORT=$port MIXTAPE_NUM_THREADS=1 \
        "$bench" --shard "$shard" > "$out/$n-$shard-$r.json" &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    cat "$out/$n-$shard-"*.json | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
peak = max(r["peak_increase_bytes"] for r in rows) / 2**20
predicted = rows[0]["predicted_bytes"] / 2**20
print("| {ranks} | {shard} | {m:.1f}M | {peak:.0f} | {predicted:.0f} | {ratio:.2f} |".format(
    m=rows[0]["parameters"] / 1e6, peak=peak, predicted=predicted, ratio=peak / predicted, **rows[0]))'
  done
done
