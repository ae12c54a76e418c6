//===- ParamGroups.h - named groups of a model's parameters -----*- C++ -*-===//
//
// `freeze` and `lr_scale` name parameters by group: embeddings, layers.N, layers.A-B,
// final_norm, head (docs/language.md maps each to the Hugging Face names of each family).
// The compiler checks the names and counts what a stage trains; the runtime maps the
// model's parameters onto them. LoRA's targets per family live here for the same reason.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Plan.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>

namespace mixtape::plan {

enum class GroupKind { Embeddings, Layers, FinalNorm, Head };

/// A group as a recipe names it: layers.A-B selects blocks A to B inclusive (layers.N: A = B).
struct GroupSelector {
  GroupKind Kind = GroupKind::Embeddings;
  uint64_t First = 0, Last = 0;
};

/// The selector `name` spells, or nullopt when it is none (kGroupSyntax says what is).
std::optional<GroupSelector> parseGroupSelector(llvm::StringRef name);
constexpr llvm::StringLiteral kGroupSyntax = "embeddings, layers.N, layers.A-B, final_norm or head";

/// Whether two selectors name a parameter in common.
bool overlaps(const GroupSelector &a, const GroupSelector &b);

/// The group of a parameter by its Hugging Face name (a LoRA factor belongs to the group of
/// the weight it adapts): Layers with First = Last = its block; nullopt for a name of no
/// group of `family`.
std::optional<GroupSelector> groupOfParameter(ModelFamily family, llvm::StringRef name);
bool selects(const GroupSelector &selector, const GroupSelector &group);

/// The projections LoRA can adapt in `family`, in a fixed order: GPT-2 and GPT-NeoX have no
/// gate; their q, k and v are row blocks of one fused matrix.
llvm::ArrayRef<llvm::StringRef> loraTargets(ModelFamily family);

/// Parameters a train node with `settings` trains, as the runtime builds them (Qwen2's q/k/v
/// biases aside; all of them: countParameters in MemoryPlan.h): the groups not frozen, or
/// with LoRA its factors (r * (in + out) per adapted projection and block) in the groups not
/// frozen.
uint64_t countTrainableParameters(const Architecture &model, const TrainSettings &settings);

} // namespace mixtape::plan
