//===- Predicate.h - a stream's `where`, interpreted -------------*- C++ -*-===//
//
// "overall_score >= 4 and domain == 'Medicine'" compiles to the plan's predicate
// (plan/Predicate.h), which the data layer evaluates per document.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/compiler/Expr.h"
#include "mixtape/plan/Predicate.h"

#include <optional>

namespace mixtape {

/// Compiles a condition. Reports DiagCode::Predicate for two columns or two values
/// compared, an ordering comparison with a string, `in` without a list of values, a
/// column or value where a condition is needed ("overall_score" alone).
std::optional<plan::Predicate> interpretPredicate(const Expr &e, ExprDiags &diags);

} // namespace mixtape
