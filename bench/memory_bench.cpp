//===- memory_bench.cpp - peak memory per rank of each shard mode ---------===//
//
// Trains a ~150M-parameter Llama (12 layers, d 768, 12 heads, vocab 32000, untied head)
// for a few steps on seeded random tokens with one shard mode (none: DataParallel;
// optimizer: ShardedAdamW, ZeRO-1; full: FullShard, FSDP) and prints one JSON line per
// rank: the increase of its peak resident memory (VmHWM) over its resident memory before
// the model is built (LibTorch and the process group already loaded), in bytes. Under
// full on several ranks the model is built sharded (FullShard::build), as the runtime does.
// bench/memory_bench.sh starts it on 1, 2 and 4 ranks (torchrun's variables) and prints
// the table of docs/performance.md. A world of one trains without a process group.
//
//   memory_bench --shard none|optimizer|full [--steps N=2] [--seq N=32] [--batch N=1]
//                [--save DIR]
//
// With --save, the trained model and optimizer state are then written to DIR as a train
// node's are, and "save_peak_increase_bytes" is the peak of that write alone (VmHWM reset
// through /proc/self/clear_refs) over the resident memory before it.
//
//===----------------------------------------------------------------------===//
#include "mixtape/dist/Collectives.h"
#include "mixtape/dist/DataParallel.h"
#include "mixtape/dist/FullShard.h"
#include "mixtape/dist/ShardedAdamW.h"
#include "mixtape/dist/World.h"
#include "mixtape/plan/MemoryPlan.h"
#include "mixtape/model/Model.h"
#include "mixtape/train/AdamW.h"
#include "mixtape/train/HostMemory.h"
#include "mixtape/train/Numerics.h"
#include "mixtape/train/Trainer.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <fstream>
#include <string>

using namespace mixtape;

namespace {

[[noreturn]] void fail(const llvm::Twine &message) {
  llvm::errs() << "memory_bench: " << message << "\n";
  std::exit(1);
}

/// A field of /proc/self/status in bytes ("VmRSS", "VmHWM"; the kernel gives kB).
int64_t statusBytes(llvm::StringRef field) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (llvm::StringRef rest = line; rest.consume_front(field.str() + ":")) {
      int64_t kb = 0;
      if (rest.trim().split(' ').first.getAsInteger(10, kb))
        fail("unreadable /proc/self/status line '" + line + "'");
      return kb * 1024;
    }
  fail("no " + field + " in /proc/self/status");
}

/// A model, its optimizer and the shard mode's sync, trained on seeded random tokens. Fully
/// sharded on several ranks, the model is built a unit at a time, as the runtime builds it.
struct Run {
  Run(dist::Collectives &comm, const model::ModelConfig &config, llvm::StringRef shard) : Config(config) {
    constexpr uint64_t kSeed = 7;
    const bool buildSharded = shard == "full" && comm.worldSize() > 1;
    auto created =
        buildSharded ? model::Model::createUnallocated(config, at::kCPU) : model::Model::create(config, kSeed);
    if (!created)
      fail(llvm::toString(created.takeError()));
    M = std::move(*created);
    Optimizer = std::make_unique<train::AdamW>(M->parameters(), train::AdamWOptions{});
    Options.ClipNorm = 1;
    if (comm.worldSize() == 1)
      return;
    if (shard == "none") {
      Options.Sync = &Plain.emplace(comm);
    } else if (shard == "optimizer") {
      auto made = dist::ShardedAdamW::create(comm, *Optimizer);
      if (!made)
        fail(llvm::toString(made.takeError()));
      Zero1 = std::move(*made);
      Options.Sync = Zero1.get();
    } else {
      model::Model::Initializer init(*M, kSeed);
      auto made = dist::FullShard::build(comm, *M, *Optimizer,
                                         [&](llvm::ArrayRef<size_t> unit) { return init.fill(unit); });
      if (!made)
        fail(llvm::toString(made.takeError()));
      Full = std::move(*made);
      Options.Sync = Full.get();
    }
  }

  void train(int64_t steps, int64_t seq, int64_t batch, int rank) {
    const plan::LRSchedule constant{0, {plan::Phase{plan::PhaseShape::Constant, 0, std::nullopt, 1e-4, 1e-4, 1, 0}}};
    train::Trainer trainer(*M, *Optimizer, constant, Options);
    at::Generator gen = at::detail::createCPUGenerator(1234 + uint64_t(rank));
    for (int64_t step = 0; step < steps; ++step) {
      at::Tensor ids = at::randint(Config.VocabSize, {batch, seq + 1}, gen, at::kLong);
      train::MicroBatch mb{ids.narrow(1, 0, seq).contiguous(), ids.narrow(1, 1, seq).contiguous(), {}, {}, {}};
      if (llvm::Expected<train::StepResult> r = trainer.step(llvm::ArrayRef<train::MicroBatch>(mb)); !r)
        fail(llvm::toString(r.takeError()));
    }
  }

  model::ModelConfig Config;
  std::unique_ptr<model::Model> M;
  std::unique_ptr<train::AdamW> Optimizer;
  train::TrainOptions Options;
  // Declared after the model and optimizer: destroyed first (FullShard unhooks the model).
  std::optional<dist::DataParallel> Plain;
  std::unique_ptr<dist::ShardedAdamW> Zero1;
  std::unique_ptr<dist::FullShard> Full;
};

} // namespace

int main(int argc, char **argv) {
  llvm::StringRef shard, saveDir;
  int64_t steps = 2, seq = 32, batch = 1;
  for (int i = 1; i < argc; ++i) {
    llvm::StringRef arg = argv[i];
    if (i + 1 >= argc)
      fail("'" + arg + "' needs a value");
    llvm::StringRef value = argv[++i];
    if (arg == "--shard")
      shard = value;
    else if (arg == "--save")
      saveDir = value;
    else if (int64_t *n = arg == "--steps" ? &steps : arg == "--seq" ? &seq : arg == "--batch" ? &batch : nullptr;
             !n || value.getAsInteger(10, *n) || *n <= 0)
      fail("bad argument '" + arg + " " + value + "'");
  }
  if (shard != "none" && shard != "optimizer" && shard != "full")
    fail("--shard must be none, optimizer or full");
  llvm::Expected<dist::World> world = dist::worldFromEnvironment();
  if (!world)
    fail(llvm::toString(world.takeError()));
  llvm::Expected<std::unique_ptr<dist::Collectives>> comm =
      dist::connect(*world, dist::Device::CPU, std::chrono::seconds(600));
  if (!comm)
    fail(llvm::toString(comm.takeError()));
  train::configureThreads();
  train::retainFreedHostMemory(shard != "none" && (*comm)->worldSize() > 1 ? train::kShardedRetainedBlockBytes
                                                                          : train::kRetainedBlockBytes); // as the executor
  // LibTorch's own footprint — kernels paged in on first use, thread pools, Gloo's
  // buffers — comes before the baseline: a tiny model takes a step through the same path.
  {
    Run warmup(**comm, model::ModelConfig::defaults(model::Family::Llama, 256, 2, 64, 4, seq), shard);
    warmup.train(1, seq, batch, world->Rank);
  }
  std::ofstream("/proc/self/clear_refs") << "5"; // VmHWM from here on
  const int64_t before = statusBytes("VmRSS");

  model::ModelConfig config = model::ModelConfig::defaults(model::Family::Llama, /*vocab=*/32000, /*layers=*/12,
                                                           /*d=*/768, /*heads=*/12, /*positions=*/seq);
  Run run(**comm, config, shard);
  run.train(steps, seq, batch, world->Rank);
  model::Model &m = *run.M;
  train::AdamW &optimizer = *run.Optimizer;
  int64_t parameters = 0;
  for (const model::NamedParameter &p : m.parameters())
    parameters += p.Tensor.numel();
  const int64_t trainPeak = statusBytes("VmHWM") - before;
  int64_t savePeak = 0;
  if (!saveDir.empty()) {
    std::ofstream("/proc/self/clear_refs") << "5"; // VmHWM from here on
    const int64_t beforeSave = statusBytes("VmRSS");
    const std::string modelPath = (saveDir + "/model.safetensors").str(),
                      optimizerPath = (saveDir + "/optimizer.safetensors").str();
    auto saveWeights = [&] { return m.saveWeights(modelPath); };
    llvm::Error e = run.Full    ? run.Full->saveWhole(optimizer, "saving", modelPath, optimizerPath)
                    : run.Zero1 ? run.Zero1->saveWhole(optimizer, "saving", saveWeights, optimizerPath)
                                : (*comm)->rankZeroAlone("saving", [&]() -> llvm::Error {
                                    if (llvm::Error e = saveWeights())
                                      return e;
                                    return optimizer.saveState(optimizerPath);
                                  });
    if (e)
      fail(llvm::toString(std::move(e)));
    savePeak = statusBytes("VmHWM") - beforeSave;
    (*comm)->barrier(); // rank 0 serves the store the others read its outcome from: it exits last
  }
  // What `mixtape plan` predicts for this rank (docs/cluster.md, "The memory plan").
  plan::MemoryConfig predicted;
  predicted.Model.Family = plan::ModelFamily::Llama;
  predicted.Model.Vocab = static_cast<uint64_t>(config.VocabSize);
  predicted.Model.Layers = static_cast<uint64_t>(config.NumLayers);
  predicted.Model.DModel = static_cast<uint64_t>(config.DModel);
  predicted.Model.Heads = static_cast<uint64_t>(config.NumHeads);
  predicted.Model.KVHeads = static_cast<uint64_t>(config.NumKVHeads);
  predicted.Model.Ffn = static_cast<uint64_t>(config.FfnHidden);
  predicted.Model.TieEmbeddings = config.TieEmbeddings;
  predicted.SeqLen = static_cast<uint64_t>(seq);
  predicted.MicroBatch = static_cast<uint64_t>(batch);
  predicted.Device = plan::Device::Cpu;
  predicted.Shard = *plan::enumFromName<plan::ShardMode>(shard);
  predicted.World = static_cast<uint64_t>(world->Size);
  predicted.LogitChunk = plan::lossChunkTokens(predicted.Model.Vocab);
  llvm::outs() << llvm::formatv("{{\"ranks\": {0}, \"rank\": {1}, \"shard\": \"{2}\", \"parameters\": {3}, "
                                "\"peak_increase_bytes\": {4}, \"predicted_bytes\": {5:f0}{6}}\n",
                                world->Size, world->Rank, shard, parameters, trainPeak,
                                plan::estimateMemory(predicted).total(),
                                saveDir.empty() ? "" : llvm::formatv(", \"save_peak_increase_bytes\": {0}", savePeak).str());
  return 0;
}
