//===- ExecContext.h - what the node runners share --------------*- C++ -*-===//
#pragma once

#include "RunDir.h"

#include "mixtape/data/Sampler.h"

#include "llvm/Support/JSON.h"

#include <c10/core/Device.h>

#include <memory>
#include <string>
#include <vector>

namespace mixtape::dist {
class Collectives;
}

namespace mixtape::exec {

struct ExecNode {
  std::string name, kind, dir, hash;
  std::vector<size_t> inputs;
  const llvm::json::Object *entry = nullptr; ///< the node's object in the plan
  const llvm::json::Object *settings = nullptr;
  const llvm::json::Object *exec = nullptr;
};

struct ExecContext {
  const llvm::json::Object *plan = nullptr;
  std::string runDir, recipeDir;
  uint64_t seed = 0;
  bool progress = true;
  c10::Device device = c10::Device(c10::kCPU); ///< where train and eval nodes compute
  std::vector<ExecNode> nodes;
  std::unique_ptr<data::DataSources> sources;
  /// The data-parallel ranks (a world of one when not distributed); set by executePlan.
  dist::Collectives *collectives = nullptr;
  /// Rank 0 writes the run directory's files; the others only compute.
  bool writesFiles = true;
  /// --zero1: every train node shards its optimizer state (else only where the plan says).
  bool zero1 = false;

  std::string nodeDir(const ExecNode &n) const { return joinPath(runDir, n.dir); }
  /// The stream `name` of the plan, as the data layer opens it, starting at `cursor`.
  llvm::Expected<data::NodeStream> stream(llvm::StringRef name, uint64_t cursor) const;
};

/// Node runners (NodeRunners.cpp): each writes its outputs into its node directory; the
/// executor writes the done marker after they return successfully.
llvm::Error runInit(ExecContext &ctx, const ExecNode &node);
llvm::Error runTrain(ExecContext &ctx, const ExecNode &node);
llvm::Error runEval(ExecContext &ctx, const ExecNode &node);
llvm::Error runMerge(ExecContext &ctx, const ExecNode &node);
/// A done train node's in-loop eval points that its metrics lack (the recipe's points
/// changed; they are not hashed): evaluates those its retained weights can serve, appends
/// their records, and names those that only retraining would evaluate.
llvm::Error serveDuringEvals(ExecContext &ctx, const ExecNode &node);
/// The model a finished node left, as a new Hugging Face folder `outDir`.
llvm::Error exportModel(ExecContext &ctx, const ExecNode &node, llvm::StringRef outDir);

} // namespace mixtape::exec
