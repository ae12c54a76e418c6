#!/usr/bin/env python3
"""`mixtape lint` on hostile inputs: each must give a diagnostic naming the file and exit 1 —
never a crash, a hang or a clean exit (/dev/zero, a pipe and a file over 16 MiB are refused
before they are read). Also checks the CLI's exit codes and JSON output."""
import json, os, subprocess, sys

mixtape, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)

cases = {
    "empty.toml": b"",
    "garbage.toml": bytes(range(256)) * 4,
    "latin1.toml": b'[recipe]\nname = "caf\xe9"\n',
    "huge-number.toml": b"[recipe]\nname = \"x\"\nseed = 1e400\n",
    "nested-arrays.toml": b"x = " + b"[" * 100000 + b"]" * 100000 + b"\n",
    "nested-inline-tables.toml": b"x = " + b"{a = " * 5000 + b"1" + b"}" * 5000 + b"\n",
    "long-string.toml": b'[recipe]\nname = "' + b"a" * 100000 + b'"\n[model]\nfamily = "llama"\n',
    "long-expression.toml": b'[recipe]\nname = "x"\n[[stage]]\nname = "s"\nmix = "'
        + b"(" * 50000 + b"a" + b")" * 50000 + b'"\n',
    "deep-keys.toml": b"[" + b".".join([b"k"] * 20000) + b"]\n",
    "unterminated.toml": b'[recipe]\nname = "x\n',
}
failures = []

def run(args):
    try:
        return subprocess.run([mixtape, *args], capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        failures.append(f"{args}: timed out")
        return None

for name, data in cases.items():
    path = os.path.join(work, name)
    with open(path, "wb") as f:
        f.write(data)
    r = run(["lint", path])
    if r is None:
        continue
    err = r.stderr.decode("utf-8", "replace")
    if r.returncode != 1:
        failures.append(f"{name}: exit {r.returncode}, expected 1\n{err[:2000]}")
    elif name not in err or "error:" not in err:
        failures.append(f"{name}: no diagnostic naming the file\n{err[:2000]}")

# A directory and a missing file.
for path in [work, os.path.join(work, "missing.toml")]:
    r = run(["lint", path])
    if r is not None and (r.returncode != 1 or "error:" not in r.stderr.decode()):
        failures.append(f"{path}: exit {r.returncode}: {r.stderr.decode()[:500]}")

# Inputs that never end or are too large to be a recipe: refused before reading, at once.
fifo = os.path.join(work, "pipe.toml")
if not os.path.exists(fifo):
    os.mkfifo(fifo)
big = os.path.join(work, "big.toml")
with open(big, "wb") as f:
    f.write(b"# " + b"x" * (16 << 20) + b"\n")
unbounded = {
    "/dev/zero": "/dev/zero: error: not a regular file [io]",
    fifo: f"{fifo}: error: not a regular file [io]",
    big: f"{big}: error: recipe of {(16 << 20) + 3} bytes exceeds the limit of 16 MiB [io]",
}
for path, want in unbounded.items():
    r = run(["lint", path])
    if r is not None and (r.returncode != 1 or want not in r.stderr.decode()):
        failures.append(f"{path}: exit {r.returncode}, expected 1 and {want!r}: {r.stderr.decode()[:500]}")

# Usage errors exit 2.
for args in [["lint"], ["lint", "--no-such-flag", "x.toml"], ["lint", "-Wno-unknown-ref", "x.toml"], ["nope"]]:
    r = run(args)
    if r is not None and r.returncode != 2:
        failures.append(f"{args}: exit {r.returncode}, expected 2")

# JSON: one object per diagnostic with the documented fields.
r = run(["lint", "--format=json", os.path.join(work, "unterminated.toml")])
if r is not None:
    diags = json.loads(r.stdout)
    want = {"file", "line", "column", "severity", "code", "message", "fixits"}
    if r.returncode != 1 or not diags or not want <= set(diags[0]):
        failures.append(f"json: exit {r.returncode}: {r.stdout[:500]}")

# Inputs the fuzzer once crashed or hung on (tests/fuzz/recipe-corpus) stay fixed.
corpus = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "recipe-corpus")
corpus_files = sorted(os.listdir(corpus))
for name in corpus_files:
    r = run(["lint", os.path.join(corpus, name)])
    if r is not None and r.returncode not in (0, 1):
        failures.append(f"fuzz corpus {name}: exit {r.returncode}\n{r.stderr.decode('utf-8', 'replace')[:500]}")

for f in failures:
    print("FAIL:", f)
print(f"{len(cases) + 2 + len(unbounded) + 4 + 1 + len(corpus_files) - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
