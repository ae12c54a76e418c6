#!/usr/bin/env python3
"""Makes bpe-prose.json: tests/fixtures/bpe-bytelevel/tokenizer.json (a GPT-2-style byte-level
BPE of 1000 tokens) extended with whole-word tokens for the nouns and adjectives of the
embedded corpus's prose domain (runtime/data/lib/Synth.cpp), for recipes/vocab-extension.toml.

Each word " river" is what the base tokenizer's merges leave as pieces, e.g. "Ġr" "iver";
merges appended after the base's (lower priority than all of them) join those pieces left to
right, each join a new token with the next free id. So every old token keeps its id, the base
merges run exactly as before, and each word ends as one token.

With node and the npm packages of `scripts/setup npm`, the result is checked against Hugging
Face's own implementation (@huggingface/tokenizers): every word must encode to its new id.

usage: extend_bpe.py   (writes recipes/tokenizers/bpe-prose.json)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BASE = os.path.join(ROOT, "tests", "fixtures", "bpe-bytelevel", "tokenizer.json")
OUT = os.path.join(HERE, "bpe-prose.json")
NOUNS = ["river", "farmer", "village", "child", "teacher", "bird", "storm", "road", "garden", "merchant",
         "lamp", "boat", "hill", "letter", "sailor", "window"]
PLURALS = ["rivers", "farmers", "villages", "children", "teachers", "birds", "storms", "roads", "gardens",
           "merchants", "lamps", "boats", "hills", "letters", "sailors", "windows"]
ADJECTIVES = ["old", "quiet", "bright", "small", "green", "heavy", "careful", "distant", "ancient", "curious",
              "gentle", "tired"]
WORDS = [" " + w for w in NOUNS + PLURALS + ADJECTIVES]


def byte_alphabet():
    """GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others for 256+."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def bpe(word, ranks):
    """The pieces BPE leaves of one pre-token: the lowest-ranked adjacent pair merges first."""
    pieces = list(word)
    while len(pieces) > 1:
        pairs = [(ranks.get((a, b)), i) for i, (a, b) in enumerate(zip(pieces, pieces[1:]))]
        pairs = [(r, i) for r, i in pairs if r is not None]
        if not pairs:
            break
        _, i = min(pairs)
        pieces[i:i + 2] = [pieces[i] + pieces[i + 1]]
    return pieces


def main():
    tokenizer = json.load(open(BASE, encoding="utf-8"))
    model = tokenizer["model"]
    vocab, merges = model["vocab"], model["merges"]
    ranks = {tuple(m): r for r, m in enumerate(merges)}
    alphabet = byte_alphabet()
    next_id = 1 + max(list(vocab.values()) + [t["id"] for t in tokenizer["added_tokens"]])
    first_new = next_id
    for word in WORDS:
        pieces = bpe("".join(alphabet[b] for b in word.encode("utf-8")), ranks)
        joined = pieces[0]
        for piece in pieces[1:]:
            merged = joined + piece
            if (joined, piece) not in ranks:
                ranks[(joined, piece)] = len(merges)
                merges.append([joined, piece])
            if merged not in vocab:
                vocab[merged] = next_id
                next_id += 1
            joined = merged
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{OUT}: {first_new} -> {next_id} tokens ({next_id - first_new} new, {len(WORDS)} words)")
    check_with_reference(tokenizer)


def check_with_reference(tokenizer):
    npm = os.environ.get("MIXTAPE_NPM_DIR") or os.path.expanduser("~/.cache/mixtape/npm")
    if not shutil.which("node") or not os.path.isdir(os.path.join(npm, "node_modules", "@huggingface/tokenizers")):
        print("not checked: no node or no @huggingface/tokenizers (scripts/setup npm)")
        return
    alphabet = byte_alphabet()
    want = [[tokenizer["model"]["vocab"]["".join(alphabet[b] for b in w.encode("utf-8"))]] for w in WORDS]
    with tempfile.TemporaryDirectory() as work:
        texts, config = os.path.join(work, "texts.json"), os.path.join(work, "tokenizer_config.json")
        json.dump(WORDS, open(texts, "w"))
        json.dump({"eos_token": "<|endoftext|>"}, open(config, "w"))
        out = subprocess.run(["node", os.path.join(ROOT, "tests", "data", "tokenizer_reference.mjs"), npm, OUT,
                              config, texts], check=True, capture_output=True, text=True).stdout
    got = json.loads(out)["ids"]
    if got != want:
        sys.exit(f"@huggingface/tokenizers encodes the words as {got}, not {want}")
    print(f"checked with @huggingface/tokenizers: each of the {len(WORDS)} words is one new token")


if __name__ == "__main__":
    main()
