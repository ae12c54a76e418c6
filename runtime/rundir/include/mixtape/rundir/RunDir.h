//===- RunDir.h - a run directory's nodes -----------------------*- C++ -*-===//
//
// <run dir>/<node dir>/ holds what a node made (docs/run-format.md), its node.json (its
// plan entry, written when it starts) and DONE, written last once every output is
// durable: a node is done only through it. Torch-free: the executor, `mixtape plan
// --run-dir` and the report all read run directories through here.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Plan.h"
#include "mixtape/plan/Print.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

namespace mixtape::rundir {

/// <run dir>/<node dir>
std::string nodeDir(llvm::StringRef runDir, const plan::Node &node);
/// Its DONE marker is there.
bool isDone(llvm::StringRef runDir, const plan::Node &node);
/// Writes the node's DONE marker (its hash), durably: call after every output is durable.
llvm::Error markDone(llvm::StringRef runDir, const plan::Node &node);
/// Creates the node's folder and writes its node.json.
llvm::Error startNode(llvm::StringRef runDir, const plan::Plan &plan, const plan::Node &node);

/// Each node's state in `runDir`, and for a node to rerun whose earlier run (a node.json
/// under the same name, another hash) is there, which setting or input changed.
std::vector<plan::NodeStatus> planStatus(const plan::Plan &plan, llvm::StringRef runDir);

/// For `mixtape plan --explain` of a train node: which in-loop eval points of a done node
/// its metrics lack, and what serves each.
void explainDuringEvals(const plan::Plan &plan, const plan::Node &node, llvm::StringRef runDir,
                        llvm::raw_ostream &os);

} // namespace mixtape::rundir
