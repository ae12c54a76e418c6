//===- Sema.h - semantic checks and CPT lints ------------------*- C++ -*-===//
#pragma once

#include "mixtape/compiler/Recipe.h"
#include "mixtape/compiler/RecipeAST.h"

#include <memory>

namespace mixtape {

/// Check a parsed recipe: schema, types and units, references and selectors, cycles,
/// schedules, sizes, mixtures, and the continual-pre-training lints. Every problem goes
/// to `diags`; the checked recipe is returned when there are no errors.
std::unique_ptr<CheckedRecipe> checkRecipe(const Value &root, DiagnosticEngine &diags);

/// Parse and check a recipe file (what `mixtape lint` and `mixtape plan` run).
std::unique_ptr<CheckedRecipe> loadRecipe(llvm::StringRef path, DiagnosticEngine &diags);

} // namespace mixtape
