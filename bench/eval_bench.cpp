//===- eval_bench.cpp - choice-task scoring items/s of the quickstart model -===//
//
// Issue 16's speed benchmark: the embedded task facts-choice (data::synthTask, seed 7),
// zero-shot, each choice tokenized by the byte tokenizer as the executor does
// (data::encodePair, data::scoringInput, a window of --seq tokens), scored by
// exec::continuationLogLikelihoods — the function `mixtape exec` scores choice tasks with —
// on the quickstart model (llama, 2 layers, d_model 64, 4 heads, 2 KV heads, ffn 192, vocab
// 264) with seeded random weights (Model::create, seed 7, as train_bench). One warmup pass,
// then `--reps` timed passes over all requests; prints one JSON line: items/s of the median
// pass, the slowest and fastest, the requests and tokens a pass scores, and the LibTorch,
// BLAS and CPU capability (train::numericsFingerprint); pass_ms, and unpacked_forward_ms:
// the requests one per row, longest first, through Model::forward alone — the work the
// reference does — which tells what the packing of an item's choices into one row gains.
//
// `--dump DIR` also writes what bench/eval_bench_ref.py (PyTorch) needs to score the same
// items with the same model: DIR/model.safetensors (Model::saveWeights), DIR/requests.json
// (the model's shape, the batch size, the requests in order with their item) and
// DIR/mixtape_logliks.json (Mixtape's log-likelihood per request, which the reference
// checks its own against). bench/eval_bench.sh runs both; goal (issue 16): >= 1.5x.
//
//   eval_bench [--batch N=32] [--threads N] [--reps N=7] [--warmup N=1] [--seq N=128]
//              [--items N (0: all)] [--dump DIR]
//
//===----------------------------------------------------------------------===//
#include "mixtape/data/Synth.h"
#include "mixtape/data/Tasks.h"
#include "mixtape/data/Tokenizer.h"
#include "mixtape/dist/Collectives.h"
#include "mixtape/dist/World.h"
#include "mixtape/exec/Scoring.h"
#include "mixtape/model/Model.h"
#include "mixtape/train/HostMemory.h"
#include "mixtape/train/Numerics.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

using namespace mixtape;
using Clock = std::chrono::steady_clock;

static double median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

[[noreturn]] static void usage(llvm::StringRef why) {
  llvm::errs() << "eval_bench: " << why << "\nusage: eval_bench [--batch N] [--threads N] [--reps N] "
               << "[--warmup N] [--seq N] [--items N] [--dump DIR]\n";
  std::exit(2);
}

[[noreturn]] static void fail(llvm::Error e) {
  llvm::errs() << "eval_bench: " << llvm::toString(std::move(e)) << "\n";
  std::exit(1);
}

static void writeJSON(const std::string &path, llvm::function_ref<void(llvm::json::OStream &)> body) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec)
    fail(llvm::createStringError(ec, "cannot write " + path));
  llvm::json::OStream j(os);
  body(j);
  os << "\n";
}

int main(int argc, char **argv) {
  int64_t batch = 32, threads = 0, reps = 7, warmup = 1, seq = 128, maxItems = 0;
  std::string dumpDir;
  for (int i = 1; i < argc; ++i) {
    llvm::StringRef arg = argv[i];
    if (i + 1 == argc)
      usage("missing value after '" + arg.str() + "'");
    llvm::StringRef value = argv[++i];
    if (arg == "--dump") {
      dumpDir = value.str();
      continue;
    }
    int64_t *target = arg == "--batch"     ? &batch
                      : arg == "--threads" ? &threads
                      : arg == "--reps"    ? &reps
                      : arg == "--warmup"  ? &warmup
                      : arg == "--seq"     ? &seq
                      : arg == "--items"   ? &maxItems
                                           : nullptr;
    if (!target || value.getAsInteger(10, *target) || *target < 0)
      usage("bad argument '" + arg.str() + "'");
  }
  if (batch == 0 || reps == 0 || seq < 2)
    usage("batch and reps must be positive, seq at least 2");
  // Threads as the runtime sets them (`mixtape exec`), unless given.
  if (threads > 0)
    at::set_num_threads(int(threads));
  else
    train::configureThreads();
  train::retainFreedHostMemory(); // as the runtime's executor does

  // The task's items, zero-shot, as the executor prepares them (exec/lib/Tasks.cpp).
  llvm::Expected<std::string> text = data::synthTask("facts-choice", 7);
  if (!text)
    fail(text.takeError());
  llvm::Expected<std::vector<data::TaskItem>> parsed = data::parseTaskItems(*text, "facts-choice", plan::TaskKind::Choice);
  if (!parsed)
    fail(parsed.takeError());
  data::TaskFiles files;
  files.Items = std::move(*parsed);
  if (maxItems > 0 && files.Items.size() > size_t(maxItems))
    files.Items.resize(size_t(maxItems));
  files.All = files.Items;
  plan::Task task;
  task.Kind = plan::TaskKind::Choice;
  task.Shots = 0;
  task.TargetDelimiter = " ";
  task.FewshotDelimiter = "\n\n";
  data::ByteTokenizer tokenizer;
  std::vector<exec::ScoringRequest> requests;
  std::vector<size_t> itemOf;
  int64_t tokens = 0, continuationTokens = 0;
  for (size_t i = 0; i < files.Items.size(); ++i) {
    const std::string context = data::taskContext(task, files, i);
    for (const std::string &choice : files.Items[i].Choices) {
      data::ScoredPair pair = data::encodePair(tokenizer, context, task.TargetDelimiter + choice);
      exec::ScoringRequest r{data::scoringInput(pair, size_t(seq)), pair.Continuation};
      if (r.Continuation.size() > r.Input.size())
        r.Continuation.erase(r.Continuation.begin(), r.Continuation.end() - ptrdiff_t(r.Input.size()));
      tokens += int64_t(r.Input.size());
      continuationTokens += int64_t(r.Continuation.size());
      requests.push_back(std::move(r));
      itemOf.push_back(i);
    }
  }
  const int64_t items = int64_t(files.Items.size());
  if (items == 0)
    usage("no items");

  // recipes/quickstart.toml's model, as train_bench builds it.
  model::ModelConfig config = model::ModelConfig::defaults(model::Family::Llama, /*vocab=*/264, /*layers=*/2, /*d=*/64,
                                                           /*heads=*/4, /*positions=*/seq);
  config.NumKVHeads = 2;
  llvm::Expected<std::unique_ptr<model::Model>> created = model::Model::create(config, /*seed=*/7);
  if (!created)
    fail(created.takeError());
  const model::Model &m = **created;
  llvm::Expected<std::unique_ptr<dist::Collectives>> world =
      dist::connect(dist::World{}, dist::Device::CPU, std::chrono::seconds(10)); // a world of one
  if (!world)
    fail(world.takeError());

  std::vector<double> scores;
  auto pass = [&] { scores = exec::continuationLogLikelihoods(m, requests, **world, uint64_t(batch)); };
  for (int64_t i = 0; i < warmup; ++i)
    pass();
  std::vector<double> itemsPerSecond;
  for (int64_t i = 0; i < reps; ++i) {
    Clock::time_point start = Clock::now();
    pass();
    itemsPerSecond.push_back(double(items) / std::chrono::duration<double>(Clock::now() - start).count());
  }
  // The reference's work: each request its own row of a batch, every position through the
  // head (unpacked_forward_ms).
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return requests[a].Input.size() > requests[b].Input.size(); });
  std::vector<at::Tensor> batches;
  for (size_t first = 0; first < order.size(); first += size_t(batch)) {
    const size_t count = std::min<size_t>(size_t(batch), order.size() - first);
    const size_t width = requests[order[first]].Input.size();
    at::Tensor t = at::zeros({int64_t(count), int64_t(width)}, at::kLong);
    for (size_t r = 0; r < count; ++r)
      std::copy(requests[order[first + r]].Input.begin(), requests[order[first + r]].Input.end(),
                t.data_ptr<int64_t>() + r * width);
    batches.push_back(t);
  }
  std::vector<double> forwardSeconds;
  {
    at::NoGradGuard noGrad;
    for (int64_t i = 0; i < reps; ++i) {
      Clock::time_point start = Clock::now();
      for (const at::Tensor &t : batches)
        (void)m.forward(t);
      forwardSeconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    }
  }

  // Accuracy of the (untrained) model: a check that scores are read the way tasks read them.
  int64_t correct = 0;
  for (size_t i = 0, r = 0; i < files.Items.size(); r += files.Items[i].Choices.size(), ++i) {
    size_t best = r;
    for (size_t c = r; c < r + files.Items[i].Choices.size(); ++c)
      best = scores[c] > scores[best] ? c : best;
    correct += best - r == files.Items[i].Gold;
  }

  if (!dumpDir.empty()) {
    if (std::error_code ec = llvm::sys::fs::create_directories(dumpDir))
      fail(llvm::createStringError(ec, "cannot create " + dumpDir));
    if (llvm::Error e = m.saveWeights(dumpDir + "/model.safetensors"))
      fail(std::move(e));
    writeJSON(dumpDir + "/requests.json", [&](llvm::json::OStream &j) {
      j.object([&] {
        j.attributeObject("model", [&] {
          j.attribute("family", "llama");
          j.attribute("vocab", config.VocabSize);
          j.attribute("layers", config.NumLayers);
          j.attribute("d_model", config.DModel);
          j.attribute("heads", config.NumHeads);
          j.attribute("kv_heads", config.NumKVHeads);
          j.attribute("ffn", config.FfnHidden);
          j.attribute("seq", config.MaxPositions);
          j.attribute("rope_theta", config.RopeTheta);
          j.attribute("norm_eps", config.NormEps);
        });
        j.attribute("task", "facts-choice");
        j.attribute("batch", batch);
        j.attribute("items", items);
        j.attributeArray("requests", [&] {
          for (size_t r = 0; r < requests.size(); ++r)
            j.object([&] {
              j.attribute("item", int64_t(itemOf[r]));
              j.attributeArray("input", [&] {
                for (uint32_t t : requests[r].Input)
                  j.value(int64_t(t));
              });
              j.attributeArray("continuation", [&] {
                for (uint32_t t : requests[r].Continuation)
                  j.value(int64_t(t));
              });
            });
        });
      });
    });
    writeJSON(dumpDir + "/mixtape_logliks.json", [&](llvm::json::OStream &j) {
      j.array([&] {
        for (double s : scores)
          j.value(s);
      });
    });
  }

  llvm::outs() << "{\"impl\": \"mixtape\", \"task\": \"facts-choice\", \"threads\": " << at::get_num_threads()
               << ", \"batch\": " << batch << ", \"seq\": " << seq << ", \"reps\": " << reps
               << ", \"items\": " << items << ", \"requests\": " << requests.size() << ", \"tokens\": " << tokens
               << ", \"continuation_tokens\": " << continuationTokens
               << ", \"items_per_s\": " << llvm::format("%.1f", median(itemsPerSecond))
               << ", \"items_per_s_min\": "
               << llvm::format("%.1f", *std::min_element(itemsPerSecond.begin(), itemsPerSecond.end()))
               << ", \"items_per_s_max\": "
               << llvm::format("%.1f", *std::max_element(itemsPerSecond.begin(), itemsPerSecond.end()))
               << ", \"pass_ms\": " << llvm::format("%.3f", double(items) / median(itemsPerSecond) * 1e3)
               << ", \"unpacked_forward_ms\": " << llvm::format("%.3f", median(forwardSeconds) * 1e3)
               << ", \"acc\": " << llvm::format("%.4f", double(correct) / double(items))
               << ", \"numerics\": " << llvm::json::Value(train::numericsFingerprint()) << "}\n";
  return 0;
}
