//===- Executor.h - run a plan ---------------------------------*- C++ -*-===//
//
// `mixtape exec PLAN` and `mixtape run RECIPE` end here: the plan's nodes run in order in
// a run directory, each in <run dir>/<node dir>/. A node whose done marker is there is
// skipped; an interrupted train node resumes from its last checkpoint, bit-identical on
// the same numerics (docs/run-format.md).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <string>
#include <vector>

namespace mixtape::exec {

struct ExecOptions {
  std::string runDir;
  /// Run only these nodes (their inputs must be done); empty: every node.
  std::vector<std::string> nodes;
  /// Print progress lines (a terminal gets one updating line).
  bool progress = true;
};

/// Refuses provisional plans and plans of another format version.
llvm::Error executePlan(const llvm::json::Object &plan, const ExecOptions &options);

} // namespace mixtape::exec
