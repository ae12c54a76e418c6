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
// `--model gpt2-124m --device cuda` is the GPU benchmark of issue 9: GPT-2 124M (12 layers,
// d 768, 12 heads, vocab 50304, batch 16 x 1024) with bf16 autocast and the fused AdamW,
// the shapes of ../shared/bench/anchor_gpt.py, which bench/gpu/check.sh runs beside it.
// `--model llama-1b` is Llama-3.2-1B's shapes as ../shared/bench/anchor_llama.py builds them
// (16 layers, d 2048, 32 heads / 8 KV heads, ffn 8192, vocab 128256, RoPE theta 500000, untied
// head; batch 4 x 2048).
// On CUDA the timed loop is synchronized once at its end (as the anchor does), and the
// phases are timed with a synchronization after each.
//
// Data parallel (`--data-parallel`, or started by torchrun/srun with a world of several):
// every rank trains `--batch` sequences of its own per step through the runtime's
// DataParallel (c10d: NCCL on CUDA, Gloo on CPU), on the GPU of its local rank; rank 0
// prints the world's tokens/s. bench/gpu/scaling.sh runs it on 1, 2, 4, 8 GPUs. Gradient
// buckets start their all-reduce during backward; `--no-overlap` starts all after it.
//
// `--checkpoint-every N` (the plan's activation_checkpointing: 0 none, 1 every block, N
// every Nth) recomputes those blocks' activations in the backward pass: what it costs in time.
// `--shard-full` trains through FullShard (issue 17's item 9: a world of one over NCCL on one
// GPU, with bf16 parameters gathered from fp32 shards on CUDA, as the runtime trains).
//
//   train_bench [--model quickstart|gpt2-124m|llama-1b] [--device cpu|cuda] [--steps N=40]
//               [--warmup N=5] [--threads N] [--batch N] [--seq N] [--clip X=1]
//               [--peak-tflops X=989] [--checkpoint-every N=0] [--data-parallel [--no-overlap]]
//               [--shard-full]
//
//===----------------------------------------------------------------------===//
#include "mixtape/dist/Collectives.h"
#include "mixtape/dist/DataParallel.h"
#include "mixtape/dist/FullShard.h"
#include "mixtape/dist/LocalLauncher.h"
#include "mixtape/dist/World.h"
#include "mixtape/model/Model.h"
#include "mixtape/model/TorchCompat.h"
#include "mixtape/train/AdamW.h"
#include "mixtape/train/DeviceMemory.h"
#include "mixtape/train/HostMemory.h"
#include "mixtape/train/Numerics.h"
#include "mixtape/train/Trainer.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <numeric>
#include <optional>
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

/// DataParallel without the overlap: every bucket starts after backward (`--no-overlap`,
/// the baseline that shows what starting buckets during backward saves).
struct SumAfterBackward final : dist::DataParallel {
  using DataParallel::DataParallel;
  void beforeLastBackward(llvm::ArrayRef<model::NamedParameter>) override {}
};

[[noreturn]] static void usage(llvm::StringRef why) {
  llvm::errs() << "train_bench: " << why << "\nusage: train_bench [--model quickstart|gpt2-124m|llama-1b] "
               << "[--device cpu|cuda] [--steps N] [--warmup N] [--threads N] [--batch N] [--seq N] "
               << "[--clip X] [--peak-tflops X] [--checkpoint-every N] "
               << "[--data-parallel [--no-overlap]] [--shard-full]\n";
  std::exit(2);
}

int main(int argc, char **argv) {
  int64_t steps = 40, warmup = 5, threads = 0, batch = 0, seq = 0, checkpointEvery = 0;
  double clip = 1.0, peakTflops = 989; // H100 SXM dense bf16, as anchor_gpt.py
  llvm::StringRef modelName = "quickstart", deviceName = "cpu";
  bool dataParallel = false, overlap = true, shardFull = false;
  for (int i = 1; i < argc; ++i) {
    llvm::StringRef arg = argv[i];
    if (arg == "--data-parallel" || arg == "--no-overlap") {
      (arg == "--data-parallel" ? dataParallel : overlap) = arg == "--data-parallel";
      continue;
    }
    if (arg == "--shard-full") {
      shardFull = dataParallel = true;
      continue;
    }
    if (i + 1 == argc)
      usage("missing value after '" + arg.str() + "'");
    llvm::StringRef value = argv[++i];
    if (arg == "--model" || arg == "--device") {
      (arg == "--model" ? modelName : deviceName) = value;
      continue;
    }
    if (arg == "--clip" || arg == "--peak-tflops") {
      if (value.getAsDouble(arg == "--clip" ? clip : peakTflops))
        usage("bad value for '" + arg.str() + "'");
      continue;
    }
    int64_t *target = arg == "--steps"     ? &steps
                      : arg == "--warmup"  ? &warmup
                      : arg == "--threads" ? &threads
                      : arg == "--batch"   ? &batch
                      : arg == "--seq"     ? &seq
                      : arg == "--checkpoint-every" ? &checkpointEvery
                                           : nullptr;
    if (!target || value.getAsInteger(10, *target) || *target < 0)
      usage("bad argument '" + arg.str() + "'");
  }
  const model::ActivationCheckpointing checkpointing{static_cast<uint64_t>(checkpointEvery)};
  const bool gpt2 = modelName == "gpt2-124m", llama1b = modelName == "llama-1b";
  if (!gpt2 && !llama1b && modelName != "quickstart")
    usage("unknown model '" + modelName.str() + "'");
  batch = batch ? batch : gpt2 ? 16 : llama1b ? 4 : 32;
  seq = seq ? seq : gpt2 ? 1024 : llama1b ? 2048 : 128;
  if (steps == 0)
    usage("steps must be positive");
  llvm::Expected<c10::Device> device = train::resolveDevice(deviceName);
  if (!device) {
    llvm::errs() << "train_bench: " << llvm::toString(device.takeError()) << "\n";
    return 1;
  }
  llvm::Expected<dist::World> world = dist::worldFromEnvironment();
  if (!world) {
    llvm::errs() << "train_bench: " << llvm::toString(world.takeError()) << "\n";
    return 1;
  }
  dataParallel = dataParallel || world->Size > 1;
  if (dataParallel && device->is_cuda())
    *device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(world->LocalRank));
  std::unique_ptr<dist::Collectives> comm;
  if (dataParallel && world->MasterPort == 0) { // no launcher: a world of one meets itself
    llvm::Expected<uint16_t> port = dist::freeLocalPort();
    if (!port) {
      llvm::errs() << "train_bench: " << llvm::toString(port.takeError()) << "\n";
      return 1;
    }
    world->MasterPort = *port;
  }
  if (dataParallel) {
    // A process group even for a world of one, so that one GPU measures NCCL's cost too.
    auto connected = dist::connectProcessGroup(*world, device->is_cuda() ? dist::Device::CUDA : dist::Device::CPU,
                                               std::chrono::seconds(120));
    if (!connected) {
      llvm::errs() << "train_bench: " << llvm::toString(connected.takeError()) << "\n";
      return 1;
    }
    comm = std::move(*connected);
  }
  const bool printer = world->Rank == 0;
  // Threads as the runtime sets them, unless given.
  if (threads > 0)
    at::set_num_threads(int(threads));
  else
    train::configureThreads();
  train::retainFreedHostMemory(); // as the runtime's executor does

  // recipes/quickstart.toml's model, as the plan gives it (vocab: the byte tokenizer's 264),
  // GPT-2 124M with the vocabulary padded to 50304 as in anchor_gpt.py, or Llama-3.2-1B's
  // shapes as in anchor_llama.py.
  model::ModelConfig config =
      gpt2      ? model::ModelConfig::defaults(model::Family::GPT2, /*vocab=*/50304, /*layers=*/12, /*d=*/768,
                                               /*heads=*/12, /*positions=*/seq)
      : llama1b ? model::ModelConfig::defaults(model::Family::Llama, /*vocab=*/128256, /*layers=*/16, /*d=*/2048,
                                               /*heads=*/32, /*positions=*/seq)
                : model::ModelConfig::defaults(model::Family::Llama, /*vocab=*/264, /*layers=*/2, /*d=*/64,
                                               /*heads=*/4, /*positions=*/seq);
  if (llama1b) {
    config.NumKVHeads = 8;
    config.FfnHidden = 8192;
    config.RopeTheta = 500000.0;
    config.TieEmbeddings = false;
  } else if (!gpt2) {
    config.NumKVHeads = 2;
  }
  // Fully sharded, the model is built a unit at a time on the device, as the runtime builds it.
  constexpr uint64_t kSeed = 7;
  auto created = shardFull ? model::Model::createUnallocated(config, *device) : model::Model::create(config, kSeed);
  if (!created) {
    llvm::errs() << "train_bench: " << llvm::toString(created.takeError()) << "\n";
    return 1;
  }
  model::Model &m = **created;
  if (!shardFull)
    m.to(*device);
  // Waits for the device's queued work (a scalar read orders after it on the stream).
  auto sync = [&] {
    if (device->is_cuda())
      (void)m.parameters().front().Tensor.sum().item<float>();
  };
  train::AdamWOptions options; // the plan's defaults: 0.9, 0.95, 1e-8, decay 0.1
  train::AdamW optimizer(m.parameters(), options);
  const double lr = gpt2 || llama1b ? 3e-4 : 1e-3;
  const plan::LRSchedule constant{0, {plan::Phase{plan::PhaseShape::Constant, 0, std::nullopt, lr, lr, 1, 0}}};
  train::TrainOptions trainOptions;
  trainOptions.ClipNorm = clip;
  trainOptions.Memory.Checkpointing = checkpointing;
  std::optional<dist::DataParallel> parallel;
  std::optional<SumAfterBackward> afterBackward;
  std::unique_ptr<dist::FullShard> full;
  if (shardFull) {
    dist::FullShardOptions precision;
    if (device->is_cuda())
      precision.ComputeDtype = at::kBFloat16;
    model::Model::Initializer init(m, kSeed);
    auto sharded = dist::FullShard::build(
        *comm, m, optimizer, [&](llvm::ArrayRef<size_t> unit) { return init.fill(unit); }, precision);
    if (!sharded) {
      llvm::errs() << "train_bench: " << llvm::toString(sharded.takeError()) << "\n";
      return 1;
    }
    full = std::move(*sharded);
    trainOptions.Sync = full.get();
  } else if (comm) {
    trainOptions.Sync = overlap ? static_cast<train::StepSync *>(&parallel.emplace(*comm)) : &afterBackward.emplace(*comm);
  }
  train::Trainer trainer(m, optimizer, constant, trainOptions);

  // A few distinct seeded batches, built before timing; the executor gives every
  // micro-batch a float loss mask (all ones for unpadded samples).
  std::vector<train::MicroBatch> batches;
  at::Generator gen = at::detail::createCPUGenerator(1234 + uint64_t(world->Rank)); // each rank its own data
  for (int i = 0; i < 8; ++i) {
    at::Tensor ids = at::randint(config.VocabSize, {batch, seq + 1}, gen, at::kLong);
    train::MicroBatch mb;
    mb.Inputs = ids.narrow(1, 0, seq).contiguous();
    mb.Targets = ids.narrow(1, 1, seq).contiguous();
    mb.LossMask = at::ones({batch, seq}, at::kFloat);
    batches.push_back(mb);
  }
  auto stepOn = [&](int64_t i) {
    llvm::Expected<train::StepResult> r =
        trainer.step(llvm::ArrayRef<train::MicroBatch>(batches[size_t(i) % batches.size()]));
    if (!r) {
      llvm::errs() << "train_bench: " << llvm::toString(r.takeError()) << "\n";
      std::exit(1);
    }
    return r->Loss;
  };

  Clock::time_point warmStart = Clock::now();
  for (int64_t i = 0; i < warmup; ++i)
    stepOn(i);
  sync();
  const double warmupSeconds = seconds(warmStart);
  // Per-step times on the CPU: on a shared machine the median step is what the code costs,
  // the mean also what the neighbours cost. On CUDA steps overlap the host's next launches,
  // so only the whole loop, synchronized at its end, is timed.
  std::vector<double> stepSeconds;
  double loss = 0;
  Clock::time_point loopStart = Clock::now();
  for (int64_t i = 0; i < steps; ++i) {
    Clock::time_point start = Clock::now();
    loss = stepOn(warmup + i);
    stepSeconds.push_back(seconds(start));
  }
  sync();
  const double loopSeconds = seconds(loopStart);

  // Where the time goes: Trainer::step's work in its order, timed phase by phase (one
  // process: the phases of a data-parallel step include waiting for the other ranks).
  std::vector<double> forward, backward, update;
  for (int64_t i = 0; i < (comm ? 0 : steps); ++i) {
    const train::MicroBatch mb = train::onDevice(batches[size_t(i) % batches.size()], *device);
    optimizer.zeroGrad();
    sync();
    Clock::time_point t0 = Clock::now();
    int64_t lossTokens = model::countLossTokens(mb.Targets, mb.LossMask);
    at::Tensor l;
    {
      compat::CudaAutocast autocast(m.parameters().front().Tensor);
      at::Tensor hidden = m.hiddenStates(mb.Inputs, {}, checkpointing);
      l = model::chunkedTokenLosses(hidden, m.headWeight(), mb.Targets, mb.LossMask).sum() *
          (1.0 / double(lossTokens));
    }
    sync();
    forward.push_back(seconds(t0));
    Clock::time_point t1 = Clock::now();
    l.backward();
    (void)l.item<double>();
    sync();
    backward.push_back(seconds(t1));
    Clock::time_point t2 = Clock::now();
    train::clipGradNorm(m.parameters(), clip);
    optimizer.step(1e-3);
    optimizer.zeroGrad();
    sync();
    update.push_back(seconds(t2));
  }

  const int64_t ranks = comm ? comm->worldSize() : 1;
  const double tokens = double(batch * seq * ranks); // the world's, per step
  double stepTime = device->is_cuda() ? loopSeconds / double(steps) : median(stepSeconds);
  if (comm) { // the ranks' mean step (they wait for each other every step anyway)
    at::Tensor t = at::full({1}, stepTime, at::TensorOptions(at::kDouble).device(c10::Device(comm->deviceType())));
    comm->allReduceSum(t);
    stepTime = t.item<double>() / double(ranks);
  }
  if (!printer)
    return 0;
  const std::optional<uint64_t> peak = train::peakMemoryBytes(*device); // torch.cuda.max_memory_allocated
  int64_t params = 0;
  for (const model::NamedParameter &p : m.parameters())
    params += p.Tensor.numel();
  // anchor_gpt.py's estimate: 6 N per token plus attention's 12 L d T.
  const double flopsPerToken = 6.0 * double(params) + 12.0 * double(config.NumLayers * config.DModel * seq);
  auto ms = [](std::vector<double> &times) {
    return times.empty() ? std::string("null") : llvm::formatv("{0:f3}", median(times) * 1e3).str();
  };
  llvm::outs() << "{\"impl\": \"mixtape\", \"model\": \"" << modelName << "\", \"device\": \""
               << device->str() << "\", \"params\": " << params << ", \"threads\": " << at::get_num_threads()
               << ", \"ranks\": " << ranks << ", \"batch\": " << batch * ranks << ", \"seq\": " << seq
               << ", \"checkpoint_every\": " << checkpointEvery << ", \"shard\": \"" << (shardFull ? "full" : "none") << "\""
               << ", \"steps\": " << steps
               << ", \"tokens_per_s\": " << llvm::format("%.0f", tokens / stepTime)
               << ", \"mean_tokens_per_s\": " << llvm::format("%.0f", tokens * double(steps) / loopSeconds)
               << ", \"step_ms\": " << llvm::format("%.3f", stepTime * 1e3)
               << ", \"mfu\": " << llvm::format("%.4f", tokens / stepTime * flopsPerToken / (peakTflops * 1e12))
               << ", \"warmup_s\": " << llvm::format("%.1f", warmupSeconds)
               << ", \"forward_ms\": " << ms(forward)
               << ", \"backward_ms\": " << ms(backward) << ", \"optimizer_ms\": " << ms(update)
               << ", \"loss\": " << llvm::format("%.4f", loss) << ", \"peak_memory_bytes\": "
               << (peak ? std::to_string(*peak) : std::string("null")) << "}\n";
  return 0;
}
