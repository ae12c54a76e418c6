//===- Schedule.h - learning-rate schedules as pure functions --*- C++ -*-===//
//
// The one definition of every LR schedule. The linter uses it for continuity checks and
// plots; the trainer evaluates the same function at every optimizer step. A schedule is
// written as phases joined by `then`; each phase starts at the LR where the previous one
// ended unless it says `from`. Lengths are absolute tokens, fractions of a declared
// horizon, or "the rest of the horizon", so a curve does not change when only the stop
// point of a run changes. Formulas: docs/schedules.md.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/compiler/Expr.h"

#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace mixtape::schedule {

enum class Shape {
  Warmup,      ///< linear from `from` (default 0) to `peak`
  Constant,    ///< flat at `value` (default: where the previous phase ended)
  Linear,      ///< linear from start to `to`
  Cosine,      ///< half cosine from start to `to`
  Exp,         ///< geometric from start to `to` (both > 0)
  InverseSqrt, ///< with `to`: Ibrahim et al. 2024 cooldown; without: start*sqrt(tau/(tau+t))
  OneMinusSqrt,///< start - (start - to) * sqrt(x): the WSD decay of Hägele et al. 2024
};

llvm::StringRef shapeName(Shape shape);

/// How long a phase lasts, before the horizon is known.
struct Length {
  /// Rest: whatever the finite phases leave of the horizon (at most one phase).
  /// Open: no end at all (a trailing `constant` with no length); only the last phase.
  enum Kind { Tokens, Fraction, Rest, Open } kind = Rest;
  double value = 0; ///< tokens, or a fraction of the horizon in (0, 1]
  static Length tokens(double t) { return {Tokens, t}; }
  static Length fraction(double f) { return {Fraction, f}; }
  static Length rest() { return {Rest, 0}; }
  static Length open() { return {Open, 0}; }
};

/// One phase as written; TextRange fields point into the expression for diagnostics.
struct PhaseSpec {
  Shape shape = Shape::Constant;
  Length length;
  std::optional<double> from;   ///< LR at the phase start (warmup default 0; else previous end)
  std::optional<double> to;     ///< LR at the phase end (peak for warmup, value for constant)
  double alpha = 1.0;           ///< InverseSqrt cooldown steepness
  double timescale = 0;         ///< InverseSqrt without `to`: tau in tokens
  TextRange range;              ///< the phase's text
  /// What messages call the phase when it is not the function the user wrote: the
  /// "decay" of a wsd(...). Empty: shapeName(shape).
  std::string label;
  /// Where the length, `from` and `to` were written (empty when not written); domain
  /// errors point there rather than at the whole phase.
  TextRange lengthRange, fromRange, toRange;
};

struct ScheduleSpec {
  std::vector<PhaseSpec> phases;
  TextRange range;
};

/// A resolved phase: absolute token positions and LRs.
struct Phase {
  Shape shape = Shape::Constant;
  double begin = 0;                                         ///< tokens
  double length = std::numeric_limits<double>::infinity(); ///< tokens (inf: open-ended)
  double from = 0, to = 0;                                  ///< LR at begin and at begin+length
  /// InverseSqrt: timescale > 0 selects from*sqrt(tau/(tau+t)); otherwise the cooldown
  /// from `from` to `to` with steepness alpha.
  double alpha = 1.0, timescale = 0;
  TextRange range;
};

class Schedule {
public:
  Schedule() = default;
  explicit Schedule(std::vector<Phase> phases) : phases_(std::move(phases)) {}

  /// LR after `tokens` tokens of this stage (evaluated at the start of each optimizer step).
  /// Past the last phase the LR stays where it ended.
  double lr(double tokens) const;
  /// Where finite phases end (tokens); infinity if the last phase is open-ended.
  double end() const;
  const std::vector<Phase> &phases() const { return phases_; }
  /// Index of the phase that covers `tokens`.
  size_t phaseAt(double tokens) const;

private:
  std::vector<Phase> phases_;
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
std::optional<Schedule> resolve(const ScheduleSpec &spec, double horizonTokens, ExprDiags &diags);

} // namespace mixtape::schedule
