//===- Schedule.cpp - learning-rate schedules as pure functions -----------===//
//
// Formulas and their sources: docs/schedules.md. x is the fraction of the phase done,
// (t - begin) / length, in [0, 1].
//
//===----------------------------------------------------------------------===//
#include "mixtape/compiler/Schedule.h"

#include <algorithm>
#include <cmath>

namespace mixtape::schedule {

llvm::StringRef shapeName(Shape shape) {
  switch (shape) {
  case Shape::Warmup: return "warmup";
  case Shape::Constant: return "constant";
  case Shape::Linear: return "linear";
  case Shape::Cosine: return "cosine";
  case Shape::Exp: return "exp";
  case Shape::InverseSqrt: return "inverse_sqrt";
  case Shape::OneMinusSqrt: return "1-sqrt";
  }
  return "?";
}

//===----------------------------------------------------------------------===//
// Evaluation
//===----------------------------------------------------------------------===//

namespace {

constexpr double kPi = 3.14159265358979323846;

/// Ibrahim et al. 2024, Sec. 7: h(x) = 1/sqrt(1 + alpha x) - 1, so that
/// from + (to - from) h(x)/h(1) runs from `from` at x = 0 to `to` at x = 1.
double inverseSqrtShape(double x, double alpha) { return 1 / std::sqrt(1 + alpha * x) - 1; }

/// LR `elapsed` tokens into `p`. Both ends are returned exactly, so a chained schedule is
/// continuous to the bit where one phase hands over to the next.
double evaluate(const Phase &p, double elapsed) {
  if (elapsed <= 0)
    return p.from;
  if (elapsed >= p.length)
    return p.to;
  double x = elapsed / p.length; // 0 for an open-ended phase; no open-ended shape uses it
  switch (p.shape) {
  case Shape::Constant:
    return p.from;
  case Shape::Warmup:
  case Shape::Linear:
    return p.from + (p.to - p.from) * x;
  case Shape::Cosine:
    return p.to + (p.from - p.to) * 0.5 * (1 + std::cos(kPi * x));
  case Shape::Exp:
    return p.from * std::pow(p.to / p.from, x);
  case Shape::InverseSqrt:
    if (p.timescale > 0)
      return p.from * std::sqrt(p.timescale / (p.timescale + elapsed));
    return p.from + (p.to - p.from) * inverseSqrtShape(x, p.alpha) / inverseSqrtShape(1, p.alpha);
  case Shape::OneMinusSqrt:
    return p.from - (p.from - p.to) * std::sqrt(x);
  }
  return p.to;
}

} // namespace

size_t Schedule::phaseAt(double tokens) const {
  auto after = std::upper_bound(phases_.begin(), phases_.end(), tokens,
                                [](double t, const Phase &p) { return t < p.begin; });
  return after == phases_.begin() ? 0 : size_t(after - phases_.begin()) - 1;
}

double Schedule::lr(double tokens) const {
  if (phases_.empty())
    return 0;
  const Phase &p = phases_[phaseAt(tokens)];
  return evaluate(p, tokens - p.begin);
}

double Schedule::end() const {
  if (phases_.empty())
    return 0;
  return phases_.back().begin + phases_.back().length;
}

//===----------------------------------------------------------------------===//
// Resolution against the horizon
//===----------------------------------------------------------------------===//

namespace {

std::string formatTokens(double tokens) {
  return formatQuantity(Quantity{tokens, Dim::Tokens, /*hasScale=*/true, /*unitWritten=*/true});
}

std::string formatFraction(double fraction) {
  return formatQuantity(Quantity{fraction, Dim::Fraction, false, true});
}

bool isEmpty(TextRange r) { return r.begin == r.end; }
TextRange orPhase(TextRange r, const PhaseSpec &p) { return isEmpty(r) ? p.range : r; }

std::string phaseName(const PhaseSpec &p) {
  return p.label.empty() ? shapeName(p.shape).str() : p.label;
}

/// Lengths may be fractions of the horizon; 20% + 80% must not overflow by an ulp.
bool pastHorizon(double end, double horizon) { return end > horizon * (1 + 1e-12); }

class Resolver {
public:
  Resolver(const ScheduleSpec &spec, double horizon, ExprDiags &diags)
      : spec(spec), horizon(horizon), diags(diags) {}

  std::optional<Schedule> run() {
    if (spec.phases.empty()) {
      error(DiagCode::ScheduleDomain, spec.range, "a schedule needs at least one phase");
      return std::nullopt;
    }
    if (!(horizon > 0)) {
      error(DiagCode::ScheduleDomain, spec.range,
            "the horizon must be positive, not " + formatTokens(horizon));
      return std::nullopt;
    }
    std::vector<Phase> phases(spec.phases.size());
    bool ok = resolveLengths(phases);
    ok &= resolveRates(phases);
    if (!ok)
      return std::nullopt;
    return Schedule(std::move(phases));
  }

private:
  const ScheduleSpec &spec;
  double horizon;
  ExprDiags &diags;

  ExprDiag &error(DiagCode code, TextRange range, std::string message) {
    ExprDiag d;
    d.code = code;
    d.range = range;
    d.message = std::move(message);
    diags.push_back(std::move(d));
    return diags.back();
  }

  /// Lengths in tokens, positions, and the checks against the horizon.
  bool resolveLengths(std::vector<Phase> &phases) {
    bool ok = true;
    std::optional<size_t> rest;
    double finite = 0; // tokens of the Tokens and Fraction phases
    for (size_t i = 0; i < spec.phases.size(); ++i) {
      const PhaseSpec &p = spec.phases[i];
      TextRange where = orPhase(p.lengthRange, p);
      double &length = phases[i].length;
      switch (p.length.kind) {
      case Length::Tokens:
        length = p.length.value;
        if (!(length > 0) || std::isinf(length)) {
          error(DiagCode::ScheduleDomain, where,
                "the length of " + phaseName(p) + " must be positive, not " +
                    formatTokens(length));
          ok = false;
        }
        finite += length;
        break;
      case Length::Fraction:
        if (!(p.length.value > 0 && p.length.value <= 1)) {
          error(DiagCode::ScheduleDomain, where,
                "the length of " + phaseName(p) +
                    " must be a fraction of the horizon in (0%, 100%], not " +
                    formatFraction(p.length.value));
          ok = false;
        } else if (std::isinf(horizon)) {
          error(DiagCode::ScheduleDomain, where,
                phaseName(p) + " is a fraction of the horizon, but the horizon is open-ended");
          ok = false;
        }
        length = p.length.value * horizon;
        finite += length;
        break;
      case Length::Rest:
        if (rest) {
          ExprDiag &d = error(DiagCode::ScheduleDomain, p.range,
                              "only one phase may omit its length, and " +
                                  phaseName(spec.phases[*rest]) +
                                  " already takes the rest of the horizon");
          d.notes.push_back({spec.phases[*rest].range, "the phase without a length"});
          ok = false;
        } else if (std::isinf(horizon)) {
          error(DiagCode::ScheduleDomain, p.range,
                phaseName(p) + " has no length, and the horizon is open-ended");
          ok = false;
        }
        rest = i;
        length = 0;
        break;
      case Length::Open:
        length = std::numeric_limits<double>::infinity();
        if (i + 1 != spec.phases.size()) {
          error(DiagCode::ScheduleDomain, p.range,
                "only the last phase may be open-ended, and " + phaseName(p) + " is followed by " +
                    phaseName(spec.phases[i + 1]));
          ok = false;
        } else if (p.shape != Shape::Constant &&
                   !(p.shape == Shape::InverseSqrt && !p.to)) {
          error(DiagCode::ScheduleDomain, p.range,
                phaseName(p) + " needs a length: only a constant or inverse_sqrt(timescale = ...) "
                               "can go on forever");
          ok = false;
        }
        break;
      }
    }
    if (!ok)
      return false;

    // Walk the finite phases in order; the first one to cross the horizon is the error
    // (the Rest phase counts as empty here, since nothing is left for it anyway).
    double position = 0;
    for (size_t i = 0; i < spec.phases.size(); ++i) {
      const PhaseSpec &p = spec.phases[i];
      if (p.length.kind != Length::Tokens && p.length.kind != Length::Fraction)
        continue;
      double end = position + phases[i].length;
      if (pastHorizon(end, horizon)) {
        TextRange where = orPhase(p.lengthRange, p);
        if (p.shape == Shape::Warmup && pastHorizon(phases[i].length, horizon))
          error(DiagCode::ScheduleDomain, where,
                phaseName(p) + " of " + formatTokens(phases[i].length) +
                    " is longer than the horizon of " + formatTokens(horizon));
        else
          error(DiagCode::ScheduleDomain, where,
                phaseName(p) + " ends at " + formatTokens(end) + ", past the horizon of " +
                    formatTokens(horizon));
        return false;
      }
      position = end;
    }
    if (rest) {
      double left = horizon - finite;
      if (!pastHorizon(horizon, finite)) { // nothing (or a rounding error's worth) left
        const PhaseSpec &p = spec.phases[*rest];
        error(DiagCode::ScheduleDomain, p.range,
              phaseName(p) + " has no tokens left: the other phases take all " +
                  formatTokens(horizon) + " of the horizon");
        return false;
      }
      phases[*rest].length = left;
    }

    double begin = 0;
    for (size_t i = 0; i < phases.size(); ++i) {
      phases[i].begin = begin;
      begin += phases[i].length;
    }
    return true;
  }

  /// `from`, `to` and the shape parameters; every LR must be finite and non-negative, and
  /// some must be positive.
  bool resolveRates(std::vector<Phase> &phases) {
    bool ok = true;
    bool previousKnown = false; // false after an error, so a chained phase stays quiet
    for (size_t i = 0; i < spec.phases.size(); ++i) {
      const PhaseSpec &p = spec.phases[i];
      Phase &r = phases[i];
      bool known = previousKnown;
      previousKnown = false;
      r.shape = p.shape;
      r.alpha = p.alpha;
      r.timescale = p.timescale;
      r.range = p.range;

      // A constant's level is its value (`to`), else its `from`, else the previous end.
      bool flat = p.shape == Shape::Constant;
      std::optional<double> start = flat && p.to ? p.to : p.from;
      TextRange fromAt = orPhase(flat && p.to ? p.toRange : p.fromRange, p);
      TextRange toAt = orPhase(p.toRange, p);
      if (start)
        r.from = *start;
      else if (p.shape == Shape::Warmup)
        r.from = 0;
      else if (i > 0 && known)
        r.from = phases[i - 1].to;
      else if (i > 0)
        continue;
      else {
        error(DiagCode::BadArgument, p.range,
              phaseName(p) + " starts the schedule, so it needs 'from = <learning rate>': there "
                             "is no earlier phase to continue from");
        ok = false;
        continue;
      }

      bool cooldown = p.shape == Shape::InverseSqrt && p.to;
      if (flat) {
        r.to = r.from;
      } else if (p.shape == Shape::InverseSqrt && !p.to) {
        if (!(p.timescale > 0) || std::isinf(p.timescale)) {
          error(DiagCode::ScheduleDomain, p.range,
                phaseName(p) + " without 'to' needs a positive 'timescale', not " +
                    formatTokens(p.timescale));
          ok = false;
          continue;
        }
        r.to = r.from * std::sqrt(p.timescale / (p.timescale + r.length)); // 0 if open-ended
      } else if (p.to) {
        r.to = *p.to;
      } else {
        error(DiagCode::BadArgument, p.range,
              phaseName(p) + " needs '" + (p.shape == Shape::Warmup ? "peak" : "to") +
                  " = <learning rate>'");
        ok = false;
        continue;
      }
      bool phaseOk = true;
      if (cooldown && !(p.alpha > 0 && std::isfinite(p.alpha))) {
        error(DiagCode::ScheduleDomain, p.range,
              phaseName(p) + " needs a positive 'alpha', not " + formatNumber(p.alpha));
        phaseOk = false;
      }
      phaseOk &= checkRate(p, r.from, fromAt, flat ? "stays at" : "starts at");
      if (!flat)
        phaseOk &= checkRate(p, r.to, toAt, "ends at");
      if (p.shape == Shape::Warmup && r.to == 0) { // a negative peak is reported above
        error(DiagCode::ScheduleDomain, toAt, "the peak of " + phaseName(p) + " must be positive");
        phaseOk = false;
      }
      if (p.shape == Shape::Exp && (r.from == 0 || r.to == 0)) {
        error(DiagCode::ScheduleDomain, r.from == 0 ? fromAt : toAt,
              "exp interpolates geometrically, so both ends must be positive; it " +
                  std::string(r.from == 0 ? "starts" : "ends") +
                  " at 0 (use linear or cosine to reach 0)");
        phaseOk = false;
      }
      ok &= phaseOk;
      previousKnown = phaseOk;
    }
    return ok;
  }

  bool checkRate(const PhaseSpec &p, double lr, TextRange at, llvm::StringRef verb) {
    if (lr >= 0 && std::isfinite(lr))
      return true;
    error(DiagCode::ScheduleDomain, at,
          phaseName(p) + " " + verb.str() + " a learning rate of " + formatNumber(lr) +
              "; learning rates must be finite and not negative");
    return false;
  }
};

} // namespace

std::optional<Schedule> resolve(const ScheduleSpec &spec, double horizonTokens,
                                ExprDiags &diags) {
  return Resolver(spec, horizonTokens, diags).run();
}

} // namespace mixtape::schedule
