//===- Schedule.h - learning-rate schedules as pure functions --*- C++ -*-===//
//
// What a recipe writes as a learning-rate schedule, and its resolution into the plan's
// (plan/Schedule.h evaluates it, for the linter and the trainer alike). A schedule is
// written as phases joined by `then`; each phase starts at the LR where the previous one
// ended unless it says `from`. Lengths are absolute tokens, fractions of a declared
// horizon, or "the rest of the horizon", so a curve does not change when only the stop
// point of a run changes. Formulas: docs/schedules.md.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/compiler/Expr.h"
#include "mixtape/plan/Schedule.h"

#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace mixtape::schedule {

using Shape = plan::PhaseShape;
inline llvm::StringRef shapeName(Shape shape) { return plan::enumName(shape); }

/// How long a phase lasts, before the horizon is known.
struct Length {
  /// Rest: whatever the finite phases leave of the horizon (at most one phase).
  /// Open: no end at all (a trailing `constant` with no length); only the last phase.
  enum LengthKind { Tokens, Fraction, Rest, Open } Kind = Rest;
  double Value = 0; ///< tokens, or a fraction of the horizon in (0, 1]
  static Length tokens(double t) { return {Tokens, t}; }
  static Length fraction(double f) { return {Fraction, f}; }
  static Length rest() { return {Rest, 0}; }
  static Length open() { return {Open, 0}; }
};

/// One phase as written; TextRange fields point into the expression for diagnostics.
struct PhaseSpec {
  schedule::Shape Shape = schedule::Shape::Constant;
  schedule::Length Length;
  std::optional<double> From;   ///< LR at the phase start (warmup default 0; else previous end)
  std::optional<double> To;     ///< LR at the phase end (peak for warmup, value for constant)
  double Alpha = 1.0;           ///< InverseSqrt cooldown steepness
  double Timescale = 0;         ///< InverseSqrt without `to`: tau in tokens
  TextRange Range;              ///< the phase's text
  /// What messages call the phase when it is not the function the user wrote: the
  /// "decay" of a wsd(...). Empty: shapeName(Shape).
  std::string Label;
  /// Where the length, `from` and `to` were written (empty when not written); domain
  /// errors point there rather than at the whole phase.
  TextRange LengthRange, FromRange, ToRange;
};

struct ScheduleSpec {
  std::vector<PhaseSpec> Phases;
  TextRange Range;
};

/// A resolved schedule (plan/Schedule.h evaluates it) and where each phase is written.
struct Resolved {
  plan::LRSchedule Schedule;
  std::vector<TextRange> PhaseRanges;
};

/// Interpret an expression as a schedule: `warmup(20M, peak = 3e-4) then cosine(final = 3e-5)`,
/// `wsd(...)`, `infinite(...)`, ... Unknown functions and arguments, wrong units and missing
/// values are reported (with did-you-mean notes) and yield nullopt.
std::optional<ScheduleSpec> interpretSchedule(const Expr &e, ExprDiags &diags);

/// Fix lengths against the horizon (tokens): fractions scale, one Rest phase fills what is
/// left, an Open last phase never ends. Reports, against the phases' ranges, ScheduleDomain
/// errors: warmup longer than the horizon, phases that end past it, a Rest phase with
/// nothing left, LR <= 0 anywhere it must be positive; and BadArgument for a first phase
/// with no `from` to start at. The horizon may be infinite if no length depends on it.
std::optional<Resolved> resolve(const ScheduleSpec &spec, double horizonTokens, ExprDiags &diags);

} // namespace mixtape::schedule
