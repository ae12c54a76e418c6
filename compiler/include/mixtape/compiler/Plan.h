//===- Plan.h - the execution graph: compiler -> runtime contract -*- C++ -*-===//
//
// A plan is what `mixtape plan` writes and `mixtape exec` runs: nodes (init, train, eval,
// merge) with their inputs, every setting resolved, data cursors, and a content hash per
// node. docs/plan-format.md describes the JSON; this is its in-memory form and the
// lowering from a checked recipe.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/compiler/Catalog.h"
#include "mixtape/compiler/Recipe.h"

#include "llvm/Support/JSON.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mixtape {

/// Bumped when the JSON layout changes.
constexpr int64_t kPlanFormatVersion = 1;

/// Runtime semantics versions, per node kind: bumped when what a node computes changes
/// (a fixed training bug, a new merge rule), so a stale cached output is never reused.
struct SemanticsVersions {
  static constexpr int64_t Init = 1, Train = 1, Eval = 1, Merge = 2;
};

enum class NodeKind { Init, Train, Eval, Merge };
llvm::StringRef nodeKindName(NodeKind kind);

struct PlanNode {
  NodeKind kind = NodeKind::Train;
  std::string name;                   ///< "adapt[replay=r5]", "stream[replay=r5]@0-954", ...
  std::vector<size_t> inputs;         ///< node indices, in a fixed order
  std::vector<std::string> variants;  ///< stage variants that run through this node
  llvm::json::Object settings;        ///< everything the output depends on (hashed)
  llvm::json::Object exec;            ///< execution-only (not hashed): micro-batch, checkpoints, eval points
  std::string hash;                   ///< SHA-256, hex
  bool provisional = false;           ///< some data it depends on was absent at plan time

  // The ledger (train nodes): tokens drawn from each stream, and epochs of that stream
  // reached by the end of this node (0 when the stream's size is unknown).
  std::map<std::string, uint64_t> tokensByStream;
  std::map<std::string, double> epochsAtEnd;
  uint64_t tokens = 0;
  double replayFraction = 0;          ///< share of tokens from data the model saw before
  double flops = 0;

  std::string dirName() const;        ///< "<safe name>-<first 12 hex of hash>"
};

struct CostModel {
  double peakFlops = 989e12;          ///< per GPU: H100 SXM bf16 dense
  double mfu = 0.4;
};

/// What a merge-based data ablation costs against training each candidate mixture.
struct AblationLedger {
  std::string name;
  uint64_t unitTokens = 0;   ///< K units trained once each
  uint64_t directTokens = 0; ///< each combination trained directly, its units' tokens together
  uint64_t combinations = 0;
};

struct Plan {
  std::string recipe;
  std::string recipeDir;              ///< absolute; shard globs are relative to it (not hashed)
  uint64_t seed = 0;
  bool provisional = false;
  std::vector<std::string> provisionalReasons; ///< e.g. "stream 'web': no data at data/web/*.idx"
  llvm::json::Object model;
  llvm::json::Object streams;         ///< name -> resolved stream (shards, fingerprint, filter, ...)
  std::vector<PlanNode> nodes;        ///< topological order: inputs first
  uint64_t sharedTokens = 0;          ///< tokens trained once instead of once per variant
  uint64_t variantTokens = 0;         ///< tokens if every variant trained its whole chain alone
  std::vector<AblationLedger> ablations;
  CostModel cost;

  int findNode(llvm::StringRef name) const;
  /// The ledger per stage variant: tokens by stream along its whole chain from the init.
  std::map<std::string, std::map<std::string, uint64_t>> tokensByVariant() const;
  llvm::json::Value toJSON() const;
};

/// Lower a checked recipe. Data-aware analyses (epochs, leakage, empty filters) use the
/// catalog and report through `diags` (warnings) — errors stop planning (nullopt).
std::optional<Plan> lowerToPlan(const CheckedRecipe &recipe, DataCatalog &catalog, const CostModel &cost,
                                DiagnosticEngine &diags);

/// A train node's `lr` and `mixture` settings, written by the planner and read back by the
/// runtime: one definition of their JSON form.
llvm::json::Object scheduleJSON(const schedule::Schedule &s, uint64_t horizon);
llvm::Expected<schedule::Schedule> scheduleFromJSON(const llvm::json::Object &o);
llvm::json::Object mixtureJSON(const Mixture &m);
llvm::Expected<Mixture> mixtureFromJSON(const llvm::json::Object &o);

/// The plan read back (what `mixtape exec` and `plan --run-dir` use).
llvm::Expected<llvm::json::Value> readPlanFile(llvm::StringRef path);

} // namespace mixtape
