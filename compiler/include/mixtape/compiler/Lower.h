//===- Lower.h - a checked recipe lowered to its plan -----------*- C++ -*-===//
//
// Each stage variant becomes a chain of train nodes; merges, ablations and evals become
// nodes after them; every node is hashed over what its output depends on. The plan is
// the typed IR of plan/Plan.h. What the lowering needs to know about data and
// checkpoints it asks the environment (plan/Environment.h), never the files.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/compiler/Diagnostics.h"
#include "mixtape/compiler/Recipe.h"
#include "mixtape/compiler/Sema.h"
#include "mixtape/plan/Environment.h"
#include "mixtape/plan/Plan.h"

#include <optional>

namespace mixtape {

/// The cost model of `mixtape plan` unless told otherwise: an H100 SXM's bf16 dense peak at
/// 40% model FLOPs utilization.
inline plan::Cost defaultCost() { return plan::Cost{989e12, 0.4}; }

/// Lower a checked recipe. Data-aware analyses (epochs, leakage, empty filters, checkpoints
/// against the recipe) report through `diags`; errors stop planning (nullopt).
std::optional<plan::Plan> lowerToPlan(const CheckedRecipe &recipe, plan::Environment &env, const plan::Cost &cost,
                                      DiagnosticEngine &diags);

/// The training tokens of each stream of `recipe` (streams checked; the rest need not be),
/// read through `env` as lowering reads them: checkRecipe's StreamSizer for `mixtape plan`.
/// Data errors report through `diags`.
StreamSizes lowerStreamSizes(const CheckedRecipe &recipe, plan::Environment &env, DiagnosticEngine &diags);

} // namespace mixtape
