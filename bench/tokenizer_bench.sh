#!/usr/bin/env bash
# Tokenizer throughput (issue 18): Mixtape's tokenizer (bench/tokenizer_bench.cpp) on one
# thread and on every core, shared by the threads as `data prepare` shares it ("mixtape") and
# one per thread ("mixtape-per-thread"), beside Hugging Face's JavaScript `tokenizers` (npm
# @huggingface/tokenizers, bench/tokenizer_bench_ref.mjs) on one thread, on the same text.
# Rounds alternate the two so that load from other processes falls on both alike. Prints
# each run, the machine, versions, and per implementation and thread count the median MB/s
# over rounds with its min-max spread, MB/s per thread, and the scaling over one thread.
#
#   bench/tokenizer_bench.sh [BUILD_DIR] [TOKENIZER]    (default: build, the BPE fixture)
#   env: ROUNDS (5), PASSES (5), THREADS (comma list; default 1,2,...,nproc by doubling),
#        MIXTAPE_NPM_DIR (default ~/.cache/mixtape/npm, where the tokenizer tests install it)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
tokenizer=${2:-tests/fixtures/bpe-bytelevel/tokenizer.json}
rounds=${ROUNDS:-5}
passes=${PASSES:-5}
npm_dir=${MIXTAPE_NPM_DIR:-$HOME/.cache/mixtape/npm}
if [[ -z ${THREADS:-} ]]; then
  THREADS=1
  for ((t = 2; t < $(nproc); t *= 2)); do THREADS+=",$t"; done
  (($(nproc) > 1)) && THREADS+=",$(nproc)"
fi

bench="$build/bench/tokenizer_bench"
if [[ ! -x $bench ]]; then
  echo "tokenizer_bench.sh: $bench not found; build it: ninja -C $build tokenizer_bench" >&2
  exit 1
fi
reference=1
if ! command -v node >/dev/null || [[ ! -d $npm_dir/node_modules/@huggingface/tokenizers ]]; then
  echo "tokenizer_bench.sh: no reference (node and $npm_dir/node_modules/@huggingface/tokenizers;" \
       "npm install --prefix $npm_dir @huggingface/tokenizers)" >&2
  reference=0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
results="$work/results.jsonl"
"$bench" --tokenizer "$tokenizer" --threads 1 --passes 1 --dump "$work/text" >/dev/null
for ((r = 1; r <= rounds; ++r)); do
  "$bench" --tokenizer "$tokenizer" --threads "$THREADS" --passes "$passes" | tee -a "$results"
  "$bench" --tokenizer "$tokenizer" --threads "$THREADS" --passes "$passes" --tokenizer-per-thread | tee -a "$results"
  if ((reference)); then
    node bench/tokenizer_bench_ref.mjs "$npm_dir" "$tokenizer" "$work/text" "$passes" | tee -a "$results"
  fi
done

echo
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mixtape: $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(c++ --version | head -1)"
python3 - "$results" "$tokenizer" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs.setdefault((r["impl"], r["threads"]), []).append(r)
first = next(iter(runs.values()))[0]
print(f"text: {first['bytes'] / 1e6:.2f} MB, {first['documents']} documents; tokenizer {sys.argv[2]}")
for (impl, _), rs in runs.items():
    if impl == "hf-tokenizers-js":
        print(f"reference: @huggingface/tokenizers {rs[0]['version']} on node {rs[0]['node']}")
        break
for (impl, _), rs in runs.items():
    if len({r["tokens"] for r in rs}) != 1:
        sys.exit(f"{impl}: the token count differs between runs")
print(f"\n{'impl':<18}{'threads':>8}{'runs':>6}{'median MB/s':>13}{'min':>9}{'max':>9}{'MB/s/thread':>13}"
      f"{'vs 1 thread':>13}{'tokens':>10}")
for (impl, threads), rs in sorted(runs.items()):
    v = [r["mb_per_s"] for r in rs]
    med = statistics.median(v)
    one = runs.get((impl, 1))
    scaling = f"{med / statistics.median(r['mb_per_s'] for r in one):.2f}x" if one and threads > 1 else ""
    print(f"{impl:<18}{threads:>8}{len(v):>6}{med:>13.1f}{min(v):>9.1f}{max(v):>9.1f}{med / threads:>13.1f}"
          f"{scaling:>13}{rs[0]['tokens']:>10}")
ours, ref = runs.get(("mixtape", 1)), runs.get(("hf-tokenizers-js", 1))
if ours and ref:
    ratios = [a["mb_per_s"] / b["mb_per_s"] for a, b in zip(ours, ref)]
    ratio = statistics.median(r["mb_per_s"] for r in ours) / statistics.median(r["mb_per_s"] for r in ref)
    print(f"\nmixtape / hf-tokenizers-js, one thread: {ratio:.0f}x (medians); rounds {min(ratios):.0f}-{max(ratios):.0f}x")
PY
