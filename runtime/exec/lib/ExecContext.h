//===- ExecContext.h - what the node runners share --------------*- C++ -*-===//
#pragma once

#include "mixtape/data/Sampler.h"
#include "mixtape/data/Tokenizer.h"
#include "mixtape/data/Verify.h"
#include "mixtape/exec/Executor.h"
#include "mixtape/model/ModelConfig.h"
#include "mixtape/plan/Plan.h"
#include "mixtape/rundir/Metrics.h"

#include "llvm/Support/Error.h"

#include <c10/core/Device.h>

#include <map>
#include <memory>
#include <string>

namespace mixtape::dist {
class Collectives;
}
namespace mixtape::model {
class Model;
}

namespace mixtape::exec {

struct PreparedTask;

struct ExecContext {
  const plan::Plan *Plan = nullptr;
  std::string RunDir;
  bool Progress = true;
  c10::Device Device = c10::Device(c10::kCPU); ///< where train and eval nodes compute
  std::unique_ptr<data::DataSources> Sources;
  /// How the data and the checkpoints' weights are checked before use (--verify-data).
  data::VerifyOptions Verification;
  /// The data-parallel ranks (a world of one when not distributed); set by executePlan.
  dist::Collectives *Collectives = nullptr;
  /// Rank 0 writes the run directory's files; the others only compute.
  bool WritesFiles = true;
  /// --shard: how every train node shards its state (unset: as the plan says).
  std::optional<plan::ShardMode> Shard;
  /// The model's tokenizer and the tasks tokenized with it, loaded on first use (Tasks.cpp).
  std::unique_ptr<data::Tokenizer> Tokenizer;
  std::map<std::string, std::shared_ptr<const PreparedTask>> Tasks;

  std::string nodeDir(const plan::Node &node) const;
  /// The signal that asked the run to stop (support/Signals.h), as rank 0 saw it, or 0;
  /// every rank gets the same answer at the same point.
  int stopRequested() const;
  const plan::Node &input(const plan::Node &node, size_t i = 0) const { return Plan->Nodes[node.Inputs[i].Index]; }
  /// The weights input `i` of `node` reads: its model.safetensors, or its ema.safetensors
  /// where the input names a train node's moving average.
  std::string inputWeights(const plan::Node &node, size_t i = 0) const;
  /// The stream `name` of the plan, as the data layer opens it, starting at `cursor`.
  llvm::Expected<data::NodeStream> stream(llvm::StringRef name, uint64_t cursor) const;
  /// The model `of` made (its chain's init's architecture: a sweep over sizes has several)
  /// with the weights of `weights` (a model.safetensors, or a sharded checkpoint's
  /// index.json, read tensor by tensor) and RoPE base `ropeTheta`
  /// (nullopt: the init's). A model that came from a Hugging Face checkpoint keeps what the
  /// plan does not spell out (norm eps, head size, tied head, rotary fraction, activation):
  /// its init node saved the checkpoint's config.
  llvm::Expected<std::unique_ptr<model::Model>> loadModel(const plan::Node &of, llvm::StringRef weights,
                                                          std::optional<double> ropeTheta) const;
  /// loadModel's model without weights: its parameters hold no storage, on Device, until
  /// fully sharded training fills them a unit at a time (Model::createUnallocated).
  llvm::Expected<std::unique_ptr<model::Model>> unallocatedModel(const plan::Node &of,
                                                                 std::optional<double> ropeTheta) const;
  /// `m` moved to the tokenizer of vocabulary extension `e` (model/VocabExtension.h).
  llvm::Expected<std::unique_ptr<model::Model>> extendVocabulary(const model::Model &m,
                                                                 const plan::VocabExtension &e) const;
  /// The architecture of the model `of` made: its init's, with the sizes of the last
  /// growth (settings.grow) and the vocabulary of the last extension between them.
  llvm::Expected<model::ModelConfig> modelConfigOf(const plan::Node &of, std::optional<double> ropeTheta) const;
  /// A new random model of init node `init`'s architecture.
  llvm::Expected<std::unique_ptr<model::Model>> randomModel(const plan::Node &init, uint64_t seed) const;
};

/// Evaluates `m` on each split and appends one record per split to `log`: `base` with the
/// stream, split, loss, perplexity and tokens filled in.
llvm::Error evaluate(ExecContext &ctx, const model::Model &m, const std::vector<plan::EvalSplit> &splits,
                     uint64_t maxTokens, uint64_t seqLen, uint64_t microBatch, bool withDocuments,
                     const rundir::EvalRecord &base, rundir::MetricsLog &log);

/// Scores each task on `m` (at most `seqLen` tokens a pass, `microBatch` choices a batch)
/// and appends one record per task to `log`: `base` with the task's metrics filled in.
/// Rank 0 also writes the per-item file into `itemsDir`: "<task>.items.jsonl" for a final
/// point, "<task>@<chain tokens>.items.jsonl" for an in-loop one.
llvm::Error scoreTasks(ExecContext &ctx, const model::Model &m, const plan::TaskTable &tasks, uint64_t seqLen,
                       uint64_t microBatch, const rundir::TaskRecord &base, rundir::MetricsLog &log,
                       llvm::StringRef itemsDir);

/// A task record at the point (model, eval, where) of `point`.
rundir::TaskRecord taskRecordAt(const rundir::EvalRecord &point);

// Node runners: each writes its outputs into its node directory; the executor writes the
// done marker after they return successfully.
llvm::Error runInit(ExecContext &ctx, const plan::Node &node, const plan::InitNode &init);
llvm::Error runTrain(ExecContext &ctx, const plan::Node &node, const plan::TrainNode &train);
llvm::Error runEval(ExecContext &ctx, const plan::Node &node, const plan::EvalNode &eval);
llvm::Error runMerge(ExecContext &ctx, const plan::Node &node, const plan::MergeNode &merge);
/// A done train node's in-loop eval points that its metrics lack (the recipe's points
/// changed; they are not hashed): evaluates those its retained weights can serve, appends
/// their records, and names those that only retraining would evaluate.
llvm::Error serveDuringEvals(ExecContext &ctx, const plan::Node &node, const plan::TrainNode &train);
/// The model `node` left with the weights of `weights` (its model.safetensors, or a
/// checkpoint's), as a new Hugging Face folder `outDir`.
llvm::Error exportModel(ExecContext &ctx, const plan::Node &node, llvm::StringRef weights, llvm::StringRef outDir,
                        const ExportOptions &options);

} // namespace mixtape::exec
