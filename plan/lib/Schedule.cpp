//===- Schedule.cpp - evaluating learning-rate schedules ------------------===//
//
// Formulas and their sources: docs/schedules.md. x is the fraction of the phase done,
// (t - begin) / length, in [0, 1].
//
//===----------------------------------------------------------------------===//
#include "mixtape/plan/Schedule.h"

#include <algorithm>
#include <cmath>
#include <limits>

using namespace mixtape::plan;

namespace {

constexpr double kPi = 3.14159265358979323846;

/// The inverse-sqrt cooldown of Ibrahim et al. 2024's infinite schedule:
/// h(x) = 1/sqrt(1 + alpha x) - 1, so from + (to - from) h(x)/h(1) runs from `from` at
/// x = 0 to `to` at x = 1.
double inverseSqrtShape(double x, double alpha) { return 1 / std::sqrt(1 + alpha * x) - 1; }

/// LR `elapsed` tokens into `p`. Both ends are returned exactly, so a chained schedule is
/// continuous to the bit where one phase hands over to the next.
double evaluate(const Phase &p, double elapsed) {
  const double length = p.Length ? *p.Length : std::numeric_limits<double>::infinity();
  if (elapsed <= 0)
    return p.From;
  if (elapsed >= length)
    return p.To;
  double x = elapsed / length; // 0 for an open-ended phase; no open-ended shape uses it
  switch (p.Shape) {
  case PhaseShape::Constant:
    return p.From;
  case PhaseShape::Warmup:
  case PhaseShape::Linear:
    return p.From + (p.To - p.From) * x;
  case PhaseShape::Cosine: // Loshchilov & Hutter 2017, without restarts
    return p.To + (p.From - p.To) * 0.5 * (1 + std::cos(kPi * x));
  case PhaseShape::Exp:
    return p.From * std::pow(p.To / p.From, x);
  case PhaseShape::InverseSqrt:
    if (p.Timescale > 0)
      return p.From * std::sqrt(p.Timescale / (p.Timescale + elapsed));
    return p.From + (p.To - p.From) * inverseSqrtShape(x, p.Alpha) / inverseSqrtShape(1, p.Alpha);
  case PhaseShape::OneMinusSqrt: // Hägele et al. 2024, the "1-sqrt" cooldown
    return p.From - (p.From - p.To) * std::sqrt(x);
  }
  return p.To;
}

} // namespace

double mixtape::plan::phaseEnd(const Phase &phase) {
  return phase.Length ? phase.Begin + *phase.Length : std::numeric_limits<double>::infinity();
}

size_t mixtape::plan::phaseAt(const LRSchedule &schedule, double tokens) {
  const std::vector<Phase> &phases = schedule.Phases;
  auto after = std::upper_bound(phases.begin(), phases.end(), tokens,
                                [](double t, const Phase &p) { return t < p.Begin; });
  return after == phases.begin() ? 0 : size_t(after - phases.begin()) - 1;
}

double mixtape::plan::learningRate(const LRSchedule &schedule, double tokens) {
  if (schedule.Phases.empty())
    return 0;
  const Phase &p = schedule.Phases[phaseAt(schedule, tokens)];
  return evaluate(p, tokens - p.Begin);
}

double mixtape::plan::scheduleEnd(const LRSchedule &schedule) {
  return schedule.Phases.empty() ? 0 : phaseEnd(schedule.Phases.back());
}
