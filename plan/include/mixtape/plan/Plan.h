//===- Plan.h - the execution graph: the compiler-runtime contract -*- C++ -*-===//
//
// A plan is what `mixtape plan` writes and `mixtape exec` runs: nodes (init, train, eval,
// merge) with their inputs, every setting resolved, data cursors, and a content hash per
// node. Every enum and struct here is generated from PlanKeys.def, which also drives the
// JSON both ways (PlanJSON.h) and the hash input; docs/plan-format.md describes the JSON.
// Nothing here knows recipes or tensors: the compiler writes plans, the runtime reads them.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Predicate.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace mixtape::plan {

/// Bumped when the JSON layout or the hash input changes.
constexpr uint64_t kPlanFormatVersion = 2;
constexpr llvm::StringLiteral kPlanFormat = "mixtape-plan";

/// Runtime semantics versions, per node kind: bumped when what a node computes changes
/// (a fixed training bug, a new merge rule), so a stale cached output is never reused.
struct SemanticsVersions {
  static constexpr uint64_t Init = 1, Train = 1, Eval = 1, Merge = 3;
};

/// How a field enters the node hash: as written, stream names as their identities, or
/// not at all (a file's location, where its content is hashed).
enum class Role { Plain, StreamNames, Location };

#define PLAN_ENUM(TYPE, DOC) enum class TYPE {
#define PLAN_CASE(TYPE, CASE, NAME) CASE,
#define PLAN_ENUM_END(TYPE) };
#include "mixtape/plan/PlanKeys.def"

/// An enum's JSON names, in declaration order.
template <typename E> struct EnumNames;
// clang-format off
#define PLAN_ENUM(TYPE, DOC) template <> struct EnumNames<TYPE> { static constexpr const char *Names[] = {
#define PLAN_CASE(TYPE, CASE, NAME) NAME,
#define PLAN_ENUM_END(TYPE) }; };
#include "mixtape/plan/PlanKeys.def"
// clang-format on

/// Whether a merge divides by the sum of its weights where the recipe (or `mixtape merge`)
/// does not say: MergeKit's defaults (mergekit/merge_methods/registry.py), linear and ties
/// do, task_arithmetic and dare_* do not; slerp has no weights.
inline bool normalizesByDefault(MergeMethod method) {
  return method == MergeMethod::Linear || method == MergeMethod::Ties;
}

template <typename E> llvm::StringRef enumName(E value) {
  return EnumNames<E>::Names[static_cast<size_t>(value)];
}
template <typename E> std::optional<E> enumFromName(llvm::StringRef name) {
  for (size_t i = 0; i < std::size(EnumNames<E>::Names); ++i)
    if (name == EnumNames<E>::Names[i])
      return static_cast<E>(i);
  return std::nullopt;
}

/// A node's input: an index into Plan::Nodes (the JSON names it), and which of its models:
/// the one it leaves, or (`Average`, JSON "NAME.ema") a train node's moving average.
struct NodeRef {
  size_t Index = 0;
  bool Average = false;
  bool operator==(const NodeRef &Other) const { return Index == Other.Index && Average == Other.Average; }
};

/// The suffix of an input that names a node's moving average, and the file it is.
constexpr llvm::StringLiteral kAverageSuffix = ".ema";
constexpr llvm::StringLiteral kAverageFile = "ema.safetensors";

/// Optimizer steps [Begin, End) of a stage (JSON: [begin, end]).
struct StepRange {
  uint64_t Begin = 0, End = 0;
  uint64_t size() const { return End - Begin; }
};

/// A stream split to evaluate (JSON: [stream, split]).
struct EvalSplit {
  std::string Stream;
  SplitKind Split = SplitKind::Val;
};

#define PLAN_STRUCT(TYPE, DOC) struct TYPE;
#include "mixtape/plan/PlanKeys.def"
struct Node;

using ChunkProbabilities = std::map<uint64_t, double>;
using MixtureWeights = std::vector<std::vector<double>>;
using StreamCounts = std::map<std::string, uint64_t>;
using StreamEpochs = std::map<std::string, double>;
using GroupScales = std::map<std::string, double>;
using DuringEvals = std::map<std::string, DuringEval>;
using StreamTable = std::map<std::string, Stream>;
using TaskTable = std::map<std::string, Task>;
using VariantLedgers = std::map<std::string, VariantLedger>;

/// Optional fields are std::optional: absent from the JSON when unset.
template <typename T, bool Optional> struct FieldOf {
  using Type = T;
};
template <typename T> struct FieldOf<T, true> {
  using Type = std::optional<T>;
};
constexpr bool Required = false, Optional = true;

#define PLAN_STRUCT(TYPE, DOC) struct TYPE {
#define PLAN_FIELD(TYPE, MEMBER, KEY, CPPTYPE, PRESENCE, ROLE, DOC) FieldOf<CPPTYPE, PRESENCE>::Type MEMBER{};
#define PLAN_END(TYPE) };
#include "mixtape/plan/PlanKeys.def"

/// Whether T is generated from PlanKeys.def (and has visitFields).
template <typename T> constexpr bool IsPlanStruct = false;
#define PLAN_STRUCT(TYPE, DOC) template <> inline constexpr bool IsPlanStruct<TYPE> = true;
#include "mixtape/plan/PlanKeys.def"

/// Calls visit(key, member, role) for every field of a plan struct, in table order.
#define PLAN_STRUCT(TYPE, DOC)                                                                               \
  template <typename Visitor> void visitFields(TYPE &S, Visitor &&Visit) {                                  \
    (void)S;                                                                                                 \
    (void)Visit;
#define PLAN_FIELD(TYPE, MEMBER, KEY, CPPTYPE, PRESENCE, ROLE, DOC) Visit(KEY, S.MEMBER, Role::ROLE);
#define PLAN_END(TYPE) }
#include "mixtape/plan/PlanKeys.def"
#define PLAN_STRUCT(TYPE, DOC)                                                                               \
  template <typename Visitor> void visitFields(const TYPE &S, Visitor &&Visit) {                            \
    (void)S;                                                                                                 \
    (void)Visit;
#define PLAN_FIELD(TYPE, MEMBER, KEY, CPPTYPE, PRESENCE, ROLE, DOC) Visit(KEY, S.MEMBER, Role::ROLE);
#define PLAN_END(TYPE) }
#include "mixtape/plan/PlanKeys.def"

/// A node: the keys every node has, and the settings, exec and ledger of its kind.
struct Node : NodeHeader {
  std::variant<InitNode, TrainNode, EvalNode, MergeNode> Payload;

  const InitNode *init() const { return std::get_if<InitNode>(&Payload); }
  const TrainNode *train() const { return std::get_if<TrainNode>(&Payload); }
  const EvalNode *eval() const { return std::get_if<EvalNode>(&Payload); }
  const MergeNode *merge() const { return std::get_if<MergeNode>(&Payload); }
  InitNode *init() { return std::get_if<InitNode>(&Payload); }
  TrainNode *train() { return std::get_if<TrainNode>(&Payload); }
  EvalNode *eval() { return std::get_if<EvalNode>(&Payload); }
  MergeNode *merge() { return std::get_if<MergeNode>(&Payload); }
};

/// A node with `payload`, its kind set to match.
Node makeNode(std::string name, std::variant<InitNode, TrainNode, EvalNode, MergeNode> payload);

/// "<name with everything but [A-Za-z0-9_=-] as '.'>-<first 12 hex of hash>"
std::string nodeDirName(llvm::StringRef name, llvm::StringRef hash);

/// The index of the node named `name`, or nullopt.
std::optional<size_t> findNode(const Plan &plan, llvm::StringRef name);

/// Tokens by stream along each stage variant's whole chain from the init (a shared node
/// counts in every variant that runs through it): the plan's `variants`.
VariantLedgers variantLedgers(const Plan &plan);

/// Parameters as the cost model counts them (6N FLOPs per token): the blocks and the output
/// projection, not the input embedding (a lookup) nor the norms; a size not known yet
/// counts 0. In floating point, so that absurd sizes cannot wrap around.
double parameterCount(const Architecture &m);

/// The architecture of the model `node` makes (an eval: the model it reads): its init's, or
/// the last growth's on the way from the init (through a merge's first input), with the
/// vocabulary and tokenizer of the last vocabulary extension since.
Architecture modelArchitecture(const Plan &plan, const Node &node);

/// Tokens a train node trains per optimizer step.
inline uint64_t tokensPerStep(const TrainSettings &s) { return s.BatchSequences * s.SeqLen; }

/// Every key of PlanKeys.def, for the test that docs/plan-format.md documents them.
struct KeyInfo {
  llvm::StringRef Struct, Key, Doc;
};
llvm::ArrayRef<KeyInfo> allPlanKeys();
/// Every enum's JSON names, by enum.
struct EnumInfo {
  llvm::StringRef Enum;
  std::vector<llvm::StringRef> Names;
};
std::vector<EnumInfo> allPlanEnums();

} // namespace mixtape::plan
