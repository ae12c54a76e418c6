//===- Print.h - what `mixtape plan` shows people ---------------*- C++ -*-===//
#pragma once

#include "mixtape/plan/Plan.h"

#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

namespace mixtape::plan {

/// A node's state in a run directory, like a build system's: done (its done marker is
/// there), partial (started; it resumes), or to run, with why (rundir::planStatus).
struct NodeStatus {
  enum State { Done, Partial, ToRun } Current = ToRun;
  std::string Why;
};

/// The table of nodes (with their states when `status` is given), the token ledger and
/// what sharing saves.
void printPlanSummary(const Plan &plan, llvm::raw_ostream &os, const std::vector<NodeStatus> *status);
/// Graphviz: nodes styled by kind, shared nodes (several variants) marked.
void writePlanDot(const Plan &plan, llvm::raw_ostream &os);
/// Everything about one node: resolved settings, tokens -> steps, what the hash covers and
/// where its eval points come from.
void explainNode(const Plan &plan, const Node &node, llvm::raw_ostream &os);

/// 2000000000 -> "2.00B", 1048576 -> "1.05M".
std::string humanCount(double n);

} // namespace mixtape::plan
