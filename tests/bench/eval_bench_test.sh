#!/usr/bin/env bash
# bench/eval_bench on a few items: `json` checks its JSON line (the keys eval_bench.sh reads,
# items and requests as asked); `ref` also runs bench/eval_bench_ref.py on its dump, which
# fails unless PyTorch's log-likelihoods match Mixtape's within 1e-4 (exits 77, skipped,
# without a python3 that has torch). Checks that both run and agree, not how fast they are.
#   eval_bench_test.sh json|ref SOURCE_DIR BUILD_DIR
set -uo pipefail
mode=$1 source_dir=$2 build_dir=$3
cd "$source_dir"
if [[ $mode == ref ]]; then
  (source bench/torch_python.sh) 2>/dev/null || { echo "skipped: no python3 with torch (apt-get install python3-torch)"; exit 77; }
  source bench/torch_python.sh
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
line=$("$build_dir/bench/eval_bench" --items 12 --batch 5 --reps 2 --warmup 0 --threads 1 --dump "$work/dump") ||
  { echo "FAIL: eval_bench exited $?"; exit 1; }
echo "$line"
python3 - "$line" "$work/dump" <<'PY' || exit 1
import json, os, sys
r = json.loads(sys.argv[1])
for k in ("impl", "threads", "batch", "items", "requests", "tokens", "items_per_s", "items_per_s_min",
          "items_per_s_max", "numerics"):
    assert k in r, f"FAIL: no '{k}' in the JSON line"
assert r["impl"] == "mixtape" and r["items"] == 12 and r["batch"] == 5, "FAIL: wrong settings"
assert r["requests"] == 48, "FAIL: facts-choice items have 4 choices: expected 48 requests"
assert r["items_per_s_min"] <= r["items_per_s"] <= r["items_per_s_max"], "FAIL: spread"
spec = json.load(open(os.path.join(sys.argv[2], "requests.json")))
scores = json.load(open(os.path.join(sys.argv[2], "mixtape_logliks.json")))
assert len(spec["requests"]) == len(scores) == 48, "FAIL: dump"
assert all(s < 0 for s in scores), "FAIL: log-likelihoods must be negative"
PY
if [[ $mode == ref ]]; then
  "$python" bench/eval_bench_ref.py "$work/dump" --reps 1 --threads 1 || { echo "FAIL: eval_bench_ref.py"; exit 1; }
fi
echo "passed"
