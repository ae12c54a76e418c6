#!/usr/bin/env bash
# Everything the GPU machine is for, in one device call (its time is scarce; DEVELOPERS.md):
# build against the machine's LibTorch (CUDA, NCCL), run the CUDA tests (CPU against CUDA),
# the GPU training benchmark (GPT-2 124M and Llama-3.2-1B shapes) beside PyTorch eager and
# torch.compile from the same call, the
# quickstart on CUDA, and (full) the whole ctest suite. Logs and a summary go to $OUT.
#
#   bash bench/gpu/check.sh quick|verify|full   (on the GPU machine, in the project root, .devkit carried)
#
# quick: three targets, CUDA tests, benchmark, quickstart. verify: everything but the PyTorch
# references (a minute of device time). full: everything.
set -uo pipefail
mode=${1:-full}
root=$PWD out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
summary="$out/summary.txt"
note() { echo "$*" | tee -a "$summary"; }
[[ -d .devkit ]] || { echo "no .devkit: make it with ../shared/device/make-devkit.sh and carry it"; exit 2; }
ln -sfn "$root/.devkit/shared" ../shared 2>/dev/null || true
note "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"
tp=$(python3 -c "import torch;print(torch.utils.cmake_prefix_path)")
# nccl.h comes with pip's nvidia-nccl package, beside torch (runtime/dist/CMakeLists.txt looks in NCCL_HOME).
export NCCL_HOME=${NCCL_HOME:-$(python3 -c "import nvidia.nccl as n;print(list(n.__path__)[0])" 2>/dev/null)}
note "torch: $(python3 -c 'import torch;print(torch.__version__, "cuda", torch.version.cuda, "nccl", torch.cuda.nccl.version())')"

SECONDS=0
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$tp;$root/.devkit/llvm;$root/.devkit/usr" >"$out/build.log" 2>&1 \
  || { tail -30 "$out/build.log"; note "configure failed"; exit 1; }
targets=(mixtape mixtape_cuda_tests train_bench)
[[ $mode != quick ]] && targets=(all)
ninja -C build-gpu -k 0 -j16 "${targets[@]}" >>"$out/build.log" 2>&1
note "build (${targets[*]}): rc $? in ${SECONDS}s"
grep -E "error:|FAILED:" "$out/build.log" | head -30

b=build-gpu
if [[ -x $b/tests/mixtape_cuda_tests ]]; then
  timeout 180 $b/tests/mixtape_cuda_tests >"$out/cuda-tests.log" 2>&1
  note "cuda tests: rc $? — $(grep -E '^\[  (PASSED|FAILED) ' "$out/cuda-tests.log" | tr '\n' ' ')"
  grep -E "Failure|FAILED|error" "$out/cuda-tests.log" | head -20
  # The loss kernels' micro-benchmark: the run above timed them on; ATen's ops for comparison.
  MIXTAPE_CUDA_KERNELS=0 timeout 60 $b/tests/mixtape_cuda_tests --gtest_filter='LossKernels.Time*' \
    >>"$out/cuda-tests.log" 2>&1
  grep '"bench": "chunked-loss"' "$out/cuda-tests.log" | tee -a "$summary"
fi

# The benchmark at both shapes: Mixtape, then the PyTorch references eager and torch.compile,
# one after the other on the same GPU in this call (issue 21's table). GPT-2 124M first: the
# longest-standing comparison; each run has its own timeout, so a slow compile costs only its row.
bench="$out/bench.jsonl"
run_bench() { # seconds, command...
  local limit=$1
  shift
  timeout "$limit" "$@" 2>>"$out/bench.log" | grep '^{' | tee -a "$bench"
}
if [[ -x $b/bench/train_bench ]]; then
  run_bench 150 $b/bench/train_bench --model gpt2-124m --device cuda --steps 20 --warmup 5 --clip 0
  [[ $mode == full ]] && for flags in "--fused" "--compile --fused"; do
    run_bench 200 python3 ../shared/bench/anchor_gpt.py $flags
  done
  run_bench 150 $b/bench/train_bench --model llama-1b --device cuda --steps 10 --warmup 3
  [[ $mode == full ]] && for flags in "" "--compile"; do
    run_bench 240 python3 ../shared/bench/anchor_llama.py --batch 4 --seq 2048 $flags
  done
  # Issue 17's item 9: fully sharded as a world of one (NCCL; bf16 parameters gathered from
  # fp32 shards), every block checkpointed, beside PyTorch checkpointed.
  run_bench 150 $b/bench/train_bench --model llama-1b --device cuda --steps 10 --warmup 3 --shard-full \
    --checkpoint-every 1
  [[ $mode == full ]] && run_bench 240 python3 ../shared/bench/anchor_llama.py --batch 4 --seq 2048 --checkpoint
fi
if [[ $mode != quick && -x $b/bench/train_bench ]]; then
  timeout 120 bash bench/gpu/scaling.sh $b >"$out/scaling.log" 2>&1
  note "scaling: rc $?"
  grep -E "train_bench:|Error|error" "$out/scaling.log" | head -5
  tail -4 "$out/scaling.log" | tee -a "$summary"
fi
python3 - "$bench" <<'PY' | tee -a "$summary"
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def shape(r):  # anchor_gpt reports 124M-ish parameters, anchor_llama ~1.2B
    return r.get("model") or ("gpt2-124m" if r["params"] < 5e8 else "llama-1b")
print("(all runs of this table come from one device call)")
def key(r):  # "mixtape+full+ckpt": fully sharded and checkpointed
    return r["impl"] + ("+full" if r.get("shard") == "full" else "") + \
        ("+ckpt" if r.get("checkpoint") or r.get("checkpoint_every") else "")
def peak_gib(r):  # the anchors' after warmup, train_bench's over the process
    return r.get("peak_mem_gib") or (r.get("peak_memory_bytes") or 0) / 2**30
for name in ("gpt2-124m", "llama-1b"):
    rows = {key(r): r for r in runs if shape(r) == name}
    for impl, r in rows.items():
        print(f"{name:<10}{impl:<24}{r['tokens_per_s']:>10} tok/s  {r['step_ms']:>8} ms/step  MFU {r['mfu']:.3f}"
              f"  peak {peak_gib(r):.1f} GiB")
    for mine, refs in (("mixtape", ("pytorch-eager", "pytorch-compile")),
                       ("mixtape+full+ckpt", ("pytorch-eager+ckpt",))):
        for ref in refs:
            if mine in rows and ref in rows:
                print(f"{name:<10}{mine} / {ref}: {rows[mine]['tokens_per_s'] / rows[ref]['tokens_per_s']:.3f}x")
PY

# The quickstart on CUDA, end to end; its final evals in the summary.
if [[ -x $b/tools/mixtape/mixtape ]]; then
  SECONDS=0
  timeout 120 $b/tools/mixtape/mixtape run recipes/quickstart.toml --device cuda --run-dir /tmp/qs-cuda \
    >"$out/quickstart.log" 2>&1
  note "quickstart --device cuda: rc $? in ${SECONDS}s"
  tail -5 "$out/quickstart.log"
  cat /tmp/qs-cuda/*/metrics.jsonl 2>/dev/null | grep '"type":"eval"' | grep '"point":"final"' >"$out/quickstart-evals.jsonl"
  note "quickstart final evals: $(wc -l <"$out/quickstart-evals.jsonl")"
fi

if [[ $mode != quick ]]; then
  SECONDS=0
  # CTEST_ARGS narrows the suite when device time is short (e.g. "-L fast").
  (cd $b && timeout ${CTEST_TIMEOUT:-150} ctest -j14 -LE gpu ${CTEST_ARGS:-} --output-on-failure >"$out/ctest.log" 2>&1)
  note "ctest (all but gpu): rc $? in ${SECONDS}s — $(grep -E 'tests passed|tests failed' "$out/ctest.log")"
  grep -E "^\s+[0-9]+ - " "$out/ctest.log" | head -20
fi
cat "$summary"
