//===- SemaContext.h - shared state of the semantic passes ------*- C++ -*-===//
//
// Private to the compiler library. The passes (model and streams, sweeps and stages,
// merges/ablations/evals) share one context: the diagnostics sink with de-duplication
// (a stage's settings are checked once per variant), parsed-expression caches keyed by
// AST value, and the checked recipe being built.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/compiler/Recipe.h"
#include "mixtape/compiler/RecipeAST.h"
#include "mixtape/compiler/Schema.h"
#include "mixtape/compiler/Sema.h"

#include <initializer_list>
#include <map>
#include <set>
#include <tuple>

namespace mixtape::sema {

/// "3e-4" -> "0.0003", 2e9 -> "2e+09": short, exact enough for messages.
std::string shortNumber(double x);

class Context {
public:
  Context(const Value &root, DiagnosticEngine &diags) : Root(root), Diags(diags) {}

  const Value &Root;
  DiagnosticEngine &Diags;
  CheckedRecipe Recipe;

  /// Report once per (code, place, message): variants re-check shared settings.
  Diagnostic *report(DiagCode code, llvm::SMRange range, const std::string &message);
  /// Report expression diagnostics of `v`'s text, mapped into the file.
  void reportExpr(const Value &v, const ExprDiags &diags);
  /// "did you mean" note + fix-it, when a candidate is close.
  void suggest(Diagnostic *d, llvm::StringRef word, const std::vector<std::string> &candidates,
               llvm::SMRange replace);

  /// The parsed expression of a string value (null after reporting a syntax error).
  const Expr *expr(const Value &v);

  /// A quantity: integers take `bare`'s dimension; strings are parsed. Reports wrong
  /// kinds and dimensions outside `allowed` (DiagCode::Units) and returns nullopt.
  std::optional<Quantity> quantity(const Value &v, std::initializer_list<Dim> allowed, Dim bare,
                                   llvm::StringRef what);
  /// A whole, positive count of `what` from a quantity already checked.
  std::optional<uint64_t> count(const Value &v, const Quantity &q, llvm::StringRef what);

  const MixtureSpec *mixture(const Value &v);

  /// The streams' training tokens, read on first use; null without a sizer (lint).
  const StreamSizes *streamSizes();
  StreamSizer Sizer;
  const schedule::ScheduleSpec *scheduleSpec(const Value &v);

  bool hasErrors() const { return Diags.errorCount() > 0; }

private:
  std::set<std::tuple<DiagCode, const char *, std::string>> Reported;
  std::map<const Value *, ParseResult> Exprs;
  std::map<const Value *, std::optional<MixtureSpec>> Mixtures;
  std::optional<StreamSizes> Sizes;
  std::map<const Value *, std::optional<schedule::ScheduleSpec>> Schedules;
};

// The passes, in the order checkRecipe runs them.
void checkModel(Context &ctx);
void checkResources(Context &ctx); // [resources]: the memory plan's GPUs
void checkStreams(Context &ctx);
/// [tasks.NAME] into CheckedRecipe::Tasks, defaults filled in.
void checkTasks(Context &ctx);
void checkStages(Context &ctx);     // sweeps, stages and their variants
void checkModelUsers(Context &ctx); // merges, ablations, evals

} // namespace mixtape::sema
