//===- train_bench.cpp - training tokens/s of the quickstart model on CPU -===//
//
// The quickstart's model (llama, 2 layers, d_model 64, 4 heads, 2 KV heads, ffn 192,
// vocab 264) and optimizer (AdamW 0.9/0.95, eps 1e-8, weight decay 0.1 on matrices, clip 1)
// trained with the runtime's Trainer::step on seeded random tokens of the recipe's shapes
// (32 sequences of 128, one micro-batch with a loss mask, as the executor builds it).
// After warmup steps, times `steps` steps one by one and prints one JSON line: tokens/s of
// the median step (and of the mean), the median step in ms and, from a second instrumented
// pass, where a step's time goes (forward with the loss, backward, clip + AdamW; medians).
// bench/train_bench.sh runs it beside PyTorch eager (bench/train_bench_ref.py); goal
// (issue 5): at least 1.1x PyTorch's tokens/s.
//
//   train_bench [--steps N=40] [--warmup N=5] [--threads N] [--batch N=32] [--seq N=128]
//
//===----------------------------------------------------------------------===//
#include "mixtape/model/Model.h"
#include "mixtape/train/AdamW.h"
#include "mixtape/train/Numerics.h"
#include "mixtape/train/Trainer.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <numeric>
#include <vector>

using namespace mixtape;
using Clock = std::chrono::steady_clock;

static double seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

static double median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

[[noreturn]] static void usage(llvm::StringRef why) {
  llvm::errs() << "train_bench: " << why << "\nusage: train_bench [--steps N] [--warmup N] "
               << "[--threads N] [--batch N] [--seq N]\n";
  std::exit(2);
}

int main(int argc, char **argv) {
  int64_t steps = 40, warmup = 5, threads = 0, batch = 32, seq = 128;
  for (int i = 1; i < argc; ++i) {
    llvm::StringRef arg = argv[i];
    int64_t *target = arg == "--steps"     ? &steps
                      : arg == "--warmup"  ? &warmup
                      : arg == "--threads" ? &threads
                      : arg == "--batch"   ? &batch
                      : arg == "--seq"     ? &seq
                                           : nullptr;
    if (!target || i + 1 == argc || llvm::StringRef(argv[++i]).getAsInteger(10, *target) ||
        *target < 0)
      usage("bad argument '" + arg.str() + "'");
  }
  if (steps == 0 || batch == 0 || seq == 0)
    usage("steps, batch and seq must be positive");
  // Threads as the runtime sets them, unless given.
  if (threads > 0)
    at::set_num_threads(int(threads));
  else
    train::configureThreads();

  // recipes/quickstart.toml's model, as the plan gives it (vocab: the byte tokenizer's 264).
  model::ModelConfig config = model::ModelConfig::defaults(model::Family::Llama, /*vocab=*/264,
                                                           /*layers=*/2, /*d=*/64, /*heads=*/4,
                                                           /*positions=*/seq);
  config.numKVHeads = 2;
  auto created = model::Model::create(config, /*seed=*/7);
  if (!created) {
    llvm::errs() << "train_bench: " << llvm::toString(created.takeError()) << "\n";
    return 1;
  }
  model::Model &m = **created;
  train::AdamWOptions options; // the plan's defaults: 0.9, 0.95, 1e-8, decay 0.1
  train::AdamW optimizer(m.parameters(), options);
  schedule::Phase constant;
  constant.from = constant.to = 1e-3;
  train::Trainer trainer(m, optimizer, schedule::Schedule({constant}), train::TrainOptions{});

  // A few distinct seeded batches, built before timing; the executor gives every
  // micro-batch a float loss mask (all ones for unpadded samples).
  std::vector<train::MicroBatch> batches;
  at::Generator gen = at::detail::createCPUGenerator(1234);
  for (int i = 0; i < 8; ++i) {
    at::Tensor ids = at::randint(config.vocabSize, {batch, seq + 1}, gen, at::kLong);
    train::MicroBatch mb;
    mb.inputs = ids.narrow(1, 0, seq).contiguous();
    mb.targets = ids.narrow(1, 1, seq).contiguous();
    mb.lossMask = at::ones({batch, seq}, at::kFloat);
    batches.push_back(mb);
  }
  auto stepOn = [&](int64_t i) {
    llvm::Expected<train::StepResult> r =
        trainer.step(llvm::ArrayRef<train::MicroBatch>(batches[size_t(i) % batches.size()]));
    if (!r) {
      llvm::errs() << "train_bench: " << llvm::toString(r.takeError()) << "\n";
      std::exit(1);
    }
    return r->loss;
  };

  for (int64_t i = 0; i < warmup; ++i)
    stepOn(i);
  // Per-step times: on a shared machine the median step is what the code costs, the
  // mean also what the neighbours cost.
  std::vector<double> stepSeconds;
  double loss = 0;
  for (int64_t i = 0; i < steps; ++i) {
    Clock::time_point start = Clock::now();
    loss = stepOn(warmup + i);
    stepSeconds.push_back(seconds(start));
  }

  // Where the time goes: Trainer::step's work in its order, timed phase by phase.
  std::vector<double> forward, backward, update;
  for (int64_t i = 0; i < steps; ++i) {
    const train::MicroBatch &mb = batches[size_t(i) % batches.size()];
    optimizer.zeroGrad();
    Clock::time_point t0 = Clock::now();
    int64_t lossTokens = model::countLossTokens(mb.targets, mb.lossMask);
    at::Tensor l = model::maskedTokenLossSum(m.forward(mb.inputs), mb.targets, mb.lossMask) *
                   (1.0 / double(lossTokens));
    forward.push_back(seconds(t0));
    Clock::time_point t1 = Clock::now();
    l.backward();
    (void)l.item<double>();
    backward.push_back(seconds(t1));
    Clock::time_point t2 = Clock::now();
    train::clipGradNorm(m.parameters(), 1.0);
    optimizer.step(1e-3);
    optimizer.zeroGrad();
    update.push_back(seconds(t2));
  }

  const double tokens = double(batch * seq), stepMedian = median(stepSeconds);
  auto ms = [](std::vector<double> &times) { return llvm::format("%.3f", median(times) * 1e3); };
  llvm::outs() << "{\"impl\": \"mixtape\", \"threads\": " << at::get_num_threads()
               << ", \"batch\": " << batch << ", \"seq\": " << seq << ", \"steps\": " << steps
               << ", \"tokens_per_s\": " << llvm::format("%.0f", tokens / stepMedian)
               << ", \"mean_tokens_per_s\": "
               << llvm::format("%.0f", tokens * double(steps) /
                                           std::accumulate(stepSeconds.begin(), stepSeconds.end(), 0.0))
               << ", \"step_ms\": " << llvm::format("%.3f", stepMedian * 1e3)
               << ", \"forward_ms\": " << ms(forward)
               << ", \"backward_ms\": " << ms(backward) << ", \"optimizer_ms\": " << ms(update)
               << ", \"loss\": " << llvm::format("%.4f", loss) << "}\n";
  return 0;
}
