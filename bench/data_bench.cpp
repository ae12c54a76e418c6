//===- data_bench.cpp - how fast a train node reads a 4-stream mixture ----===//
//
// Writes four Megatron datasets of random byte-tokenizer documents (~50 MB of uint16
// tokens in all) into a temporary folder, reads them once so they are page-cached, then
// reads N samples (seq_len 1024) of a 0.4/0.3/0.2/0.1 mixture on one thread and compares
// with memcpy of the same bytes (the runs of stored uint16 tokens each sample reads, in the
// same order) in the same process. Goal (issue 4): at least 30% of memcpy's tokens/s on one core.
// First, what verifying the datasets before a node reads them costs (issue 15): hashing every
// file against its manifest and scanning the token ids with an empty verification cache
// ("cold"; the files are page-cached, just written), the id scan alone, and the same with the
// cache holding every file ("cached": a stat per file).
//
//   data_bench [samples=20000]
//
//===----------------------------------------------------------------------===//
#include "mixtape/plan/Mixture.h"
#include "mixtape/data/Dataset.h"
#include "mixtape/data/Random.h"
#include "mixtape/data/Sampler.h"
#include "mixtape/data/Tokenizer.h"
#include "mixtape/data/Verify.h"
#include "mixtape/support/Checksum.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace mixtape::data;
using Clock = std::chrono::steady_clock;

static double seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

static void die(llvm::Error err) {
  llvm::errs() << "data_bench: " << llvm::toString(std::move(err)) << "\n";
  std::exit(1);
}

/// ~12.5 MB of uint16 tokens per dataset, documents of 50-3000 tokens.
static std::string writeDataset(const std::string &dir, const std::string &name, uint64_t seed) {
  std::string prefix = dir + "/" + name;
  ByteTokenizer bytes;
  auto writer = DatasetWriter::create(prefix, ShardFormat::Megatron, bytes);
  if (!writer)
    die(writer.takeError());
  SplitMix64 rng(seed);
  std::vector<uint32_t> doc;
  uint64_t tokens = 0;
  while (tokens < 6'250'000) {
    doc.resize(rng.between(50, 3000));
    for (uint32_t &t : doc)
      t = static_cast<uint32_t>(rng.below(256));
    if (llvm::Error err = (*writer)->addDocument(doc))
      die(std::move(err));
    if (llvm::Error err = (*writer)->setNumber("quality", double(rng.between(1, 5))))
      die(std::move(err));
    tokens += doc.size();
  }
  if (auto manifest = (*writer)->finish(); !manifest)
    die(manifest.takeError());
  return prefix;
}

int main(int argc, char **argv) {
  uint64_t n = argc > 1 ? std::stoull(argv[1]) : 20000;
  const uint64_t L = 1024;
  llvm::SmallString<128> dir;
  if (std::error_code ec = llvm::sys::fs::createUniqueDirectory("mixtape-data-bench", dir)) {
    llvm::errs() << "data_bench: cannot create a temporary folder: " << ec.message() << "\n";
    return 1;
  }
  std::string folder(dir);

  Clock::time_point start = Clock::now();
  TrainNodeData node;
  node.SeqLen = L;
  node.Mixture.Streams = {"a", "b", "c", "d"};
  node.Mixture.Positions = {0};
  node.Mixture.Weights = {{0.4, 0.3, 0.2, 0.1}};
  node.Begin = 0;
  node.End = n;
  for (unsigned s = 0; s < 4; ++s) {
    NodeStream stream;
    stream.Name = node.Mixture.Streams[s];
    stream.Root = {stream.Name, {writeDataset(folder, stream.Name, s + 1)}, 0.01};
    node.Streams.push_back(stream);
  }
  uint64_t total = 0;
  for (const NodeStream &stream : node.Streams) {
    uint64_t bytes = 0;
    llvm::sys::fs::file_size(stream.Root.Shards[0] + ".bin", bytes);
    total += bytes;
  }
  llvm::outs() << llvm::format("wrote 4 datasets (%.1f MB of tokens) in %.2f s\n", total / 1e6, seconds(start));

  {
    std::vector<std::unique_ptr<Dataset>> datasets;
    uint64_t listed = 0;
    for (const NodeStream &stream : node.Streams) {
      auto dataset = Dataset::open(stream.Root.Shards[0]);
      if (!dataset)
        die(dataset.takeError());
      for (const mixtape::FileDigest &file : (*dataset)->manifest()->Files)
        listed += file.Bytes;
      datasets.push_back(std::move(*dataset));
    }
    VerifyOptions options{VerifyMode::Cached, folder + "/verify/verified-files.json", 264};
    auto verifyAll = [&](VerifyMode mode) {
      options.Mode = mode;
      DataVerifier verifier(options);
      Clock::time_point begin = Clock::now();
      if (llvm::Error err = verifier.verify(datasets))
        die(std::move(err));
      return seconds(begin);
    };
    double cold = verifyAll(VerifyMode::Cached), full = verifyAll(VerifyMode::Full);
    double cached = verifyAll(VerifyMode::Cached);
    start = Clock::now();
    uint64_t maxId = 0;
    for (const auto &dataset : datasets)
      maxId = std::max(maxId, maxTokenId(dataset->tokens()));
    double scan = seconds(start);
    start = Clock::now();
    for (const auto &dataset : datasets)
      for (const mixtape::FileDigest &file : dataset->manifest()->Files)
        if (auto digest = mixtape::digestFile(dataset->filePath(file)); !digest)
          die(digest.takeError());
    double hash = seconds(start);
    llvm::outs() << llvm::format("verify %.1f MB (4 datasets): cold %.3f s (%.0f MB/s), full again %.3f s "
                                 "(%.0f MB/s); the id scan alone %.3f s (%.0f MB/s of tokens, max id %llu)\n",
                                 listed / 1e6, cold, listed / 1e6 / cold, full, listed / 1e6 / full, scan,
                                 total / 1e6 / scan, (unsigned long long)maxId)
                 << llvm::format("XXH3-64 alone %.3f s (%.0f MB/s); the rest of cold is the durable write "
                                 "of the verification cache (fsync)\n",
                                 hash, listed / 1e6 / hash)
                 << llvm::format("verify cached: %.5f s, %.0fx faster than cold\n", cached, cold / cached);
  }

  DataSources sources(1, folder + "/cache");
  start = Clock::now();
  auto samples = TrainSamples::open(node, sources);
  if (!samples)
    die(samples.takeError());
  llvm::outs() << llvm::format("opened a node of %llu samples in %.3f s (roots, epoch orders, blending)\n",
                               (unsigned long long)n, seconds(start));

  // memcpy of the same bytes: each sample's runs of stored tokens, the very ranges the
  // sampler reads (so the same access pattern), copied into one buffer.
  struct Run {
    const uint8_t *From;
    uint64_t Bytes;
  };
  std::vector<Run> runs;
  std::vector<size_t> runsOf{0};
  for (uint64_t i = 0; i < n; ++i) {
    Sample s;
    (*samples)->read(i, s); // also pages everything in
    (*samples)->reader(s.Stream).forEachRun(s.Cursor, L + 1, [&](const TokenSpan &doc, uint64_t from, uint64_t count) {
      runs.push_back({doc.bytes().data() + from * dtypeSize(doc.dtype()), count * dtypeSize(doc.dtype())});
    });
    runsOf.push_back(runs.size());
  }

  uint64_t checksum = 0;
  double best = 1e30, bestCopy = 1e30;
  Sample sample;
  std::vector<uint8_t> copy((L + 1) * 2);
  for (int round = 0; round < 5; ++round) {
    start = Clock::now();
    for (uint64_t i = 0; i < n; ++i) {
      (*samples)->read(i, sample);
      checksum += sample.Tokens[i % (L + 1)] + sample.DocumentStarts.size();
    }
    best = std::min(best, seconds(start));
    start = Clock::now();
    for (uint64_t i = 0; i < n; ++i) {
      uint8_t *to = copy.data();
      for (size_t r = runsOf[i]; r < runsOf[i + 1]; ++r) {
        std::memcpy(to, runs[r].From, runs[r].Bytes);
        to += runs[r].Bytes;
      }
      checksum += copy[i % copy.size()];
    }
    bestCopy = std::min(bestCopy, seconds(start));
  }
  double tokens = double(n) * double(L + 1);
  double rate = tokens / best, copyRate = tokens / bestCopy;
  llvm::outs() << llvm::format("samples: %.1f M tokens/s (%.0f samples/s, uint32 out)\n", rate / 1e6, n / best)
               << llvm::format("memcpy:  %.1f M tokens/s (%.2f GB/s of uint16 tokens)\n", copyRate / 1e6,
                               copyRate * 2 / 1e9)
               << llvm::format("ratio:   %.0f%% of memcpy (goal >= 30%%)   [checksum %llu]\n", 100 * rate / copyRate,
                               (unsigned long long)checksum);
  llvm::sys::fs::remove_directories(folder);
  return 0;
}
