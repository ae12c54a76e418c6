//===- Sema.h - semantic checks and CPT lints ------------------*- C++ -*-===//
#pragma once

#include "mixtape/compiler/Recipe.h"
#include "mixtape/compiler/RecipeAST.h"

#include <functional>
#include <memory>

namespace mixtape {

/// Training tokens of each stream after its split and filters (nullopt: its data is
/// absent), as planning reads them: what a stage length in epochs resolves against.
using StreamSizes = std::map<std::string, std::optional<uint64_t>>;
/// Reads the sizes of a recipe whose streams are checked (lowerStreamSizes); asked only
/// when a stage's length is in epochs. Without one (lint) such a length stays unknown.
using StreamSizer = std::function<StreamSizes(const CheckedRecipe &)>;

/// Check a parsed recipe: schema, types and units, references and selectors, cycles,
/// schedules, sizes, mixtures, and the continual-pre-training lints. Every problem goes
/// to `diags`; the checked recipe is returned when there are no errors.
std::unique_ptr<CheckedRecipe> checkRecipe(const Value &root, DiagnosticEngine &diags,
                                           const StreamSizer &sizer = nullptr, llvm::StringRef baseDir = "");

/// Parse and check a recipe file (what `mixtape lint` and `mixtape plan` run).
std::unique_ptr<CheckedRecipe> loadRecipe(llvm::StringRef path, DiagnosticEngine &diags,
                                          const StreamSizer &sizer = nullptr);

} // namespace mixtape
