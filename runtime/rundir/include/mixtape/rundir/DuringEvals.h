//===- DuringEvals.h - in-loop eval points and what can serve them -*- C++ -*-===//
//
// A train node's in-loop eval points (plan exec.eval_during) are execution-only: changing
// them changes no hash, so a done node is not trained again. What the node retained — its
// input's model at its first step, checkpoints, its final model at its last — can still
// evaluate new points. `mixtape run` evaluates them and `mixtape plan --explain` says which
// points can be served that way and which only retraining would evaluate; both ask here.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Plan.h"
#include "mixtape/rundir/Checkpoints.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mixtape::rundir {

/// The stage step at whose start the in-loop point `stageTokens` is evaluated: the first
/// step boundary at or past it.
uint64_t duringEvalStep(uint64_t stageTokens, uint64_t tokensPerStep);

/// An in-loop eval point of a done train node that its metrics.jsonl lacks.
struct MissingDuringEval {
  enum Source { InputModel, Checkpoint, FinalModel, Unavailable };
  std::string Eval;                      ///< the eval's name (a key of exec.eval_during)
  uint64_t Step = 0;                     ///< stage step whose start it evaluates
  uint64_t StageTokens = 0;              ///< Step * tokens per step: what its records say
  std::vector<plan::EvalSplit> Splits;   ///< those not logged
  std::vector<std::string> Tasks;        ///< tasks not logged, by name
  Source From = Unavailable;
  std::string Weights; ///< the retained model.safetensors, or a checkpoint's index.json (not Unavailable)
};

/// The points of `node`'s exec.eval_during whose "during" records (by eval, stage tokens,
/// and stream and split, or task) are not in `<nodeDir>/metrics.jsonl`, in plan order, each with the
/// retained weights at its step: `<inputDir>/model.safetensors` at the node's first step,
/// a valid checkpoint (checked as deep as `check` says), or the node's model.safetensors
/// at its last step.
llvm::Expected<std::vector<MissingDuringEval>> missingDuringEvals(const plan::TrainNode &node,
                                                                  llvm::StringRef nodeDir, llvm::StringRef inputDir,
                                                                  CheckpointStore::Check check);

/// "from the retained checkpoint at step 80", "needs retraining: ...": for messages.
std::string describeSource(const MissingDuringEval &point);

} // namespace mixtape::rundir
