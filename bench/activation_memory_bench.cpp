//===- activation_memory_bench.cpp - peak memory of the loss and the blocks -===//
//
// Peak resident memory on the CPU of what issue 17 makes smaller, each configuration measured
// as the rise of the process's peak RSS (VmHWM, reset through /proc/self/clear_refs) over
// its RSS just before the pass, with the inputs and the model already built:
//
//   loss:   the classifier and cross-entropy of `--tokens` positions, forward and backward,
//           from hidden states [tokens, d] and a head [vocab, d]: all logits at once
//           (Model::forward's at::linear, then maskedTokenLossSum) against
//           model::chunkedTokenLosses with its default chunk.
//   blocks: one micro-batch of train::accumulateGradients on a deep, narrow Llama with a small
//           vocabulary (so the blocks' activations dominate), for each checkpointing mode.
//
// Each section runs once unmeasured first, so that one-time allocations (thread pools, the
// gradients' first buffers) are not charged to the first row. Prints one markdown table row
// per configuration (docs/performance.md holds them). Memory only: the timings of a shared
// machine say nothing. `--check` (the ctest bench/activation-memory, at small sizes) fails
// unless chunks hold the loss under 60% of the full logits' peak and full checkpointing the
// step under half of no checkpointing's.
//
//   activation_memory_bench [--vocab N=128256] [--tokens N=1024] [--d N=512]
//                           [--layers N=16] [--batch N=2] [--seq N=512] [--check]
//
//===----------------------------------------------------------------------===//
#include "mixtape/model/Model.h"
#include "mixtape/plan/MemoryPlan.h"
#include "mixtape/train/Trainer.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <fstream>
#include <functional>
#include <malloc.h>
#include <string>

using namespace mixtape;

/// A field of /proc/self/status in MiB ("VmRSS", "VmHWM").
static double statusMiB(llvm::StringRef field) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (llvm::StringRef(line).startswith(field.str() + ":")) {
      long long kb = 0;
      llvm::StringRef(line).drop_front(field.size() + 1).trim().split(' ').first.getAsInteger(10, kb);
      return double(kb) / 1024.0;
    }
  return 0;
}

/// The rise of the peak RSS over the RSS before `pass`, in MiB.
static double peakRiseMiB(const std::function<void()> &pass) {
  std::ofstream("/proc/self/clear_refs") << "5"; // VmHWM := VmRSS
  const double before = statusMiB("VmRSS");
  pass();
  return statusMiB("VmHWM") - before;
}

[[noreturn]] static void usage(llvm::StringRef why) {
  llvm::errs() << "activation_memory_bench: " << why
               << "\nusage: activation_memory_bench [--vocab N] [--tokens N] [--d N] [--layers N] [--batch N] "
                  "[--seq N]\n";
  std::exit(2);
}

int main(int argc, char **argv) {
  // Every large block from mmap and back to the system when freed: glibc would otherwise
  // raise its threshold after the first frees and keep later blocks on its heap, so that
  // RSS before a pass would include what the previous pass left there.
  mallopt(M_MMAP_THRESHOLD, 1 << 16);
  int64_t vocab = 128256, tokens = 1024, d = 512, layers = 16, batch = 2, seq = 512;
  bool check = false;
  for (int i = 1; i < argc; i += 2) {
    llvm::StringRef arg = argv[i];
    if (arg == "--check") {
      check = true;
      --i;
      continue;
    }
    if (i + 1 >= argc)
      usage("missing value after '" + arg.str() + "'");
    int64_t *target = arg == "--vocab"    ? &vocab
                      : arg == "--tokens" ? &tokens
                      : arg == "--d"      ? &d
                      : arg == "--layers" ? &layers
                      : arg == "--batch"  ? &batch
                      : arg == "--seq"    ? &seq
                                          : nullptr;
    if (!target || llvm::StringRef(argv[i + 1]).getAsInteger(10, *target) || *target <= 0)
      usage("bad argument '" + arg.str() + "'");
  }
  at::Generator gen = at::detail::createCPUGenerator(17);

  // The loss alone.
  at::Tensor hidden = at::randn({1, tokens, d}, gen).requires_grad_();
  at::Tensor head = (at::randn({vocab, d}, gen) * 0.02).requires_grad_();
  at::Tensor targets = at::randint(vocab, {1, tokens}, gen, at::kLong);
  const double logitsMiB = double(tokens) * double(vocab) * 4 / (1 << 20);
  llvm::outs() << "| loss | vocab " << vocab << ", " << tokens << " tokens, d " << d << " | fp32 logits "
               << llvm::format("%.0f", logitsMiB) << " MiB; chunk " << plan::lossChunkTokens(vocab)
               << " tokens |\n";
  auto lossPass = [&](bool chunked) {
    hidden.mutable_grad() = at::Tensor();
    head.mutable_grad() = at::Tensor();
    return peakRiseMiB([&] {
      at::Tensor loss = chunked ? model::chunkedTokenLosses(hidden, head, targets).sum()
                                : model::maskedTokenLossSum(at::linear(hidden, head), targets);
      loss.backward();
    });
  };
  lossPass(false);
  double lossMiB[2];
  for (bool chunked : {false, true})
    llvm::outs() << "| loss | " << (chunked ? "chunked" : "full logits") << " | "
                 << llvm::format("%.0f", lossMiB[chunked] = lossPass(chunked)) << " MiB |\n";

  // The blocks of a training step.
  model::ModelConfig config = model::ModelConfig::defaults(model::Family::Llama, /*vocab=*/512, layers,
                                                           /*d=*/256, /*heads=*/4, /*positions=*/seq);
  auto created = model::Model::create(config, /*seed=*/3);
  if (!created) {
    llvm::errs() << "activation_memory_bench: " << llvm::toString(created.takeError()) << "\n";
    return 1;
  }
  model::Model &m = **created;
  at::Tensor ids = at::randint(config.VocabSize, {batch, seq + 1}, gen, at::kLong);
  train::MicroBatch mb;
  mb.Inputs = ids.narrow(1, 0, seq).contiguous();
  mb.Targets = ids.narrow(1, 1, seq).contiguous();
  llvm::outs() << "| blocks | llama, " << layers << " layers, d 256, ffn " << config.FfnHidden << ", vocab 512, "
               << batch << " x " << seq << " tokens | |\n";
  auto stepPass = [&](uint64_t every) {
    train::MemoryOptions memory;
    memory.Checkpointing.Every = every;
    for (const model::NamedParameter &p : m.parameters())
      p.Tensor.mutable_grad() = at::Tensor();
    return peakRiseMiB([&] {
      llvm::Expected<train::StepResult> r = train::accumulateGradients(m, {mb}, nullptr, 0, memory);
      if (!r) {
        llvm::errs() << "activation_memory_bench: " << llvm::toString(r.takeError()) << "\n";
        std::exit(1);
      }
    });
  };
  stepPass(0);
  std::map<uint64_t, double> stepMiB;
  for (uint64_t every : {0, 4, 2, 1})
    llvm::outs() << "| blocks | checkpointing " << (every == 0 ? "none" : every == 1 ? "full" : "every " + std::to_string(every))
                 << " | " << llvm::format("%.0f", stepMiB[every] = stepPass(every)) << " MiB |\n";
  llvm::outs().flush();
  if (check && (lossMiB[1] >= 0.6 * lossMiB[0] || stepMiB[1] >= 0.5 * stepMiB[0])) {
    llvm::errs() << "activation_memory_bench: the chunked loss or full checkpointing does not save what it should\n";
    return 1;
  }
  return 0;
}
