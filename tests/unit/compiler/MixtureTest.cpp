#include "mixtape/compiler/Mixture.h"

#include <gtest/gtest.h>

#include <limits>

using namespace mixtape;

namespace {

struct Interpreted {
  std::optional<MixtureSpec> spec;
  ExprDiags diags;
};

Interpreted interpret(llvm::StringRef text) {
  ParseResult r = parseExpr(text);
  EXPECT_TRUE(r.expr) << text.str() << ": " << (r.errors.empty() ? "" : r.errors[0].message);
  Interpreted out;
  if (r.expr) out.spec = interpretMixture(*r.expr, out.diags);
  EXPECT_EQ(out.spec.has_value(), out.diags.empty()) << text.str();
  return out;
}

/// The one diagnostic a bad mixture gives.
ExprDiag mixtureError(llvm::StringRef text) {
  Interpreted i = interpret(text);
  EXPECT_EQ(i.diags.size(), 1u) << text.str();
  return i.diags.empty() ? ExprDiag{} : i.diags[0];
}

plan::Mixture resolve(llvm::StringRef text, double stageTokens) {
  Interpreted i = interpret(text);
  ExprDiags diags;
  std::optional<plan::Mixture> m = i.spec ? resolveMixture(*i.spec, stageTokens, diags) : std::nullopt;
  EXPECT_TRUE(m) << text.str() << ": " << (diags.empty() ? "" : diags[0].message);
  return m ? *m : plan::Mixture{};
}

ExprDiag resolveError(llvm::StringRef text, double stageTokens) {
  Interpreted i = interpret(text);
  ExprDiags diags;
  EXPECT_TRUE(i.spec);
  if (i.spec) {
    EXPECT_FALSE(resolveMixture(*i.spec, stageTokens, diags));
  }
  EXPECT_EQ(diags.size(), 1u) << text.str();
  return diags.empty() ? ExprDiag{} : diags[0];
}

std::string slice(llvm::StringRef text, TextRange r) { return text.slice(r.begin, r.end).str(); }

} // namespace

TEST(Mixture, SinglePoint) {
  llvm::StringRef text = "0.95 med + 0.05 web";
  Interpreted i = interpret(text);
  ASSERT_TRUE(i.spec);
  ASSERT_EQ(i.spec->points.size(), 1u);
  const MixturePoint &p = i.spec->points[0];
  EXPECT_FALSE(p.at);
  ASSERT_EQ(p.components.size(), 2u);
  EXPECT_EQ(p.components[0].stream, "med");
  EXPECT_EQ(p.components[0].weight, 0.95);
  EXPECT_EQ(slice(text, p.components[0].streamRange), "med");
  EXPECT_EQ(slice(text, p.components[0].weightRange), "0.95");
  EXPECT_EQ(p.components[1].stream, "web");
  EXPECT_EQ(p.components[1].weight, 0.05);
  EXPECT_EQ(slice(text, p.range), text.str());

  auto refs = streamRefs(*i.spec);
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
    EXPECT_TRUE(interpret(text).spec) << text.str();

  Interpreted bare = interpret("med");
  ASSERT_TRUE(bare.spec);
  EXPECT_EQ(bare.spec->points[0].components[0].weight, 1.0);
}

TEST(Mixture, WeightErrors) {
  ExprDiag d = mixtureError("0.85 med + 0.05 web");
  EXPECT_EQ(d.code, DiagCode::MixtureSum);
  EXPECT_EQ(d.message, "mixture weights sum to 0.9, not 1");
  EXPECT_EQ(d.range.begin, 0u);
  EXPECT_EQ(d.range.end, 19u);

  d = mixtureError("0.5 med");
  EXPECT_EQ(d.code, DiagCode::MixtureSum);
  EXPECT_EQ(d.message, "mixture weights sum to 0.5, not 1");

  d = mixtureError("0.7 a + 0.3 b -> 0.7 a + 0.4 b");
  EXPECT_EQ(d.code, DiagCode::MixtureSum);
  EXPECT_EQ(d.message, "mixture weights sum to 1.1, not 1");
  EXPECT_EQ(d.range.begin, 17u); // the second point only

  d = mixtureError("1.5 med + -0.5 web");
  EXPECT_EQ(d.code, DiagCode::MixtureWeight);
  EXPECT_EQ(d.message, "mixture weight must be positive");
  EXPECT_EQ(d.range.begin, 10u);
  EXPECT_EQ(d.range.end, 14u);

  d = mixtureError("1 med + 0 web");
  EXPECT_EQ(d.code, DiagCode::MixtureWeight);
  EXPECT_EQ(d.message, "stream 'web' has weight 0; leave it out instead");

  d = mixtureError("1.05 med - 0.05 web");
  EXPECT_EQ(d.code, DiagCode::MixtureWeight);
  EXPECT_EQ(d.message, "a mixture cannot subtract a stream; weights must be positive");

  d = mixtureError("x * med");
  EXPECT_EQ(d.code, DiagCode::MixtureWeight);
  EXPECT_EQ(d.message, "a mixture weight must be a number, as in '0.5 med'");

  d = mixtureError("1M tokens med");
  EXPECT_EQ(d.code, DiagCode::MixtureWeight);
  EXPECT_EQ(d.message, "a mixture weight is a plain number or a percentage, not tokens");

  // 1/3 + 1/3 + 1/3 is within the tolerance of 1e-9.
  EXPECT_TRUE(interpret("0.3333333333 a + 0.3333333333 b + 0.3333333334 c").spec);
  EXPECT_FALSE(interpret("0.333 a + 0.333 b + 0.333 c").spec);
}

TEST(Mixture, ShapeErrors) {
  ExprDiag d = mixtureError("warmup(3)");
  EXPECT_EQ(d.code, DiagCode::BadValue);
  EXPECT_EQ(d.message, "expected a mixture such as '0.95 med + 0.05 web'");
  EXPECT_EQ(d.range.begin, 0u);
  EXPECT_EQ(d.range.end, 9u);

  EXPECT_EQ(mixtureError("0.5 med + 0.5").code, DiagCode::BadValue);
  EXPECT_EQ(mixtureError("'med'").code, DiagCode::BadValue);
  EXPECT_EQ(mixtureError("0.5 web.val + 0.5 med").code, DiagCode::BadValue);
  EXPECT_EQ(mixtureError("a then b").message, "mixture points are joined by '->', not 'then'");

  d = mixtureError("0.5 med + 0.5 med");
  EXPECT_EQ(d.code, DiagCode::BadValue);
  EXPECT_EQ(d.message, "stream 'med' appears twice in this mixture point");
  EXPECT_EQ(d.range.begin, 14u);
  ASSERT_EQ(d.notes.size(), 1u);
  EXPECT_EQ(d.notes[0].range.begin, 4u);
}

TEST(Mixture, PositionErrors) {
  ExprDiag d = mixtureError("a @ 200M -> b @ 100M");
  EXPECT_EQ(d.code, DiagCode::BadValue);
  EXPECT_EQ(d.message, "mixture positions must increase: 100M tokens is not after 200M tokens");
  EXPECT_EQ(d.range.begin, 16u);
  EXPECT_EQ(d.notes.at(0).range.begin, 4u);

  d = mixtureError("a -> b @ 100 steps");
  EXPECT_EQ(d.code, DiagCode::Units);
  EXPECT_EQ(d.message, "a mixture position is in tokens or a percentage of the stage, not steps");

  d = mixtureError("a -> b @ 0.5");
  EXPECT_EQ(d.code, DiagCode::Units);
  d = mixtureError("a -> b @ 150%");
  EXPECT_EQ(d.message, "position 150% is beyond the end of the stage");
  d = mixtureError("a -> b @ c");
  EXPECT_EQ(d.message, "expected a position such as '100M' or '50%' after '@'");
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
  EXPECT_EQ(d.code, DiagCode::BadValue);
  EXPECT_EQ(d.message, "position 3B tokens is beyond the end of the stage (2B tokens)");
  EXPECT_EQ(d.range.begin, 9u);

  // 100M tokens then 5% of 1B = 50M: mixed units compared after resolving.
  d = resolveError("a @ 100M -> b @ 5%", 1e9);
  EXPECT_EQ(d.message,
            "mixture positions must increase: this point is at 50M tokens, the previous one at "
            "100M tokens");

  d = resolveError("a -> b @ 0", 1e9);  // the unannotated first point sits at 0 too
  EXPECT_EQ(d.code, DiagCode::BadValue);

  d = resolveError("a -> b", std::numeric_limits<double>::infinity());
  EXPECT_EQ(d.message,
            "the last mixture point needs a position ('@ 100M'): the stage's length is not known");
  d = resolveError("a -> b @ 50%", std::numeric_limits<double>::infinity());
  EXPECT_EQ(d.message, "a position in % needs the stage's length in tokens");
}
