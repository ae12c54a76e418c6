#include "mixtape/compiler/Mixture.h"

#include <gtest/gtest.h>

#include <limits>

using namespace mixtape;

namespace {

struct Interpreted {
  std::optional<MixtureSpec> Spec;
  ExprDiags Diags;
};

Interpreted interpret(llvm::StringRef text) {
  ParseResult r = parseExpr(text);
  EXPECT_TRUE(r.Expr) << text.str() << ": " << (r.Errors.empty() ? "" : r.Errors[0].Message);
  Interpreted out;
  if (r.Expr) out.Spec = interpretMixture(*r.Expr, out.Diags);
  EXPECT_EQ(out.Spec.has_value(), out.Diags.empty()) << text.str();
  return out;
}

/// The one diagnostic a bad mixture gives.
ExprDiag mixtureError(llvm::StringRef text) {
  Interpreted i = interpret(text);
  EXPECT_EQ(i.Diags.size(), 1u) << text.str();
  return i.Diags.empty() ? ExprDiag{} : i.Diags[0];
}

plan::Mixture resolve(llvm::StringRef text, double stageTokens) {
  Interpreted i = interpret(text);
  ExprDiags diags;
  std::optional<plan::Mixture> m = i.Spec ? resolveMixture(*i.Spec, stageTokens, diags) : std::nullopt;
  EXPECT_TRUE(m) << text.str() << ": " << (diags.empty() ? "" : diags[0].Message);
  return m ? *m : plan::Mixture{};
}

ExprDiag resolveError(llvm::StringRef text, double stageTokens) {
  Interpreted i = interpret(text);
  ExprDiags diags;
  EXPECT_TRUE(i.Spec);
  if (i.Spec) {
    EXPECT_FALSE(resolveMixture(*i.Spec, stageTokens, diags));
  }
  EXPECT_EQ(diags.size(), 1u) << text.str();
  return diags.empty() ? ExprDiag{} : diags[0];
}

std::string slice(llvm::StringRef text, TextRange r) { return text.slice(r.Begin, r.End).str(); }

} // namespace

TEST(Mixture, SinglePoint) {
  llvm::StringRef text = "0.95 med + 0.05 web";
  Interpreted i = interpret(text);
  ASSERT_TRUE(i.Spec);
  ASSERT_EQ(i.Spec->Points.size(), 1u);
  const MixturePoint &p = i.Spec->Points[0];
  EXPECT_FALSE(p.At);
  ASSERT_EQ(p.Components.size(), 2u);
  EXPECT_EQ(p.Components[0].Stream, "med");
  EXPECT_EQ(p.Components[0].Weight, 0.95);
  EXPECT_EQ(slice(text, p.Components[0].StreamRange), "med");
  EXPECT_EQ(slice(text, p.Components[0].WeightRange), "0.95");
  EXPECT_EQ(p.Components[1].Stream, "web");
  EXPECT_EQ(p.Components[1].Weight, 0.05);
  EXPECT_EQ(slice(text, p.Range), text.str());

  auto refs = streamRefs(*i.Spec);
  ASSERT_EQ(refs.size(), 2u);
  EXPECT_EQ(refs[1].first, "web");
  EXPECT_EQ(slice(text, refs[1].second), "web");
}

TEST(Mixture, NorthStarMixtures) {
  for (llvm::StringRef text :
       {"0.95 med + 0.05 web", "0.7 med_hq + 0.3 web -> 0.9 med_hq + 0.1 web",
        "0.3 books_knotted + 0.6 med + 0.1 web", "med", "1.0 med", "0.99 med + 0.01 web",
        "0.75 med + 0.25 web", "0.95 unit + 0.05 web", "0.8 a + 0.2 b @ 100M -> 0.9 a + 0.1 b",
        "95% med + 5% web", "0.95 * med + 0.05 * web"})
    EXPECT_TRUE(interpret(text).Spec) << text.str();

  Interpreted bare = interpret("med");
  ASSERT_TRUE(bare.Spec);
  EXPECT_EQ(bare.Spec->Points[0].Components[0].Weight, 1.0);
}

TEST(Mixture, WeightErrors) {
  ExprDiag d = mixtureError("0.85 med + 0.05 web");
  EXPECT_EQ(d.Code, DiagCode::MixtureSum);
  EXPECT_EQ(d.Message, "mixture weights sum to 0.9, not 1");
  EXPECT_EQ(d.Range.Begin, 0u);
  EXPECT_EQ(d.Range.End, 19u);

  d = mixtureError("0.5 med");
  EXPECT_EQ(d.Code, DiagCode::MixtureSum);
  EXPECT_EQ(d.Message, "mixture weights sum to 0.5, not 1");

  d = mixtureError("0.7 a + 0.3 b -> 0.7 a + 0.4 b");
  EXPECT_EQ(d.Code, DiagCode::MixtureSum);
  EXPECT_EQ(d.Message, "mixture weights sum to 1.1, not 1");
  EXPECT_EQ(d.Range.Begin, 17u); // the second point only

  d = mixtureError("1.5 med + -0.5 web");
  EXPECT_EQ(d.Code, DiagCode::MixtureWeight);
  EXPECT_EQ(d.Message, "mixture weight must be positive");
  EXPECT_EQ(d.Range.Begin, 10u);
  EXPECT_EQ(d.Range.End, 14u);

  d = mixtureError("1 med + 0 web");
  EXPECT_EQ(d.Code, DiagCode::MixtureWeight);
  EXPECT_EQ(d.Message, "stream 'web' has weight 0; leave it out instead");

  d = mixtureError("1.05 med - 0.05 web");
  EXPECT_EQ(d.Code, DiagCode::MixtureWeight);
  EXPECT_EQ(d.Message, "a mixture cannot subtract a stream; weights must be positive");

  d = mixtureError("x * med");
  EXPECT_EQ(d.Code, DiagCode::MixtureWeight);
  EXPECT_EQ(d.Message, "a mixture weight must be a number, as in '0.5 med'");

  d = mixtureError("1M tokens med");
  EXPECT_EQ(d.Code, DiagCode::MixtureWeight);
  EXPECT_EQ(d.Message, "a mixture weight is a plain number or a percentage, not tokens");

  // 1/3 + 1/3 + 1/3 is within the tolerance of 1e-9.
  EXPECT_TRUE(interpret("0.3333333333 a + 0.3333333333 b + 0.3333333334 c").Spec);
  EXPECT_FALSE(interpret("0.333 a + 0.333 b + 0.333 c").Spec);
}

TEST(Mixture, ShapeErrors) {
  ExprDiag d = mixtureError("warmup(3)");
  EXPECT_EQ(d.Code, DiagCode::BadValue);
  EXPECT_EQ(d.Message, "expected a mixture such as '0.95 med + 0.05 web'");
  EXPECT_EQ(d.Range.Begin, 0u);
  EXPECT_EQ(d.Range.End, 9u);

  EXPECT_EQ(mixtureError("0.5 med + 0.5").Code, DiagCode::BadValue);
  EXPECT_EQ(mixtureError("'med'").Code, DiagCode::BadValue);
  EXPECT_EQ(mixtureError("0.5 web.val + 0.5 med").Code, DiagCode::BadValue);
  EXPECT_EQ(mixtureError("a then b").Message, "mixture points are joined by '->', not 'then'");

  d = mixtureError("0.5 med + 0.5 med");
  EXPECT_EQ(d.Code, DiagCode::BadValue);
  EXPECT_EQ(d.Message, "stream 'med' appears twice in this mixture point");
  EXPECT_EQ(d.Range.Begin, 14u);
  ASSERT_EQ(d.Notes.size(), 1u);
  EXPECT_EQ(d.Notes[0].Range.Begin, 4u);
}

TEST(Mixture, PositionErrors) {
  ExprDiag d = mixtureError("a @ 200M -> b @ 100M");
  EXPECT_EQ(d.Code, DiagCode::BadValue);
  EXPECT_EQ(d.Message, "mixture positions must increase: 100M tokens is not after 200M tokens");
  EXPECT_EQ(d.Range.Begin, 16u);
  EXPECT_EQ(d.Notes.at(0).Range.Begin, 4u);

  d = mixtureError("a -> b @ 100 steps");
  EXPECT_EQ(d.Code, DiagCode::Units);
  EXPECT_EQ(d.Message, "a mixture position is in tokens or a percentage of the stage, not steps");

  d = mixtureError("a -> b @ 0.5");
  EXPECT_EQ(d.Code, DiagCode::Units);
  d = mixtureError("a -> b @ 150%");
  EXPECT_EQ(d.Message, "position 150% is beyond the end of the stage");
  d = mixtureError("a -> b @ c");
  EXPECT_EQ(d.Message, "expected a position such as '100M' or '50%' after '@'");
}

TEST(Mixture, ResolvesPositionsAndInterpolates) {
  // Two points: first at 0, last at the end of a 200M-token stage.
  plan::Mixture m = resolve("0.7 med_hq + 0.3 web -> 0.9 med_hq + 0.1 web", 200e6);
  EXPECT_EQ(m.Streams, (std::vector<std::string>{"med_hq", "web"}));
  EXPECT_EQ(m.Positions, (std::vector<double>{0, 200e6}));
  std::vector<double> mid = weightsAt(m, 100e6);
  ASSERT_EQ(mid.size(), 2u);
  EXPECT_DOUBLE_EQ(mid[0], 0.8);
  EXPECT_DOUBLE_EQ(mid[1], 0.2);
  std::vector<double> quarter = weightsAt(m, 50e6);
  EXPECT_DOUBLE_EQ(quarter[0], 0.75);
  EXPECT_DOUBLE_EQ(quarter[1], 0.25);
  EXPECT_EQ(weightsAt(m, -5), (std::vector<double>{0.7, 0.3}));  // constant outside
  EXPECT_EQ(weightsAt(m, 1e12), (std::vector<double>{0.9, 0.1}));
  EXPECT_EQ(streamIndex(m, "web"), 1u);
  EXPECT_EQ(streamIndex(m, "med"), std::nullopt);

  // A first point placed at 100M: constant until then, then linear to the end (1B).
  m = resolve("0.8 a + 0.2 b @ 100M -> 0.9 a + 0.1 b", 1e9);
  EXPECT_EQ(m.Positions, (std::vector<double>{100e6, 1e9}));
  EXPECT_EQ(weightsAt(m, 50e6), (std::vector<double>{0.8, 0.2}));
  std::vector<double> w = weightsAt(m, 550e6); // halfway between 100M and 1B
  EXPECT_DOUBLE_EQ(w[0], 0.85);
  EXPECT_DOUBLE_EQ(w[1], 0.15);

  // Streams missing from a point weigh 0 there; unannotated middle points are evenly spaced.
  m = resolve("a -> b -> 0.5 a + 0.5 c -> c", 300);
  EXPECT_EQ(m.Streams, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(m.Positions, (std::vector<double>{0, 100, 200, 300}));
  EXPECT_EQ(m.Weights[1], (std::vector<double>{0, 1, 0}));
  std::vector<double> at150 = weightsAt(m, 150);
  EXPECT_DOUBLE_EQ(at150[0], 0.25);
  EXPECT_DOUBLE_EQ(at150[1], 0.5);
  EXPECT_DOUBLE_EQ(at150[2], 0.25);

  // A percentage scales by the stage; the points between are spaced from the anchors.
  m = resolve("a -> b -> c @ 50% -> d", 1000);
  EXPECT_EQ(m.Positions, (std::vector<double>{0, 250, 500, 1000}));

  // One point: constant everywhere.
  m = resolve("med", 5e9);
  EXPECT_EQ(m.Positions, (std::vector<double>{0}));
  EXPECT_EQ(weightsAt(m, 1e9), (std::vector<double>{1}));
}

TEST(Mixture, ResolveErrors) {
  ExprDiag d = resolveError("a -> b @ 3B", 2e9);
  EXPECT_EQ(d.Code, DiagCode::BadValue);
  EXPECT_EQ(d.Message, "position 3B tokens is beyond the end of the stage (2B tokens)");
  EXPECT_EQ(d.Range.Begin, 9u);

  // 100M tokens then 5% of 1B = 50M: mixed units compared after resolving.
  d = resolveError("a @ 100M -> b @ 5%", 1e9);
  EXPECT_EQ(d.Message,
            "mixture positions must increase: this point is at 50M tokens, the previous one at "
            "100M tokens");

  d = resolveError("a -> b @ 0", 1e9);  // the unannotated first point sits at 0 too
  EXPECT_EQ(d.Code, DiagCode::BadValue);

  d = resolveError("a -> b", std::numeric_limits<double>::infinity());
  EXPECT_EQ(d.Message,
            "the last mixture point needs a position ('@ 100M'): the stage's length is not known");
  d = resolveError("a -> b @ 50%", std::numeric_limits<double>::infinity());
  EXPECT_EQ(d.Message, "a position in % needs the stage's length in tokens");
}

// One epoch of a mixture: until the stream read fastest for its size has been read once.
TEST(Mixture, EpochTokens) {
  // b: 100 tokens at 25% lasts 400 tokens of the mixture; a: 600 at 75% lasts 800.
  EXPECT_EQ(epochTokens({0.75, 0.25}, {600, 100}), 400.0);
  // In proportion to the sizes: the sum, every stream read once.
  EXPECT_EQ(epochTokens({0.6, 0.4}, {600, 400}), 1000.0);
  EXPECT_EQ(epochTokens({1.0}, {123}), 123.0);
  // A stream of weight 0 is never read: it bounds nothing.
  EXPECT_EQ(epochTokens({1.0, 0.0}, {500, 1}), 500.0);
}

// The tokens each stream is drawn: weights constant before the first point and after the
// last, linear between (areas of rectangles and trapezoids, by hand).
TEST(Mixture, DrawnTokensIntegrateTheWeights) {
  plan::Mixture m = resolve("a @ 100 -> b @ 300", 500);
  std::vector<double> drawn = drawnTokens(m, 500); // a: 100 + 200/2; b: 200/2 + 200
  EXPECT_EQ(drawn, (std::vector<double>{200, 300}));
  drawn = drawnTokens(m, 200); // cut halfway through the ramp: a 100 + (1 + 0.5)/2 · 100
  EXPECT_EQ(drawn, (std::vector<double>{175, 25}));
  EXPECT_EQ(drawnTokens(resolve("0.75 a + 0.25 b", 1000), 1000), (std::vector<double>{750, 250}));
}

// N epochs end where the stream read fastest for its size has been drawn N times its size.
TEST(Mixture, EpochsLengthOfChangingMixtures) {
  auto length = [](llvm::StringRef text, std::vector<uint64_t> tokens, double epochs) {
    Interpreted i = interpret(text);
    return i.Spec ? epochsLength(*i.Spec, tokens, epochs) : std::nullopt;
  };
  // Constant: epochs × epochTokens.
  EXPECT_EQ(length("0.75 a + 0.25 b", {600, 100}, 2.5), 1000.0);
  // A straight line from a to b: mean weights 1/2, so b's 100 tokens last 200.
  EXPECT_EQ(length("a -> b", {600, 100}, 1), 200.0);
  // Points in %: a alone for the first 50%, then a ramp to b, mean weight of b 1/4.
  EXPECT_EQ(length("a @ 50% -> b", {600, 100}, 1), 400.0);
  // A point in tokens: b is drawn L²/400 up to 200, then 100 + (L − 200): 150 at L = 250.
  EXPECT_EQ(length("a -> b @ 200", {600, 150}, 1), 250.0);
  // Before the point: b's 25 tokens are drawn at L² / 400 = 25, L = 100.
  EXPECT_EQ(length("a -> b @ 200", {600, 25}, 1), 100.0);
}
