//===- tokenizer_bench.cpp - byte-level BPE encoding throughput ----------===//
//
// Encodes ~4 MB of mixed text on one thread: the synthetic corpus's English-like prose
// and Python-like code, plus multilingual lines (accented Latin, Cyrillic, CJK, emoji) and
// random letter strings that defeat the pre-token cache. Reports MB/s for a fresh
// tokenizer (cold cache) and the best of three warm passes. Goal (issue 8): >= 20 MB/s.
// Runs Hugging Face `tokenizers` on the same text when Python can import it.
//
//   tokenizer_bench [tokenizer.json or folder]   (default: tests/fixtures/bpe-bytelevel)
//
//===----------------------------------------------------------------------===//
#include "mixtape/data/BpeTokenizer.h"
#include "mixtape/data/Random.h"
#include "mixtape/data/Synth.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

using namespace mixtape::data;
using Clock = std::chrono::steady_clock;

static double seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

static std::vector<std::string> makeDocuments(uint64_t targetBytes) {
  const char *multilingual[] = {
      "Le café est très chaud, n'est-ce pas? Ça dépend de l'heure.",
      "Съешь же ещё этих мягких французских булок, да выпей чаю.",
      "日本語のテキストと中文的文本，还有한국어 문장도 있습니다。",
      "Emoji 😀🚀🎉 and symbols ∑ ∫ √ ≈ ≠ → ← € £ ¥ © ® ™",
      "Größe, Übermaß und Ökonomie: naïve coöperation façade.",
  };
  std::vector<std::string> docs;
  SplitMix64 rng(8);
  uint64_t bytes = 0;
  for (uint64_t i = 0; bytes < targetBytes; ++i) {
    std::string doc = synthDocument(i % 3 ? "prose" : "code", 1, i).Text;
    if (i % 4 == 0)
      doc += std::string("\n") + multilingual[rng.below(std::size(multilingual))] + "\n";
    if (i % 5 == 0) {
      doc += "\n";
      for (int w = 0; w < 20; ++w) {
        for (uint64_t n = rng.between(3, 12); n > 0; --n)
          doc.push_back(static_cast<char>('a' + rng.below(26)));
        doc += w % 7 ? " " : ".\n\n    ";
      }
    }
    bytes += doc.size();
    docs.push_back(std::move(doc));
  }
  return docs;
}

int main(int argc, char **argv) {
  std::string path = argc > 1 ? argv[1] : MIXTAPE_SOURCE_DIR "/tests/fixtures/bpe-bytelevel/tokenizer.json";
  std::vector<std::string> docs = makeDocuments(4'000'000);
  uint64_t bytes = 0;
  for (const std::string &doc : docs)
    bytes += doc.size();

  auto open = [&]() {
    llvm::Expected<std::unique_ptr<BpeTokenizer>> tokenizer = BpeTokenizer::open(path);
    if (!tokenizer) {
      llvm::errs() << "tokenizer_bench: " << llvm::toString(tokenizer.takeError()) << "\n";
      std::exit(1);
    }
    return std::move(*tokenizer);
  };
  auto pass = [&](const BpeTokenizer &tokenizer, uint64_t &tokens) {
    tokens = 0;
    Clock::time_point start = Clock::now();
    for (const std::string &doc : docs)
      tokens += tokenizer.encode(doc).size();
    return seconds(start);
  };

  std::unique_ptr<BpeTokenizer> tokenizer = open();
  llvm::outs() << llvm::format("%s: vocabulary %u; %zu documents, %.2f MB of text\n", path.c_str(),
                               tokenizer->vocabSize(), docs.size(), bytes / 1e6);
  uint64_t tokens = 0;
  double cold = pass(*tokenizer, tokens), warm = 1e30;
  for (int round = 0; round < 3; ++round)
    warm = std::min(warm, pass(*tokenizer, tokens));
  llvm::outs() << llvm::format("mixtape  : %.1f MB/s cold cache, %.1f MB/s warm (%.2f bytes/token), one thread\n",
                               bytes / 1e6 / cold, bytes / 1e6 / warm, double(bytes) / tokens);
  for (const std::string &doc : docs)
    if (tokenizer->decode(tokenizer->encode(doc)) != doc) {
      llvm::errs() << "tokenizer_bench: a document does not round-trip\n";
      return 1;
    }

  // The reference, when installed: the same documents through `tokenizers`, one thread.
  llvm::ErrorOr<std::string> python = llvm::sys::findProgramByName("python3");
  if (!python || llvm::sys::ExecuteAndWait(*python, {*python, "-c", "import tokenizers"}, llvm::None,
                                           {llvm::StringRef(), llvm::StringRef(), llvm::StringRef()}) != 0) {
    llvm::outs() << "tokenizers: reference unavailable (Python cannot import `tokenizers`)\n";
    return 0;
  }
  llvm::SmallString<128> textFile;
  llvm::sys::fs::createTemporaryFile("tokenizer-bench", "txt", textFile);
  {
    std::error_code ec;
    llvm::raw_fd_ostream out(textFile, ec);
    for (const std::string &doc : docs)
      out << doc << '\x1e'; // documents never hold a record separator
  }
  std::string script =
      "import os, sys, time\n"
      "os.environ['RAYON_NUM_THREADS'] = '1'\n"
      "from tokenizers import Tokenizer\n"
      "t = Tokenizer.from_file(sys.argv[1])\n"
      "docs = open(sys.argv[2], encoding='utf-8').read().split('\\x1e')[:-1]\n"
      "size = sum(len(d.encode()) for d in docs)\n"
      "best = 1e30\n"
      "for _ in range(3):\n"
      "    start = time.perf_counter()\n"
      "    for d in docs: t.encode(d, add_special_tokens=False)\n"
      "    best = min(best, time.perf_counter() - start)\n"
      "print('tokenizers: %.1f MB/s (encode per document, one thread)' % (size / 1e6 / best))\n";
  std::string json = llvm::sys::fs::is_directory(path) ? path + "/tokenizer.json" : path;
  llvm::outs().flush();
  llvm::sys::ExecuteAndWait(*python, {*python, "-c", script, json, textFile}, llvm::None);
  llvm::sys::fs::remove(textFile);
  return 0;
}
