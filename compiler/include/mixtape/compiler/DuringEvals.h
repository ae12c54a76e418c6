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

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mixtape {

/// The stage step at whose start the in-loop point `stageTokens` is evaluated: the first
/// step boundary at or past it.
int64_t duringEvalStep(uint64_t stageTokens, uint64_t tokensPerStep);

/// A train node's checkpoint folder for stage step `step`: <node dir>/checkpoints/step-00000042.
std::string checkpointDir(llvm::StringRef nodeDir, int64_t step);

/// An in-loop eval point of a done train node that its metrics.jsonl lacks.
struct MissingDuringEval {
  enum Source { InputModel, Checkpoint, FinalModel, Unavailable };
  std::string eval;                   ///< the eval's name (a key of exec.eval_during)
  int64_t step = 0;                   ///< stage step whose start it evaluates
  int64_t stageTokens = 0;            ///< step * tokens per step: what its records say
  std::vector<std::pair<std::string, std::string>> splits; ///< (stream, split) not logged
  Source source = Unavailable;
  std::string weights;                ///< the retained model.safetensors (not Unavailable)
};

/// The points of `exec.eval_during` of a train node (plan `settings` and `exec`) whose
/// "during" records (by eval, stage tokens, stream and split) are not in
/// `<nodeDir>/metrics.jsonl`, in plan order, each with the retained weights at its step:
/// `<inputDir>/model.safetensors` at the node's first step, a complete checkpoint, or the
/// node's model.safetensors at its last step.
std::vector<MissingDuringEval> missingDuringEvals(const llvm::json::Object &settings,
                                                  const llvm::json::Object &exec, llvm::StringRef nodeDir,
                                                  llvm::StringRef inputDir);

/// "from the retained checkpoint at step 80", "needs retraining: ...": for messages.
std::string describeSource(const MissingDuringEval &point);

} // namespace mixtape
