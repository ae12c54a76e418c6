//===- tokenizer_bench.cpp - tokenizer throughput, one core and all ------===//
//
// Encodes ~4 MB of mixed text: the synthetic corpus's English-like prose and Python-like
// code, plus multilingual lines (accented Latin, Cyrillic, CJK, emoji) and random letter
// strings that defeat the pre-token cache. Prints one JSON line per thread count: the MB/s
// of the median of --passes passes over the text (after one warm-up pass), the documents
// dealt out among the threads, and the MB/s per thread.
// bench/tokenizer_bench.sh runs it beside Hugging Face's JavaScript `tokenizers` on the
// same text (--dump writes it) and makes the table of docs/performance.md.
//
//   tokenizer_bench [--tokenizer PATH] [--threads 1,2,4] [--passes N] [--dump TEXT_FILE]
//                   [--tokenizer-per-thread]
//   (default: tests/fixtures/bpe-bytelevel, threads 1 and every core, 5 passes)
//
//===----------------------------------------------------------------------===//
#include "mixtape/data/Random.h"
#include "mixtape/data/Synth.h"
#include "mixtape/data/Tokenizer.h"
#include "mixtape/support/Options.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Threading.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace mixtape;
using namespace mixtape::data;
using Clock = std::chrono::steady_clock;

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

/// Seconds for `threads` threads to encode every document once, thread t taking the
/// documents t, t + threads, ... with tokenizers[t % tokenizers.size()]; `tokens` counts
/// the ids.
static double encodeAll(llvm::ArrayRef<std::unique_ptr<Tokenizer>> tokenizers, const std::vector<std::string> &docs,
                        unsigned threads, uint64_t &tokens) {
  std::atomic<uint64_t> count{0};
  Clock::time_point start = Clock::now();
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      uint64_t mine = 0;
      for (size_t i = t; i < docs.size(); i += threads)
        mine += tokenizers[t % tokenizers.size()]->encode(docs[i]).size();
      count += mine;
    });
  for (std::thread &w : workers)
    w.join();
  tokens = count;
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int main(int argc, char **argv) {
  std::string path = MIXTAPE_SOURCE_DIR "/tests/fixtures/bpe-bytelevel/tokenizer.json", dump;
  std::string threadList;
  uint64_t passes = 5;
  bool perThread = false;
  OptionParser options("tokenizer_bench", "", "Tokenizer throughput on one thread and many (JSON lines).");
  options.value("--tokenizer", "PATH", path, "a tokenizer.json or folder (default: the BPE fixture)")
      .value("--threads", "LIST", threadList, "comma-separated thread counts (default: 1 and every core)")
      .integer("--passes", "N", passes, 1, 1000, "timed passes per thread count; the median counts (default 5)")
      .value("--dump", "FILE", dump, "also write the text, documents separated by 0x1e, for the reference")
      .flag("--tokenizer-per-thread", perThread,
            "a tokenizer per thread (a cache each), not one shared as data prepare shares it");
  std::vector<llvm::StringRef> args(argv + 1, argv + argc);
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  std::vector<unsigned> counts;
  llvm::SmallVector<llvm::StringRef, 8> items;
  llvm::SplitString(threadList, items, ",");
  for (llvm::StringRef item : items) {
    unsigned n = 0;
    if (item.getAsInteger(10, n) || n == 0)
      return options.usageError("--threads needs positive counts, not '" + item + "'");
    counts.push_back(n);
  }
  if (counts.empty())
    counts = {1, llvm::hardware_concurrency().compute_thread_count()};

  std::vector<std::unique_ptr<Tokenizer>> tokenizers;
  for (unsigned i = 0, n = perThread ? *std::max_element(counts.begin(), counts.end()) : 1; i < n; ++i) {
    llvm::Expected<std::unique_ptr<Tokenizer>> tokenizer = createTokenizer(path);
    if (!tokenizer) {
      llvm::errs() << "tokenizer_bench: " << llvm::toString(tokenizer.takeError()) << "\n";
      return 1;
    }
    tokenizers.push_back(std::move(*tokenizer));
  }
  const Tokenizer &tokenizer = *tokenizers.front();
  std::vector<std::string> docs = makeDocuments(4'000'000);
  uint64_t bytes = 0;
  for (const std::string &doc : docs)
    bytes += doc.size();
  for (const std::string &doc : docs)
    if (tokenizer.decode(tokenizer.encode(doc)) != doc) {
      llvm::errs() << "tokenizer_bench: a document does not round-trip\n";
      return 1;
    }
  if (!dump.empty()) {
    std::error_code ec;
    llvm::raw_fd_ostream out(dump, ec);
    for (const std::string &doc : docs)
      out << doc << '\x1e'; // documents never hold a record separator
    if (ec || (out.close(), out.has_error())) {
      llvm::errs() << "tokenizer_bench: cannot write " << dump << "\n";
      return 1;
    }
  }

  for (unsigned threads : counts) {
    uint64_t tokens = 0;
    encodeAll(tokenizers, docs, threads, tokens); // warm-up: caches, pages
    std::vector<double> seconds;
    for (uint64_t p = 0; p < passes; ++p)
      seconds.push_back(encodeAll(tokenizers, docs, threads, tokens));
    llvm::sort(seconds);
    const double mbPerS = bytes / 1e6 / seconds[seconds.size() / 2];
    llvm::outs() << llvm::formatv("{{\"impl\": \"{7}\", \"threads\": {0}, \"mb_per_s\": {1:f2}, "
                                  "\"mb_per_s_per_thread\": {2:f2}, \"bytes\": {3}, \"documents\": {4}, "
                                  "\"tokens\": {5}, \"tokenizer\": \"{6}\"}\n",
                                  threads, mbPerS, mbPerS / threads, bytes, docs.size(), tokens,
                                  tokenizer.id(), perThread ? "mixtape-per-thread" : "mixtape");
    llvm::outs().flush();
  }
  return 0;
}
