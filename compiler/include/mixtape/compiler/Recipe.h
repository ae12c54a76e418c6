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

/// The most parameters (ModelSpec::parameters) a recipe's model may have: sizes no machine
/// holds are refused when the recipe is checked and planned, not when the runtime allocates.
constexpr double kMaxParameters = 1e12;

struct ModelSpec {
  mixtape::Family Family = mixtape::Family::Llama;
  std::string Init = "random";      ///< "random" or "hf:PATH"
  std::string Tokenizer = "bytes";  ///< "bytes" or "hf:PATH"
  uint64_t Layers = 0, DModel = 0, Heads = 0, KVHeads = 0, Ffn = 0;
  uint64_t Vocab = 0;               ///< 0: the tokenizer's (known at plan time)
  uint64_t SeqLen = defaults::SeqLen, MaxPositions = 0;
  double RopeTheta = defaults::RopeTheta, RotaryPct = defaults::RotaryPct;
  bool RopeThetaWritten = false;    ///< else a checkpoint's own base applies (plan time)
  mixtape::Attention Attention = mixtape::Attention::Causal;
  std::vector<std::string> PretrainedOn;
  /// The byte tokenizer's control tokens: plan::kByteControlTokens, the first renamed by
  /// `control_tokens`.
  std::vector<plan::ControlToken> ByteControlTokens;
  /// The sizes [model] writes (layers, d_model, ...) and where: beside an hf: init each
  /// must be the checkpoint's.
  std::vector<std::pair<std::string, llvm::SMRange>> WrittenSizes;

  /// The value of a size key of WrittenSizes.
  double size(llvm::StringRef key) const;
  /// plan::parameterCount of these sizes: what the cost model counts (6N FLOPs per token).
  double parameters() const;
  /// `a` with this model's layers, d_model, heads, kv_heads and ffn.
  plan::Architecture withSizes(plan::Architecture a) const;
  /// Why these sizes are refused (more than kMaxParameters), or "".
  std::string sizeProblem() const;
  /// Where to point at a size problem: the largest size [model] writes; empty if none.
  llvm::SMRange largestWrittenSize() const;
};

struct StreamSpec {
  std::string Name;
  std::string Shards;               ///< glob; empty for a derived stream
  plan::ShardFormat Format = plan::ShardFormat::Auto;
  std::string Tokenizer;            ///< "bytes" or "hf:PATH": what made manifest-less shards; "" unsaid
  plan::EodMode Eod = plan::EodMode::Auto; ///< Megatron documents' end-of-text
  std::string Parent;               ///< `from`; empty for a root stream
  std::string Root;                 ///< the root stream whose documents this one views
  std::optional<plan::Predicate> Where;
  llvm::SMRange WhereRange;
  double Val = defaults::Val;       ///< held-out fraction (a derived stream: its root's)
  /// untie_knots (Tian et al. 2024) or control_tokens (Korbak et al. 2023); a control
  /// token's id is 0 until planning finds it in the tokenizer.
  std::optional<plan::StreamTransform> Transform;
  llvm::SMRange GoodRange, BadRange; ///< control_tokens: where its good and bad tokens are written
};

struct SweepAxis {
  std::string Name;
  std::string Stage, Key, Subkey;   ///< what it varies: <stage>.<key>[.<subkey>]
  /// It varies [model]'s Key (Stage empty): every stage that starts from the init uses it.
  bool Model = false;
  std::vector<std::string> Labels;  ///< in source order
  unsigned ZipGroup = 0;            ///< axes with the same group vary together
};

/// Labels chosen for each axis a variant uses (axis index -> label index).
using VariantLabels = std::map<unsigned, unsigned>;

struct OptimizerSpec {
  double Beta1 = defaults::Beta1, Beta2 = defaults::Beta2, Eps = defaults::Eps, WeightDecay = defaults::WeightDecay;
  bool DecayEmbeddings = defaults::DecayEmbeddings;
};

/// `after.grow`: the parent's model grown before the stage trains (plan/Growth.h). Its shape
/// is checked where the parent's sizes are known: by Sema from [model], else when planning.
struct GrowSpec {
  uint64_t Layers = 0, DModel = 0;  ///< 0: as the parent's
  double Noise = defaults::GrowNoise;
  llvm::SMRange Range, LayersRange, DModelRange; ///< the table and its sizes as written

  /// Where to point at a problem with `key` (plan::GrownArchitecture::Key).
  llvm::SMRange rangeOf(llvm::StringRef key) const {
    llvm::SMRange r = key == "layers" ? LayersRange : key == "d_model" ? DModelRange : Range;
    return r.isValid() ? r : Range;
  }
};

/// `distill`: self-distillation from a frozen teacher.
struct DistillSpec {
  enum TeacherKind { StageStart, Init, Ancestor } Teacher = StageStart;
  std::string TeacherStage;         ///< Ancestor: the stage whose variant in this lineage teaches
  double Weight = defaults::DistillWeight, Temperature = defaults::DistillTemperature;
  plan::DistillKind Kind = plan::DistillKind::KL;
};

struct StageVariant {
  VariantLabels Labels;
  std::string DisplayName;          ///< "anneal[replay=r5]" (or "anneal" when unswept)
  uint64_t Tokens = 0;              ///< trained tokens = steps * batchTokens
  uint64_t RequestedTokens = 0;     ///< as written (before rounding up to whole steps)
  double Epochs = 0;                ///< `tokens` written as epochs of the mixture: how many; else 0
  /// False for a length in epochs before the streams' sizes are known (lint): the tokens
  /// are then a placeholder, and checks against the stage length are left to planning.
  bool LengthKnown = true;
  uint64_t Horizon = 0;
  uint64_t BatchSequences = 0, MicroBatchSequences = 0, SeqLen = 0, Steps = 0;
  uint64_t batchTokens() const { return BatchSequences * SeqLen; }
  double RopeTheta = defaults::RopeTheta;
  bool RopeThetaWritten = false;    ///< by this stage, an ancestor or [model]
  mixtape::Attention Attention = mixtape::Attention::Causal;
  plan::Mixture Mixture;
  plan::LRSchedule LR;
  std::vector<TextRange> LRPhaseRanges; ///< where each phase of `lr` is written
  OptimizerSpec Optimizer;
  double GradClip = defaults::GradClip;
  bool SkipNonFinite = false;       ///< on_nonfinite = "skip": drop a batch whose loss is not finite
  uint64_t CheckpointEvery = 0, CheckpointKeep = defaults::CheckpointKeep;
  // Execution only: what the ranks shard and which blocks recompute their activations.
  std::optional<plan::ShardMode> Shard; ///< unset: picked to fit [resources], else none
  bool MicroBatchWritten = false;   ///< by this stage or an ancestor; else the memory plan may pick it
  std::optional<uint64_t> ActivationCheckpointing; ///< every Nth block (0: none); unset: picked or none
  std::vector<std::string> Freeze;  ///< parameter groups not trained (plan/ParamGroups.h)
  std::map<std::string, double> LRScale; ///< parameter group -> LR multiplier
  std::optional<plan::Lora> Lora;   ///< train low-rank adapters only
  std::optional<DistillSpec> Distill;
  double L2ToInit = 0;              ///< lambda of the anchor to the stage's start weights; 0: none
  std::optional<double> Ema;        ///< decay of the weights' moving average
  plan::Objective Objective = plan::Objective::LM; ///< not inherited: each stage says what it trains on
  /// Index into CheckedRecipe::Sizes: the model this variant trains (0 without size axes).
  unsigned Size = 0;
  /// Blocks and width of the model it trains, where known before planning ([model] and
  /// growths on the way); 0: a checkpoint's, known when planning.
  uint64_t Layers = 0, DModel = 0;
  // The edge from the parent (none for a stage that starts from the model's init).
  int ParentVariant = -1;           ///< index into the parent stage's variants
  uint64_t BranchTokens = 0;        ///< where in the parent it branches (its tokens if at end)
  bool KeepOptimizer = false;
  /// The tokenizer this variant trains with: [model]'s, or that of the last vocabulary
  /// extension on its way from the init.
  std::string Tokenizer;
  /// Its edge moves the model to Tokenizer (a vocabulary extension), new rows started so.
  std::optional<plan::NewTokenInit> ExtendVocabulary;
  llvm::SMRange TokenizerRange;     ///< where that edge's tokenizer is written
  std::optional<GrowSpec> Grow;
};

struct StageSpec {
  std::string Name;
  llvm::SMRange NameRange;          ///< where the memory plan reports a stage that does not fit
  std::string Parent;               ///< `after`; empty: starts from the model's init
  std::vector<unsigned> Axes;       ///< axes its settings and ancestry use
  std::vector<StageVariant> Variants;
};

/// A reference to a finished model: the init, a stage variant, a merge or an ablation.
struct ModelRef {
  enum RefKind { Init, Stage, Merge, Ablation } Kind = Init;
  unsigned Index = 0;               ///< into stages/merges/ablations
  unsigned Variant = 0;             ///< stage variant
  std::string HfPath;               ///< Init given as an explicit hf:PATH
  llvm::SMRange Range;              ///< where that hf:PATH is written (merge `of`, `base`)
  bool Average = false;             ///< "<stage>.ema": the variant's moving average of its weights
};

struct MergeSpec {
  std::string Name;
  plan::MergeMethod Method = plan::MergeMethod::Linear;
  std::vector<ModelRef> Models;
  std::optional<ModelRef> Base;
  std::vector<double> Weights;
  /// The recipe's `normalize`; unset: the method's default (plan::normalizesByDefault).
  std::optional<bool> Normalize;
  double Density = 1.0, T = defaults::SlerpT;
  uint64_t Seed = 0;
};

struct AblationSpec {
  std::string Name;
  ModelRef From;
  std::string Stream;
  uint64_t Split = 0;               ///< K equal random units, or
  std::string By;                   ///< group by this metadata column
  llvm::SMRange ByRange;            ///< the column as written: the planner, which sees the data, reports there
  uint64_t Tokens = 0;
  uint64_t BatchSequences = 0, SeqLen = 0;
  plan::LRSchedule LR;
  plan::Mixture Mixture;            ///< "unit" stands for each unit's documents
  uint64_t MaxSubset = 0;           ///< subsets(max = K), or
  std::vector<std::vector<std::string>> Combinations; ///< listed unit combinations
};

struct EvalSpec {
  std::string Name;
  std::vector<plan::EvalSplit> Splits;
  std::vector<std::string> Tasks;   ///< names of CheckedRecipe::Tasks
  uint64_t MaxTokens = 0;           ///< 0: the whole split
  uint64_t DuringEvery = 0;         ///< 0: no in-loop points
  std::vector<ModelRef> On;
};

/// [resources]: the GPUs `mixtape plan` checks the memory of train nodes against and
/// estimates step times on. No GPUs or no memory: no memory plan.
struct ResourcesSpec {
  uint64_t Gpus = 0;
  double GpuMemory = 0;             ///< bytes per GPU
  double InterconnectGbps = defaults::InterconnectGbps;
  llvm::SMRange Range;              ///< the [resources] header; empty without one
};

/// One model of a sweep over [model] sizes: the labels of the model axes it takes.
struct ModelSize {
  VariantLabels Labels;             ///< model axes only
  std::string Suffix;               ///< "[size=small]": its init is "init[size=small]"
  ModelSpec Model;
};

struct CheckedRecipe {
  std::string Name;
  uint64_t Seed = defaults::Seed;
  std::string File;                 ///< the recipe file, for diagnostics without a location
  std::string BaseDir;              ///< the recipe file's directory: relative paths start here
  ModelSpec Model;
  ResourcesSpec Resources;
  /// The models of the size axes (`key = "model.layers"`), in order of first use; empty
  /// without them (every stage trains Model).
  std::vector<ModelSize> Sizes;
  std::vector<StreamSpec> Streams;
  std::vector<SweepAxis> Axes;
  std::vector<StageSpec> Stages;    ///< parents before children
  std::vector<MergeSpec> Merges;
  std::vector<AblationSpec> Ablations;
  std::vector<EvalSpec> Evals;
  /// [tasks.NAME], by name: everything but what the files hold (fingerprint, items, tokens).
  std::map<std::string, plan::Task> Tasks;

  const StreamSpec *stream(llvm::StringRef name) const;
  int stageIndex(llvm::StringRef name) const;
  /// The filters of stream `name` and its ancestors: its documents pass all of them.
  std::vector<plan::Predicate> filtersOf(llvm::StringRef name) const;
  /// Whether streams `a` and `b` may hold a document in common: they view the same root
  /// and their filters are not provably disjoint (plan::provablyDisjoint).
  bool mayShareDocuments(llvm::StringRef a, llvm::StringRef b) const;
  /// Whether stream `name` holds ids of [model]'s tokenizer: its root declares that one or
  /// none (not a vocabulary extension's).
  bool inModelTokenizer(llvm::StringRef name) const;
  /// The tokenizer whose ids stream `name` holds: what its root declares, else [model]'s.
  const std::string &tokenizerOf(llvm::StringRef name) const;
};

/// "hf:a/./b.json" and "hf:a/b.json" name the same tokenizer.
std::string normalTokenizer(llvm::StringRef ref);

} // namespace mixtape
