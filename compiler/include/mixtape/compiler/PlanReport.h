//===- PlanReport.h - what `mixtape plan` shows people ----------*- C++ -*-===//
#pragma once

#include "mixtape/compiler/Plan.h"

namespace mixtape {

/// A node's state in a run directory, like a build system's: done (its done marker is
/// there), partial (started; it resumes), or to run, with why.
struct NodeStatus {
  enum State { Done, Partial, ToRun } state = ToRun;
  std::string why;
};
/// Reads `<runDir>/<node dir>/DONE` and, for nodes to rerun, the `node.json` of earlier
/// runs of a node with the same name, to say which setting or input changed.
std::vector<NodeStatus> planStatus(const Plan &plan, llvm::StringRef runDir);

/// The table of nodes, the token ledger and what sharing saves.
void printPlanSummary(const Plan &plan, llvm::raw_ostream &os, const std::vector<NodeStatus> *status);
/// Graphviz: nodes styled by kind, shared nodes (several variants) marked.
void writePlanDot(const Plan &plan, llvm::raw_ostream &os);
/// Everything about one node: resolved settings, tokens -> steps, what the hash covers,
/// where its eval points come from and, given the run directory of a done train node, which
/// in-loop points it lacks and what serves each. False if no node has that name.
bool explainNode(const Plan &plan, llvm::StringRef name, llvm::raw_ostream &os, llvm::StringRef runDir = "");

/// 2000000000 -> "2.00B", 1048576 -> "1.05M".
std::string humanCount(double n);

} // namespace mixtape
