#!/usr/bin/env bash
# The compiler as users meet it: wall time and peak memory of the real `mixtape` binary, each
# beside /bin/true (the cost of starting any process here) in the same rounds. Rounds
# alternate the commands so that load from other processes falls on all of them alike.
#   --version, --help                              no LibTorch is loaded
#   lint recipes/quickstart.toml                   goal <= 30 ms
#   lint of a 10,000-line recipe (lint_bench)      goal <= 100 ms
#   plan of a 10,000-variant sweep --out (plan_bench's recipe, synthetic data present)
#                                                  goal <= 2 s and <= 500 MB peak
# Prints each command's median, best and worst wall time, its peak resident memory (from
# wait4: it includes the forking Python's pages before exec, about 14 MB, so /bin/true's peak
# is the floor), and whether the goal is met (issue 14). Exits 1 if a command fails.
#
#   bench/cli_bench.sh [BUILD_DIR]          (default: build)
#   env: ROUNDS (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
rounds=${ROUNDS:-10}

mixtape="$build/tools/mixtape/mixtape"
for exe in "$mixtape" "$build/bench/lint_bench" "$build/bench/plan_bench"; do
  if [[ ! -x $exe ]]; then
    echo "cli_bench.sh: $exe not found; build it: ninja -C $build mixtape lint_bench plan_bench" >&2
    exit 1
  fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/bench/lint_bench" --recipe >"$work/lint-10k.toml"
"$build/bench/plan_bench" --recipe >"$work/sweep.toml"
# The first plan writes the synthetic corpora's shards and manifests into the run folder's
# cache: a user plans a sweep over data that is already there.
"$mixtape" plan "$work/sweep.toml" --run-dir "$work/run" --out "$work/plan.json" >/dev/null 2>&1

python3 - "$rounds" "$mixtape" "$work" "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" <<'EOF'
import os, statistics, subprocess, sys, time
rounds, mixtape, work, cpu = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
lines = sum(1 for _ in open(os.path.join(work, "lint-10k.toml")))
commands = [
    ("/bin/true", ["/bin/true"], None, None),
    ("mixtape --version", [mixtape, "--version"], None, None),
    ("mixtape --help", [mixtape, "--help"], None, None),
    ("lint recipes/quickstart.toml", [mixtape, "lint", "recipes/quickstart.toml"], 30, None),
    (f"lint of a {lines}-line recipe", [mixtape, "lint", os.path.join(work, "lint-10k.toml")], 100, None),
    ("plan of a 10,000-variant sweep --out",
     [mixtape, "plan", os.path.join(work, "sweep.toml"), "--run-dir", os.path.join(work, "run"),
      "--out", os.path.join(work, "plan.json")], 2000, 500),
]
wall = {name: [] for name, *_ in commands}
peak = {name: 0 for name, *_ in commands}
for _ in range(rounds):
    for name, argv, _, _ in commands:
        start = time.perf_counter()
        # A file, not a pipe: the sweep's 100 warnings would fill a pipe nobody reads yet.
        with open(os.path.join(work, "stderr"), "w+") as err:
            child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(child.pid, 0)
            wall[name].append((time.perf_counter() - start) * 1000)
            peak[name] = max(peak[name], usage.ru_maxrss / 1024)  # ru_maxrss is in KiB on Linux
            if status != 0:
                err.seek(0)
                sys.exit(f"cli_bench.sh: `{' '.join(argv)}` failed:\n{err.read()}")
print(f"cli_bench: {rounds} rounds on {cpu}, {os.cpu_count()} CPUs")
print(f"{'command':40} {'median':>9} {'best':>9} {'worst':>9} {'peak':>8}  goal")
for name, _, goal_ms, goal_mb in commands:
    times = wall[name]
    goal = ""
    if goal_ms:
        met = statistics.median(times) <= goal_ms and (goal_mb is None or peak[name] <= goal_mb)
        goal = f"<= {goal_ms} ms" + (f", <= {goal_mb} MB" if goal_mb else "") + (": met" if met else ": MISSED")
    print(f"{name:40} {statistics.median(times):7.1f}ms {min(times):7.1f}ms {max(times):7.1f}ms "
          f"{peak[name]:6.1f}MB  {goal}")
EOF
