//===- Train.cpp - a train node ---------------------------------------------===//
//
// runTrain reads top to bottom: open the node's samples, restore its start (the last
// checkpoint, else the input's weights and maybe its optimizer state), set up how the
// ranks share each step, then for each optimizer step: the in-loop evals due at its start,
// the step, its record, a checkpoint when one is due. Samples are a pure function of the
// plan and their index, and CPU math is deterministic for a fixed thread count, so a
// resumed node ends bit-identical to an uninterrupted one. With several ranks, each trains
// on a consecutive share of every batch; the step is summed over the ranks (runtime/dist).
//
//===----------------------------------------------------------------------===//
#include "Batches.h"
#include "ExecContext.h"
#include "mixtape/exec/Trainable.h"

#include "mixtape/dist/DataParallel.h"
#include "mixtape/dist/FullShard.h"
#include "mixtape/dist/ShardedAdamW.h"
#include "mixtape/dist/ShardedCheckpoint.h"
#include "mixtape/model/Growth.h"
#include "mixtape/model/Model.h"
#include "mixtape/plan/Print.h"
#include "mixtape/rundir/Checkpoints.h"
#include "mixtape/rundir/DuringEvals.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/Progress.h"
#include "mixtape/support/Signals.h"
#include "mixtape/train/AdamW.h"
#include "mixtape/train/DeviceMemory.h"
#include "mixtape/train/Numerics.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cmath>

using namespace mixtape;
using namespace mixtape::exec;

namespace {

/// More non-finite steps in a row than this stop a node that skips them: it diverged.
constexpr uint64_t kMaxConsecutiveSkips = 8;

/// The node's samples: a pure function of the plan and the sample index.
llvm::Expected<std::unique_ptr<data::TrainSamples>> openSamples(ExecContext &ctx, const plan::TrainNode &train) {
  const plan::TrainSettings &s = train.Settings;
  data::TrainNodeData nodeData;
  nodeData.SeqLen = s.SeqLen;
  nodeData.Objective = s.Objective.value_or(plan::Objective::LM);
  nodeData.Mixture = s.Mixture;
  nodeData.Begin = s.Steps.Begin * s.BatchSequences;
  nodeData.End = s.Steps.End * s.BatchSequences;
  for (const std::string &stream : s.Mixture.Streams) {
    llvm::Expected<data::NodeStream> ns = ctx.stream(stream, s.Data.Cursors.at(stream));
    if (!ns)
      return ns.takeError();
    nodeData.Streams.push_back(std::move(*ns));
  }
  return data::TrainSamples::open(nodeData, *ctx.Sources);
}

/// This rank's share of every batch: `Count` consecutive sequences from `Offset`, in
/// micro-batches of `Micro` (the plan's, or the largest below it that divides the share).
struct BatchShare {
  uint64_t Offset = 0, Count = 0, Micro = 0;
};

llvm::Expected<BatchShare> batchShare(const ExecContext &ctx, const plan::TrainNode &train) {
  const uint64_t batch = train.Settings.BatchSequences, ranks = static_cast<uint64_t>(ctx.Collectives->worldSize());
  if (batch % ranks)
    return makeError(llvm::formatv("a batch of {0} sequences does not split over {1} ranks; use a number of ranks "
                                   "that divides it",
                                   batch, ranks));
  const uint64_t count = batch / ranks;
  return BatchShare{static_cast<uint64_t>(ctx.Collectives->rank()) * count, count,
                    dist::shareMicroBatch(count, train.Exec.MicroBatch)};
}

/// Where the node starts: a stage step, the metrics bytes to keep, the skips so far, and
/// the index of a sharded checkpoint to load once the ranks share the state (each rank
/// reads the slices it keeps).
struct Start {
  uint64_t Step = 0;
  std::optional<uint64_t> KeepMetrics = 0;
  uint64_t SkippedSteps = 0, ConsecutiveSkips = 0;
  std::optional<std::string> CheckpointIndex;
};

/// The file beside a LoRA node's merged model.safetensors that holds its weights unmerged
/// (the base and the factors): written only where a later segment of its stage continues
/// training the same adapters.
constexpr llvm::StringLiteral kUnmergedLora = "lora.safetensors";

/// Whether a train node continues `node`'s stage from its end (the stage was cut there).
bool stageContinues(const ExecContext &ctx, const plan::Node &node) {
  return llvm::any_of(ctx.Plan->Nodes, [&](const plan::Node &n) {
    const plan::TrainNode *t = n.train();
    return t && !t->Exec.StageStart && !n.Inputs.empty() && &ctx.Plan->Nodes[n.Inputs.front().Index] == &node;
  });
}

/// Restores the model and optimizer from rank 0's newest checkpoint (every rank resumes
/// from it; the others know only its step), else from the input (its optimizer state
/// when the plan keeps it). A sharded checkpoint is only found here: its slices are read
/// once the ranks share the state (RankSync::loadCheckpoint); a model built sharded is then
/// built from it, not from `startWeights`.
/// `startWeights` set: the model holds no storage yet (built sharded later), and a whole
/// checkpoint's weights become the file it is built from instead of being loaded.
llvm::Expected<Start> restore(ExecContext &ctx, const plan::Node &node, const plan::TrainNode &train, model::Model &m,
                              train::AdamW &optimizer, model::Model *average, const BatchShare &share,
                              std::string *startWeights) {
  rundir::CheckpointStore checkpoints(ctx.nodeDir(node));
  std::optional<rundir::Checkpoint> c;
  if (ctx.WritesFiles) {
    rundir::LatestCheckpoint latest = checkpoints.latest();
    for (const std::string &why : latest.PassedOver)
      llvm::errs() << llvm::formatv("[{0}] warning: passing over a checkpoint: {1}\n", node.Name, why);
    c = std::move(latest.Found);
  }
  const int64_t step = ctx.Collectives->broadcastValue(c ? static_cast<int64_t>(c->State.Step) : -1);
  if (step < 0) {
    const plan::Node &input = ctx.input(node);
    if (train.Settings.OptimizerState == plan::OptimizerStart::Keep && input.train())
      if (llvm::Error e = optimizer.loadState(joinPath(ctx.nodeDir(input), "optimizer.safetensors")))
        return std::move(e);
    return Start{train.Settings.Steps.Begin, 0, 0, 0, std::nullopt};
  }
  // Every rank stops after the same run of skipped steps.
  const int64_t consecutive = ctx.Collectives->broadcastValue(c ? static_cast<int64_t>(c->State.ConsecutiveSkips) : 0);
  const std::string dir = c ? c->Dir : checkpoints.dirFor(static_cast<uint64_t>(step));
  Start start{static_cast<uint64_t>(step), std::nullopt, 0, static_cast<uint64_t>(consecutive), std::nullopt};
  if (llvm::sys::fs::exists(joinPath(dir, dist::kCheckpointIndex))) {
    start.CheckpointIndex = joinPath(dir, dist::kCheckpointIndex);
  } else { // a checkpoint rank 0 wrote whole (before sharded checkpoints)
    if (startWeights)
      *startWeights = joinPath(dir, "model.safetensors");
    else if (llvm::Error e = m.loadWeights(joinPath(dir, "model.safetensors")))
      return std::move(e);
    if (llvm::Error e = optimizer.loadState(joinPath(dir, "optimizer.safetensors")))
      return std::move(e);
  }
  if (average)
    if (llvm::Error e = average->loadWeights(joinPath(dir, plan::kAverageFile)))
      return std::move(e);
  if (!c)
    return start;
  start.KeepMetrics = c->State.MetricsBytes;
  start.SkippedSteps = c->State.SkippedSteps;
  const uint64_t ranks = static_cast<uint64_t>(ctx.Collectives->worldSize());
  const std::string numerics = train::numericsFingerprint(ctx.Device);
  if (c->State.Numerics != numerics)
    llvm::errs() << llvm::formatv("[{0}] warning: resuming at step {1} under other numerics ({2}, was {3}); the "
                                  "result may differ from an uninterrupted run in the low bits\n",
                                  node.Name, step, numerics, c->State.Numerics);
  else if (ctx.Progress)
    llvm::errs() << llvm::formatv("[{0}] resuming from the checkpoint at step {1}\n", node.Name, step);
  if (c->State.WorldSize && (c->State.WorldSize != ranks || c->State.MicroBatch != share.Micro))
    llvm::errs() << llvm::formatv("[{0}] warning: resuming at step {1} on {2} rank(s) with micro-batches of {3} "
                                  "(the checkpoint's: {4} rank(s), micro-batches of {5}); the gradients sum in "
                                  "another order, so the result may differ from an uninterrupted run in the low "
                                  "bits\n",
                                  node.Name, step, ranks, share.Micro, c->State.WorldSize, c->State.MicroBatch);
  return start;
}

/// Never a checkpoint or model that holds a NaN or infinity (`name`): resuming from it
/// would fail forever.
llvm::Error nonFiniteError(uint64_t step, const std::string &name) {
  return makeError(llvm::formatv("stage step {0}: {1} holds a NaN or infinity after the update; nothing saved, the "
                                 "last checkpoint is kept (a lower learning rate or gradient clipping may help)",
                                 step, name));
}

/// nonFiniteError on every rank when one of them holds a NaN or infinity in its `slices`.
llvm::Error everySliceFinite(dist::Collectives &comm, llvm::ArrayRef<dist::StateSlice> slices, uint64_t step,
                             llvm::StringRef what) {
  std::optional<std::string> nonFinite = dist::firstNonFinite(slices);
  return dist::everyRankSucceeded(comm, nonFinite ? nonFiniteError(step, *nonFinite) : llvm::Error::success(), what);
}

/// The models a node's regularizers read (none without distill, l2_to_init or ema): the
/// teacher, the weights the stage started from, the moving average.
struct RegularizerModels {
  std::unique_ptr<model::Model> Teacher, Anchor, Average;
};

/// A model of the plan frozen on the device: what a regularizer reads.
llvm::Expected<std::unique_ptr<model::Model>> frozenModel(ExecContext &ctx, const plan::Node &of,
                                                          llvm::StringRef weights, double ropeTheta) {
  auto m = ctx.loadModel(of, weights, ropeTheta);
  if (!m)
    return m.takeError();
  for (const model::NamedParameter &p : (*m)->parameters())
    p.Tensor.requires_grad_(false);
  (*m)->to(ctx.Device);
  return m;
}

llvm::Expected<RegularizerModels> loadRegularizerModels(ExecContext &ctx, const plan::Node &node,
                                                        const plan::TrainNode &train, const model::Model &m,
                                                        train::TrainOptions &options) {
  const plan::TrainSettings &s = train.Settings;
  RegularizerModels models;
  // The teacher and the anchor read the batch as the student does: at the node's RoPE base.
  auto frozenInput = [&](uint64_t input) {
    return frozenModel(ctx, ctx.input(node, input), ctx.inputWeights(node, input), s.RopeTheta);
  };
  if (s.Distill) {
    auto loaded = frozenInput(s.Distill->TeacherInput);
    if (!loaded)
      return loaded.takeError();
    models.Teacher = std::move(*loaded);
    options.Regularize.Teacher = models.Teacher.get();
    options.Regularize.DistillWeight = s.Distill->Weight;
    options.Regularize.Temperature = s.Distill->Temperature;
  }
  if (s.L2ToInit) {
    auto loaded = frozenInput(s.L2ToInit->AnchorInput);
    if (!loaded)
      return loaded.takeError();
    models.Anchor = std::move(*loaded);
    // The anchor of each trained parameter: the same name in the start's weights.
    for (const model::NamedParameter &p : m.trainableParameters()) {
      const model::NamedParameter *same = models.Anchor->findParameter(p.Name);
      if (!same)
        return makeError("l2_to_init: the stage's start weights have no parameter '" + p.Name + "'");
      options.Regularize.Anchor.push_back(same->Tensor);
    }
    options.Regularize.L2Coefficient = s.L2ToInit->Coefficient;
    options.Regularize.AnchorShare = 1.0 / static_cast<double>(ctx.Collectives->worldSize());
  }
  if (s.Ema) {
    // The average starts at the stage's start weights; a later segment goes on with its input's.
    const plan::Node &input = ctx.input(node);
    auto loaded = frozenModel(ctx, input,
                              train.Exec.StageStart ? ctx.inputWeights(node) : joinPath(ctx.nodeDir(input), plan::kAverageFile),
                              s.RopeTheta);
    if (!loaded)
      return loaded.takeError();
    models.Average = std::move(*loaded);
    options.Average = models.Average.get();
    options.AverageDecay = *s.Ema;
  }
  return models;
}

/// How the ranks share each step: gradients summed (data parallel), with ZeRO-1 the
/// optimizer state sharded too, or everything sharded (FSDP). A world of one needs none.
class RankSync {
public:
  /// Whether the stage's model is built sharded: under full sharding on several ranks, where
  /// its weights come from a file as they are (no growth, vocabulary extension or adapters)
  /// and no regularizer reads them whole (those stages are refused by `create`).
  static bool buildsSharded(const ExecContext &ctx, const plan::TrainNode &train) {
    const plan::TrainSettings &s = train.Settings;
    return ctx.Collectives->worldSize() > 1 && ctx.Shard.value_or(train.Exec.Shard) == plan::ShardMode::Full &&
           !s.Grow && !s.VocabExtension && !s.Lora && !s.Freeze && !s.L2ToInit && !s.Ema;
  }

  /// `startWeights` set (buildsSharded): `m` holds no storage yet and is built unit by
  /// unit from that safetensors file, so no rank ever holds it whole; with `fromCheckpoint`
  /// (a resume from a sharded checkpoint) not from it: loadCheckpoint, which must follow,
  /// fills each rank's shards.
  static llvm::Expected<std::unique_ptr<RankSync>> create(ExecContext &ctx, const plan::TrainNode &train,
                                                          model::Model &m, train::AdamW &optimizer,
                                                          const std::string *startWeights, bool fromCheckpoint) {
    std::unique_ptr<RankSync> sync(new RankSync(ctx));
    if (ctx.Collectives->worldSize() == 1)
      return sync;
    if (!startWeights)
      dist::broadcastParameters(*ctx.Collectives, m.parameters());
    sync->Step = &sync->Plain;
    switch (ctx.Shard.value_or(train.Exec.Shard)) {
    case plan::ShardMode::None:
      break;
    case plan::ShardMode::Optimizer: {
      llvm::Expected<std::unique_ptr<dist::ShardedAdamW>> sharded = dist::ShardedAdamW::create(*ctx.Collectives, optimizer);
      if (!sharded)
        return sharded.takeError();
      sync->Zero1 = std::move(*sharded);
      sync->Step = sync->Zero1.get();
      break;
    }
    case plan::ShardMode::Full: {
      // A unit reduces when all its gradients are in: frozen weights would never complete it.
      if (m.trainableParameters().size() != m.parameters().size())
        return makeError("stage '" + train.Exec.Stage + "': shard = \"full\" trains every parameter of a unit; a stage "
                         "with freeze or lora runs with shard = \"optimizer\" or \"none\"");
      // Both read every whole parameter after each step, which full sharding never holds.
      if (train.Settings.L2ToInit || train.Settings.Ema)
        return makeError("stage '" + train.Exec.Stage + "': l2_to_init and ema need whole parameters on every rank; "
                         "run it with shard = \"optimizer\" or \"none\"");
      // From a sharded checkpoint each rank reads only its own shard of every unit, weights
      // and moments alike (loadCheckpoint): nothing is broadcast and no unit is ever whole,
      // where rank 0 filling each unit (from the index, or from the input's file, then
      // overwritten) would read all the weights and broadcast them.
      auto loadUnit = [&](llvm::ArrayRef<size_t> unit) { return m.loadWeights(*startWeights, unit); };
      // On CUDA the parts compute in bf16 (autocast's matmuls would anyway): gathers of half
      // the bytes; the gradients are reduced in fp32 into the fp32 shards. A CPU computes in
      // fp32, as the unsharded path does.
      dist::FullShardOptions precision;
      if (m.device().is_cuda())
        precision.ComputeDtype = at::kBFloat16;
      llvm::Expected<std::unique_ptr<dist::FullShard>> sharded =
          !startWeights   ? dist::FullShard::create(*ctx.Collectives, m, optimizer, precision)
          : fromCheckpoint ? dist::FullShard::build(*ctx.Collectives, m, optimizer, nullptr, precision)
                           : dist::FullShard::build(*ctx.Collectives, m, optimizer, loadUnit, precision);
      if (!sharded)
        return sharded.takeError();
      sync->Full = std::move(*sharded);
      sync->Step = sync->Full.get();
      break;
    }
    }
    return sync;
  }

  train::StepSync *step() const { return Step; }

  /// This rank's slices of the weights and optimizer state, however the ranks keep them:
  /// what it writes to a sharded checkpoint, or what it reads from one.
  std::vector<dist::StateSlice> checkpointSlices(train::AdamW &optimizer, dist::SlicePurpose purpose) const {
    if (Full)
      return Full->checkpointSlices();
    if (Zero1)
      return Zero1->checkpointSlices(optimizer, purpose);
    return dist::replicatedSlices(optimizer, Ctx.Collectives->rank(), Ctx.Collectives->worldSize(), purpose);
  }

  /// Loads what this rank keeps from a sharded checkpoint written by any world size and
  /// shard mode: every rank reads only the slices it needs.
  llvm::Error loadCheckpoint(train::AdamW &optimizer, const std::string &indexPath) {
    return dist::loadCheckpointSlices(*Ctx.Collectives, indexPath,
                                      checkpointSlices(optimizer, dist::SlicePurpose::Load), optimizer);
  }

  /// Every rank writes its slices as its shard of the checkpoint at `step`; then rank 0
  /// writes the index and commits the checkpoint (state.json, written last): nothing is
  /// gathered, and a checkpoint cut short anywhere is never taken for one.
  llvm::Error saveCheckpoint(const model::Model &model, const model::Model *average, train::AdamW &optimizer,
                             const rundir::CheckpointStore &store, const rundir::CheckpointState &state, uint64_t keep) {
    dist::Collectives &comm = *Ctx.Collectives;
    const std::string what = llvm::formatv("saving the checkpoint at step {0}", state.Step).str();
    std::vector<dist::StateSlice> slices = checkpointSlices(optimizer, dist::SlicePurpose::Save);
    // The weights it does not train (frozen, a LoRA's base) too: evals and exports read them.
    for (dist::StateSlice &s : dist::frozenSlices(model.parameters(), comm.rank(), comm.worldSize()))
      slices.push_back(std::move(s));
    if (llvm::Error e = everySliceFinite(comm, slices, state.Step, what))
      return e;
    if (llvm::Error e = comm.rankZeroAlone(what, [&] { return store.begin(state.Step).takeError(); }))
      return e;
    const std::string dir = store.dirFor(state.Step);
    if (llvm::Error e = dist::everyRankSucceeded(
            comm, dist::writeShard(dir, comm.rank(), comm.worldSize(), slices), what))
      return e;
    return comm.rankZeroAlone(what, [&]() -> llvm::Error {
      // The mode the ranks ran in (a world of one shards nothing, whatever --shard says).
      const plan::ShardMode mode = Full ? plan::ShardMode::Full : Zero1 ? plan::ShardMode::Optimizer : plan::ShardMode::None;
      if (llvm::Error e = dist::writeShardIndex(dir, comm.worldSize(), plan::enumName(mode), optimizer.steps()))
        return e;
      // The moving average is the same on every rank (it refuses full sharding): one whole file.
      if (average)
        if (llvm::Error e = average->saveWeights(joinPath(dir, plan::kAverageFile)))
          return e;
      return store.commit(state, keep);
    });
  }

  /// The trained model at `modelPath` and the optimizer state at `optimizerPath`, whole, as
  /// one process writes them, so a later stage starts from them on any number of ranks.
  /// Fully sharded, rank 0 streams both a unit at a time (full sharding refuses what else
  /// `saveWeights` writes: LoRA, a moving average); under ZeRO-1 it runs `saveWeights` and
  /// streams the optimizer state a parameter at a time; else it runs `saveWeights` and writes
  /// the state. The others wait however long a large model's save takes
  /// (Collectives::rankZeroAlone, paceByRankZero).
  llvm::Error saveTrained(train::AdamW &optimizer, uint64_t step, const std::string &modelPath,
                          const std::string &optimizerPath, llvm::function_ref<llvm::Error()> saveWeights) {
    const std::string what = "saving the trained model";
    if (Full) {
      if (llvm::Error e = everySliceFinite(*Ctx.Collectives, Full->checkpointSlices(), step, what))
        return e;
      return Full->saveWhole(optimizer, what, modelPath, optimizerPath);
    }
    if (Zero1) {
      // The moments are never whole on one rank: each checks its shard of them.
      if (llvm::Error e = everySliceFinite(
              *Ctx.Collectives, Zero1->checkpointSlices(optimizer, dist::SlicePurpose::Save), step, what))
        return e;
      return Zero1->saveWhole(optimizer, what, saveWeights, optimizerPath);
    }
    return Ctx.Collectives->rankZeroAlone(what, [&]() -> llvm::Error {
      if (llvm::Error e = saveWeights())
        return e;
      return optimizer.saveState(optimizerPath);
    });
  }

  /// Runs `work` (evals, whose ranks may run different numbers of forward passes) with the
  /// whole parameters on every rank when they are sharded.
  llvm::Error withWholeModel(llvm::function_ref<llvm::Error()> work) {
    if (!Full)
      return work();
    Full->gatherWhole();
    llvm::Error e = work();
    Full->releaseWhole();
    return e;
  }

private:
  explicit RankSync(ExecContext &ctx) : Ctx(ctx), Plain(*ctx.Collectives) {}

  ExecContext &Ctx;
  dist::DataParallel Plain;
  std::unique_ptr<dist::ShardedAdamW> Zero1; ///< this rank holds 1/W of the optimizer state
  std::unique_ptr<dist::FullShard> Full;     ///< this rank holds 1/W of the parameters and state
  train::StepSync *Step = nullptr;
};

/// A progress line per step: updated in place on a terminal, every 25 steps in a log.
class StepProgress {
public:
  StepProgress(bool enabled, std::string node, uint64_t first, uint64_t last)
      : Enabled(enabled), Node(std::move(node)), First(first), Last(last) {}

  void step(uint64_t step, const train::StepResult &r, uint64_t tokensDone, uint64_t skipped) {
    if (!Enabled)
      return;
    double seconds = Line.elapsed();
    uint64_t done = step - First;
    double rate = seconds > 0 ? static_cast<double>(tokensDone) / seconds : 0;
    double eta = done > 0 ? seconds / static_cast<double>(done) * static_cast<double>(Last - step) : 0;
    std::string text = llvm::formatv("[{0}] step {1}/{2}  {3:f0} tok/s  loss {4:f4}  lr {5:e2}  ETA {6:f0}s", Node,
                                     step, Last, rate, r.Loss, r.LR, eta)
                           .str() +
                       (skipped ? llvm::formatv("  skipped {0}", skipped).str() : "");
    if (step == Last || (!Line.redraws() && (done % 25 == 0 || r.Skipped)))
      Line.print(text);
    else
      Line.show(text);
  }

private:
  bool Enabled;
  std::string Node;
  uint64_t First, Last;
  ProgressLine Line;
};

/// Where a step sits in tokens: the stage's count and the chain's (all stages before it).
struct TokenClock {
  uint64_t PerStep = 0, ChainBase = 0; ///< chain tokens at stage token 0

  uint64_t stage(uint64_t step) const { return step * PerStep; }
  uint64_t chain(uint64_t step) const { return ChainBase + stage(step); }
};

/// Whether one of `during`'s in-loop points falls on `step` (before its update).
bool dueAt(const plan::DuringEval &during, const TokenClock &clock, uint64_t step) {
  return llvm::any_of(during.StageTokens, [&](uint64_t t) { return rundir::duringEvalStep(t, clock.PerStep) == step; });
}

bool anyEvalDue(const plan::TrainNode &train, const TokenClock &clock, uint64_t step) {
  return llvm::any_of(train.Exec.EvalDuring, [&](const auto &eval) { return dueAt(eval.second, clock, step); });
}

/// The evals of the plan's in-loop points that fall on `step` (before its update).
llvm::Error evaluateDue(ExecContext &ctx, const plan::Node &node, const plan::TrainNode &train, const model::Model &m,
                        uint64_t micro, const TokenClock &clock, uint64_t step, rundir::MetricsLog &log) {
  const plan::TrainSettings &s = train.Settings;
  for (const auto &[eval, during] : train.Exec.EvalDuring) {
    if (!dueAt(during, clock, step))
      continue;
    rundir::EvalRecord base;
    base.Node = node.Name;
    base.Eval = eval;
    base.Stage = train.Exec.Stage;
    base.StageTokens = clock.stage(step);
    base.ChainTokens = clock.chain(step);
    if (llvm::Error e = evaluate(ctx, m, during.Splits, during.MaxTokens, s.SeqLen, micro,
                                 s.Attention == plan::AttentionMask::WithinDocument, base, log))
      return e;
    if (during.Tasks)
      if (llvm::Error e = scoreTasks(ctx, m, *during.Tasks, s.SeqLen, micro, taskRecordAt(base), log, ctx.nodeDir(node)))
        return e;
  }
  return llvm::Error::success();
}

/// The wall-clock fields of each train record (docs/run-format.md): when the step ended, the
/// node's training seconds so far, the step's tokens per second and, on CUDA, the model FLOPs
/// utilization (the plan's FLOPs per token against its `cost.peak_flops` on every rank) and
/// the peak memory. A resumed node counts on from the last record it kept, so the time it was
/// down is not counted.
class StepClock {
public:
  using Steady = std::chrono::steady_clock;

  StepClock(const ExecContext &ctx, const plan::TrainNode &train, double secondsBefore)
      : Device(ctx.Device), SecondsBefore(secondsBefore), TokensPerStep(plan::tokensPerStep(train.Settings)) {
    if (Device.is_cuda() && train.Ledger.Tokens && ctx.Plan->Cost.PeakFlops > 0)
      TokensPerSAtPeak = ctx.Plan->Cost.PeakFlops * ctx.Collectives->worldSize() /
                          (train.Ledger.Flops / static_cast<double>(train.Ledger.Tokens));
  }

  void stepStarts() { StepStart = Steady::now(); }

  void stamp(rundir::TrainRecord &record) const {
    const Steady::time_point now = Steady::now();
    auto seconds = [](Steady::duration d) { return std::chrono::duration<double>(d).count(); };
    // Dividing by a power of ten gives the double nearest the decimal: short lines.
    auto rounded = [](double x, double perUnit) { return std::round(x * perUnit) / perUnit; };
    record.Time = rounded(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(),
                          1e3);
    record.ElapsedS = rounded(SecondsBefore + seconds(now - NodeStart), 1e3);
    const double step = seconds(now - StepStart);
    if (step <= 0)
      return;
    record.TokensPerS = rounded(static_cast<double>(TokensPerStep) / step, 10);
    if (TokensPerSAtPeak)
      record.Mfu = rounded(*record.TokensPerS / *TokensPerSAtPeak, 1e4);
    record.PeakMemoryBytes = train::peakMemoryBytes(Device);
  }

private:
  c10::Device Device;
  double SecondsBefore;
  uint64_t TokensPerStep;
  std::optional<double> TokensPerSAtPeak; ///< all ranks at 100% MFU; CUDA only
  Steady::time_point NodeStart = Steady::now(), StepStart = NodeStart;
};

/// The training seconds a resumed node's kept records reach (its last train record's
/// elapsed_s; 0 without one).
llvm::Expected<double> secondsLogged(const std::string &metricsPath) {
  llvm::Expected<rundir::Metrics> kept = rundir::readMetrics(metricsPath);
  if (!kept)
    return kept.takeError();
  for (auto r = kept->Train.rbegin(); r != kept->Train.rend(); ++r)
    if (r->ElapsedS)
      return *r->ElapsedS;
  return 0.0;
}

/// Each step's record: "train" with the loss per stream, or "skip" for a non-finite loss
/// that on_nonfinite = "skip" dropped. It counts the skips and stops a node that diverged.
class StepRecords {
public:
  StepRecords(const plan::Node &node, const plan::TrainNode &train, const TokenClock &clock, const StepClock &wall,
              const Start &start, rundir::MetricsLog &log)
      : Node(node), Train(train), Clock(clock), Wall(wall), Log(log), Skipped(start.SkippedSteps),
        Consecutive(start.ConsecutiveSkips) {}

  /// Records the update that ended at stage step `step`.
  llvm::Error write(uint64_t step, const train::StepResult &r) {
    const std::string &stage = Train.Exec.Stage;
    if (r.Skipped) {
      ++Skipped;
      rundir::SkipRecord skip{Node.Name, stage, step, Clock.stage(step), Clock.chain(step), "", "", r.Loss, Skipped};
      (std::isfinite(r.Loss) ? skip.NonFiniteGradNorm : skip.NonFiniteLoss) =
          rundir::nonFiniteName(std::isfinite(r.Loss) ? r.GradNorm : r.Loss).str();
      if (llvm::Error e = Log.write(skip))
        return e;
      if (++Consecutive >= kMaxConsecutiveSkips)
        return makeError(llvm::formatv("stage steps {0} to {1}: the loss or gradient norm was not finite {2} steps "
                                       "in a row (on_nonfinite = \"skip\" dropped them); stopping, the last "
                                       "checkpoint is kept",
                                       step + 1 - Consecutive, step, Consecutive));
      return llvm::Error::success();
    }
    Consecutive = 0;
    rundir::TrainRecord record{Node.Name, stage, step, Clock.stage(step), Clock.chain(step), r.Loss, r.LR,
                               r.GradNorm, {}, {}, std::nullopt};
    record.LossLM = r.LossLM;
    record.LossDistill = r.LossDistill;
    record.LossL2 = r.LossL2;
    const std::vector<std::string> &streams = Train.Settings.Mixture.Streams;
    for (size_t k = 0; k < streams.size(); ++k)
      if (r.StreamLossTokens[k] > 0) {
        record.LossByStream[streams[k]] = r.StreamLossSums[k] / static_cast<double>(r.StreamLossTokens[k]);
        record.LossTokensByStream[streams[k]] = static_cast<uint64_t>(r.StreamLossTokens[k]);
      }
    if (Train.Settings.OnNonFinite == plan::NonFiniteAction::Skip)
      record.SkippedSteps = Skipped;
    Wall.stamp(record);
    return Log.write(record);
  }

  uint64_t skipped() const { return Skipped; }
  uint64_t consecutive() const { return Consecutive; }

private:
  const plan::Node &Node;
  const plan::TrainNode &Train;
  TokenClock Clock;
  const StepClock &Wall;
  rundir::MetricsLog &Log;
  uint64_t Skipped, Consecutive;
};

/// Whether the update that ended at `step` crossed a checkpoint boundary (the node's end
/// saves the trained model instead).
bool checkpointDue(const plan::TrainNode &train, const TokenClock &clock, uint64_t step) {
  const uint64_t every = train.Exec.CheckpointEvery;
  return every && clock.stage(step) / every != clock.stage(step - 1) / every && step < train.Settings.Steps.End;
}

} // namespace

llvm::Error mixtape::exec::runTrain(ExecContext &ctx, const plan::Node &node, const plan::TrainNode &train) {
  const plan::TrainSettings &s = train.Settings;
  const std::string dir = ctx.nodeDir(node);
  const uint64_t first = s.Steps.Begin, last = s.Steps.End;
  const TokenClock clock{plan::tokensPerStep(s), train.Exec.ChainTokens - first * plan::tokensPerStep(s)};
  llvm::Expected<std::unique_ptr<data::TrainSamples>> samples = openSamples(ctx, train);
  if (!samples)
    return samples.takeError();
  llvm::Expected<BatchShare> share = batchShare(ctx, train);
  if (!share)
    return share.takeError();

  // The start: the input's model and optimizer state, or the last checkpoint. Built sharded,
  // the model has no storage until RankSync fills it unit by unit from `startWeights`, or
  // each rank its shards from a sharded checkpoint.
  std::optional<std::string> startWeights;
  if (RankSync::buildsSharded(ctx, train))
    startWeights = ctx.inputWeights(node);
  auto m = startWeights ? ctx.unallocatedModel(ctx.input(node), s.RopeTheta)
                        : ctx.loadModel(ctx.input(node), ctx.inputWeights(node), s.RopeTheta);
  if (!m)
    return m.takeError();
  // An edge grows the model or moves it to a new vocabulary (lint: not both at once).
  if (s.Grow) {
    llvm::Expected<model::ModelConfig> grownConfig = ctx.modelConfigOf(node, s.RopeTheta);
    if (!grownConfig)
      return grownConfig.takeError();
    m = model::growModel(**m, *grownConfig, model::GrowOptions{s.Grow->Noise, s.Grow->Seed});
  } else if (s.VocabExtension) {
    m = ctx.extendVocabulary(**m, *s.VocabExtension);
  }
  if (!m)
    return m.takeError();
  llvm::Expected<std::vector<double>> lrScales = applyTrainable(s, **m);
  if (!lrScales)
    return lrScales.takeError();
  // A later segment of a LoRA stage goes on with the adapters its input trained, not merged.
  if (s.Lora && !train.Exec.StageStart)
    if (llvm::Error e = (*m)->loadWeights(joinPath(ctx.nodeDir(ctx.input(node)), kUnmergedLora)))
      return e;
  (*m)->to(ctx.Device);
  train::AdamWOptions adamw{s.Optimizer.Beta1, s.Optimizer.Beta2, s.Optimizer.Eps, s.Optimizer.WeightDecay,
                            s.Optimizer.DecayEmbeddings};
  train::AdamW optimizer((*m)->trainableParameters(), adamw, std::move(*lrScales));
  if (ctx.Progress && (s.Freeze || s.Lora)) {
    uint64_t all = 0, trained = 0;
    for (const model::NamedParameter &p : (*m)->parameters())
      (p.Tensor.requires_grad() ? trained : all) += static_cast<uint64_t>(p.Tensor.numel());
    // LoRA's factors are not the model's: what it has is what it exports.
    if (!s.Lora)
      all += trained;
    llvm::errs() << llvm::formatv("[{0}] trainable {1} of {2} parameters\n", node.Name,
                                  plan::humanCount(static_cast<double>(trained)), plan::humanCount(static_cast<double>(all)));
  }
  train::TrainOptions options;
  llvm::Expected<RegularizerModels> regularizers = loadRegularizerModels(ctx, node, train, **m, options);
  if (!regularizers)
    return regularizers.takeError();
  std::string *weightsToBuild = startWeights ? &*startWeights : nullptr;
  llvm::Expected<Start> start =
      restore(ctx, node, train, **m, optimizer, regularizers->Average.get(), *share, weightsToBuild);
  if (!start)
    return start.takeError();
  llvm::Expected<std::unique_ptr<RankSync>> sync = RankSync::create(ctx, train, **m, optimizer, weightsToBuild,
                                                                    start->CheckpointIndex.has_value());
  if (!sync)
    return sync.takeError();
  if (start->CheckpointIndex)
    if (llvm::Error e = (*sync)->loadCheckpoint(optimizer, *start->CheckpointIndex))
      return e;
  options.ClipNorm = s.GradClip;
  options.Streams = s.Mixture.Streams.size();
  options.SkipNonFinite = s.OnNonFinite == plan::NonFiniteAction::Skip;
  options.Sync = (*sync)->step();
  options.Memory.Checkpointing.Every = train.Exec.ActivationCheckpointing;
  train::Trainer trainer(**m, optimizer, s.LR, options);
  trainer.setTokensSeen(static_cast<double>(clock.stage(start->Step)));

  rundir::MetricsLog log;
  double secondsBefore = 0;
  if (ctx.WritesFiles) {
    const std::string metricsPath = joinPath(dir, "metrics.jsonl");
    if (llvm::Error e = log.open(metricsPath, start->KeepMetrics))
      return e;
    if (start->Step > first) {
      // The wall clock is no reason to refuse a resume: a log it cannot read counts from 0.
      llvm::Expected<double> seconds = secondsLogged(metricsPath);
      if (seconds)
        secondsBefore = *seconds;
      else
        llvm::errs() << llvm::formatv("[{0}] warning: elapsed_s counts from 0 again: {1}\n", node.Name,
                                      llvm::toString(seconds.takeError()));
    }
  }
  rundir::CheckpointStore checkpoints(dir);
  StepClock wall(ctx, train, secondsBefore);
  StepRecords records(node, train, clock, wall, *start, log);
  StepProgress progress(ctx.Progress, node.Name, first, last);
  data::Sample scratch;
  auto read = [&](uint64_t i, data::Sample &out) { (*samples)->read(i, out); };
  auto refuseNonFinite = [&](uint64_t step) -> llvm::Error {
    if (std::optional<std::string> name = train::firstNonFinite(optimizer))
      return nonFiniteError(step, *name);
    return llvm::Error::success();
  };
  auto saveCheckpoint = [&](uint64_t step) -> llvm::Error {
    // Rank 0 commits it, with its metrics log's size (the others log nothing).
    return (*sync)->saveCheckpoint(**m, regularizers->Average.get(), optimizer, checkpoints,
                                   {step, log.size(), train::numericsFingerprint(ctx.Device), records.skipped(),
                                    records.consecutive(), static_cast<uint64_t>(ctx.Collectives->worldSize()),
                                    share->Micro, {}},
                                   train.Exec.CheckpointKeep);
  };

  for (uint64_t step = start->Step;; ++step) {
    if (anyEvalDue(train, clock, step))
      if (llvm::Error e = (*sync)->withWholeModel(
              [&] { return evaluateDue(ctx, node, train, **m, share->Micro, clock, step, log); }))
        return e;
    if (step == last)
      break;
    wall.stepStarts();
    std::vector<train::MicroBatch> batch;
    const uint64_t firstSample = (step - first) * s.BatchSequences + share->Offset;
    for (uint64_t k = 0; k < share->Count; k += share->Micro)
      batch.push_back(makeMicroBatch(read, firstSample + k, share->Micro, s.SeqLen,
                                     s.Attention == plan::AttentionMask::WithinDocument, scratch));
    (*m)->reseedLoraDropout(step);
    llvm::Expected<train::StepResult> r = trainer.step(batch);
    if (!r)
      return makeError(llvm::formatv("stage step {0}: {1}; the last checkpoint is kept", step,
                                     llvm::toString(r.takeError())));
    if (llvm::Error e = records.write(step + 1, *r))
      return e;
    progress.step(step + 1, *r, clock.stage(step + 1 - start->Step), records.skipped());
    const int stop = step + 1 < last ? ctx.stopRequested() : 0; // the last step ends the node anyway
    if (checkpointDue(train, clock, step + 1) || stop)
      if (llvm::Error e = saveCheckpoint(step + 1))
        return e;
    if (stop)
      return makeError(llvm::formatv("stopped by {0} after stage step {1}, checkpoint written to {2}; run the same "
                                     "command again to resume",
                                     signalName(stop), step + 1, checkpoints.dirFor(step + 1)));
  }
  const std::string modelPath = joinPath(dir, "model.safetensors"), optimizerPath = joinPath(dir, "optimizer.safetensors");
  return (*sync)->saveTrained(optimizer, last, modelPath, optimizerPath, [&]() -> llvm::Error {
    if (llvm::Error e = refuseNonFinite(last))
      return e;
    if (s.Lora && stageContinues(ctx, node))
      if (llvm::Error e = (*m)->saveWeights(joinPath(dir, kUnmergedLora)))
        return e;
    // What later stages, evals, merges and exports read: the adapters merged into the weights.
    (*m)->mergeLora();
    if (llvm::Error e = (*m)->saveWeights(modelPath))
      return e;
    if (regularizers->Average)
      return regularizers->Average->saveWeights(joinPath(dir, plan::kAverageFile));
    return llvm::Error::success();
  });
}
