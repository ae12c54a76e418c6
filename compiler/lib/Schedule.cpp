//===- Schedule.cpp - learning-rate schedules as written, and resolved -----===//
//
// Interpretation of what a recipe writes, and resolution against the horizon into the
// plan's phases. Formulas and their sources: docs/schedules.md.
//
//===----------------------------------------------------------------------===//
#include "mixtape/compiler/Schedule.h"

#include <algorithm>
#include <cmath>

namespace mixtape::schedule {

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

bool isEmpty(TextRange r) { return r.Begin == r.End; }
TextRange orPhase(TextRange r, const PhaseSpec &p) { return isEmpty(r) ? p.Range : r; }

std::string phaseName(const PhaseSpec &p) {
  return p.Label.empty() ? shapeName(p.Shape).str() : p.Label;
}

/// Lengths may be fractions of the horizon; 20% + 80% must not overflow by an ulp.
constexpr double kRoundingSlack = 1e-12;
bool pastHorizon(double end, double horizon) { return end > horizon * (1 + kRoundingSlack); }

/// A phase being resolved: lengths in tokens (infinity: open-ended).
struct Working {
  schedule::Shape Shape = schedule::Shape::Constant;
  double Begin = 0, Length = 0, From = 0, To = 0, Alpha = 1, Timescale = 0;
};

class Resolver {
public:
  Resolver(const ScheduleSpec &spec, double horizon, ExprDiags &diags)
      : Spec(spec), Horizon(horizon), Diags(diags) {}

  std::optional<Resolved> run() {
    if (Spec.Phases.empty()) {
      error(DiagCode::ScheduleDomain, Spec.Range, "a schedule needs at least one phase");
      return std::nullopt;
    }
    if (!(Horizon > 0)) {
      error(DiagCode::ScheduleDomain, Spec.Range,
            "the horizon must be positive, not " + formatTokens(Horizon));
      return std::nullopt;
    }
    std::vector<Working> phases(Spec.Phases.size());
    bool ok = resolveLengths(phases);
    ok &= resolveRates(phases);
    if (!ok)
      return std::nullopt;
    Resolved out;
    out.Schedule.Horizon = std::isfinite(Horizon) ? static_cast<uint64_t>(Horizon) : 0;
    for (size_t i = 0; i < phases.size(); ++i) {
      const Working &w = phases[i];
      std::optional<double> length;
      if (std::isfinite(w.Length))
        length = w.Length;
      out.Schedule.Phases.push_back(plan::Phase{w.Shape, w.Begin, length, w.From, w.To, w.Alpha, w.Timescale});
      out.PhaseRanges.push_back(Spec.Phases[i].Range);
    }
    return out;
  }

private:
  const ScheduleSpec &Spec;
  double Horizon;
  ExprDiags &Diags;

  ExprDiag &error(DiagCode code, TextRange range, std::string message) {
    return reportExpr(Diags, code, range, std::move(message));
  }

  /// Lengths in tokens, positions, and the checks against the horizon.
  bool resolveLengths(std::vector<Working> &phases) {
    bool ok = true;
    std::optional<size_t> rest;
    double finite = 0; // tokens of the Tokens and Fraction phases
    for (size_t i = 0; i < Spec.Phases.size(); ++i) {
      const PhaseSpec &p = Spec.Phases[i];
      TextRange where = orPhase(p.LengthRange, p);
      double &length = phases[i].Length;
      switch (p.Length.Kind) {
      case Length::Tokens:
        length = p.Length.Value;
        if (!(length > 0) || std::isinf(length)) {
          error(DiagCode::ScheduleDomain, where,
                "the length of " + phaseName(p) + " must be positive, not " +
                    formatTokens(length));
          ok = false;
        }
        finite += length;
        break;
      case Length::Fraction:
        if (!(p.Length.Value > 0 && p.Length.Value <= 1)) {
          error(DiagCode::ScheduleDomain, where,
                "the length of " + phaseName(p) +
                    " must be a fraction of the horizon in (0%, 100%], not " +
                    formatFraction(p.Length.Value));
          ok = false;
        } else if (std::isinf(Horizon)) {
          error(DiagCode::ScheduleDomain, where,
                phaseName(p) + " is a fraction of the horizon, but the horizon is open-ended");
          ok = false;
        }
        length = p.Length.Value * Horizon;
        finite += length;
        break;
      case Length::Rest:
        if (rest) {
          ExprDiag &d = error(DiagCode::ScheduleDomain, p.Range,
                              "only one phase may omit its length, and " +
                                  phaseName(Spec.Phases[*rest]) +
                                  " already takes the rest of the horizon");
          d.Notes.push_back({Spec.Phases[*rest].Range, "the phase without a length"});
          ok = false;
        } else if (std::isinf(Horizon)) {
          error(DiagCode::ScheduleDomain, p.Range,
                phaseName(p) + " has no length, and the horizon is open-ended");
          ok = false;
        }
        rest = i;
        length = 0;
        break;
      case Length::Open:
        length = std::numeric_limits<double>::infinity();
        if (i + 1 != Spec.Phases.size()) {
          error(DiagCode::ScheduleDomain, p.Range,
                "only the last phase may be open-ended, and " + phaseName(p) + " is followed by " +
                    phaseName(Spec.Phases[i + 1]));
          ok = false;
        } else if (p.Shape != Shape::Constant &&
                   !(p.Shape == Shape::InverseSqrt && !p.To)) {
          error(DiagCode::ScheduleDomain, p.Range,
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
    for (size_t i = 0; i < Spec.Phases.size(); ++i) {
      const PhaseSpec &p = Spec.Phases[i];
      if (p.Length.Kind != Length::Tokens && p.Length.Kind != Length::Fraction)
        continue;
      double end = position + phases[i].Length;
      if (pastHorizon(end, Horizon)) {
        TextRange where = orPhase(p.LengthRange, p);
        if (p.Shape == Shape::Warmup && pastHorizon(phases[i].Length, Horizon))
          error(DiagCode::ScheduleDomain, where,
                phaseName(p) + " of " + formatTokens(phases[i].Length) +
                    " is longer than the horizon of " + formatTokens(Horizon));
        else
          error(DiagCode::ScheduleDomain, where,
                phaseName(p) + " ends at " + formatTokens(end) + ", past the horizon of " +
                    formatTokens(Horizon));
        return false;
      }
      position = end;
    }
    if (rest) {
      double left = Horizon - finite;
      if (left <= Horizon * kRoundingSlack) {
        const PhaseSpec &p = Spec.Phases[*rest];
        error(DiagCode::ScheduleDomain, p.Range,
              phaseName(p) + " has no tokens left: the other phases take all " +
                  formatTokens(Horizon) + " of the horizon");
        return false;
      }
      phases[*rest].Length = left;
    }

    double begin = 0;
    for (size_t i = 0; i < phases.size(); ++i) {
      phases[i].Begin = begin;
      begin += phases[i].Length;
    }
    return true;
  }

  /// `from`, `to` and the shape parameters; every LR must be finite and non-negative, and
  /// some must be positive.
  bool resolveRates(std::vector<Working> &phases) {
    bool ok = true;
    bool previousKnown = false; // false after an error, so a chained phase stays quiet
    for (size_t i = 0; i < Spec.Phases.size(); ++i) {
      const PhaseSpec &p = Spec.Phases[i];
      Working &r = phases[i];
      bool known = previousKnown;
      previousKnown = false;
      r.Shape = p.Shape;
      r.Alpha = p.Alpha;
      r.Timescale = p.Shape == Shape::InverseSqrt && !p.To ? p.Timescale : 0; // see plan::Phase

      // A constant's level is its value (`to`), else its `from`, else the previous end.
      bool flat = p.Shape == Shape::Constant;
      std::optional<double> start = flat && p.To ? p.To : p.From;
      TextRange fromAt = orPhase(flat && p.To ? p.ToRange : p.FromRange, p);
      TextRange toAt = orPhase(p.ToRange, p);
      if (start)
        r.From = *start;
      else if (p.Shape == Shape::Warmup)
        r.From = 0;
      else if (i > 0 && known)
        r.From = phases[i - 1].To;
      else if (i > 0)
        continue;
      else {
        error(DiagCode::BadArgument, p.Range,
              phaseName(p) + " starts the schedule, so it needs 'from = <learning rate>': there "
                             "is no earlier phase to continue from");
        ok = false;
        continue;
      }

      bool cooldown = p.Shape == Shape::InverseSqrt && p.To;
      if (flat) {
        r.To = r.From;
      } else if (p.Shape == Shape::InverseSqrt && !p.To) {
        if (!(p.Timescale > 0) || std::isinf(p.Timescale)) {
          error(DiagCode::ScheduleDomain, p.Range,
                phaseName(p) + " without 'to' needs a positive 'timescale', not " +
                    formatTokens(p.Timescale));
          ok = false;
          continue;
        }
        r.To = r.From * std::sqrt(p.Timescale / (p.Timescale + r.Length)); // 0 if open-ended
      } else if (p.To) {
        r.To = *p.To;
      } else {
        error(DiagCode::BadArgument, p.Range,
              phaseName(p) + " needs '" + (p.Shape == Shape::Warmup ? "peak" : "to") +
                  " = <learning rate>'");
        ok = false;
        continue;
      }
      bool phaseOk = true;
      if (cooldown && !(p.Alpha > 0 && std::isfinite(p.Alpha))) {
        error(DiagCode::ScheduleDomain, p.Range,
              phaseName(p) + " needs a positive 'alpha', not " + formatNumber(p.Alpha));
        phaseOk = false;
      }
      phaseOk &= checkRate(p, r.From, fromAt, flat ? "stays at" : "starts at");
      if (!flat)
        phaseOk &= checkRate(p, r.To, toAt, "ends at");
      if (p.Shape == Shape::Warmup && r.To == 0) { // a negative peak is reported above
        error(DiagCode::ScheduleDomain, toAt, "the peak of " + phaseName(p) + " must be positive");
        phaseOk = false;
      }
      if (p.Shape == Shape::Exp && (r.From == 0 || r.To == 0)) {
        error(DiagCode::ScheduleDomain, r.From == 0 ? fromAt : toAt,
              "exp interpolates geometrically, so both ends must be positive; it " +
                  std::string(r.From == 0 ? "starts" : "ends") +
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

std::optional<Resolved> resolve(const ScheduleSpec &spec, double horizonTokens, ExprDiags &diags) {
  return Resolver(spec, horizonTokens, diags).run();
}

//===----------------------------------------------------------------------===//
// Interpretation of `warmup(20M, peak = 3e-4) then cosine(to = 3e-5)`
//===----------------------------------------------------------------------===//

namespace {

using llvm::StringRef;

/// A number as a schedule reads it: a bare scaled count (20M) is tokens.
Dim dimOf(const Quantity &q) {
  return q.Dim == Dim::Number && q.HasScale ? Dim::Tokens : q.Dim;
}

std::string describeDim(Dim dim) {
  switch (dim) {
  case Dim::Number: return "a plain number";
  case Dim::Fraction: return "a fraction (%)";
  default: return dimName(dim).str();
  }
}

/// A parameter and the one other spelling it accepts (`final` for `to`).
struct Param {
  StringRef Name;
  StringRef Synonym = {};
};

struct Signature {
  StringRef Function;
  std::vector<StringRef> Positional; ///< parameters bound by position, in order
  std::vector<Param> Params;
};

const Signature kWarmup{"warmup", {"length"}, {{"length"}, {"peak"}, {"from"}}};
const Signature kConstant{"constant", {"length", "value"}, {{"length"}, {"value"}}};
const Signature kLinear{"linear", {"length"}, {{"length"}, {"from"}, {"to", "final"}}};
const Signature kCosine{"cosine", {"length"}, {{"length"}, {"from"}, {"to", "final"}}};
const Signature kExp{"exp", {"length"}, {{"length"}, {"from"}, {"to", "final"}}};
const Signature kInverseSqrt{
    "inverse_sqrt",
    {"length"},
    {{"length"}, {"from"}, {"to", "final"}, {"alpha"}, {"timescale"}}};
const Signature kWsd{"wsd", {}, {{"warmup"}, {"peak"}, {"decay"}, {"final"}, {"shape"}}};
const Signature kInfinite{"infinite", {}, {{"warmup"}, {"peak"}, {"cooldown"}, {"constant"}}};
// Inside infinite(cooldown = ...): the ends are the peak and the constant.
const Signature kCosineCooldown{"cosine", {"length"}, {{"length"}}};
const Signature kInverseSqrtCooldown{"inverse_sqrt", {"length"}, {{"length"}, {"alpha"}}};

const Signature *const kSchedules[] = {&kWarmup, &kConstant,    &kLinear, &kCosine,
                                       &kExp,    &kInverseSqrt, &kWsd,    &kInfinite};
const Signature *const kCooldowns[] = {&kCosineCooldown, &kInverseSqrtCooldown};

/// A call or a bare name (`then constant`), seen the same way.
struct CallView {
  const mixtape::Expr &Expr;
  StringRef name() const { return Expr.Name; }
  TextRange nameRange() const {
    return Expr.Kind == ExprKind::Call ? Expr.NameRange : Expr.Range;
  }
  size_t size() const { return Expr.Kind == ExprKind::Call ? Expr.Operands.size() : 0; }
  StringRef argName(size_t i) const {
    return i < Expr.ArgNames.size() ? StringRef(Expr.ArgNames[i]) : StringRef();
  }
};

struct Argument {
  const Expr *Value = nullptr;
  TextRange Written; ///< the name, or the value when positional
  StringRef Spelled; ///< the name as written (`final`), or the parameter's when positional
};

class Interpreter {
public:
  explicit Interpreter(ExprDiags &diags) : Diags(diags) {}

  std::optional<ScheduleSpec> run(const Expr &e) {
    std::vector<const Expr *> chain;
    flatten(e, chain);
    ScheduleSpec spec;
    spec.Range = e.Range;
    for (size_t i = 0; i < chain.size(); ++i)
      phase(*chain[i], i + 1 == chain.size(), spec.Phases);
    if (Failed)
      return std::nullopt;
    return spec;
  }

private:
  ExprDiags &Diags;
  bool Failed = false;

  using Arguments = std::vector<std::pair<StringRef, Argument>>;

  ExprDiag &error(DiagCode code, TextRange range, std::string message) {
    Failed = true;
    return reportExpr(Diags, code, range, std::move(message));
  }

  /// "did you mean" note and fix-it, if a candidate is close.
  static bool addSuggestion(ExprDiag &d, StringRef word, llvm::ArrayRef<StringRef> candidates) {
    std::optional<std::string> match =
        closestMatch(word, std::vector<std::string>(candidates.begin(), candidates.end()));
    if (!match)
      return false;
    d.Notes.push_back({d.Range, "did you mean '" + *match + "'?"});
    d.Fixit = *match;
    return true;
  }

  /// The phases of `a then b then c`, in order; iterative, as a long chain is a deep tree.
  static void flatten(const Expr &e, std::vector<const Expr *> &chain) {
    std::vector<const Expr *> pending{&e};
    while (!pending.empty()) {
      const Expr *node = pending.back();
      pending.pop_back();
      if (node->isBinary(BinaryOp::Then)) {
        pending.push_back(&node->operand(1));
        pending.push_back(&node->operand(0));
      } else {
        chain.push_back(node);
      }
    }
  }

  static const Signature *lookup(StringRef name, llvm::ArrayRef<const Signature *> table) {
    for (const Signature *s : table)
      if (s->Function == name)
        return s;
    return nullptr;
  }

  static std::vector<StringRef> names(llvm::ArrayRef<const Signature *> table) {
    std::vector<StringRef> out;
    for (const Signature *s : table)
      out.push_back(s->Function);
    return out;
  }

  /// Binds a call's arguments to parameter names; reports unknown, duplicate and surplus
  /// positional arguments. Returns false if any was wrong.
  bool bind(CallView call, const Signature &sig, Arguments &args) {
    bool ok = true;
    size_t nextPositional = 0;
    for (size_t i = 0; i < call.size(); ++i) {
      const Expr &value = call.Expr.operand(i);
      StringRef written = call.argName(i);
      StringRef name;
      TextRange where;
      if (written.empty()) {
        // constant(3e-4) is a level, constant(20M) a length.
        if (&sig == &kConstant && nextPositional == 0 && value.Kind == ExprKind::Number &&
            dimOf(value.Number) == Dim::Number)
          nextPositional = 1;
        if (nextPositional >= sig.Positional.size()) {
          error(DiagCode::BadArgument, value.Range,
                sig.Positional.empty()
                    ? sig.Function.str() + " takes only named arguments, such as " +
                          sig.Params.front().Name.str() + " = ..."
                    : "too many positional arguments to " + sig.Function.str() +
                          "; name the others, such as " + sig.Params.back().Name.str() +
                          " = ...");
          ok = false;
          continue;
        }
        name = sig.Positional[nextPositional++];
        where = value.Range;
      } else {
        where = call.Expr.ArgNameRanges[i];
        auto param = llvm::find_if(
            sig.Params, [&](const Param &p) { return p.Name == written || p.Synonym == written; });
        if (param == sig.Params.end()) {
          std::vector<StringRef> known;
          for (const Param &p : sig.Params) {
            known.push_back(p.Name);
            if (!p.Synonym.empty())
              known.push_back(p.Synonym);
          }
          ExprDiag &d = error(DiagCode::BadArgument, where,
                              "unknown argument '" + written.str() + "' to " + sig.Function.str());
          if (!addSuggestion(d, written, known))
            d.Notes.push_back({call.nameRange(), sig.Function.str() + " takes " +
                                                     joinNames(known)});
          ok = false;
          continue;
        }
        name = param->Name;
      }
      auto previous =
          llvm::find_if(args, [&](const auto &bound) { return bound.first == name; });
      if (previous != args.end()) {
        ExprDiag &d = error(DiagCode::BadArgument, where,
                            "argument '" + name.str() + "' of " + sig.Function.str() +
                                " is given twice");
        d.Notes.push_back({previous->second.Written, "first given here"});
        ok = false;
        continue;
      }
      args.push_back({name, Argument{&value, where, written.empty() ? name : written}});
    }
    return ok;
  }

  static std::string joinNames(llvm::ArrayRef<StringRef> names) {
    std::string out;
    for (size_t i = 0; i < names.size(); ++i) {
      if (i)
        out += i + 1 == names.size() ? " and " : ", ";
      out += "'" + names[i].str() + "'";
    }
    return out;
  }

  static const Argument *get(const Arguments &args, StringRef name) {
    for (const auto &[n, a] : args)
      if (n == name)
        return &a;
    return nullptr;
  }

  /// Reports a missing argument; returns false, for `ok = missing(...)`.
  bool missing(CallView call, const std::string &what) {
    error(DiagCode::BadArgument, call.nameRange(), call.name().str() + " needs " + what);
    return false;
  }

  /// A length: tokens (20M, 1Mi tokens) or a fraction of the horizon (5%).
  std::optional<Length> length(const Argument &arg, StringRef of) {
    const Expr &v = *arg.Value;
    if (v.Kind != ExprKind::Number) {
      error(DiagCode::BadArgument, v.Range,
            "the length of " + of.str() + " must be tokens (such as 20M) or a fraction of the "
                                          "horizon (such as 5%)");
      return std::nullopt;
    }
    switch (dimOf(v.Number)) {
    case Dim::Tokens: return Length::tokens(v.Number.Value);
    case Dim::Fraction: return Length::fraction(v.Number.Value);
    default: break;
    }
    error(DiagCode::Units, v.Range,
          "the length of " + of.str() + " must be in tokens or a fraction of the horizon (%), not " +
              describeDim(dimOf(v.Number)));
    return std::nullopt;
  }

  /// A plain number: a learning rate, or alpha.
  std::optional<double> number(const Argument &arg, StringRef what) {
    const Expr &v = *arg.Value;
    if (v.Kind != ExprKind::Number) {
      error(DiagCode::BadArgument, v.Range, what.str() + " must be a number");
      return std::nullopt;
    }
    if (Dim d = dimOf(v.Number); d != Dim::Number) {
      error(DiagCode::Units, v.Range,
            what.str() + " must be a plain number, not " + describeDim(d));
      return std::nullopt;
    }
    return v.Number.Value;
  }

  std::optional<double> tokens(const Argument &arg, StringRef what) {
    const Expr &v = *arg.Value;
    if (v.Kind != ExprKind::Number) {
      error(DiagCode::BadArgument, v.Range, what.str() + " must be a number of tokens");
      return std::nullopt;
    }
    if (Dim d = dimOf(v.Number); d != Dim::Tokens) {
      error(DiagCode::Units, v.Range, what.str() + " must be in tokens, not " + describeDim(d));
      return std::nullopt;
    }
    return v.Number.Value;
  }

  /// alpha and timescale: checked here, where the value's range is known.
  bool positive(std::optional<double> value, const Argument &arg, double &out) {
    if (!value)
      return false;
    if (!(*value > 0) || std::isinf(*value)) {
      error(DiagCode::ScheduleDomain, arg.Value->Range,
            "'" + arg.Spelled.str() + "' must be positive");
      return false;
    }
    out = *value;
    return true;
  }

  /// Sets `out` (and its range) from an optional learning-rate argument.
  bool rate(const Arguments &args, StringRef name, std::optional<double> &out, TextRange &range) {
    const Argument *arg = get(args, name);
    if (!arg)
      return true;
    out = number(*arg, "'" + arg->Spelled.str() + "' (a learning rate)");
    range = arg->Value->Range;
    return out.has_value();
  }

  /// The length argument `name`: Rest (or Open for a trailing constant) when absent.
  bool phaseLength(const Arguments &args, StringRef name, StringRef of, PhaseSpec &p) {
    const Argument *arg = get(args, name);
    if (!arg)
      return true;
    std::optional<Length> l = length(*arg, of);
    if (!l)
      return false;
    p.Length = *l;
    p.LengthRange = arg->Value->Range;
    return true;
  }

  void phase(const Expr &e, bool last, std::vector<PhaseSpec> &out) {
    if (e.Kind == ExprKind::Number) { // `3e-4` reads as constant(3e-4)
      PhaseSpec p;
      p.Shape = Shape::Constant;
      p.Length = last ? Length::open() : Length::rest();
      p.Range = p.ToRange = e.Range;
      p.To = number(Argument{&e, e.Range, {}}, "a constant learning rate");
      if (p.To)
        out.push_back(std::move(p));
      return;
    }
    if (e.Kind != ExprKind::Call && e.Kind != ExprKind::Ident) {
      error(DiagCode::BadValue, e.Range,
            "expected a schedule phase such as cosine(to = 3e-5); phases are joined by 'then'");
      return;
    }
    CallView call{e};
    const Signature *sig = lookup(call.name(), kSchedules);
    if (!sig) {
      ExprDiag &d = error(DiagCode::UnknownFunction, call.nameRange(),
                          "unknown schedule '" + call.name().str() + "'");
      std::vector<StringRef> known = names(kSchedules);
      if (!addSuggestion(d, call.name(), known))
        d.Notes.push_back({call.nameRange(), "schedules are " + joinNames(known)});
      return;
    }
    Arguments args;
    if (!bind(call, *sig, args))
      return;
    if (sig == &kWsd)
      return wsd(call, args, out);
    if (sig == &kInfinite)
      return infinite(call, args, out);

    PhaseSpec p;
    p.Range = e.Range;
    bool ok = phaseLength(args, "length", sig->Function, p);
    ok &= rate(args, "from", p.From, p.FromRange);
    if (sig == &kWarmup) {
      p.Shape = Shape::Warmup;
      ok &= rate(args, "peak", p.To, p.ToRange);
      if (!get(args, "length"))
        ok = missing(call, "a length, as in warmup(20M, peak = 3e-4)");
      if (!get(args, "peak"))
        ok = missing(call, "'peak = <learning rate>'");
    } else if (sig == &kConstant) {
      p.Shape = Shape::Constant;
      ok &= rate(args, "value", p.To, p.ToRange);
      if (!get(args, "length") && last)
        p.Length = Length::open();
    } else if (sig == &kInverseSqrt) {
      p.Shape = Shape::InverseSqrt;
      ok &= rate(args, "to", p.To, p.ToRange);
      const Argument *alpha = get(args, "alpha"), *timescale = get(args, "timescale");
      if (alpha)
        ok &= positive(number(*alpha, "alpha"), *alpha, p.Alpha);
      if (timescale)
        ok &= positive(tokens(*timescale, "timescale"), *timescale, p.Timescale);
      if (get(args, "to") && timescale) {
        error(DiagCode::BadArgument, timescale->Written,
              "inverse_sqrt takes 'to' (a cooldown) or 'timescale' (a decay), not both");
        ok = false;
      } else if (!get(args, "to") && !timescale) {
        ok = missing(call, "'to = <learning rate>' (a cooldown) or 'timescale = <tokens>' (a "
                           "decay that never ends)");
      } else if (alpha && !get(args, "to")) {
        error(DiagCode::BadArgument, alpha->Written,
              "'alpha' shapes the cooldown to 'to'; without 'to', inverse_sqrt decays by "
              "'timescale'");
        ok = false;
      }
    } else {
      p.Shape = sig == &kLinear ? Shape::Linear : sig == &kCosine ? Shape::Cosine : Shape::Exp;
      ok &= rate(args, "to", p.To, p.ToRange);
      if (!get(args, "to"))
        ok = missing(call, "'to = <learning rate>'");
    }
    if (ok)
      out.push_back(std::move(p));
  }

  /// wsd(warmup, peak, decay, final, shape): warmup -> constant peak -> decay over the
  /// last `decay` of the horizon (Hägele et al. 2024).
  void wsd(CallView call, const Arguments &args, std::vector<PhaseSpec> &out) {
    PhaseSpec warmup, stable, decay;
    warmup.Shape = Shape::Warmup;
    stable.Shape = Shape::Constant;
    stable.Label = "stable phase";
    decay.Shape = Shape::OneMinusSqrt;
    decay.Label = "decay";
    warmup.Range = stable.Range = decay.Range = call.Expr.Range;

    bool ok = phaseLength(args, "warmup", "warmup", warmup);
    ok &= phaseLength(args, "decay", "decay", decay);
    ok &= rate(args, "peak", warmup.To, warmup.ToRange);
    ok &= rate(args, "final", decay.To, decay.ToRange);
    stable.To = warmup.To;
    stable.ToRange = warmup.ToRange;
    for (StringRef required : {"warmup", "peak", "decay", "final"})
      if (!get(args, required))
        ok = missing(call, "'" + required.str() + " = ...'");
    if (const Argument *shape = get(args, "shape")) {
      const Expr &v = *shape->Value;
      StringRef written = v.Kind == ExprKind::Ident || v.Kind == ExprKind::String ? StringRef(v.Name)
                                                                                   : StringRef();
      if (written == "linear")
        decay.Shape = Shape::Linear;
      else if (written == "cosine")
        decay.Shape = Shape::Cosine;
      else if (written != "sqrt") {
        ExprDiag &d = error(DiagCode::BadArgument, v.Range,
                            "the shape of wsd's decay is linear, cosine or sqrt (1-sqrt)");
        if (!written.empty())
          addSuggestion(d, written, {"linear", "cosine", "sqrt"});
        ok = false;
      }
    }
    if (!ok)
      return;
    out.push_back(std::move(warmup));
    out.push_back(std::move(stable));
    out.push_back(std::move(decay));
  }

  /// infinite(warmup, peak, cooldown, constant): Ibrahim et al. 2024's infinite schedule,
  /// warmup -> cooldown from peak to `constant` -> constant forever.
  void infinite(CallView call, const Arguments &args, std::vector<PhaseSpec> &out) {
    PhaseSpec warmup, cooldown, constant;
    warmup.Shape = Shape::Warmup;
    cooldown.Label = "cooldown";
    constant.Shape = Shape::Constant;
    constant.Length = Length::open();
    warmup.Range = cooldown.Range = constant.Range = call.Expr.Range;

    bool ok = phaseLength(args, "warmup", "warmup", warmup);
    ok &= rate(args, "peak", warmup.To, warmup.ToRange);
    ok &= rate(args, "constant", constant.To, constant.ToRange);
    cooldown.To = constant.To;
    cooldown.ToRange = constant.ToRange;
    for (StringRef required : {"warmup", "peak", "cooldown", "constant"})
      if (!get(args, required))
        ok = missing(call, "'" + required.str() + " = ...'");
    if (const Argument *arg = get(args, "cooldown"))
      ok &= cooldownPhase(*arg->Value, cooldown);
    if (!ok)
      return;
    out.push_back(std::move(warmup));
    out.push_back(std::move(cooldown));
    out.push_back(std::move(constant));
  }

  /// cosine(len) or inverse_sqrt(len, alpha = a), inside infinite(...).
  bool cooldownPhase(const Expr &e, PhaseSpec &p) {
    const char *expected = "the cooldown is cosine(<length>) or inverse_sqrt(<length>, alpha = ...)";
    if (e.Kind != ExprKind::Call && e.Kind != ExprKind::Ident) {
      error(DiagCode::BadArgument, e.Range, expected);
      return false;
    }
    CallView call{e};
    const Signature *sig = lookup(call.name(), kCooldowns);
    if (!sig) {
      if (lookup(call.name(), kSchedules)) {
        error(DiagCode::BadArgument, call.nameRange(), expected);
      } else {
        ExprDiag &d = error(DiagCode::UnknownFunction, call.nameRange(),
                            "unknown cooldown '" + call.name().str() + "'");
        if (!addSuggestion(d, call.name(), names(kCooldowns)))
          d.Notes.push_back({call.nameRange(), expected});
      }
      return false;
    }
    Arguments args;
    if (!bind(call, *sig, args))
      return false;
    p.Shape = sig == &kCosineCooldown ? Shape::Cosine : Shape::InverseSqrt;
    bool ok = phaseLength(args, "length", "the cooldown", p);
    if (!get(args, "length")) {
      ok = missing(call, "a length: the cooldown has a fixed length, as in " +
                             sig->Function.str() + "(1B)");
    }
    if (const Argument *alpha = get(args, "alpha"))
      ok &= positive(number(*alpha, "alpha"), *alpha, p.Alpha);
    return ok;
  }
};

} // namespace

std::optional<ScheduleSpec> interpretSchedule(const Expr &e, ExprDiags &diags) {
  return Interpreter(diags).run(e);
}

} // namespace mixtape::schedule
