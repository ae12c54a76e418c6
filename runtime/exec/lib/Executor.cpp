//===- Executor.cpp - nodes in order, done markers, skips -----------------===//
#include "mixtape/exec/Executor.h"

#include "ExecContext.h"

#include "mixtape/data/ShardCatalog.h"
#include "mixtape/dist/Collectives.h"
#include "mixtape/dist/ShardedCheckpoint.h"
#include "mixtape/rundir/Checkpoints.h"
#include "mixtape/rundir/RunDir.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/Signals.h"
#include "mixtape/train/HostMemory.h"
#include "mixtape/train/Numerics.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

using namespace mixtape;
using namespace mixtape::exec;

/// LibTorch reports failures as exceptions (c10::Error): they become errors here, at the
/// node boundary, without LibTorch's C++ backtrace.
static llvm::Error catchTorchErrors(llvm::function_ref<llvm::Error()> work) {
  try {
    return work();
  } catch (const std::exception &e) {
    return makeError(dist::firstLines(e));
  }
}

static llvm::Error runNode(ExecContext &ctx, const plan::Node &n) {
  return catchTorchErrors([&] {
    return std::visit(
        [&](const auto &payload) -> llvm::Error {
          using P = std::decay_t<decltype(payload)>;
          if constexpr (std::is_same_v<P, plan::InitNode>)
            return runInit(ctx, n, payload);
          else if constexpr (std::is_same_v<P, plan::TrainNode>)
            return runTrain(ctx, n, payload);
          else if constexpr (std::is_same_v<P, plan::EvalNode>)
            return runEval(ctx, n, payload);
          else
            return runMerge(ctx, n, payload);
        },
        n.Payload);
  });
}

/// Init and merge nodes are rank 0's alone; train and eval nodes share their work among the ranks.
static bool rankZeroAloneRuns(const plan::Node &n) { return n.init() || n.merge(); }

/// Whether rank 0 finds `mine` true (a node done, say); a rank that died surfaces here.
static llvm::Expected<bool> rankZeroSays(ExecContext &ctx, bool mine) {
  try {
    return ctx.Collectives->broadcastValue(mine) != 0;
  } catch (const std::exception &e) {
    return makeError(e.what());
  }
}

int ExecContext::stopRequested() const {
  if (Collectives->worldSize() == 1)
    return stopSignal();
  return static_cast<int>(Collectives->broadcastValue(stopSignal()));
}

llvm::Error mixtape::exec::executePlan(const plan::Plan &plan, const ExecOptions &options) {
  if (plan.Provisional) {
    std::string reasons;
    for (const std::string &r : plan.ProvisionalReasons)
      reasons += "\n  - " + r;
    return makeError("the plan is provisional (made without its data); plan again once the data is there:" + reasons);
  }
  for (const std::string &want : options.Nodes)
    if (!plan::findNode(plan, want))
      return makeError("the plan has no node '" + want + "'");
  ExecContext ctx;
  ctx.Plan = &plan;
  ctx.RunDir = options.RunDir;
  llvm::Expected<c10::Device> device = train::resolveDevice(options.Device);
  if (!device)
    return device.takeError();
  // One GPU per rank: a worker trains on the GPU of its local rank (NCCL needs its own).
  ctx.Device = *device;
  if (device->is_cuda() && options.World.Size > 1) {
    if (llvm::StringRef(options.Device).startswith("cuda:"))
      return makeError("--device " + options.Device + " names one GPU, but each of the " +
                       llvm::Twine(options.World.Size) + " ranks trains on the GPU of its local rank: use --device cuda");
    ctx.Device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(options.World.LocalRank));
  }
  llvm::Expected<std::unique_ptr<dist::Collectives>> collectives = dist::connect(
      options.World, ctx.Device.is_cuda() ? dist::Device::CUDA : dist::Device::CPU, options.Timeout);
  if (!collectives)
    return collectives.takeError();
  ctx.Collectives = collectives->get();
  ctx.WritesFiles = options.World.Rank == 0;
  ctx.Shard = options.Shard;
  ctx.Progress = options.Progress && ctx.WritesFiles;
  if (std::error_code ec = llvm::sys::fs::create_directories(ctx.RunDir))
    return fileError(ctx.RunDir, "cannot create the run directory: " + ec.message());
  std::string cache = joinPath(ctx.RunDir, "cache");
  ctx.Sources = std::make_unique<data::DataSources>(plan.Seed, cache, data::defaultManifestCacheDir(cache),
                                                    ctx.Progress ? &llvm::errs() : nullptr);
  // Ids must fit the largest vocabulary a node trains with (a vocabulary extension's).
  uint64_t vocab = plan.Model.Vocab;
  for (const plan::Node &n : plan.Nodes)
    if (const plan::TrainNode *t = n.train(); t && t->Settings.VocabExtension)
      vocab = std::max(vocab, t->Settings.VocabExtension->Vocab);
  ctx.Verification = {options.VerifyData, data::verificationCacheFile(data::defaultManifestCacheDir(cache)), vocab};
  ctx.Sources->verifyData(ctx.Verification);
  train::configureThreads();
  const bool sharded = options.World.Size > 1 && llvm::any_of(plan.Nodes, [&](const plan::Node &n) {
    const plan::TrainNode *t = n.train();
    return t && ctx.Shard.value_or(t->Exec.Shard) != plan::ShardMode::None;
  });
  train::retainFreedHostMemory(sharded ? train::kShardedRetainedBlockBytes : train::kRetainedBlockBytes);

  for (const plan::Node &n : plan.Nodes) {
    if (!options.Nodes.empty() && !llvm::is_contained(options.Nodes, n.Name))
      continue;
    if (int stop = ctx.stopRequested())
      return makeError(llvm::formatv("stopped by {0} before node '{1}'; run the same command again to go on",
                                     signalName(stop), n.Name));
    auto nodeError = [&](llvm::Error e) { return prefixError("node '" + n.Name + "'", std::move(e)); };
    // In-loop eval points are not hashed: a done node's new ones come from what it retained.
    auto serveEvals = [&] {
      const plan::TrainNode *t = n.train();
      return t ? catchTorchErrors([&] { return serveDuringEvals(ctx, n, *t); }) : llvm::Error::success();
    };
    // Rank 0's view of the run directory decides for every rank.
    llvm::Expected<bool> isDone = rankZeroSays(ctx, rundir::isDone(ctx.RunDir, n));
    if (!isDone)
      return isDone.takeError();
    if (*isDone) {
      if (ctx.Progress)
        llvm::errs() << llvm::formatv("[{0}] done, skipped ({1})\n", n.Name, llvm::StringRef(n.Hash).take_front(12));
      if (llvm::Error e = serveEvals())
        return nodeError(std::move(e));
      continue;
    }
    for (const plan::NodeRef &in : n.Inputs)
      if (!rundir::isDone(ctx.RunDir, plan.Nodes[in.Index]))
        return makeError("node '" + n.Name + "' needs '" + plan.Nodes[in.Index].Name + "', which is not done");
    if (ctx.WritesFiles)
      if (llvm::Error e = rundir::startNode(ctx.RunDir, plan, n))
        return e;
    if (std::error_code ec = llvm::sys::fs::create_directories(ctx.nodeDir(n)))
      return fileError(ctx.nodeDir(n), "cannot create: " + ec.message());
    if (!rankZeroAloneRuns(n))
      if (llvm::Error e = runNode(ctx, n))
        return nodeError(std::move(e));
    // Every rank waits here, however long it takes, until rank 0's files of the node are
    // written; the done marker comes last, after the outputs are durable.
    if (llvm::Error e = ctx.Collectives->rankZeroAlone("finishing the node", [&]() -> llvm::Error {
          if (rankZeroAloneRuns(n))
            if (llvm::Error e = runNode(ctx, n))
              return e;
          return rundir::markDone(ctx.RunDir, n);
        }))
      return nodeError(std::move(e));
    // A resumed node whose earlier points changed.
    if (llvm::Error e = serveEvals())
      return nodeError(std::move(e));
  }
  // Rank 0 hosts the rendezvous store: it must not exit while another rank still polls it
  // for the outcome of the last node.
  return catchTorchErrors([&] {
    ctx.Collectives->barrier();
    return llvm::Error::success();
  });
}

llvm::Error mixtape::exec::exportNode(const plan::Plan &plan, llvm::StringRef runDir, llvm::StringRef name,
                                      llvm::StringRef outDir, const ExportOptions &options) {
  std::optional<size_t> index = plan::findNode(plan, name);
  if (!index)
    return makeError("the plan has no node '" + name + "'");
  const plan::Node &node = plan.Nodes[*index];
  std::string weights = joinPath(rundir::nodeDir(runDir, node), "model.safetensors");
  if (options.CheckpointStep) {
    if (!node.train())
      return makeError("node '" + name + "' is not a train node: it keeps no checkpoints");
    // Every file as state.json recorded it: a shard missing or cut is named here.
    rundir::CheckpointStore store(rundir::nodeDir(runDir, node));
    if (llvm::Error e = store.validate(*options.CheckpointStep, rundir::CheckpointStore::Check::Contents))
      return e;
    const std::string dir = store.dirFor(*options.CheckpointStep), index = joinPath(dir, dist::kCheckpointIndex);
    weights = llvm::sys::fs::exists(index) ? index : joinPath(dir, "model.safetensors");
  } else if (!rundir::isDone(runDir, node)) {
    return makeError("node '" + name + "' is not done (no " + joinPath(rundir::nodeDir(runDir, node), "DONE") + ")");
  }
  ExecContext ctx;
  ctx.Plan = &plan;
  ctx.RunDir = runDir.str();
  return catchTorchErrors([&] { return exportModel(ctx, node, weights, outDir, options); });
}
