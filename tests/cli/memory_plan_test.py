#!/usr/bin/env python3
"""`mixtape plan` with a memory plan, through the binary, on Llama-3-8B's shape
(tests/plan-fit/wont-fit.toml): the recipe's [resources] make its unsharded stage a wont-fit
error; --shard full makes every stage fit, the table shows the model state per GPU as
worked out here by hand, what was picked is in the plan's exec, and the step time's compute
part follows 6N + 12 L d T over the GPUs at 989 TFLOP/s and 40% MFU. Without GPUs and memory
the plan prints no table and picks nothing.

usage: memory_plan_test.py MIXTAPE RECIPE WORKDIR"""
import json, math, os, re, shutil, subprocess, sys

MIXTAPE, RECIPE, WORK = (os.path.abspath(a) for a in sys.argv[1:4])
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL:", what)


def plan(*args, recipe=RECIPE):
    p = subprocess.run([MIXTAPE, "plan", recipe, "--run-dir", os.path.join(WORK, "run"), *args],
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


GiB = 2.0 ** 30
P = 8030261248  # Llama-3-8B's parameters (Hugging Face's count)
L, d, T, V, ffn, kv = 32, 4096, 8192, 128256, 14336, 1024

# As written: shard = "none" cannot hold 18 bytes a parameter on 80 GiB.
code, out, err = plan()
check(code == 1, f"unsharded stage: exit {code}, want 1")
check("error: stage 'unsharded' needs" in err and "[wont-fit]" in err, "wont-fit names the stage:\n" + err)

# --shard full over every stage: it fits, and the table says what each GPU holds.
out_json = os.path.join(WORK, "plan.json")
code, out, err = plan("--shard", "full", "--out", out_json)
check(code == 0, f"--shard full: exit {code}\n{err}")
check("memory per GPU on 8 GPUs of 80.0 GiB (72.0 GiB usable)" in out, "the table's header:\n" + out)
rows = {m.group(1): m.group(0) for m in re.finditer(r"^  (unsharded|picked)\s.*$", out, re.M)}
check(set(rows) == {"unsharded", "picked"}, f"a row per train node: {sorted(rows)}\n{out}")
# Full sharding over 8: fp32 weights 4P/8, gradients 4P/8, AdamW's moments 8P/8.
for name, row in rows.items():
    cells = row.split()
    check(cells[1] == "full", f"{name}: shard {cells[1]}")
    weights = f"{4 * P / 8 / GiB:.1f} GiB"
    optim = f"{8 * P / 8 / GiB:.1f} GiB"
    check(re.search(rf"\s{re.escape(weights)}\s+{re.escape(weights)}\s+{re.escape(optim)}\s", row),
          f"{name}: weights, gradients, optimizer {weights} {weights} {optim} in\n{row}")

nodes = {n["name"]: n for n in json.load(open(out_json))["nodes"] if n["kind"] == "train"}
exec_ = nodes["unsharded"]["exec"]
check(exec_["shard"] == "full", f"exec.shard {exec_['shard']}")
# Each of the 8 ranks takes 8 of the 64 sequences; the micro-batch divides that share.
check(exec_["micro_batch"] in (1, 2, 4, 8), f"picked micro_batch {exec_['micro_batch']}")
check(exec_["activation_checkpointing"] >= 1, "8192 tokens of 32 blocks need checkpointing on 80 GiB")
picked = re.search(r"^  unsharded\s+full\s+(\d+)\s+(none|full|every \d+)", out, re.M)
check(picked and int(picked.group(1)) == exec_["micro_batch"], "the table prints the picked micro-batch")

# The compute part of a step: (6N + 12 L d T) per token, N without the input embedding.
n = L * (d * (d + 2 * kv) + d * d + 3 * d * ffn) + V * d
flops = (6 * n + 12 * L * d * T) * 64 * T
for gpus in (8, 64):
    code, out, err = plan("--shard", "full", "--gpus", str(gpus))
    m = re.search(r"^  unsharded\s+full\s+(\d+)\s+(none|full|every (\d+))\s.*\n\s+step: ([\d.]+) s compute \+ ([\d.]+) s "
                  r"communication", out, re.M)
    check(code == 0 and m, f"--gpus {gpus}: a row and its step line\n{out}{err}")
    if m:
        every = 1 if m.group(2) == "full" else int(m.group(3)) if m.group(3) else 0
        recomputed = math.ceil(L / every) if every else 0
        want = flops / gpus * (1 + recomputed / (3 * L)) / (989e12 * 0.4)
        check(abs(float(m.group(4)) - want) <= 0.006 + 0.001 * want, f"--gpus {gpus}: compute {m.group(4)} s, want {want:.3f}")
        check(float(m.group(5)) > 0, f"--gpus {gpus}: communication")

# Flags: a size the parser does not know is a usage error; GPUs without memory print nothing.
code, out, err = plan("--gpu-memory", "80 gigs")
check(code == 2 and "--gpu-memory needs a size like 80GiB" in err, f"bad --gpu-memory: exit {code}\n{err}")
bare = os.path.join(WORK, "bare.toml")
with open(RECIPE) as f:
    text = f.read()
with open(bare, "w") as f:
    f.write(re.sub(r"\[resources\][^\[]*", "", text).replace('shard = "none"', ""))
code, out, err = plan(recipe=bare)
check(code == 0 and "memory per GPU" not in out, f"without resources: exit {code}, a table?\n{out}{err}")
code, out, err = plan("--gpus", "8", recipe=bare)
check(code == 0 and "memory per GPU" not in out, "GPUs without their memory: no memory plan")

print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
