//===- Mixture.cpp - data mixtures over a stage's tokens -------------------===//

#include "mixtape/compiler/Mixture.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace mixtape {

namespace {

constexpr double kSumTolerance = 1e-9;
constexpr const char *kExpectedMixture = "expected a mixture such as '0.95 med + 0.05 web'";

/// A sum for a message: 10 significant digits, so 0.85 + 0.05 reads "0.9".
std::string roundedForMessage(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 10);
  double rounded = v;
  std::from_chars(buf, r.ptr, rounded);
  return formatNumber(rounded);
}

std::string describePosition(const Quantity &q) { return formatQuantity(q); }

/// Operands of a left-associative chain of `op`, in source order: a -> b -> c gives {a, b, c}.
std::vector<const Expr *> flatten(const Expr &e, BinaryOp op) {
  std::vector<const Expr *> items;
  const Expr *cur = &e;
  while (cur->isBinary(op)) {
    items.push_back(&cur->operand(1));
    cur = &cur->operand(0);
  }
  items.push_back(cur);
  std::reverse(items.begin(), items.end());
  return items;
}

void readTerm(const Expr &term, MixturePoint &point, ExprDiags &diags) {
  MixtureComponent c;
  const Expr *stream = &term;
  if (term.isBinary(BinaryOp::Mul)) {
    const Expr &weight = term.operand(0);
    stream = &term.operand(1);
    if (stream->kind != ExprKind::Ident) {
      reportExpr(diags, DiagCode::BadValue, term.range, kExpectedMixture);
      return;
    }
    if (weight.kind != ExprKind::Number) {
      reportExpr(diags, DiagCode::MixtureWeight, weight.range,
             "a mixture weight must be a number, as in '0.5 " + stream->name + "'");
      return;
    }
    const Quantity &q = weight.number;
    if (q.dim != Dim::Number && q.dim != Dim::Fraction) {
      reportExpr(diags, DiagCode::MixtureWeight, weight.range,
             "a mixture weight is a plain number or a percentage, not " + dimName(q.dim).str());
      return;
    }
    if (q.value == 0) {
      reportExpr(diags, DiagCode::MixtureWeight, weight.range,
             "stream '" + stream->name + "' has weight 0; leave it out instead");
      return;
    }
    if (q.value < 0) {
      reportExpr(diags, DiagCode::MixtureWeight, weight.range, "mixture weight must be positive");
      return;
    }
    c.weight = q.value;
    c.weightRange = weight.range;
  } else if (term.kind == ExprKind::Ident) {
    c.weightRange = term.range;
  } else {
    reportExpr(diags, DiagCode::BadValue, term.range, kExpectedMixture);
    return;
  }
  c.stream = stream->name;
  c.streamRange = stream->nameRange;
  for (const MixtureComponent &other : point.components)
    if (other.stream == c.stream) {
      ExprDiag &d = reportExpr(diags, DiagCode::BadValue, c.streamRange,
                           "stream '" + c.stream + "' appears twice in this mixture point");
      d.notes.push_back({other.streamRange, "first written here"});
      return;
    }
  point.components.push_back(std::move(c));
}

void readPosition(const Expr &at, MixturePoint &point, ExprDiags &diags) {
  if (at.kind != ExprKind::Number) {
    reportExpr(diags, DiagCode::BadValue, at.range,
           "expected a position such as '100M' or '50%' after '@'");
    return;
  }
  Quantity q = at.number;
  if (q.dim != Dim::Number && q.dim != Dim::Tokens && q.dim != Dim::Fraction) {
    reportExpr(diags, DiagCode::Units, at.range,
           "a mixture position is in tokens or a percentage of the stage, not " +
               dimName(q.dim).str());
    return;
  }
  if (q.value < 0) {
    reportExpr(diags, DiagCode::BadValue, at.range, "a mixture position cannot be negative");
    return;
  }
  if (q.dim == Dim::Number) {
    if (!q.asCount()) {
      reportExpr(diags, DiagCode::Units, at.range,
             "position '" + formatNumber(q.value) +
                 "' is not a token count; write tokens such as '100M' or a percentage such as "
                 "'50%'");
      return;
    }
    q.dim = Dim::Tokens;
  }
  if (q.dim == Dim::Fraction && q.value > 1) {
    reportExpr(diags, DiagCode::BadValue, at.range,
           "position " + describePosition(q) + " is beyond the end of the stage");
    return;
  }
  point.at = q;
  point.atRange = at.range;
}

} // namespace

std::optional<MixtureSpec> interpretMixture(const Expr &e, ExprDiags &diags) {
  size_t errorsBefore = diags.size();
  if (e.isBinary(BinaryOp::Then)) {
    reportExpr(diags, DiagCode::BadValue, e.range,
           "mixture points are joined by '->', not 'then'");
    return std::nullopt;
  }
  MixtureSpec spec;
  for (const Expr *pointExpr : flatten(e, BinaryOp::Arrow)) {
    MixturePoint point;
    const Expr *sum = pointExpr;
    if (pointExpr->isBinary(BinaryOp::At)) {
      sum = &pointExpr->operand(0);
      readPosition(pointExpr->operand(1), point, diags);
    }
    point.range = sum->range;
    size_t pointErrors = diags.size();
    for (const Expr *term : flatten(*sum, BinaryOp::Add)) {
      if (term->isBinary(BinaryOp::Sub)) {
        // "a - b" inside a sum: the subtrahend is a negative weight.
        reportExpr(diags, DiagCode::MixtureWeight, term->operand(1).range,
               "a mixture cannot subtract a stream; weights must be positive");
        continue;
      }
      readTerm(*term, point, diags);
    }
    if (diags.size() == pointErrors) {
      double total = 0;
      for (const MixtureComponent &c : point.components) total += c.weight;
      if (std::fabs(total - 1) > kSumTolerance)
        reportExpr(diags, DiagCode::MixtureSum, point.range,
               "mixture weights sum to " + roundedForMessage(total) + ", not 1");
    }
    spec.points.push_back(std::move(point));
  }
  // Positions written in the same unit must increase; mixed units are checked once the
  // stage length is known (resolveMixture).
  const MixturePoint *previous = nullptr;
  for (const MixturePoint &point : spec.points) {
    if (!point.at) continue;
    if (previous && previous->at->dim == point.at->dim && point.at->value <= previous->at->value) {
      ExprDiag &d = reportExpr(diags, DiagCode::BadValue, point.atRange,
                           "mixture positions must increase: " + describePosition(*point.at) +
                               " is not after " + describePosition(*previous->at));
      d.notes.push_back({previous->atRange, "previous position here"});
    }
    previous = &point;
  }
  if (diags.size() != errorsBefore) return std::nullopt;
  return spec;
}

std::vector<std::pair<std::string, TextRange>> streamRefs(const MixtureSpec &spec) {
  std::vector<std::pair<std::string, TextRange>> refs;
  for (const MixturePoint &point : spec.points)
    for (const MixtureComponent &c : point.components) refs.emplace_back(c.stream, c.streamRange);
  return refs;
}

std::optional<plan::Mixture> resolveMixture(const MixtureSpec &spec, double stageTokens, ExprDiags &diags) {
  size_t errorsBefore = diags.size();
  plan::Mixture m;
  for (const MixturePoint &point : spec.points)
    for (const MixtureComponent &c : point.components) m.Streams.push_back(c.stream);
  std::sort(m.Streams.begin(), m.Streams.end());
  m.Streams.erase(std::unique(m.Streams.begin(), m.Streams.end()), m.Streams.end());

  size_t n = spec.points.size();
  bool stageKnown = std::isfinite(stageTokens) && stageTokens >= 0;
  std::string stageText =
      stageKnown ? formatQuantity({stageTokens, Dim::Tokens, true, true}) : std::string();
  // Annotated positions first; NaN marks the ones still to place.
  std::vector<double> pos(n, std::nan(""));
  for (size_t i = 0; i < n; ++i) {
    const MixturePoint &point = spec.points[i];
    if (!point.at) continue;
    if (point.at->dim == Dim::Fraction) {
      if (!stageKnown) {
        reportExpr(diags, DiagCode::BadValue, point.atRange,
               "a position in % needs the stage's length in tokens");
        continue;
      }
      pos[i] = point.at->value * stageTokens;
    } else {
      pos[i] = point.at->value;
      if (stageKnown && pos[i] > stageTokens)
        reportExpr(diags, DiagCode::BadValue, point.atRange,
               "position " + formatQuantity(*point.at) + " is beyond the end of the stage (" +
                   stageText + ")");
    }
  }
  if (diags.size() != errorsBefore) return std::nullopt;
  if (n > 0 && std::isnan(pos[0])) pos[0] = 0;
  if (n > 1 && std::isnan(pos[n - 1])) {
    if (!stageKnown) {
      reportExpr(diags, DiagCode::BadValue, spec.points[n - 1].range,
             "the last mixture point needs a position ('@ 100M'): the stage's length is not "
             "known");
      return std::nullopt;
    }
    pos[n - 1] = stageTokens;
  }
  // Unannotated middle points: evenly spaced between their placed neighbours.
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && std::isnan(pos[j])) ++j;
    for (size_t k = i + 1; k < j && j < n; ++k)
      pos[k] = pos[i] + (pos[j] - pos[i]) * static_cast<double>(k - i) / static_cast<double>(j - i);
    i = j;
  }
  for (size_t i = 1; i < n; ++i)
    if (!(pos[i] > pos[i - 1])) {
      const MixturePoint &point = spec.points[i];
      TextRange where = point.at ? point.atRange : point.range;
      ExprDiag &d = reportExpr(diags, DiagCode::BadValue, where,
                           "mixture positions must increase: this point is at " +
                               formatQuantity({pos[i], Dim::Tokens, true, true}) +
                               ", the previous one at " +
                               formatQuantity({pos[i - 1], Dim::Tokens, true, true}));
      const MixturePoint &prev = spec.points[i - 1];
      d.notes.push_back({prev.at ? prev.atRange : prev.range, "previous point here"});
      return std::nullopt;
    }

  m.Positions = std::move(pos);
  for (const MixturePoint &point : spec.points) {
    std::vector<double> w(m.Streams.size(), 0.0);
    for (const MixtureComponent &c : point.components) w[*plan::streamIndex(m, c.stream)] = c.weight;
    m.Weights.push_back(std::move(w));
  }
  return m;
}

} // namespace mixtape
