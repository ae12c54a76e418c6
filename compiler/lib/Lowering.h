//===- Lowering.h - shared state of the lowering passes ---------*- C++ -*-===//
//
// Private to the compiler library. The passes (streams and model, stages, model users,
// plan lints) share one Lowering: the plan being built, what the environment said about
// each stream, and where each stage variant's chain ended.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/compiler/Lower.h"
#include "mixtape/plan/MemoryPlan.h"
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
  return plan::Optimizer{plan::OptimizerKind::AdamW, o.Beta1, o.Beta2, o.Eps, o.WeightDecay, o.DecayEmbeddings};
}

/// A stage variant, lowered.
struct LoweredVariant {
  size_t StartNode = 0;
  Cursors StartCursors;
  size_t Group = 0;
  std::vector<size_t> Nodes;       ///< its chain of train nodes, in order
  std::set<std::string> TrainedOn; ///< streams trained on by the end of this variant
  std::optional<size_t> Teacher;   ///< distill: the teacher's node
};

/// Variants of one stage that train one shared chain.
struct Group {
  size_t FirstVariant = 0;
  std::vector<uint64_t> Cuts;                       ///< step boundaries, ascending, > 0
  std::map<uint64_t, std::vector<uint64_t>> Counts; ///< step -> samples per mixture stream
  std::map<uint64_t, size_t> NodeEndingAt;          ///< step -> node index
};

class Lowering {
public:
  Lowering(const CheckedRecipe &recipe, plan::Environment &env, const plan::Cost &cost, DiagnosticEngine &diags);

  std::optional<plan::Plan> run();

  const CheckedRecipe &Recipe;
  plan::Environment &Env;
  DiagnosticEngine &Diags;
  std::string File; ///< what file-level diagnostics name
  plan::Plan Result;

  // Streams (LowerStreams.cpp).
  std::map<std::string, std::optional<plan::StreamStats>> Stats;
  /// The data fingerprint of each stream ("provisional:<shards>" when its data is absent).
  std::map<std::string, std::string> Fingerprints;
  plan::StreamIdentities Identities;
  double ModelRopeTheta = 10000;
  void lowerStreams();
  void lowerModel();
  /// The architecture of Recipe.Sizes[i]: the plan's model with that size's dimensions.
  plan::Architecture sizeArchitecture(size_t i) const;
  void checkTokenizerFits(uint64_t checkpointVocab, llvm::StringRef folder);
  /// The checkpoint an `hf:PATH` reference names, read once: null after an error (reported
  /// once), nullopt when the folder has no config.json.
  const std::optional<plan::CheckpointInfo> *checkpoint(const std::string &ref);
  size_t addInit(const std::string &name, const std::string &init, const plan::Architecture &model);
  /// The architecture the runtime builds from checkpoint `c` (a family Mixtape builds).
  plan::Architecture checkpointArchitecture(const plan::CheckpointInfo &c) const;

  // Stages (LowerStages.cpp).
  size_t InitNode = 0;
  std::vector<size_t> SizeInits; ///< per Recipe.Sizes: its init node
  std::vector<std::vector<LoweredVariant>> Variants; ///< per stage
  std::vector<std::vector<Group>> StageGroups;       ///< per stage
  void lowerStage(size_t stage);
  void checkSftStreams(const StageSpec &stage);
  void buildChain(size_t stage, Group &group, plan::TrainSettings shared);
  /// The vocabulary extension at variant `v`'s edge, from the model of node `start`; none
  /// without one. Checks the tokenizers' files: the new one keeps every old token at its id.
  std::optional<plan::VocabExtension> vocabExtension(const StageVariant &v, size_t start);
  /// Tokens by id of an hf: tokenizer as written, read once; nullopt after an error.
  const std::optional<std::vector<std::string>> &tokenizerTokens(const std::string &tokenizer, llvm::SMRange range);
  std::map<std::string, std::optional<std::vector<std::string>>> TokenizerTokens;
  std::set<std::string> CheckedExtensions; ///< "old\nnew" pairs already checked
  /// The ids of stream `s`'s control tokens in its tokenizer.json (the byte tokenizer's
  /// Sema found); a token the file lacks is an error.
  void findControlTokens(const StreamSpec &s, plan::ControlTokens &t);
  uint64_t chainTokens(size_t stage, size_t variant) const;
  uint64_t chainTokensUpTo(size_t stage, size_t variant, uint64_t tokens) const;
  /// `passes`: the step's FLOPs in units of a training step's (a teacher's forward adds 1/3).
  void setFlops(plan::Ledger &ledger, uint64_t seqLen, const plan::Architecture &model, double passes = 1) const;
  /// Shard mode, micro-batch and checkpointing of a stage variant's train nodes: as written,
  /// or, with [resources], what fits its GPUs (unwritten settings picked); a wont-fit error
  /// with the settings that would fit when nothing does.
  plan::ExecChoice chooseExecution(const StageSpec &stage, const StageVariant &v, const plan::Architecture &model);
  /// `settings.grow` of a growing variant whose parent's model is `parent`; nullopt (and
  /// an error at the size at fault) for a shape that is not a function-preserving growth.
  std::optional<plan::Grow> growSettings(const StageSpec &stage, const StageVariant &v,
                                         const plan::Architecture &parent);
  void reportWontFit(const StageSpec &stage, const StageVariant &v, plan::MemoryConfig base, uint64_t share,
                     const plan::Cluster &cluster, const plan::ExecRequest &request);
  size_t nodeAtStep(size_t stage, size_t variant, uint64_t step) const;
  /// The node of a distilling variant's teacher (DistillSpec), given where it starts.
  size_t teacherNode(size_t stage, size_t variant, size_t startNode) const;
  Cursors cursorsAt(size_t stage, size_t variant, uint64_t step) const;
  /// Samples per stream after `samples` samples of a stage with this mixture.
  std::vector<uint64_t> blendCounts(const plan::Mixture &m, uint64_t seqLen, uint64_t samples);
  uint64_t VariantTokens = 0;
  /// Share of stream `stream`'s training tokens in documents of the streams `earlier`:
  /// counted by the data where it is present, else 1 unless the filters prove the
  /// streams disjoint.
  double replayShare(const std::string &stream, const std::set<std::string> &earlier);
  std::map<std::string, double> ReplayShares; ///< by stream and its earlier streams

  // Merges, ablations, evals (LowerModelUsers.cpp).
  std::map<std::string, size_t> HfInits;
  std::vector<size_t> MergeNodes;
  std::vector<std::vector<size_t>> AblationNodes; ///< per ablation: its combination merges
  void lowerMerges();
  /// An error at each `hf:` input of `merge` whose architecture differs from its other inputs'.
  void checkMergeArchitectures(const MergeSpec &merge, const std::vector<size_t> &inputs);
  void lowerAblations();
  void lowerEvals();
  /// Whether the model of node `model` reads the ids of stream `stream`: they are of its
  /// tokenizer or of one its vocabulary extensions extended.
  bool readsStream(size_t model, llvm::StringRef stream) const;
  /// Tasks as the plan holds them, by name: nullopt after an error (reported once).
  std::map<std::string, std::optional<plan::Task>> Tasks;
  /// The task `name` with its files' fingerprint, items and tokens; null after an error.
  const plan::Task *lowerTask(const std::string &name);
  std::set<std::pair<std::string, std::string>> LeakChecked; ///< (task, stream) pairs checked
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
  /// Training FLOPs per token of `model` at `seqLen` (PaLM's 6N + 12 L d T).
  static double flopsPerToken(const plan::Architecture &model, uint64_t seqLen);
  /// The architecture a node's model has (plan::modelArchitecture).
  plan::Architecture architectureOf(size_t node) const;
  /// The file or folder a path written in the recipe names.
  std::string recipePath(llvm::StringRef path) const;
  void error(DiagCode code, const std::string &message) { Diags.reportFile(code, File, message); }
  void provisional(std::string reason);

private:
  struct CachedBlend {
    plan::Mixture Mixture;
    std::optional<plan::Blender> Blender;
  };
  llvm::StringMap<std::unique_ptr<CachedBlend>> Blenders;
  llvm::StringMap<size_t> ByHash;
  /// Per node, its variants as a set: a base node of a 10,000-variant sweep has them all.
  std::vector<llvm::StringSet<>> VariantSets;
  std::map<std::string, std::optional<plan::CheckpointInfo>> Checkpoints; ///< by reference
  std::set<std::string> UnreadableCheckpoints;
};

} // namespace mixtape::lower
