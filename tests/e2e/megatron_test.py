#!/usr/bin/env python3
"""A Megatron-LM dataset as preprocess_data.py --append-eod leaves it (.bin + .idx, no
manifest; written by tests/data/megatron_format.py from the format description) is a recipe
stream unchanged: lint, plan (the derived manifest cached, re-read when a file changes, a
corrupt cache entry ignored), clear errors without a tokenizer or with ids it cannot have made,
and a tiny run end to end.
    megatron_test.py MIXTAPE WORKDIR"""
import json, os, shutil, subprocess, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
from megatron_format import write_megatron  # noqa: E402

mixtape, work = sys.argv[1:3]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(os.path.join(work, "data"))
cache = os.path.join(work, "cache")
env = dict(os.environ, MIXTAPE_NUM_THREADS="1", MIXTAPE_CACHE_DIR=cache)
failures = []

EOT = 256  # bytes-v1
words = ["the", "river", "runs", "north", "past", "old", "mills", "and", "green", "fields", "in", "spring"]
docs = []
for i in range(300):
    text = " ".join(words[(i * 7 + j * 5) % len(words)] for j in range(8 + i % 13)) + "."
    docs.append(list(text.encode()) + [EOT])
prefix = os.path.join(work, "data", "pile_text_document")
write_megatron(prefix, docs)

RECIPE = """
[recipe]
name = "megatron"
seed = 1

[model]
family = "llama"
layers = 1
d_model = 32
heads = 2
seq_len = 64

[streams.pile]
shards = "data/pile_text_document"
{tokenizer}
val = "5%"

[[stage]]
name = "pretrain"
tokens = "8Ki"
batch = "8 sequences"
mix = "pile"
lr = "warmup(10%, peak = 3e-3) then cosine(final = 3e-4)"

[[eval]]
name = "ppl"
streams = ["pile.val"]
max_tokens = "2Ki"
on = ["pretrain"]
"""


def recipe(name, tokenizer='tokenizer = "bytes"', shards=None):
    path = os.path.join(work, name + ".toml")
    text = RECIPE.format(tokenizer=tokenizer)
    if shards:
        text = text.replace('"data/pile_text_document"', f'"{shards}"')
    with open(path, "w") as f:
        f.write(text)
    return path


def run(args):
    return subprocess.run([mixtape, *args], capture_output=True, text=True, env=env, timeout=900)


def plan(path, expect=0):
    out = os.path.join(work, "plan.json")
    r = run(["plan", path, "--out", out, "--run-dir", os.path.join(work, "run")])
    if r.returncode != expect:
        failures.append(f"plan {path}: exit {r.returncode}, expected {expect}\n{r.stderr}")
        return r, None
    return r, (json.load(open(out)) if expect == 0 else None)


good = recipe("megatron")
r = run(["lint", good])
if r.returncode != 0 or r.stderr:
    failures.append("lint:\n" + r.stderr)

fingerprint = None
# First plan: the manifest is derived (documents end with EOT: eod auto finds it) and cached.
r, p = plan(good)
if p:
    if "no manifest; deriving one from" not in r.stderr or "eod present" not in r.stderr:
        failures.append("the first plan did not say it derives a manifest:\n" + r.stderr)
    s = p["streams"]["pile"]
    if p["provisional"] or not s["fingerprint"]:
        failures.append(f"plan is provisional or has no fingerprint: {s}")
    if s["train_documents"] + s["val_documents"] != len(docs):
        failures.append(f"documents {s['train_documents']} + {s['val_documents']} != {len(docs)}")
    # One end-of-text per document: the document's own, not a second one.
    if s["train_tokens"] + s["val_tokens"] != sum(len(d) for d in docs):
        failures.append(f"tokens {s['train_tokens']} + {s['val_tokens']} != {sum(len(d) for d in docs)}")
    fingerprint = s["fingerprint"]
if sorted(os.listdir(os.path.join(work, "data"))) != ["pile_text_document.bin", "pile_text_document.idx"]:
    failures.append("planning wrote next to the data: " + str(os.listdir(os.path.join(work, "data"))))

# Second plan: a cache hit.
r, p = plan(good)
if "deriving" in r.stderr:
    failures.append("the second plan derived the manifest again:\n" + r.stderr)
# A folder of pairs is the same stream.
r, p = plan(recipe("folder", shards="data"))
if p and p["streams"]["pile"]["fingerprint"] != fingerprint:
    failures.append("the folder's fingerprint differs from the prefix's")

# The .bin touched: re-read. A corrupt cache entry: ignored and replaced.
st = os.stat(prefix + ".bin")
os.utime(prefix + ".bin", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
r, p = plan(good)
if "deriving" not in r.stderr:
    failures.append("a touched .bin was not re-read:\n" + r.stderr)
for name in os.listdir(os.path.join(cache, "manifests")):
    if name.endswith(".json"):
        with open(os.path.join(cache, "manifests", name), "w") as f:
            f.write('{"format_version": 1, "prefix": ')
r, p = plan(good)
if "deriving" not in r.stderr or (p and p["streams"]["pile"]["fingerprint"] != fingerprint):
    failures.append("a corrupt cache entry was trusted:\n" + r.stderr)

# No tokenizer: a clear error naming the dataset and the key.
r, _ = plan(recipe("untokenized", tokenizer=""), expect=1)
if f"{prefix}: no manifest" not in r.stderr or "tokenizer = " not in r.stderr:
    failures.append("no tokenizer: unclear error:\n" + r.stderr)
# Ids the tokenizer cannot have made: the file, byte and document.
bad = os.path.join(work, "data", "bad")
write_megatron(bad, [[1, 2, EOT], [3, 999, EOT]])
r, _ = plan(recipe("bad", shards="data/bad"), expect=1)
if f"{bad}.bin: byte 8: token 1 of document 1 is outside the vocabulary of 264" not in r.stderr:
    failures.append("an out-of-vocabulary id: unclear error:\n" + r.stderr)
os.remove(bad + ".bin")
os.remove(bad + ".idx")

# Train and evaluate on it.
run_dir = os.path.join(work, "run")
r = run(["run", good, "--run-dir", run_dir, "--quiet"])
if r.returncode != 0:
    failures.append("run failed:\n" + r.stderr[-3000:])
else:
    done = [n for n in os.listdir(run_dir) if os.path.exists(os.path.join(run_dir, n, "DONE"))]
    if len(done) < 3:  # init, pretrain, eval
        failures.append(f"nodes done: {done}")

# `mixtape data manifest` (which the no-tokenizer error recommends) keeps the fingerprint, so
# the plan made before it still executes in the same order; data changed since a plan fails.
made_before = os.path.join(work, "plan-before-manifest.json")
shutil.copy(os.path.join(work, "plan.json"), made_before)
r = run(["data", "manifest", prefix, "--tokenizer", "bytes"])
if r.returncode != 0:
    failures.append("data manifest failed:\n" + r.stderr)
r, p = plan(good)
if p and p["streams"]["pile"]["fingerprint"] != fingerprint:
    failures.append(f"data manifest changed the fingerprint: {fingerprint} -> {p['streams']['pile']['fingerprint']}")
for suffix in (".manifest.json", ".meta"):
    os.remove(prefix + suffix)
write_megatron(prefix, docs[:-1])
r = run(["exec", made_before, "--run-dir", os.path.join(work, "run-changed"), "--quiet"])
if r.returncode == 0 or f"stream 'pile': its data changed since the plan was made (plan fingerprint {fingerprint}, " \
        "data " not in r.stderr or "Traceback" in r.stderr:
    failures.append(f"exec on changed data: exit {r.returncode}\n{r.stderr[-3000:]}")

if failures:
    print("\n\n".join(failures))
    sys.exit(1)
print("ok megatron")
