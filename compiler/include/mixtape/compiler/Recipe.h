//===- Recipe.h - a checked recipe: every setting resolved ------*- C++ -*-===//
//
// What semantic analysis produces from the located AST: the model, streams, sweep axes and
// every variant of every stage with all settings resolved (inheritance, sweeps, defaults,
// tokens -> steps), merges, ablations and evals with their model references bound. The
// plan compiler lowers this; nothing here points back into TOML.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/compiler/Defaults.h"
#include "mixtape/compiler/Mixture.h"
#include "mixtape/compiler/Predicate.h"
#include "mixtape/compiler/Schedule.h"

#include "llvm/Support/SMLoc.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mixtape {

using Family = plan::ModelFamily;
using Attention = plan::AttentionMask;

/// Vocabulary of the embedded byte-level tokenizer "bytes" (runtime/data Tokenizer.h):
/// 256 bytes and 8 special tokens.
constexpr uint64_t kBytesVocab = 264;

struct ModelSpec {
  Family family = Family::Llama;
  std::string init = "random";      ///< "random" or "hf:PATH"
  std::string tokenizer = "bytes";  ///< "bytes" or "hf:PATH"
  uint64_t layers = 0, dModel = 0, heads = 0, kvHeads = 0, ffn = 0;
  uint64_t vocab = 0;               ///< 0: the tokenizer's (known at plan time)
  uint64_t seqLen = defaults::SeqLen, maxPositions = 0;
  double ropeTheta = defaults::RopeTheta, rotaryPct = defaults::RotaryPct;
  bool ropeThetaWritten = false;    ///< else a checkpoint's own base applies (plan time)
  Attention attention = Attention::Causal;
  std::vector<std::string> pretrainedOn;
  /// The sizes [model] writes (layers, d_model, ...) and where: beside an hf: init each
  /// must be the checkpoint's.
  std::vector<std::pair<std::string, llvm::SMRange>> writtenSizes;
};

struct StreamSpec {
  std::string name;
  std::string shards;               ///< glob; empty for a derived stream
  plan::ShardFormat format = plan::ShardFormat::Auto;
  std::string tokenizer;            ///< "bytes" or "hf:PATH": what made manifest-less shards; "" unsaid
  plan::EodMode eod = plan::EodMode::Auto; ///< Megatron documents' end-of-text
  std::string parent;               ///< `from`; empty for a root stream
  std::string root;                 ///< the root stream whose documents this one views
  std::optional<plan::Predicate> where;
  llvm::SMRange whereRange;
  double val = defaults::Val;       ///< held-out fraction (a derived stream: its root's)
  std::optional<plan::UntieKnots> transform; ///< Untie-the-Knots (Tian et al. 2024)
};

struct SweepAxis {
  std::string name;
  std::string stage, key, subkey;   ///< what it varies: <stage>.<key>[.<subkey>]
  std::vector<std::string> labels;  ///< in source order
  unsigned zipGroup = 0;            ///< axes with the same group vary together
};

/// Labels chosen for each axis a variant uses (axis index -> label index).
using VariantLabels = std::map<unsigned, unsigned>;

struct OptimizerSpec {
  double beta1 = defaults::Beta1, beta2 = defaults::Beta2, eps = defaults::Eps, weightDecay = defaults::WeightDecay;
  bool decayEmbeddings = defaults::DecayEmbeddings;
};

struct StageVariant {
  VariantLabels labels;
  std::string displayName;          ///< "anneal[replay=r5]" (or "anneal" when unswept)
  uint64_t tokens = 0;              ///< trained tokens = steps * batchTokens
  uint64_t requestedTokens = 0;     ///< as written (before rounding up to whole steps)
  uint64_t horizon = 0;
  uint64_t batchSequences = 0, microBatchSequences = 0, seqLen = 0, steps = 0;
  uint64_t batchTokens() const { return batchSequences * seqLen; }
  double ropeTheta = defaults::RopeTheta;
  bool ropeThetaWritten = false;    ///< by this stage, an ancestor or [model]
  Attention attention = Attention::Causal;
  plan::Mixture mixture;
  plan::LRSchedule lr;
  std::vector<TextRange> lrPhaseRanges; ///< where each phase of `lr` is written
  OptimizerSpec optimizer;
  double gradClip = defaults::GradClip;
  bool skipNonFinite = false;       ///< on_nonfinite = "skip": drop a batch whose loss is not finite
  uint64_t checkpointEvery = 0, checkpointKeep = defaults::CheckpointKeep;
  bool zero1 = false;               ///< shard the optimizer state over the ranks (execution only)
  // The edge from the parent (none for a stage that starts from the model's init).
  int parentVariant = -1;           ///< index into the parent stage's variants
  uint64_t branchTokens = 0;        ///< where in the parent it branches (its tokens if at end)
  bool keepOptimizer = false;
};

struct StageSpec {
  std::string name;
  std::string parent;               ///< `after`; empty: starts from the model's init
  std::vector<unsigned> axes;       ///< axes its settings and ancestry use
  std::vector<StageVariant> variants;
};

/// A reference to a finished model: the init, a stage variant, a merge or an ablation.
struct ModelRef {
  enum Kind { Init, Stage, Merge, Ablation } kind = Init;
  unsigned index = 0;               ///< into stages/merges/ablations
  unsigned variant = 0;             ///< stage variant
  std::string hfPath;               ///< Init given as an explicit hf:PATH
};

struct MergeSpec {
  std::string name;
  plan::MergeMethod method = plan::MergeMethod::Linear;
  std::vector<ModelRef> models;
  std::optional<ModelRef> base;
  std::vector<double> weights;
  bool normalize = defaults::Normalize;
  double density = 1.0, t = defaults::SlerpT;
  uint64_t seed = 0;
};

struct AblationSpec {
  std::string name;
  ModelRef from;
  std::string stream;
  uint64_t split = 0;               ///< K equal random units, or
  std::string by;                   ///< group by this metadata column
  llvm::SMRange byRange;            ///< the column as written: the planner, which sees the data, reports there
  uint64_t tokens = 0;
  uint64_t batchSequences = 0, seqLen = 0;
  plan::LRSchedule lr;
  plan::Mixture mixture;            ///< "unit" stands for each unit's documents
  uint64_t maxSubset = 0;           ///< subsets(max = K), or
  std::vector<std::vector<std::string>> combinations; ///< listed unit combinations
};

struct EvalSpec {
  std::string name;
  std::vector<plan::EvalSplit> splits;
  uint64_t maxTokens = 0;           ///< 0: the whole split
  uint64_t duringEvery = 0;         ///< 0: no in-loop points
  std::vector<ModelRef> on;
};

struct CheckedRecipe {
  std::string name;
  uint64_t seed = defaults::Seed;
  std::string file;                 ///< the recipe file, for diagnostics without a location
  std::string baseDir;              ///< the recipe file's directory: relative paths start here
  ModelSpec model;
  std::vector<StreamSpec> streams;
  std::vector<SweepAxis> axes;
  std::vector<StageSpec> stages;    ///< parents before children
  std::vector<MergeSpec> merges;
  std::vector<AblationSpec> ablations;
  std::vector<EvalSpec> evals;

  const StreamSpec *stream(llvm::StringRef name) const;
  int stageIndex(llvm::StringRef name) const;
};

} // namespace mixtape
