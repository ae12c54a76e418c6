#!/usr/bin/env bash
# bench/gpu/scaling.sh on the CPU (DEVICE=cpu): torchrun starts train_bench as 1 and 2
# workers, with and without the overlap, and the table has a row for each. Checks that the
# script runs (the GPU machine runs it for its numbers), not how fast anything is.
# Exits 77 (skipped) without a python3 that has torch.
#   scaling_cpu_test.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
source_dir=$1 build_dir=$2
cd "$source_dir"
(source bench/torch_python.sh) 2>/dev/null || { echo "skipped: no python3 with torch (apt-get install python3-torch)"; exit 77; }
out=$(DEVICE=cpu STEPS=3 WARMUP=1 bash bench/gpu/scaling.sh "$build_dir" 2>&1)
status=$?
echo "$out" | tail -6
[[ $status == 0 ]] || { echo "FAIL: scaling.sh exited $status"; exit 1; }
for row in '^ +1 +yes ' '^ +2 +yes ' '^ +2 +no '; do
  grep -Eq "$row" <<<"$out" || { echo "FAIL: no table row matching '$row'"; exit 1; }
done
echo "3 passed, 0 failed"
