#!/usr/bin/env python3
"""End-to-end tests of `mixtape data`, and interoperability with a Megatron .bin/.idx
writer and reader written here from the format description alone (struct.pack).

usage: cli_test.py MIXTAPE SCENARIO WORKDIR
prepare-hf-tokenizer reads tests/fixtures/bpe-bytelevel: without it the scenario exits 77
(skipped), and under CI 1 (tests/skipping.py).
"""
import gzip
import json
import os
import re
import shutil
import struct
import subprocess
import sys

from megatron_format import check, read_megatron, write_megatron

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import skipping  # noqa: E402

MIXTAPE, SCENARIO, WORK = sys.argv[1], sys.argv[2], sys.argv[3]


def run(*args, expect=0):
    proc = subprocess.run([MIXTAPE, "data", *args], capture_output=True, text=True)
    if proc.returncode != expect:
        sys.exit(f"mixtape data {' '.join(args)}: exit {proc.returncode}, expected {expect}\n"
                 f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)

if SCENARIO == "synth-deterministic":
    def manifests(out):
        return {d: json.load(open(os.path.join(out, d + ".manifest.json")))["files"]
                for d in ("prose", "code", "arith", "facts")}
    a, b, c = (os.path.join(WORK, x) for x in "abc")
    run("synth", "--out", a, "--seed", "7")
    run("synth", "--out", b, "--seed", "7")
    run("synth", "--out", c, "--seed", "8")
    check(manifests(a) == manifests(b), "same seed, same checksums")
    for domain in ("prose", "code", "arith", "facts"):
        check(manifests(a)[domain][0]["xxh3_64"] != manifests(c)[domain][0]["xxh3_64"],
              f"different seed, different {domain}.bin")
    total = sum(os.path.getsize(os.path.join(a, f)) for f in os.listdir(a))
    check(500_000 < total < 8_000_000, f"default corpus is a few MB, not {total} bytes")
    out = run("inspect", os.path.join(a, "facts")).stdout
    check("checksums  ok" in out and "facts" in out, out)
    # The downstream tasks: a function of the seed; recipes/tasks holds seed 7's.
    names = ("facts-choice", "facts-qa", "arith", "prose-cloze", "code-cloze")
    def tasks(out):
        return {n: open(os.path.join(out, "tasks", n + ".jsonl")).read() for n in names}
    check(tasks(a) == tasks(b), "same seed, same tasks")
    check(all(tasks(a)[n] != tasks(c)[n] for n in names), "different seed, different tasks")
    committed = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "recipes", "tasks")
    for n in names:
        check(open(os.path.join(committed, n + ".jsonl")).read() == tasks(a)[n],
              f"recipes/tasks/{n}.jsonl is not what `mixtape data synth --seed 7` writes")
    choice = [json.loads(l) for l in tasks(a)["facts-choice"].splitlines()]
    qa = [json.loads(l) for l in tasks(a)["facts-qa"].splitlines()]
    check(len(choice) == len(qa) == 96, f"{len(choice)} choice and {len(qa)} qa items for 24 x 4 facts")
    check(all(len(set(x["choices"])) == 4 and x["choices"][x["gold"]] == y["answer"] and x["context"] == y["context"]
              for x, y in zip(choice, qa)), "every question has 4 distinct choices, the gold one its answer")
    # The gold answer is what the corpus says: the facts documents hold "Q: ...\nA: <answer>." lines.
    corpus = run("inspect", os.path.join(a, "facts"), "--docs", "1000", "--chars", "100000").stdout
    stated = sum(1 for y in qa if json.dumps(f"{y['context']} {y['answer']}.")[1:-1] in corpus)
    check(stated > 75, f"only {stated} of 96 answers appear as the corpus states them (typos hide a few)")
    for x in (json.loads(l) for l in tasks(a)["arith"].splitlines()):
        p, q = x["context"].rstrip(" =").split(" + ") if "+" in x["context"] else x["context"].rstrip(" =").split(" - ")
        check(int(x["answer"]) == (int(p) + int(q) if "+" in x["context"] else int(p) - int(q)), f"arith {x}")

elif SCENARIO == "megatron-interop":
    docs = [[72, 105], [], [256, 1, 2, 3], [10]]
    prefix = os.path.join(WORK, "theirs")
    write_megatron(prefix, docs)
    out = run("inspect", prefix + ".idx", "--docs", "4").stdout
    check("tokens     7 in 4 documents, dtype uint16" in out, out)
    check("document 2 (4 tokens): 256 1 2 3" in out, out)  # no manifest: ids, not text
    # ... and ours, read by the independent reader.
    with open(os.path.join(WORK, "doc.txt"), "w") as f:
        f.write("Hi")
    run("prepare", os.path.join(WORK, "doc.txt"), "--out", os.path.join(WORK, "ours"))
    check(read_megatron(os.path.join(WORK, "ours")) == [[72, 105]], "our files, their reader")
    # A truncated .bin is an error naming the file and byte, exit 1.
    with open(prefix + ".bin", "r+b") as f:
        f.truncate(12)
    err = run("inspect", prefix, expect=1).stderr
    check(f"mixtape data: {prefix}.bin: byte 12: file ends at byte 12" in err, err)

elif SCENARIO == "megatron-manifest":
    # As Megatron's preprocess_data.py --append-eod writes them: bytes-v1 ids, each document
    # ending with the end-of-text id 256.
    docs = [list(b"Hello") + [256], list(b"world!") + [256], [256]]
    prefix = os.path.join(WORK, "pile_text_document")
    write_megatron(prefix, docs)
    out = run("inspect", prefix).stdout
    check("(megatron, no manifest)" in out and "checksums  none" in out, out)
    out = run("inspect", prefix, "--tokenizer", "bytes").stdout
    check("no manifest; derived with --tokenizer" in out and "ending every document" in out, out)
    check('document 0 (6 tokens): "Hello<|endoftext|>"' in out and "checksums  ok" in out, out)
    check(not os.path.exists(prefix + ".manifest.json"), "inspect writes nothing")
    run("manifest", prefix, expect=2)  # no --tokenizer
    run("manifest", prefix, "--tokenizer", "gpt3", expect=2)
    run("manifest", prefix, "--tokenizer", "bytes", "--eod", "sometimes", expect=2)
    err = run("manifest", prefix + ".idx", "--tokenizer", "bytes").stderr
    check("3 documents, 14 tokens, eod present" in err and "MB/s" in err, err)
    manifest = json.load(open(prefix + ".manifest.json"))
    check(manifest["eod"] == "present" and manifest["tokenizer"] == "bytes-v1" and manifest["documents"] == 3
          and [f["name"] for f in manifest["files"]] == ["pile_text_document.bin", "pile_text_document.idx",
                                                         "pile_text_document.meta"], str(manifest))
    check(read_megatron(prefix) == docs, "the token files are untouched")
    out = run("inspect", prefix).stdout
    check("checksums  ok (3 files)" in out and "ending every document" in out, out)
    err = run("manifest", prefix, "--tokenizer", "bytes", expect=1).stderr
    check("already has a manifest" in err, err)
    os.remove(prefix + ".manifest.json")  # its sidecar stays, and may hold metadata columns
    err = run("manifest", prefix, "--tokenizer", "bytes", expect=1).stderr
    check(f"{prefix}.meta: the dataset already has a sidecar" in err, err)
    # eod = present on a document without the end-of-text: the file, byte and document.
    bad = os.path.join(WORK, "bad")
    write_megatron(bad, [[1, 256], [2, 3]])
    err = run("manifest", bad, "--tokenizer", "bytes", "--eod", "present", expect=1).stderr
    check(f"{bad}.bin: byte 8: document 1 does not end with the end-of-text id 256" in err, err)
    # Ids beyond the tokenizer's vocabulary; a dtype too small for it.
    write_megatron(bad, [[1, 2], [300]])
    err = run("manifest", bad, "--tokenizer", "bytes", expect=1).stderr
    check(f"{bad}.bin: byte 4: token 0 of document 1 is outside the vocabulary of 264" in err
          and "tokenizer (bytes-v1)" in err, err)
    write_megatron(bad, [[1, 2]], dtype_code=1, fmt="<B")
    err = run("manifest", bad, "--tokenizer", "bytes", expect=1).stderr
    check(f"{bad}.idx: byte 17: dtype uint8 holds ids below 256 but tokenizer bytes-v1 has 264" in err, err)
    # An .idx that lies about the .bin: the file and byte, nothing written.
    write_megatron(bad, [[1, 2], [3]])
    with open(bad + ".idx", "r+b") as f:
        f.seek(34)
        f.write(struct.pack("<i", 7))
    err = run("manifest", bad, "--tokenizer", "bytes", expect=1).stderr
    check(f"{bad}.idx" in err and "byte" in err, err)
    check(not os.path.exists(bad + ".manifest.json") and not os.path.exists(bad + ".meta"), "nothing written")

elif SCENARIO == "prepare-jsonl":
    src = os.path.join(WORK, "in")
    os.makedirs(os.path.join(src, "sub"))
    with open(os.path.join(src, "b.jsonl"), "w") as f:
        f.write(json.dumps({"text": "alpha", "quality": 4, "lang": "en", "tags": ["x"]}) + "\n\n")
        f.write(json.dumps({"text": "beta", "quality": 2.5, "lang": "de"}) + "\n")
    with open(os.path.join(src, "sub", "a.txt"), "w") as f:
        f.write("gamma text")
    for fmt in ("megatron", "flat"):
        prefix = os.path.join(WORK, "out-" + fmt)
        proc = run("prepare", src, "--out", prefix, "--format", fmt)
        check("3 documents, 19 tokens" in proc.stderr and "MB/s" in proc.stderr, proc.stderr)
        check("field 'tags' holds arrays or objects" in proc.stderr, proc.stderr)
        out = run("inspect", prefix, "--docs", "3").stdout
        check('document 0 (5 tokens): "alpha"' in out, out)   # b.jsonl sorts before sub/
        check('document 2 (10 tokens): "gamma text"' in out, out)
        check("quality" in out and "lang" in out and "source" in out, out)
        check("checksums  ok" in out, out)
        manifest = json.load(open(prefix + ".manifest.json"))
        check(manifest["format"] == fmt and manifest["documents"] == 3, str(manifest))
    with open(os.path.join(WORK, "bad.jsonl"), "w") as f:
        f.write('{"text": "ok"}\n{"text": 5}\n')
    err = run("prepare", os.path.join(WORK, "bad.jsonl"), "--out", os.path.join(WORK, "bad"),
              expect=1).stderr
    check('bad.jsonl: byte 15: line 2: no "text" string field' in err, err)
    check(not os.path.exists(os.path.join(WORK, "bad.manifest.json")), "no manifest after failure")
    # A line nested 100,000 deep once overflowed the JSON parser's stack.
    with open(os.path.join(WORK, "deep.jsonl"), "w") as f:
        f.write('{"text": "ok"}\n{"text": ' + "[" * 100000 + "\n")
    err = run("prepare", os.path.join(WORK, "deep.jsonl"), "--out", os.path.join(WORK, "deep"),
              expect=1).stderr
    check("deep.jsonl: byte 535: JSON nested deeper than 512 levels" in err, err)

elif SCENARIO == "prepare-compressed":
    # The same documents plain, gzip (two members, as pigz writes them) and zstd: the same tokens.
    lines = [json.dumps({"text": f"document {i}: caf\u00e9 \u65e5\u672c {i * i}", "n": i}, ensure_ascii=False)
             for i in range(200)]
    raw = ("\n".join(lines) + "\n").encode()
    plain, gz, zst = (os.path.join(WORK, n) for n in ("a.jsonl", "b.jsonl.gz", "c.jsonl.zst"))
    open(plain, "wb").write(raw)
    open(gz, "wb").write(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    subprocess.run(["zstd", "-q", "-o", zst, plain], check=True)
    want = [list(json.loads(l)["text"].encode()) for l in lines]
    for path in (plain, gz, zst):
        prefix = path + ".out"
        err = run("prepare", path, "--out", prefix).stderr
        check("200 documents" in err, err)
        check(read_megatron(prefix) == want, f"{path}: the documents of the plain file")
    # A .txt.gz is one document; the name does not decide, the content does.
    txt = os.path.join(WORK, "story.txt.gz")
    open(txt, "wb").write(gzip.compress("Once upon a time.\n".encode() * 3))
    misnamed = os.path.join(WORK, "actually-gzip.txt")
    shutil.copy(txt, misnamed)
    for path in (txt, misnamed):
        run("prepare", path, "--out", path + ".out")
        check(read_megatron(path + ".out") == [list(b"Once upon a time.\n" * 3)], path)

elif SCENARIO == "prepare-refusals":
    def refused(name, content, want):
        path = os.path.join(WORK, name)
        open(path, "wb").write(content)
        prefix = os.path.join(WORK, "out")
        err = run("prepare", path, "--out", prefix, expect=1).stderr
        check(want.format(path=path) in err, f"{name}: {err}")
        check(not [f for f in os.listdir(WORK) if f.startswith("out")], f"{name}: files written: {os.listdir(WORK)}")
    raw = b"".join(json.dumps({"text": "x" * 50 + str(i)}).encode() + b"\n" for i in range(2000))
    packed = gzip.compress(raw)
    refused("data.parquet", b"PAR1" + bytes(100) + b"PAR1", "{path}: a Parquet file (magic PAR1)")
    refused("data.jsonl", b"PAR1" + bytes(100) + b"PAR1", "{path}: a Parquet file (magic PAR1)")
    refused("blob.txt", b"hello\x00world", "{path}: byte 5: a binary file (a NUL byte)")
    refused("latin1.txt", "caf\u00e9 au lait".encode("latin-1"), "{path}: byte 3: a binary file (not UTF-8)")
    refused("archive.jsonl.xz", b"\xfd7zXZ\x00" + bytes(40), "{path}: xz-compressed")
    refused("cut.jsonl.gz", packed[:len(packed) // 2],
            "{path}: byte " + str(len(packed) // 2) + ": truncated gzip data")
    refused("bad.jsonl.gz", packed[:30] + bytes(b ^ 0x55 for b in packed[30:60]) + packed[60:],
            "{path}: byte ")
    err = run("prepare", os.path.join(WORK, "bad.jsonl.gz"), "--out", os.path.join(WORK, "out"), expect=1).stderr
    at = re.search(r"bad\.jsonl\.gz: byte (\d+): corrupt gzip data", err)
    check(at and 30 <= int(at.group(1)) <= 60, f"the byte of the damage (30-60): {err}")
    zst = os.path.join(WORK, "whole.jsonl.zst")
    open(os.path.join(WORK, "whole.jsonl"), "wb").write(raw)
    subprocess.run(["zstd", "-q", "-o", zst, os.path.join(WORK, "whole.jsonl")], check=True)
    cut = open(zst, "rb").read()
    os.remove(zst)
    os.remove(os.path.join(WORK, "whole.jsonl"))
    refused("cut.jsonl.zst", cut[:len(cut) - 10], "{path}: byte " + str(len(cut) - 10) + ": truncated zstd data")
    # A JSON error inside a compressed file: the decompressed byte and the line.
    refused("lines.jsonl.gz", gzip.compress(b'{"text": "a"}\n{"text": "b"}\n{"txt": "c"}\n'),
            '{path} (decompressed): byte 28: line 3: no "text" string field')

elif SCENARIO == "prepare-text-key":
    src = os.path.join(WORK, "nested.jsonl")
    with open(src, "w") as f:
        f.write(json.dumps({"id": 1, "meta": {"body": {"content": "first"}}}) + "\n")
        f.write(json.dumps({"id": 2, "meta": {"body": {"content": ""}}}) + "\n")
        f.write(json.dumps({"id": 3, "meta.body.content": "third"}) + "\n")
    prefix = os.path.join(WORK, "out")
    err = run("prepare", src, "--out", prefix, "--text-key", "meta.body.content").stderr
    check("2 documents" in err and "(1 empty skipped)" in err, err)
    check(read_megatron(prefix) == [list(b"first"), list(b"third")], "nested and dotted keys")
    with open(src, "a") as f:
        f.write(json.dumps({"id": 4, "meta": {"body": "flat"}}) + "\n")
    err = run("prepare", src, "--out", prefix, "--text-key", "meta.body.content", expect=1).stderr
    check(f'{src}: byte 135: line 4: no "meta.body.content" string field' in err, err)
    run("prepare", src, "--out", prefix, "--threads", "0", expect=2)

elif SCENARIO == "prepare-threads":
    # Several batches of 1 MiB, documents of all sizes: any thread count writes the same files.
    import random
    rng = random.Random(4)
    src = os.path.join(WORK, "many.jsonl")
    with open(src, "w") as f:
        for i in range(6000):
            words = " ".join("".join(rng.choice("abcdefgh\u00e9\u4e2d") for _ in range(rng.randint(1, 9)))
                             for _ in range(rng.randint(0, 120)))
            f.write(json.dumps({"text": words, "i": i, "tag": rng.choice("xyz")}) + "\n")
    files = {}
    for threads in ("1", "3"):
        prefix = os.path.join(WORK, "t" + threads)
        run("prepare", src, "--out", prefix, "--threads", threads)
        files[threads] = {ext: open(prefix + ext, "rb").read() for ext in (".bin", ".idx", ".meta")}
    check(files["1"] == files["3"], "1 and 3 threads wrote different files")
    docs = read_megatron(os.path.join(WORK, "t3"))
    with open(src) as f:
        texts = [json.loads(l)["text"] for l in f]
    check(docs == [list(t.encode()) for t in texts if t], "documents in input order, none dropped")

elif SCENARIO == "prepare-hf-tokenizer":
    fixtures = skipping.fixture("bpe-bytelevel")
    expected = json.load(open(os.path.join(fixtures, "expected.json")))["samples"][:2]
    for i, sample in enumerate(expected):
        with open(os.path.join(WORK, f"doc{i}.txt"), "w") as f:
            f.write(sample["text"])
    # tokenizer.json as hf:PATH, and GPT-2's vocab.json + merges.txt as a plain folder path.
    gpt2 = os.path.join(WORK, "gpt2")
    os.makedirs(gpt2)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(fixtures, name), gpt2)
    for name, tokenizer in (("json", "hf:" + os.path.join(fixtures, "tokenizer.json")), ("gpt2", gpt2)):
        prefix = os.path.join(WORK, "out-" + name)
        run("prepare", os.path.join(WORK, "doc0.txt"), os.path.join(WORK, "doc1.txt"), "--out", prefix,
            "--tokenizer", tokenizer)
        check(read_megatron(prefix) == [s["ids"] for s in expected], f"{name}: the ids tokenizers gives")
        manifest = json.load(open(prefix + ".manifest.json"))
        check(manifest["tokenizer"].startswith("bpe:") and len(manifest["tokenizer"]) == 20, str(manifest))
        check(manifest["vocab_size"] == 1000 and manifest["dtype"] == "uint16" and manifest["eot"] == 0,
              str(manifest))
    with open(os.path.join(gpt2, "merges.txt"), "a") as f:
        f.write("zz a\n")
    err = run("prepare", os.path.join(WORK, "doc0.txt"), "--out", os.path.join(WORK, "bad"),
              "--tokenizer", gpt2, expect=1).stderr
    check("gpt2/merges.txt: line 745: \"zz\" is not in the vocabulary" in err, err)
    err = run("prepare", os.path.join(WORK, "doc0.txt"), "--out", os.path.join(WORK, "bad"),
              "--tokenizer", "gpt3", expect=2).stderr
    check("unknown tokenizer 'gpt3'" in err, err)

elif SCENARIO == "inspect-checksum":
    out = os.path.join(WORK, "c")
    run("synth", "--out", out, "--docs", "20", "--domains", "arith")
    path = os.path.join(out, "arith.bin")
    with open(path, "r+b") as f:
        byte = f.read(1)
        f.seek(0)
        f.write(bytes([byte[0] ^ 1]))
    err = run("inspect", path, expect=1).stderr
    check(f"mixtape data: {path}: checksum mismatch" in err, err)
    os.remove(path)
    err = run("inspect", out + "/arith", expect=1).stderr
    check(f"{path}: cannot open the file that" in err, err)

elif SCENARIO == "tasks-convert":
    # One ARC row in the layout `datasets` writes; the item by hand from arc_easy.yaml.
    src, out = os.path.join(WORK, "arc.jsonl"), os.path.join(WORK, "arc.items.jsonl")
    row = {"id": "Mercury_1", "question": "Which is a metal?",
           "choices": {"text": ["wood", "iron", "glass"], "label": ["1", "2", "3"]}, "answerKey": "2"}
    with open(src, "w") as f:
        f.write(json.dumps(row) + "\n\n")
    stdout = run("tasks", "convert", "--from", "arc", src, "--out", out).stdout
    check(f"1 arc items -> {out}" in stdout, stdout)
    with open(out) as f:
        items = [json.loads(line) for line in f]
    check(items == [{"context": "Question: Which is a metal?\nAnswer:", "choices": ["wood", "iron", "glass"],
                     "gold": 1}], items)
    # A bad second row: exit 1 naming FILE:LINE and the field, and the earlier OUT untouched.
    with open(src, "a") as f:
        f.write(json.dumps(dict(row, answerKey="E")) + "\n")
    before = open(out).read()
    err = run("tasks", "convert", "--from", "arc", src, "--out", out, expect=1).stderr
    check(f"mixtape data: {src}:3: \"answerKey\": 'E' is not one of choices.label (1, 2, 3)" in err, err)
    check(open(out).read() == before and sorted(os.listdir(WORK)) == ["arc.items.jsonl", "arc.jsonl"],
          sorted(os.listdir(WORK)))
    # An unknown --from lists the known ones; --out is required.
    err = run("tasks", "convert", "--from", "boolq", src, "--out", out, expect=2).stderr
    check("--from needs one of arc|hellaswag|piqa|sciq|mmlu, not 'boolq'" in err, err)
    run("tasks", "convert", "--from", "arc", src, expect=2)

elif SCENARIO == "usage":
    run(expect=2)
    run("frobnicate", expect=2)
    run("synth", expect=2)
    run("synth", "--out", WORK, "--docs", "many", expect=2)
    run("synth", "--out", WORK, "--domains", "poetry", expect=2)
    run("prepare", "--out", os.path.join(WORK, "x"), expect=2)
    run("inspect", expect=2)
    check("usage: mixtape data" in run("--help").stdout, "help")
    run("inspect", os.path.join(WORK, "nothing"), expect=1)

else:
    sys.exit("unknown scenario " + SCENARIO)
print("ok", SCENARIO)
