//===- Lowering.h - shared state of the lowering passes ---------*- C++ -*-===//
//
// Private to the compiler library. The passes (streams and model, stages, model users,
// plan lints) share one Lowering: the plan being built, what the environment said about
// each stream, and where each stage variant's chain ended.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/compiler/Lower.h"
#include "mixtape/plan/Mixture.h"
#include "mixtape/plan/PlanJSON.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace mixtape::lower {

using Cursors = std::map<std::string, uint64_t>;

inline plan::Optimizer planOptimizer(const OptimizerSpec &o) {
  return plan::Optimizer{plan::OptimizerKind::AdamW, o.beta1, o.beta2, o.eps, o.weightDecay, o.decayEmbeddings};
}

/// A stage variant, lowered.
struct LoweredVariant {
  size_t startNode = 0;
  Cursors startCursors;
  size_t group = 0;
  std::vector<size_t> nodes;       ///< its chain of train nodes, in order
  std::set<std::string> trainedOn; ///< roots of data seen by the end of this variant
};

/// Variants of one stage that train one shared chain.
struct Group {
  size_t firstVariant = 0;
  std::vector<uint64_t> cuts;                       ///< step boundaries, ascending, > 0
  std::map<uint64_t, std::vector<uint64_t>> counts; ///< step -> samples per mixture stream
  std::map<uint64_t, size_t> nodeEndingAt;          ///< step -> node index
};

class Lowering {
public:
  Lowering(const CheckedRecipe &recipe, plan::Environment &env, const plan::Cost &cost, DiagnosticEngine &diags);

  std::optional<plan::Plan> run();

  const CheckedRecipe &recipe;
  plan::Environment &env;
  DiagnosticEngine &diags;
  std::string file; ///< what file-level diagnostics name
  plan::Plan result;

  // Streams (LowerStreams.cpp).
  std::map<std::string, std::optional<plan::StreamStats>> stats;
  /// The data fingerprint of each stream ("provisional:<shards>" when its data is absent).
  std::map<std::string, std::string> fingerprints;
  plan::StreamIdentities identities;
  double modelRopeTheta = 10000;
  double nonEmbeddingParams = 0;
  void lowerStreams();
  void lowerModel();
  void checkTokenizerFits(uint64_t checkpointVocab, llvm::StringRef folder);
  /// The checkpoint an `hf:PATH` reference names, read once: null after an error (reported
  /// once), nullopt when the folder has no config.json.
  const std::optional<plan::CheckpointInfo> *checkpoint(const std::string &ref);
  size_t addInit(const std::string &name, const std::string &init);

  // Stages (LowerStages.cpp).
  size_t initNode = 0;
  std::vector<std::vector<LoweredVariant>> variants; ///< per stage
  std::vector<std::vector<Group>> stageGroups;       ///< per stage
  void lowerStage(size_t stage);
  void buildChain(size_t stage, Group &group, plan::TrainSettings shared);
  uint64_t chainTokens(size_t stage, size_t variant) const;
  uint64_t chainTokensUpTo(size_t stage, size_t variant, uint64_t tokens) const;
  void setFlops(plan::Ledger &ledger, uint64_t seqLen) const;
  size_t nodeAtStep(size_t stage, size_t variant, uint64_t step) const;
  Cursors cursorsAt(size_t stage, size_t variant, uint64_t step) const;
  /// Samples per stream after `samples` samples of a stage with this mixture.
  std::vector<uint64_t> blendCounts(const plan::Mixture &m, uint64_t seqLen, uint64_t samples);
  uint64_t variantTokens = 0;

  // Merges, ablations, evals (LowerModelUsers.cpp).
  std::map<std::string, size_t> hfInits;
  std::vector<size_t> mergeNodes;
  std::vector<std::vector<size_t>> ablationNodes; ///< per ablation: its combination merges
  void lowerMerges();
  void lowerAblations();
  void lowerEvals();
  size_t finalNode(const ModelRef &ref);

  // Plan lints (PlanLints.cpp): epochs, leakage.
  void planLints();

  /// Hash `node` over its settings, its inputs and the data it reads, and add it; or add
  /// its variants to the node of the same hash and return that one.
  size_t addNode(plan::Node node, const std::vector<std::string> &streamsUsed);
  /// Adds variant `name` to node `node`'s variants unless it is there.
  void addVariant(size_t node, const std::string &name);
  /// Tokens trained from the init through the end of `node` (a merge: its deepest input).
  uint64_t tokensThrough(size_t node) const;
  /// Training FLOPs per token at `seqLen` (PaLM's 6N + 12 L d T).
  double flopsPerToken(uint64_t seqLen) const;
  /// The file or folder a path written in the recipe names.
  std::string recipePath(llvm::StringRef path) const;
  void error(DiagCode code, const std::string &message) { diags.reportFile(code, file, message); }
  void provisional(std::string reason);

private:
  struct CachedBlend {
    plan::Mixture mixture;
    std::optional<plan::Blender> blender;
  };
  llvm::StringMap<std::unique_ptr<CachedBlend>> blenders;
  llvm::StringMap<size_t> byHash;
  /// Per node, its variants as a set: a base node of a 10,000-variant sweep has them all.
  std::vector<llvm::StringSet<>> variantSets;
  std::map<std::string, std::optional<plan::CheckpointInfo>> checkpoints; ///< by reference
  std::set<std::string> unreadableCheckpoints;
};

} // namespace mixtape::lower
