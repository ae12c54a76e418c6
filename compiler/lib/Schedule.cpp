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

bool isEmpty(TextRange r) { return r.begin == r.end; }
TextRange orPhase(TextRange r, const PhaseSpec &p) { return isEmpty(r) ? p.range : r; }

std::string phaseName(const PhaseSpec &p) {
  return p.label.empty() ? shapeName(p.shape).str() : p.label;
}

/// Lengths may be fractions of the horizon; 20% + 80% must not overflow by an ulp.
constexpr double kRoundingSlack = 1e-12;
bool pastHorizon(double end, double horizon) { return end > horizon * (1 + kRoundingSlack); }

/// A phase being resolved: lengths in tokens (infinity: open-ended).
struct Working {
  Shape shape = Shape::Constant;
  double begin = 0, length = 0, from = 0, to = 0, alpha = 1, timescale = 0;
};

class Resolver {
public:
  Resolver(const ScheduleSpec &spec, double horizon, ExprDiags &diags)
      : spec(spec), horizon(horizon), diags(diags) {}

  std::optional<Resolved> run() {
    if (spec.phases.empty()) {
      error(DiagCode::ScheduleDomain, spec.range, "a schedule needs at least one phase");
      return std::nullopt;
    }
    if (!(horizon > 0)) {
      error(DiagCode::ScheduleDomain, spec.range,
            "the horizon must be positive, not " + formatTokens(horizon));
      return std::nullopt;
    }
    std::vector<Working> phases(spec.phases.size());
    bool ok = resolveLengths(phases);
    ok &= resolveRates(phases);
    if (!ok)
      return std::nullopt;
    Resolved out;
    out.Schedule.Horizon = std::isfinite(horizon) ? static_cast<uint64_t>(horizon) : 0;
    for (size_t i = 0; i < phases.size(); ++i) {
      const Working &w = phases[i];
      std::optional<double> length;
      if (std::isfinite(w.length))
        length = w.length;
      out.Schedule.Phases.push_back(plan::Phase{w.shape, w.begin, length, w.from, w.to, w.alpha, w.timescale});
      out.PhaseRanges.push_back(spec.phases[i].range);
    }
    return out;
  }

private:
  const ScheduleSpec &spec;
  double horizon;
  ExprDiags &diags;

  ExprDiag &error(DiagCode code, TextRange range, std::string message) {
    return reportExpr(diags, code, range, std::move(message));
  }

  /// Lengths in tokens, positions, and the checks against the horizon.
  bool resolveLengths(std::vector<Working> &phases) {
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
      if (left <= horizon * kRoundingSlack) {
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
  bool resolveRates(std::vector<Working> &phases) {
    bool ok = true;
    bool previousKnown = false; // false after an error, so a chained phase stays quiet
    for (size_t i = 0; i < spec.phases.size(); ++i) {
      const PhaseSpec &p = spec.phases[i];
      Working &r = phases[i];
      bool known = previousKnown;
      previousKnown = false;
      r.shape = p.shape;
      r.alpha = p.alpha;
      r.timescale = p.shape == Shape::InverseSqrt && !p.to ? p.timescale : 0; // see plan::Phase

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
  return q.dim == Dim::Number && q.hasScale ? Dim::Tokens : q.dim;
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
  StringRef name;
  StringRef synonym = {};
};

struct Signature {
  StringRef function;
  std::vector<StringRef> positional; ///< parameters bound by position, in order
  std::vector<Param> params;
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
  const Expr &expr;
  StringRef name() const { return expr.name; }
  TextRange nameRange() const {
    return expr.kind == ExprKind::Call ? expr.nameRange : expr.range;
  }
  size_t size() const { return expr.kind == ExprKind::Call ? expr.operands.size() : 0; }
  StringRef argName(size_t i) const {
    return i < expr.argNames.size() ? StringRef(expr.argNames[i]) : StringRef();
  }
};

struct Argument {
  const Expr *value = nullptr;
  TextRange written; ///< the name, or the value when positional
  StringRef spelled; ///< the name as written (`final`), or the parameter's when positional
};

class Interpreter {
public:
  explicit Interpreter(ExprDiags &diags) : diags(diags) {}

  std::optional<ScheduleSpec> run(const Expr &e) {
    std::vector<const Expr *> chain;
    flatten(e, chain);
    ScheduleSpec spec;
    spec.range = e.range;
    for (size_t i = 0; i < chain.size(); ++i)
      phase(*chain[i], i + 1 == chain.size(), spec.phases);
    if (failed)
      return std::nullopt;
    return spec;
  }

private:
  ExprDiags &diags;
  bool failed = false;

  using Arguments = std::vector<std::pair<StringRef, Argument>>;

  ExprDiag &error(DiagCode code, TextRange range, std::string message) {
    failed = true;
    return reportExpr(diags, code, range, std::move(message));
  }

  /// "did you mean" note and fix-it, if a candidate is close.
  static bool addSuggestion(ExprDiag &d, StringRef word, llvm::ArrayRef<StringRef> candidates) {
    std::optional<std::string> match =
        closestMatch(word, std::vector<std::string>(candidates.begin(), candidates.end()));
    if (!match)
      return false;
    d.notes.push_back({d.range, "did you mean '" + *match + "'?"});
    d.fixit = *match;
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
      if (s->function == name)
        return s;
    return nullptr;
  }

  static std::vector<StringRef> names(llvm::ArrayRef<const Signature *> table) {
    std::vector<StringRef> out;
    for (const Signature *s : table)
      out.push_back(s->function);
    return out;
  }

  /// Binds a call's arguments to parameter names; reports unknown, duplicate and surplus
  /// positional arguments. Returns false if any was wrong.
  bool bind(CallView call, const Signature &sig, Arguments &args) {
    bool ok = true;
    size_t nextPositional = 0;
    for (size_t i = 0; i < call.size(); ++i) {
      const Expr &value = call.expr.operand(i);
      StringRef written = call.argName(i);
      StringRef name;
      TextRange where;
      if (written.empty()) {
        // constant(3e-4) is a level, constant(20M) a length.
        if (&sig == &kConstant && nextPositional == 0 && value.kind == ExprKind::Number &&
            dimOf(value.number) == Dim::Number)
          nextPositional = 1;
        if (nextPositional >= sig.positional.size()) {
          error(DiagCode::BadArgument, value.range,
                sig.positional.empty()
                    ? sig.function.str() + " takes only named arguments, such as " +
                          sig.params.front().name.str() + " = ..."
                    : "too many positional arguments to " + sig.function.str() +
                          "; name the others, such as " + sig.params.back().name.str() +
                          " = ...");
          ok = false;
          continue;
        }
        name = sig.positional[nextPositional++];
        where = value.range;
      } else {
        where = call.expr.argNameRanges[i];
        auto param = llvm::find_if(
            sig.params, [&](const Param &p) { return p.name == written || p.synonym == written; });
        if (param == sig.params.end()) {
          std::vector<StringRef> known;
          for (const Param &p : sig.params) {
            known.push_back(p.name);
            if (!p.synonym.empty())
              known.push_back(p.synonym);
          }
          ExprDiag &d = error(DiagCode::BadArgument, where,
                              "unknown argument '" + written.str() + "' to " + sig.function.str());
          if (!addSuggestion(d, written, known))
            d.notes.push_back({call.nameRange(), sig.function.str() + " takes " +
                                                     joinNames(known)});
          ok = false;
          continue;
        }
        name = param->name;
      }
      auto previous =
          llvm::find_if(args, [&](const auto &bound) { return bound.first == name; });
      if (previous != args.end()) {
        ExprDiag &d = error(DiagCode::BadArgument, where,
                            "argument '" + name.str() + "' of " + sig.function.str() +
                                " is given twice");
        d.notes.push_back({previous->second.written, "first given here"});
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
    const Expr &v = *arg.value;
    if (v.kind != ExprKind::Number) {
      error(DiagCode::BadArgument, v.range,
            "the length of " + of.str() + " must be tokens (such as 20M) or a fraction of the "
                                          "horizon (such as 5%)");
      return std::nullopt;
    }
    switch (dimOf(v.number)) {
    case Dim::Tokens: return Length::tokens(v.number.value);
    case Dim::Fraction: return Length::fraction(v.number.value);
    default: break;
    }
    error(DiagCode::Units, v.range,
          "the length of " + of.str() + " must be in tokens or a fraction of the horizon (%), not " +
              describeDim(dimOf(v.number)));
    return std::nullopt;
  }

  /// A plain number: a learning rate, or alpha.
  std::optional<double> number(const Argument &arg, StringRef what) {
    const Expr &v = *arg.value;
    if (v.kind != ExprKind::Number) {
      error(DiagCode::BadArgument, v.range, what.str() + " must be a number");
      return std::nullopt;
    }
    if (Dim d = dimOf(v.number); d != Dim::Number) {
      error(DiagCode::Units, v.range,
            what.str() + " must be a plain number, not " + describeDim(d));
      return std::nullopt;
    }
    return v.number.value;
  }

  std::optional<double> tokens(const Argument &arg, StringRef what) {
    const Expr &v = *arg.value;
    if (v.kind != ExprKind::Number) {
      error(DiagCode::BadArgument, v.range, what.str() + " must be a number of tokens");
      return std::nullopt;
    }
    if (Dim d = dimOf(v.number); d != Dim::Tokens) {
      error(DiagCode::Units, v.range, what.str() + " must be in tokens, not " + describeDim(d));
      return std::nullopt;
    }
    return v.number.value;
  }

  /// alpha and timescale: checked here, where the value's range is known.
  bool positive(std::optional<double> value, const Argument &arg, double &out) {
    if (!value)
      return false;
    if (!(*value > 0) || std::isinf(*value)) {
      error(DiagCode::ScheduleDomain, arg.value->range,
            "'" + arg.spelled.str() + "' must be positive");
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
    out = number(*arg, "'" + arg->spelled.str() + "' (a learning rate)");
    range = arg->value->range;
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
    p.length = *l;
    p.lengthRange = arg->value->range;
    return true;
  }

  void phase(const Expr &e, bool last, std::vector<PhaseSpec> &out) {
    if (e.kind == ExprKind::Number) { // `3e-4` reads as constant(3e-4)
      PhaseSpec p;
      p.shape = Shape::Constant;
      p.length = last ? Length::open() : Length::rest();
      p.range = p.toRange = e.range;
      p.to = number(Argument{&e, e.range, {}}, "a constant learning rate");
      if (p.to)
        out.push_back(std::move(p));
      return;
    }
    if (e.kind != ExprKind::Call && e.kind != ExprKind::Ident) {
      error(DiagCode::BadValue, e.range,
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
        d.notes.push_back({call.nameRange(), "schedules are " + joinNames(known)});
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
    p.range = e.range;
    bool ok = phaseLength(args, "length", sig->function, p);
    ok &= rate(args, "from", p.from, p.fromRange);
    if (sig == &kWarmup) {
      p.shape = Shape::Warmup;
      ok &= rate(args, "peak", p.to, p.toRange);
      if (!get(args, "length"))
        ok = missing(call, "a length, as in warmup(20M, peak = 3e-4)");
      if (!get(args, "peak"))
        ok = missing(call, "'peak = <learning rate>'");
    } else if (sig == &kConstant) {
      p.shape = Shape::Constant;
      ok &= rate(args, "value", p.to, p.toRange);
      if (!get(args, "length") && last)
        p.length = Length::open();
    } else if (sig == &kInverseSqrt) {
      p.shape = Shape::InverseSqrt;
      ok &= rate(args, "to", p.to, p.toRange);
      const Argument *alpha = get(args, "alpha"), *timescale = get(args, "timescale");
      if (alpha)
        ok &= positive(number(*alpha, "alpha"), *alpha, p.alpha);
      if (timescale)
        ok &= positive(tokens(*timescale, "timescale"), *timescale, p.timescale);
      if (get(args, "to") && timescale) {
        error(DiagCode::BadArgument, timescale->written,
              "inverse_sqrt takes 'to' (a cooldown) or 'timescale' (a decay), not both");
        ok = false;
      } else if (!get(args, "to") && !timescale) {
        ok = missing(call, "'to = <learning rate>' (a cooldown) or 'timescale = <tokens>' (a "
                           "decay that never ends)");
      } else if (alpha && !get(args, "to")) {
        error(DiagCode::BadArgument, alpha->written,
              "'alpha' shapes the cooldown to 'to'; without 'to', inverse_sqrt decays by "
              "'timescale'");
        ok = false;
      }
    } else {
      p.shape = sig == &kLinear ? Shape::Linear : sig == &kCosine ? Shape::Cosine : Shape::Exp;
      ok &= rate(args, "to", p.to, p.toRange);
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
    warmup.shape = Shape::Warmup;
    stable.shape = Shape::Constant;
    stable.label = "stable phase";
    decay.shape = Shape::OneMinusSqrt;
    decay.label = "decay";
    warmup.range = stable.range = decay.range = call.expr.range;

    bool ok = phaseLength(args, "warmup", "warmup", warmup);
    ok &= phaseLength(args, "decay", "decay", decay);
    ok &= rate(args, "peak", warmup.to, warmup.toRange);
    ok &= rate(args, "final", decay.to, decay.toRange);
    stable.to = warmup.to;
    stable.toRange = warmup.toRange;
    for (StringRef required : {"warmup", "peak", "decay", "final"})
      if (!get(args, required))
        ok = missing(call, "'" + required.str() + " = ...'");
    if (const Argument *shape = get(args, "shape")) {
      const Expr &v = *shape->value;
      StringRef written = v.kind == ExprKind::Ident || v.kind == ExprKind::String ? StringRef(v.name)
                                                                                   : StringRef();
      if (written == "linear")
        decay.shape = Shape::Linear;
      else if (written == "cosine")
        decay.shape = Shape::Cosine;
      else if (written != "sqrt") {
        ExprDiag &d = error(DiagCode::BadArgument, v.range,
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
    warmup.shape = Shape::Warmup;
    cooldown.label = "cooldown";
    constant.shape = Shape::Constant;
    constant.length = Length::open();
    warmup.range = cooldown.range = constant.range = call.expr.range;

    bool ok = phaseLength(args, "warmup", "warmup", warmup);
    ok &= rate(args, "peak", warmup.to, warmup.toRange);
    ok &= rate(args, "constant", constant.to, constant.toRange);
    cooldown.to = constant.to;
    cooldown.toRange = constant.toRange;
    for (StringRef required : {"warmup", "peak", "cooldown", "constant"})
      if (!get(args, required))
        ok = missing(call, "'" + required.str() + " = ...'");
    if (const Argument *arg = get(args, "cooldown"))
      ok &= cooldownPhase(*arg->value, cooldown);
    if (!ok)
      return;
    out.push_back(std::move(warmup));
    out.push_back(std::move(cooldown));
    out.push_back(std::move(constant));
  }

  /// cosine(len) or inverse_sqrt(len, alpha = a), inside infinite(...).
  bool cooldownPhase(const Expr &e, PhaseSpec &p) {
    const char *expected = "the cooldown is cosine(<length>) or inverse_sqrt(<length>, alpha = ...)";
    if (e.kind != ExprKind::Call && e.kind != ExprKind::Ident) {
      error(DiagCode::BadArgument, e.range, expected);
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
          d.notes.push_back({call.nameRange(), expected});
      }
      return false;
    }
    Arguments args;
    if (!bind(call, *sig, args))
      return false;
    p.shape = sig == &kCosineCooldown ? Shape::Cosine : Shape::InverseSqrt;
    bool ok = phaseLength(args, "length", "the cooldown", p);
    if (!get(args, "length")) {
      ok = missing(call, "a length: the cooldown has a fixed length, as in " +
                             sig->function.str() + "(1B)");
    }
    if (const Argument *alpha = get(args, "alpha"))
      ok &= positive(number(*alpha, "alpha"), *alpha, p.alpha);
    return ok;
  }
};

} // namespace

std::optional<ScheduleSpec> interpretSchedule(const Expr &e, ExprDiags &diags) {
  return Interpreter(diags).run(e);
}

} // namespace mixtape::schedule
