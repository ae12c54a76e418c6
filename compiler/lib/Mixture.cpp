//===- Mixture.cpp - data mixtures over a stage's tokens -------------------===//

#include "mixtape/compiler/Mixture.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

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
    if (stream->Kind != ExprKind::Ident) {
      reportExpr(diags, DiagCode::BadValue, term.Range, kExpectedMixture);
      return;
    }
    if (weight.Kind != ExprKind::Number) {
      reportExpr(diags, DiagCode::MixtureWeight, weight.Range,
             "a mixture weight must be a number, as in '0.5 " + stream->Name + "'");
      return;
    }
    const Quantity &q = weight.Number;
    if (q.Dim != Dim::Number && q.Dim != Dim::Fraction) {
      reportExpr(diags, DiagCode::MixtureWeight, weight.Range,
             "a mixture weight is a plain number or a percentage, not " + dimName(q.Dim).str());
      return;
    }
    if (q.Value == 0) {
      reportExpr(diags, DiagCode::MixtureWeight, weight.Range,
             "stream '" + stream->Name + "' has weight 0; leave it out instead");
      return;
    }
    if (q.Value < 0) {
      reportExpr(diags, DiagCode::MixtureWeight, weight.Range, "mixture weight must be positive");
      return;
    }
    c.Weight = q.Value;
    c.WeightRange = weight.Range;
  } else if (term.Kind == ExprKind::Ident) {
    c.WeightRange = term.Range;
  } else {
    reportExpr(diags, DiagCode::BadValue, term.Range, kExpectedMixture);
    return;
  }
  c.Stream = stream->Name;
  c.StreamRange = stream->NameRange;
  for (const MixtureComponent &other : point.Components)
    if (other.Stream == c.Stream) {
      ExprDiag &d = reportExpr(diags, DiagCode::BadValue, c.StreamRange,
                           "stream '" + c.Stream + "' appears twice in this mixture point");
      d.Notes.push_back({other.StreamRange, "first written here"});
      return;
    }
  point.Components.push_back(std::move(c));
}

void readPosition(const Expr &at, MixturePoint &point, ExprDiags &diags) {
  if (at.Kind != ExprKind::Number) {
    reportExpr(diags, DiagCode::BadValue, at.Range,
           "expected a position such as '100M' or '50%' after '@'");
    return;
  }
  Quantity q = at.Number;
  if (q.Dim != Dim::Number && q.Dim != Dim::Tokens && q.Dim != Dim::Fraction) {
    reportExpr(diags, DiagCode::Units, at.Range,
           "a mixture position is in tokens or a percentage of the stage, not " +
               dimName(q.Dim).str());
    return;
  }
  if (q.Value < 0) {
    reportExpr(diags, DiagCode::BadValue, at.Range, "a mixture position cannot be negative");
    return;
  }
  if (q.Dim == Dim::Number) {
    if (!q.asCount()) {
      reportExpr(diags, DiagCode::Units, at.Range,
             "position '" + formatNumber(q.Value) +
                 "' is not a token count; write tokens such as '100M' or a percentage such as "
                 "'50%'");
      return;
    }
    q.Dim = Dim::Tokens;
  }
  if (q.Dim == Dim::Fraction && q.Value > 1) {
    reportExpr(diags, DiagCode::BadValue, at.Range,
           "position " + describePosition(q) + " is beyond the end of the stage");
    return;
  }
  point.At = q;
  point.AtRange = at.Range;
}

} // namespace

std::optional<MixtureSpec> interpretMixture(const Expr &e, ExprDiags &diags) {
  size_t errorsBefore = diags.size();
  if (e.isBinary(BinaryOp::Then)) {
    reportExpr(diags, DiagCode::BadValue, e.Range,
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
    point.Range = sum->Range;
    size_t pointErrors = diags.size();
    for (const Expr *term : flatten(*sum, BinaryOp::Add)) {
      if (term->isBinary(BinaryOp::Sub)) {
        // "a - b" inside a sum: the subtrahend is a negative weight.
        reportExpr(diags, DiagCode::MixtureWeight, term->operand(1).Range,
               "a mixture cannot subtract a stream; weights must be positive");
        continue;
      }
      readTerm(*term, point, diags);
    }
    if (diags.size() == pointErrors) {
      double total = 0;
      for (const MixtureComponent &c : point.Components) total += c.Weight;
      if (std::fabs(total - 1) > kSumTolerance)
        reportExpr(diags, DiagCode::MixtureSum, point.Range,
               "mixture weights sum to " + roundedForMessage(total) + ", not 1");
    }
    spec.Points.push_back(std::move(point));
  }
  // Positions written in the same unit must increase; mixed units are checked once the
  // stage length is known (resolveMixture).
  const MixturePoint *previous = nullptr;
  for (const MixturePoint &point : spec.Points) {
    if (!point.At) continue;
    if (previous && previous->At->Dim == point.At->Dim && point.At->Value <= previous->At->Value) {
      ExprDiag &d = reportExpr(diags, DiagCode::BadValue, point.AtRange,
                           "mixture positions must increase: " + describePosition(*point.At) +
                               " is not after " + describePosition(*previous->At));
      d.Notes.push_back({previous->AtRange, "previous position here"});
    }
    previous = &point;
  }
  if (diags.size() != errorsBefore) return std::nullopt;
  return spec;
}

std::vector<std::pair<std::string, TextRange>> streamRefs(const MixtureSpec &spec) {
  std::vector<std::pair<std::string, TextRange>> refs;
  for (const MixturePoint &point : spec.Points)
    for (const MixtureComponent &c : point.Components) refs.emplace_back(c.Stream, c.StreamRange);
  return refs;
}

std::optional<plan::Mixture> resolveMixture(const MixtureSpec &spec, double stageTokens, ExprDiags &diags,
                                            PastTheEnd pastTheEnd) {
  size_t errorsBefore = diags.size();
  plan::Mixture m;
  for (const MixturePoint &point : spec.Points)
    for (const MixtureComponent &c : point.Components) m.Streams.push_back(c.Stream);
  std::sort(m.Streams.begin(), m.Streams.end());
  m.Streams.erase(std::unique(m.Streams.begin(), m.Streams.end()), m.Streams.end());

  size_t n = spec.Points.size();
  bool stageKnown = std::isfinite(stageTokens) && stageTokens >= 0;
  std::string stageText =
      stageKnown ? formatQuantity({stageTokens, Dim::Tokens, true, true}) : std::string();
  // Annotated positions first; NaN marks the ones still to place.
  std::vector<double> pos(n, std::nan(""));
  for (size_t i = 0; i < n; ++i) {
    const MixturePoint &point = spec.Points[i];
    if (!point.At) continue;
    if (point.At->Dim == Dim::Fraction) {
      if (!stageKnown) {
        reportExpr(diags, DiagCode::BadValue, point.AtRange,
               "a position in % needs the stage's length in tokens");
        continue;
      }
      pos[i] = point.At->Value * stageTokens;
    } else {
      pos[i] = point.At->Value;
      if (stageKnown && pos[i] > stageTokens && pastTheEnd == PastTheEnd::Error)
        reportExpr(diags, DiagCode::BadValue, point.AtRange,
               "position " + formatQuantity(*point.At) + " is beyond the end of the stage (" +
                   stageText + ")");
    }
  }
  if (diags.size() != errorsBefore) return std::nullopt;
  if (n > 0 && std::isnan(pos[0])) pos[0] = 0;
  if (n > 1 && std::isnan(pos[n - 1])) {
    if (!stageKnown) {
      reportExpr(diags, DiagCode::BadValue, spec.Points[n - 1].Range,
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
      const MixturePoint &point = spec.Points[i];
      TextRange where = point.At ? point.AtRange : point.Range;
      ExprDiag &d = reportExpr(diags, DiagCode::BadValue, where,
                           "mixture positions must increase: this point is at " +
                               formatQuantity({pos[i], Dim::Tokens, true, true}) +
                               ", the previous one at " +
                               formatQuantity({pos[i - 1], Dim::Tokens, true, true}));
      const MixturePoint &prev = spec.Points[i - 1];
      d.Notes.push_back({prev.At ? prev.AtRange : prev.Range, "previous point here"});
      return std::nullopt;
    }

  m.Positions = std::move(pos);
  for (const MixturePoint &point : spec.Points) {
    std::vector<double> w(m.Streams.size(), 0.0);
    for (const MixtureComponent &c : point.Components) w[*plan::streamIndex(m, c.Stream)] = c.Weight;
    m.Weights.push_back(std::move(w));
  }
  return m;
}

} // namespace mixtape

double mixtape::epochTokens(const std::vector<double> &weights, const std::vector<uint64_t> &tokens) {
  double epoch = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < weights.size(); ++i)
    if (weights[i] > 0)
      epoch = std::min(epoch, static_cast<double>(tokens[i]) / weights[i]);
  return epoch;
}

std::vector<double> mixtape::drawnTokens(const plan::Mixture &m, double length) {
  // The weights are linear between consecutive breakpoints: the trapezoid rule is exact.
  std::vector<double> cuts = {0};
  for (double p : m.Positions)
    if (p > 0 && p < length)
      cuts.push_back(p);
  cuts.push_back(length);
  std::vector<double> drawn(m.Streams.size(), 0.0);
  std::vector<double> before = plan::weightsAt(m, cuts.front());
  for (size_t i = 1; i < cuts.size(); ++i) {
    std::vector<double> after = plan::weightsAt(m, cuts[i]);
    for (size_t s = 0; s < drawn.size(); ++s)
      drawn[s] += (before[s] + after[s]) / 2 * (cuts[i] - cuts[i - 1]);
    before = std::move(after);
  }
  return drawn;
}

std::optional<double> mixtape::epochsLength(const MixtureSpec &spec, const std::vector<uint64_t> &tokens,
                                            double epochs) {
  bool scalesWithLength = std::none_of(spec.Points.begin(), spec.Points.end(), [](const MixturePoint &p) {
    return p.At && p.At->Dim != Dim::Fraction;
  });
  ExprDiags ignored;
  if (scalesWithLength) {
    // Over a stage of length L every stream is drawn L × its mean weight.
    std::optional<plan::Mixture> unit = resolveMixture(spec, 1.0, ignored);
    if (!unit)
      return std::nullopt;
    return epochs * epochTokens(drawnTokens(*unit, 1.0), tokens);
  }
  auto reached = [&](uint64_t length) {
    std::optional<plan::Mixture> m =
        resolveMixture(spec, static_cast<double>(length), ignored, PastTheEnd::Allowed);
    if (!m)
      return false; // a position in % would not come after one in tokens yet
    std::vector<double> drawn = drawnTokens(*m, static_cast<double>(length));
    for (size_t s = 0; s < drawn.size(); ++s)
      if (tokens[s] > 0 && drawn[s] >= epochs * static_cast<double>(tokens[s]))
        return true;
    return false;
  };
  uint64_t high = 1;
  while (!reached(high)) {
    if (high > (uint64_t(1) << 62))
      return std::nullopt;
    high *= 2;
  }
  uint64_t low = high / 2; // not reached (or 0)
  while (high - low > 1) {
    uint64_t mid = low + (high - low) / 2;
    (reached(mid) ? high : low) = mid;
  }
  return static_cast<double>(high);
}
