//===- ScheduleTest.cpp - LR schedules: values, continuity, domain errors -===//
//
// Expected values are computed by hand from the formulas in docs/schedules.md; the worked
// examples there are the ones checked here.
//
//===----------------------------------------------------------------------===//
#include "mixtape/compiler/Schedule.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace mixtape;
using namespace mixtape::schedule;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

/// A resolved schedule, read through plan/Schedule.h.
struct Schedule {
  plan::LRSchedule Resolved;
  Schedule() = default;
  Schedule(schedule::Resolved r) : Resolved(std::move(r.Schedule)) {}
  double lr(double tokens) const { return plan::learningRate(Resolved, tokens); }
  double end() const { return plan::scheduleEnd(Resolved); }
  const std::vector<plan::Phase> &phases() const { return Resolved.Phases; }
  size_t phaseAt(double tokens) const { return plan::phaseAt(Resolved, tokens); }
};

/// A phase's length in tokens; infinity for an open-ended one.
double lengthOf(const plan::Phase &p) { return p.Length.value_or(kInf); }

PhaseSpec phase(Shape shape, Length length, std::optional<double> to = std::nullopt,
                std::optional<double> from = std::nullopt) {
  PhaseSpec p;
  p.Shape = shape;
  p.Length = length;
  p.To = to;
  p.From = from;
  return p;
}

/// Resolves and expects no diagnostics.
Schedule resolveOk(std::vector<PhaseSpec> phases, double horizon) {
  ExprDiags diags;
  std::optional<Schedule> s = resolve(ScheduleSpec{std::move(phases), {}}, horizon, diags);
  for (const ExprDiag &d : diags)
    ADD_FAILURE() << "unexpected diagnostic: " << d.Message;
  EXPECT_TRUE(s.has_value());
  return s.value_or(Schedule());
}

/// Resolves and expects failure with exactly one diagnostic.
ExprDiag resolveError(std::vector<PhaseSpec> phases, double horizon) {
  ExprDiags diags;
  std::optional<Schedule> s = resolve(ScheduleSpec{std::move(phases), {}}, horizon, diags);
  EXPECT_FALSE(s.has_value());
  EXPECT_EQ(diags.size(), 1u);
  for (const ExprDiag &d : diags)
    EXPECT_TRUE(d.Code == DiagCode::ScheduleDomain || d.Code == DiagCode::BadArgument) << d.Message;
  return diags.empty() ? ExprDiag{} : diags.front();
}

// warmup(20M, peak = 3e-4) then cosine(to = 3e-5) over a 2B horizon: the north-star's `adapt`.
std::vector<PhaseSpec> adapt() {
  return {phase(Shape::Warmup, Length::tokens(20e6), 3e-4),
          phase(Shape::Cosine, Length::rest(), 3e-5)};
}

} // namespace

TEST(Schedule, ShapeNames) {
  EXPECT_EQ(shapeName(Shape::Warmup), "warmup");
  EXPECT_EQ(shapeName(Shape::InverseSqrt), "inverse_sqrt");
  EXPECT_EQ(shapeName(Shape::OneMinusSqrt), "1-sqrt");
}

TEST(Schedule, WarmupThenCosine) {
  Schedule s = resolveOk(adapt(), 2e9);
  ASSERT_EQ(s.phases().size(), 2u);
  EXPECT_EQ(s.phases()[1].Begin, 20e6);
  EXPECT_EQ(lengthOf(s.phases()[1]), 1.98e9); // the rest of the horizon
  EXPECT_EQ(s.end(), 2e9);

  EXPECT_EQ(s.lr(0), 0);                          // warmup's default `from`
  EXPECT_DOUBLE_EQ(s.lr(10e6), 1.5e-4);           // warmup midpoint
  EXPECT_EQ(s.lr(20e6), 3e-4);                    // exactly the peak at the hand-over
  EXPECT_DOUBLE_EQ(s.lr(20e6 + 0.99e9), 1.65e-4); // cosine midpoint = (3e-4 + 3e-5) / 2
  // A quarter in: 3e-5 + 2.7e-4 (1 + cos(pi/4)) / 2.
  EXPECT_DOUBLE_EQ(s.lr(20e6 + 0.495e9), 3e-5 + 2.7e-4 * (1 + std::sqrt(0.5)) / 2);
  EXPECT_EQ(s.lr(2e9), 3e-5);
  EXPECT_EQ(s.lr(5e9), 3e-5); // past the end the LR stays where it ended
  EXPECT_EQ(s.lr(-1), 0);

  EXPECT_EQ(s.phaseAt(0), 0u);
  EXPECT_EQ(s.phaseAt(19999999), 0u);
  EXPECT_EQ(s.phaseAt(20e6), 1u);
  EXPECT_EQ(s.phaseAt(1e12), 1u);
}

TEST(Schedule, ContinuousAtEveryBoundary) {
  // warmup -> cosine -> linear -> exp -> 1-sqrt -> constant (open-ended).
  std::vector<PhaseSpec> phases = {
      phase(Shape::Warmup, Length::tokens(10e6), 1e-3, 1e-4),
      phase(Shape::Cosine, Length::fraction(0.25), 5e-4),
      phase(Shape::Linear, Length::tokens(100e6), 2e-4),
      phase(Shape::Exp, Length::rest(), 1e-4),
      phase(Shape::OneMinusSqrt, Length::tokens(50e6), 1e-5),
      phase(Shape::Constant, Length::open())};
  Schedule s = resolveOk(phases, 1e9);
  ASSERT_EQ(s.phases().size(), 6u);
  EXPECT_EQ(s.lr(0), 1e-4);
  EXPECT_EQ(s.end(), kInf);
  for (size_t i = 1; i < s.phases().size(); ++i) {
    const plan::Phase &prev = s.phases()[i - 1], &next = s.phases()[i];
    EXPECT_EQ(next.Begin, prev.Begin + lengthOf(prev));
    EXPECT_EQ(next.From, prev.To) << "phase " << i;
    EXPECT_EQ(s.lr(next.Begin), prev.To) << "phase " << i; // exact at the boundary
    double justBefore = std::nextafter(next.Begin, 0.0);
    EXPECT_NEAR(s.lr(justBefore), prev.To, 1e-12) << "phase " << i;
  }
  // The finite phases fill the horizon exactly: 10M + 250M + 100M + 590M + 50M.
  EXPECT_EQ(lengthOf(s.phases()[3]), 590e6);
  EXPECT_EQ(s.phases()[5].Begin, 1e9);
  EXPECT_EQ(s.lr(1e15), 1e-5);
}

TEST(Schedule, LinearExpAndOneMinusSqrtMidpoints) {
  Schedule linear = resolveOk({phase(Shape::Linear, Length::rest(), 0.0, 3e-5)}, 200e6);
  EXPECT_DOUBLE_EQ(linear.lr(100e6), 1.5e-5);
  EXPECT_EQ(linear.lr(200e6), 0); // ending at exactly 0 is allowed

  // The north-star's stream_anneal: exp(from = 1.65e-4, to = 3e-5) over 250M tokens.
  Schedule exp = resolveOk({phase(Shape::Exp, Length::rest(), 3e-5, 1.65e-4)}, 250e6);
  EXPECT_DOUBLE_EQ(exp.lr(125e6), std::sqrt(1.65e-4 * 3e-5)); // geometric mean, ~7.04e-5
  EXPECT_DOUBLE_EQ(exp.lr(62.5e6), 1.65e-4 * std::pow(3e-5 / 1.65e-4, 0.25));

  // 1-sqrt from 1e-3 to 0: a quarter in, sqrt(1/4) = 1/2 of the way down.
  Schedule sqrtDecay = resolveOk({phase(Shape::OneMinusSqrt, Length::rest(), 0.0, 1e-3)}, 400e6);
  EXPECT_DOUBLE_EQ(sqrtDecay.lr(100e6), 5e-4);
  EXPECT_DOUBLE_EQ(sqrtDecay.lr(300e6), 1e-3 * (1 - std::sqrt(0.75)));
}

TEST(Schedule, ConstantKeepsOrSetsTheLevel) {
  Schedule s = resolveOk({phase(Shape::Warmup, Length::tokens(5e6), 2e-5),
                          phase(Shape::Constant, Length::open())},
                         500e6);
  EXPECT_EQ(s.lr(5e6), 2e-5);
  EXPECT_EQ(s.lr(400e6), 2e-5);
  EXPECT_EQ(s.lr(1e12), 2e-5); // open-ended: the stop point of the run is irrelevant

  // constant(value) jumps to its own level (the linter's lr-jump check sees it).
  Schedule jump = resolveOk({phase(Shape::Constant, Length::tokens(10e6), 1e-4),
                             phase(Shape::Constant, Length::rest(), 5e-5)},
                            100e6);
  EXPECT_EQ(jump.lr(9e6), 1e-4);
  EXPECT_EQ(jump.lr(10e6), 5e-5);
}

TEST(Schedule, InverseSqrtCooldown) {
  // alpha = 8: h(x) = 1/sqrt(1 + 8x) - 1, h(1) = -2/3, h(3/8) = -1/2, so 3/8 of the way
  // in the LR has covered 3/4 of the drop: 4e-4 -> 0 gives 1e-4 at 300M of 800M.
  PhaseSpec cooldown = phase(Shape::InverseSqrt, Length::tokens(800e6), 0.0, 4e-4);
  cooldown.Alpha = 8;
  Schedule s = resolveOk({cooldown}, 1e9);
  EXPECT_DOUBLE_EQ(s.lr(300e6), 1e-4);
  EXPECT_EQ(s.lr(800e6), 0);
  EXPECT_EQ(s.lr(900e6), 0);

  // alpha = 1 (the default) at the midpoint: (1/sqrt(1.5) - 1) / (1/sqrt(2) - 1) of the drop.
  cooldown.Alpha = 1;
  cooldown.To = 1e-4;
  Schedule a1 = resolveOk({cooldown}, 1e9);
  double fraction = (1 / std::sqrt(1.5) - 1) / (1 / std::sqrt(2.0) - 1); // ~0.6265
  EXPECT_DOUBLE_EQ(a1.lr(400e6), 4e-4 - 3e-4 * fraction);
}

TEST(Schedule, InverseSqrtDecay) {
  // start * sqrt(tau / (tau + t)): with tau = 100M, a quarter of the LR is left at t = 1.5B.
  PhaseSpec decay = phase(Shape::InverseSqrt, Length::rest(), std::nullopt, 1e-3);
  decay.Timescale = 100e6;
  Schedule s = resolveOk({phase(Shape::Warmup, Length::tokens(10e6), 1e-3), decay}, 2e9);
  EXPECT_EQ(s.lr(10e6), 1e-3);
  EXPECT_DOUBLE_EQ(s.lr(10e6 + 300e6), 5e-4);
  EXPECT_DOUBLE_EQ(s.lr(10e6 + 1.5e9), 2.5e-4);
  EXPECT_DOUBLE_EQ(s.phases()[1].To, 1e-3 * std::sqrt(100e6 / 2090e6));

  // Open-ended, it keeps decaying.
  decay.Length = Length::open();
  Schedule open = resolveOk({decay}, 1e9);
  EXPECT_DOUBLE_EQ(open.lr(9.9e9), 1e-4);
}

// wsd(warmup = 10%, peak = 1e-3, decay = 20%, final = 0, shape = sqrt) as interpretSchedule
// expands it, over a 1B horizon.
TEST(Schedule, WarmupStableDecay) {
  std::vector<PhaseSpec> wsd = {phase(Shape::Warmup, Length::fraction(0.1), 1e-3),
                                phase(Shape::Constant, Length::rest(), 1e-3),
                                phase(Shape::OneMinusSqrt, Length::fraction(0.2), 0.0)};
  Schedule s = resolveOk(wsd, 1e9);
  EXPECT_EQ(s.phases()[1].Begin, 100e6);
  EXPECT_EQ(s.phases()[2].Begin, 800e6); // the decay is the last 20% of the horizon
  EXPECT_EQ(s.lr(500e6), 1e-3);          // plateau
  EXPECT_DOUBLE_EQ(s.lr(850e6), 5e-4);   // 1-sqrt a quarter into the decay
  EXPECT_EQ(s.lr(1e9), 0);               // decay end
}

// infinite(warmup = 20M, peak = 3e-4, cooldown = cosine(1B), constant = 1.65e-4).
TEST(Schedule, InfiniteSchedule) {
  std::vector<PhaseSpec> infinite = {phase(Shape::Warmup, Length::tokens(20e6), 3e-4),
                                     phase(Shape::Cosine, Length::tokens(1e9), 1.65e-4),
                                     phase(Shape::Constant, Length::open(), 1.65e-4)};
  Schedule s = resolveOk(infinite, 5e9);
  EXPECT_DOUBLE_EQ(s.lr(520e6), (3e-4 + 1.65e-4) / 2); // cooldown midpoint
  EXPECT_EQ(s.lr(1.02e9), 1.65e-4);
  EXPECT_EQ(s.lr(4e9), 1.65e-4);
  EXPECT_EQ(s.lr(1e13), 1.65e-4);
  EXPECT_EQ(s.end(), kInf);
}

TEST(Schedule, AbsoluteLengthsDoNotDependOnTheHorizon) {
  std::vector<PhaseSpec> infinite = {phase(Shape::Warmup, Length::tokens(20e6), 3e-4),
                                     phase(Shape::Cosine, Length::tokens(1e9), 1.65e-4),
                                     phase(Shape::Constant, Length::open())};
  Schedule shortRun = resolveOk(infinite, 2e9), longRun = resolveOk(infinite, 5e9);
  for (double t = 0; t <= 2e9; t += 7.3e6)
    EXPECT_EQ(shortRun.lr(t), longRun.lr(t)) << "t = " << t;

  // inverse_sqrt(timescale = ...) in the Rest slot does not depend on it either.
  PhaseSpec decay = phase(Shape::InverseSqrt, Length::rest(), std::nullopt);
  decay.Timescale = 50e6;
  std::vector<PhaseSpec> rsqrt = {phase(Shape::Warmup, Length::tokens(10e6), 1e-3), decay};
  Schedule a = resolveOk(rsqrt, 1e9), b = resolveOk(rsqrt, 3e9);
  for (double t = 0; t < 1e9; t += 9.1e6)
    EXPECT_EQ(a.lr(t), b.lr(t)) << "t = " << t;
}

TEST(Schedule, FractionsScaleWithTheHorizon) {
  std::vector<PhaseSpec> fractions = {phase(Shape::Warmup, Length::fraction(0.05), 3e-4),
                                      phase(Shape::Cosine, Length::rest(), 3e-5)};
  Schedule a = resolveOk(fractions, 2e9), b = resolveOk(fractions, 4e9);
  EXPECT_EQ(a.phases()[1].Begin, 100e6);
  EXPECT_EQ(b.phases()[1].Begin, 200e6);
  EXPECT_EQ(a.lr(100e6), 3e-4);
  EXPECT_DOUBLE_EQ(b.lr(100e6), 1.5e-4);
  // The same curve as the absolute spelling at the same horizon.
  Schedule absolute = resolveOk({phase(Shape::Warmup, Length::tokens(100e6), 3e-4),
                                 phase(Shape::Cosine, Length::rest(), 3e-5)},
                                2e9);
  for (double t = 0; t <= 2e9; t += 13.7e6)
    EXPECT_EQ(a.lr(t), absolute.lr(t));
}

//===----------------------------------------------------------------------===//
// Domain errors from resolve()
//===----------------------------------------------------------------------===//

TEST(ScheduleDomain, WarmupLongerThanTheHorizon) {
  std::vector<PhaseSpec> p = adapt();
  p[0].Length = Length::tokens(3e9);
  p[0].LengthRange = {7, 9};
  ExprDiag d = resolveError(p, 2e9);
  EXPECT_EQ(d.Code, DiagCode::ScheduleDomain);
  EXPECT_EQ(d.Message, "warmup of 3B tokens is longer than the horizon of 2B tokens");
  EXPECT_EQ(d.Range.Begin, 7u);
  EXPECT_EQ(d.Range.End, 9u);
}

TEST(ScheduleDomain, PhasesPastTheHorizon) {
  // wsd(warmup = 400M, peak = 3e-4, decay = 1.8B, final = 0) over 2B.
  std::vector<PhaseSpec> p = {phase(Shape::Warmup, Length::tokens(400e6), 3e-4),
                              phase(Shape::Constant, Length::rest(), 3e-4),
                              phase(Shape::OneMinusSqrt, Length::tokens(1.8e9), 0.0)};
  p[2].Label = "decay";
  p[2].Range = {0, 60};
  p[2].LengthRange = {40, 44};
  ExprDiag d = resolveError(p, 2e9);
  EXPECT_EQ(d.Code, DiagCode::ScheduleDomain);
  EXPECT_EQ(d.Message, "decay ends at 2200M tokens, past the horizon of 2B tokens");
  EXPECT_EQ(d.Range.Begin, 40u);
  EXPECT_EQ(d.Range.End, 44u);

  // Fractions that add up to exactly 100% are not "past" it by a rounding error.
  resolveOk({phase(Shape::Warmup, Length::fraction(0.1), 1e-3),
             phase(Shape::Linear, Length::fraction(0.7), 5e-4),
             phase(Shape::Linear, Length::fraction(0.2), 0.0)},
            3e9);
}

TEST(ScheduleDomain, RestWithNothingLeft) {
  std::vector<PhaseSpec> p = {phase(Shape::Warmup, Length::fraction(0.5), 3e-4),
                              phase(Shape::Constant, Length::rest()),
                              phase(Shape::Linear, Length::fraction(0.5), 0.0)};
  p[1].Label = "stable";
  p[1].Range = {3, 5};
  ExprDiag d = resolveError(p, 2e9);
  EXPECT_EQ(d.Message, "stable has no tokens left: the other phases take all 2B tokens of the "
                       "horizon");
  EXPECT_EQ(d.Range.Begin, 3u);
}

TEST(ScheduleDomain, OnlyOneRestPhase) {
  std::vector<PhaseSpec> p = {phase(Shape::Cosine, Length::rest(), 3e-5, 3e-4),
                              phase(Shape::Linear, Length::rest(), 0.0)};
  p[1].Range = {20, 35};
  ExprDiag d = resolveError(p, 2e9);
  EXPECT_EQ(d.Code, DiagCode::ScheduleDomain);
  EXPECT_EQ(d.Message,
            "only one phase may omit its length, and cosine already takes the rest of the horizon");
  EXPECT_EQ(d.Range.Begin, 20u);
  ASSERT_EQ(d.Notes.size(), 1u);
}

TEST(ScheduleDomain, OpenEndedOnlyLast) {
  ExprDiag d = resolveError({phase(Shape::Constant, Length::open(), 1e-4),
                             phase(Shape::Linear, Length::rest(), 0.0)},
                            1e9);
  EXPECT_EQ(d.Message, "only the last phase may be open-ended, and constant is followed by linear");
  d = resolveError({phase(Shape::Cosine, Length::open(), 0.0, 1e-4)}, 1e9);
  EXPECT_EQ(d.Code, DiagCode::ScheduleDomain);
}

TEST(ScheduleDomain, LengthsMustBePositive) {
  ExprDiag d = resolveError({phase(Shape::Warmup, Length::tokens(0), 1e-4)}, 1e9);
  EXPECT_EQ(d.Message, "the length of warmup must be positive, not 0 tokens");
  d = resolveError({phase(Shape::Warmup, Length::fraction(1.2), 1e-4)}, 1e9);
  EXPECT_EQ(d.Message,
            "the length of warmup must be a fraction of the horizon in (0%, 100%], not 120%");
  d = resolveError(adapt(), 0);
  EXPECT_EQ(d.Message, "the horizon must be positive, not 0 tokens");
  d = resolveError({}, 1e9);
  EXPECT_EQ(d.Message, "a schedule needs at least one phase");
}

TEST(ScheduleDomain, FractionsAndRestNeedAFiniteHorizon) {
  ExprDiag d = resolveError({phase(Shape::Warmup, Length::fraction(0.1), 1e-4)}, kInf);
  EXPECT_EQ(d.Message, "warmup is a fraction of the horizon, but the horizon is open-ended");
  d = resolveError({phase(Shape::Warmup, Length::tokens(1e6), 1e-4),
                    phase(Shape::Cosine, Length::rest(), 0.0)},
                   kInf);
  EXPECT_EQ(d.Message, "cosine has no length, and the horizon is open-ended");
  resolveOk({phase(Shape::Warmup, Length::tokens(1e6), 1e-4), phase(Shape::Constant, Length::open())},
            kInf);
}

TEST(ScheduleDomain, PeakMustBePositive) {
  std::vector<PhaseSpec> p = adapt();
  p[0].To = 0;
  p[0].ToRange = {15, 16};
  ExprDiag d = resolveError(p, 2e9);
  EXPECT_EQ(d.Code, DiagCode::ScheduleDomain);
  EXPECT_EQ(d.Message, "the peak of warmup must be positive");
  EXPECT_EQ(d.Range.Begin, 15u);

  p[0].To = -3e-4;
  d = resolveError(p, 2e9); // one error: the cosine chained from it stays quiet
  EXPECT_EQ(d.Message, "warmup ends at a learning rate of -3e-4; learning rates must be finite "
                       "and not negative");
}

TEST(ScheduleDomain, NegativeLearningRates) {
  std::vector<PhaseSpec> p = {phase(Shape::Linear, Length::rest(), -1e-5, 3e-5)};
  p[0].ToRange = {30, 35};
  ExprDiag d = resolveError(p, 1e9);
  EXPECT_EQ(d.Message, "linear ends at a learning rate of -1e-5; learning rates must be finite "
                       "and not negative");
  EXPECT_EQ(d.Range.Begin, 30u);

  p = {phase(Shape::Constant, Length::open(), std::nullopt, -1e-4)};
  p[0].Range = {0, 8};
  d = resolveError(p, 1e9);
  EXPECT_EQ(d.Message, "constant stays at a learning rate of -1e-4; learning rates must be "
                       "finite and not negative");
  EXPECT_EQ(d.Range.End, 8u); // no FromRange: the phase
}

TEST(ScheduleDomain, ExpNeedsPositiveEnds) {
  ExprDiag d = resolveError({phase(Shape::Exp, Length::rest(), 0.0, 1e-4)}, 1e9);
  EXPECT_EQ(d.Message, "exp interpolates geometrically, so both ends must be positive; it ends "
                       "at 0 (use linear or cosine to reach 0)");
  d = resolveError({phase(Shape::Warmup, Length::tokens(1e6), 1e-4),
                    phase(Shape::Exp, Length::rest(), 1e-5, 0.0)},
                   1e9);
  EXPECT_EQ(d.Code, DiagCode::ScheduleDomain);
}

TEST(ScheduleDomain, InverseSqrtParameters) {
  PhaseSpec cooldown = phase(Shape::InverseSqrt, Length::rest(), 1e-5, 1e-4);
  cooldown.Alpha = 0;
  ExprDiag d = resolveError({cooldown}, 1e9);
  EXPECT_EQ(d.Message, "inverse_sqrt needs a positive 'alpha', not 0");

  PhaseSpec decay = phase(Shape::InverseSqrt, Length::rest(), std::nullopt, 1e-4);
  d = resolveError({decay}, 1e9);
  EXPECT_EQ(d.Message, "inverse_sqrt without 'to' needs a positive 'timescale', not 0 tokens");
}

TEST(ScheduleDomain, FirstPhaseNeedsAStart) {
  ExprDiag d = resolveError({phase(Shape::Cosine, Length::rest(), 3e-5)}, 1e9);
  EXPECT_EQ(d.Code, DiagCode::BadArgument);
  EXPECT_EQ(d.Message, "cosine starts the schedule, so it needs 'from = <learning rate>': there "
                       "is no earlier phase to continue from");
}

TEST(ScheduleDomain, ReportsEveryIndependentError) {
  ExprDiags diags;
  ScheduleSpec spec{{phase(Shape::Warmup, Length::tokens(1e6), 0.0),
                     phase(Shape::Constant, Length::tokens(1e6), 1e-4),
                     phase(Shape::Linear, Length::rest(), -1.0)},
                    {}};
  EXPECT_FALSE(resolve(spec, 1e9, diags));
  ASSERT_EQ(diags.size(), 2u);
  EXPECT_EQ(diags[0].Message, "the peak of warmup must be positive");
  EXPECT_EQ(diags[1].Message, "linear ends at a learning rate of -1; learning rates must be finite "
                              "and not negative");
}

//===----------------------------------------------------------------------===//
// interpretSchedule(): schedules as recipes write them
//===----------------------------------------------------------------------===//

namespace {

struct Compiled {
  std::string Text;
  std::optional<ScheduleSpec> Spec;
  std::optional<::Schedule> Schedule;
  ExprDiags Diags;
  /// The text a diagnostic or field points at.
  std::string at(TextRange r) const { return Text.substr(r.Begin, r.End - r.Begin); }
};

/// parseExpr -> interpretSchedule -> resolve (when the interpretation succeeded).
Compiled compile(const std::string &text, double horizon) {
  Compiled c;
  c.Text = text;
  ParseResult parsed = parseExpr(text);
  for (const ExprDiag &d : parsed.Errors)
    ADD_FAILURE() << "parse error in test input '" << text << "': " << d.Message;
  if (!parsed.Expr)
    return c;
  c.Spec = interpretSchedule(*parsed.Expr, c.Diags);
  if (c.Spec)
    c.Schedule = resolve(*c.Spec, horizon, c.Diags);
  return c;
}

Schedule compileOk(const std::string &text, double horizon) {
  Compiled c = compile(text, horizon);
  for (const ExprDiag &d : c.Diags)
    ADD_FAILURE() << "'" << text << "': unexpected diagnostic at '" << c.at(d.Range)
                  << "': " << d.Message;
  EXPECT_TRUE(c.Schedule.has_value()) << text;
  return c.Schedule.value_or(Schedule());
}

/// Compiles expecting exactly one diagnostic; returns it with the text it points at.
struct OneError {
  ExprDiag Diag;
  std::string At;
};
OneError compileError(const std::string &text, double horizon = 2e9) {
  Compiled c = compile(text, horizon);
  EXPECT_FALSE(c.Schedule.has_value()) << text;
  std::string all;
  for (const ExprDiag &d : c.Diags)
    all += "\n  at '" + c.at(d.Range) + "': " + d.Message;
  EXPECT_EQ(c.Diags.size(), 1u) << text << all;
  if (c.Diags.empty())
    return {};
  return {c.Diags.front(), c.at(c.Diags.front().Range)};
}

} // namespace

TEST(ScheduleText, NorthStarAdapt) {
  const std::string text = "warmup(20M, peak = 3e-4) then cosine(final = 3e-5)";
  Compiled c = compile(text, 2e9);
  ASSERT_TRUE(c.Spec && c.Schedule);
  ASSERT_EQ(c.Spec->Phases.size(), 2u);
  const PhaseSpec &warmup = c.Spec->Phases[0], &cosine = c.Spec->Phases[1];
  EXPECT_EQ(warmup.Shape, Shape::Warmup);
  EXPECT_EQ(warmup.Length.Kind, Length::Tokens);
  EXPECT_EQ(warmup.Length.Value, 20e6);
  EXPECT_EQ(c.at(warmup.LengthRange), "20M");
  EXPECT_EQ(c.at(warmup.ToRange), "3e-4");
  EXPECT_EQ(c.at(warmup.Range), "warmup(20M, peak = 3e-4)");
  EXPECT_EQ(cosine.Shape, Shape::Cosine);
  EXPECT_EQ(cosine.Length.Kind, Length::Rest);
  EXPECT_FALSE(cosine.From.has_value());
  EXPECT_EQ(cosine.To, 3e-5);
  EXPECT_EQ(c.at(c.Spec->Range), text);

  const Schedule &s = *c.Schedule;
  EXPECT_EQ(s.lr(0), 0);
  EXPECT_DOUBLE_EQ(s.lr(10e6), 1.5e-4);
  EXPECT_EQ(s.lr(20e6), 3e-4);
  EXPECT_DOUBLE_EQ(s.lr(1.01e9), 1.65e-4);
  EXPECT_EQ(s.lr(2e9), 3e-5);
}

TEST(ScheduleText, NorthStarStages) {
  // anneal: linear to exactly 0 over the stage's 200M tokens.
  Schedule anneal = compileOk("linear(from = 3e-5, to = 0)", 200e6);
  EXPECT_EQ(anneal.lr(0), 3e-5);
  EXPECT_DOUBLE_EQ(anneal.lr(100e6), 1.5e-5);
  EXPECT_EQ(anneal.lr(200e6), 0);

  // long: a trailing constant with no length is open-ended.
  Schedule longStage = compileOk("warmup(5M, peak = 2e-5) then constant", 500e6);
  EXPECT_EQ(longStage.end(), kInf);
  EXPECT_DOUBLE_EQ(longStage.lr(2.5e6), 1e-5);
  EXPECT_EQ(longStage.lr(5e6), 2e-5);
  EXPECT_EQ(longStage.lr(499e6), 2e-5);

  // stream: the infinite schedule.
  Schedule stream = compileOk(
      "infinite(warmup = 20M, peak = 3e-4, cooldown = cosine(1B), constant = 1.65e-4)", 5e9);
  ASSERT_EQ(stream.phases().size(), 3u);
  EXPECT_EQ(stream.lr(20e6), 3e-4);
  EXPECT_DOUBLE_EQ(stream.lr(520e6), 2.325e-4); // (3e-4 + 1.65e-4) / 2
  EXPECT_EQ(stream.lr(1.02e9), 1.65e-4);
  EXPECT_EQ(stream.lr(5e9), 1.65e-4);
  EXPECT_EQ(stream.end(), kInf);

  // stream_anneal: exp from the constant down to 3e-5; the midpoint is the geometric mean.
  Schedule streamAnneal = compileOk("exp(from = 1.65e-4, to = 3e-5)", 250e6);
  EXPECT_DOUBLE_EQ(streamAnneal.lr(125e6), std::sqrt(1.65e-4 * 3e-5));
  EXPECT_EQ(streamAnneal.lr(250e6), 3e-5);

  // The ablation's training schedule.
  Schedule ablation = compileOk("warmup(2M, peak = 1e-4) then cosine(final = 1e-5)", 100e6);
  EXPECT_DOUBLE_EQ(ablation.lr(51e6), 5.5e-5);
}

TEST(ScheduleText, StreamDoesNotDependOnTheHorizon) {
  const char *stream =
      "infinite(warmup = 20M, peak = 3e-4, cooldown = cosine(1B), constant = 1.65e-4)";
  Schedule at2B = compileOk(stream, 2e9), at5B = compileOk(stream, 5e9);
  for (double t = 0; t <= 2e9; t += 3.7e6)
    EXPECT_EQ(at2B.lr(t), at5B.lr(t)) << "t = " << t;
}

TEST(ScheduleText, FractionsAndAbsoluteLengthsAgree) {
  Schedule fraction = compileOk("warmup(5%, peak = 3e-4) then cosine(final = 3e-5)", 2e9);
  Schedule absolute = compileOk("warmup(100M, peak = 3e-4) then cosine(final = 3e-5)", 2e9);
  Schedule unit = compileOk("warmup(100M tokens, peak = 3e-4) then cosine(final = 3e-5)", 2e9);
  for (double t = 0; t <= 2e9; t += 11.3e6) {
    EXPECT_EQ(fraction.lr(t), absolute.lr(t)) << "t = " << t;
    EXPECT_EQ(unit.lr(t), absolute.lr(t)) << "t = " << t;
  }
  // Binary suffixes are exact counts too: 1Mi = 2^20 tokens.
  Schedule binary = compileOk("warmup(1Mi, peak = 1e-3) then constant", 1e9);
  EXPECT_EQ(binary.phases()[1].Begin, 1048576);
}

TEST(ScheduleText, Wsd) {
  const std::string base = "wsd(warmup = 10%, peak = 1e-3, decay = 20%, final = 0";
  Schedule sqrtDecay = compileOk(base + ")", 1e9); // shape defaults to sqrt
  ASSERT_EQ(sqrtDecay.phases().size(), 3u);
  EXPECT_EQ(sqrtDecay.phases()[2].Shape, Shape::OneMinusSqrt);
  EXPECT_DOUBLE_EQ(sqrtDecay.lr(50e6), 5e-4); // warmup midpoint
  EXPECT_EQ(sqrtDecay.lr(100e6), 1e-3);
  EXPECT_EQ(sqrtDecay.lr(799e6), 1e-3);       // plateau up to the last 20%
  EXPECT_DOUBLE_EQ(sqrtDecay.lr(850e6), 5e-4); // 1-sqrt: sqrt(1/4) of the drop
  EXPECT_EQ(sqrtDecay.lr(1e9), 0);

  Schedule linear = compileOk(base + ", shape = linear)", 1e9);
  EXPECT_EQ(linear.phases()[2].Shape, Shape::Linear);
  EXPECT_DOUBLE_EQ(linear.lr(850e6), 7.5e-4);
  Schedule cosine = compileOk(base + ", shape = cosine)", 1e9);
  EXPECT_DOUBLE_EQ(cosine.lr(900e6), 5e-4);
  Schedule quoted = compileOk(base + ", shape = 'sqrt')", 1e9);
  EXPECT_EQ(quoted.phases()[2].Shape, Shape::OneMinusSqrt);

  // An absolute decay stays the last 200M of whatever horizon.
  Schedule absolute = compileOk("wsd(warmup = 20M, peak = 3e-4, decay = 200M, final = 3e-5)", 2e9);
  EXPECT_EQ(absolute.phases()[2].Begin, 1.8e9);
  EXPECT_EQ(absolute.lr(2e9), 3e-5);
}

TEST(ScheduleText, InverseSqrt) {
  Schedule decay = compileOk("warmup(10M, peak = 1e-3) then inverse_sqrt(timescale = 100M)", 2e9);
  EXPECT_EQ(decay.phases()[1].Timescale, 100e6);
  EXPECT_DOUBLE_EQ(decay.lr(310e6), 5e-4);    // sqrt(100M / 400M) = 1/2
  EXPECT_DOUBLE_EQ(decay.lr(1.51e9), 2.5e-4); // sqrt(100M / 1.6B) = 1/4

  Schedule cooldown = compileOk("inverse_sqrt(800M, from = 4e-4, to = 0, alpha = 8)", 1e9);
  EXPECT_DOUBLE_EQ(cooldown.lr(300e6), 1e-4); // h(3/8)/h(1) = 3/4 with alpha = 8
  Schedule final = compileOk("inverse_sqrt(800M, from = 4e-4, final = 0, alpha = 8)", 1e9);
  EXPECT_EQ(final.lr(300e6), cooldown.lr(300e6));

  // Ibrahim et al.'s inverse-sqrt cooldown inside the infinite schedule.
  Schedule infinite = compileOk(
      "infinite(warmup = 10M, peak = 4e-4, cooldown = inverse_sqrt(800M, alpha = 8), "
      "constant = 1e-4)",
      5e9);
  EXPECT_EQ(infinite.phases()[1].Alpha, 8);
  EXPECT_DOUBLE_EQ(infinite.lr(310e6), 1.75e-4); // 4e-4 - 3e-4 * 3/4
  EXPECT_EQ(infinite.lr(810e6), 1e-4);
  EXPECT_EQ(infinite.lr(4e9), 1e-4);
  // alpha defaults to 1.
  Schedule alpha1 = compileOk(
      "infinite(warmup = 10M, peak = 4e-4, cooldown = inverse_sqrt(800M), constant = 1e-4)", 5e9);
  EXPECT_EQ(alpha1.phases()[1].Alpha, 1);
}

TEST(ScheduleText, ConstantForms) {
  for (const char *text : {"constant(3e-4)", "3e-4"}) { // a bare number is a constant
    Schedule level = compileOk(text, 1e9);
    EXPECT_EQ(level.end(), kInf) << text;
    EXPECT_EQ(level.lr(0), 3e-4) << text;
    EXPECT_EQ(level.lr(1e12), 3e-4) << text;
  }
  Schedule thenDecay = compileOk("3e-4 then linear(100M, to = 0)", 1e9);
  EXPECT_EQ(lengthOf(thenDecay.phases()[0]), 900e6);
  EXPECT_DOUBLE_EQ(thenDecay.lr(950e6), 1.5e-4);

  Schedule named = compileOk("constant(20M, value = 1e-4) then linear(to = 0)", 100e6);
  Schedule positional = compileOk("constant(20M, 1e-4) then linear(to = 0)", 100e6);
  EXPECT_EQ(named.lr(10e6), 1e-4);
  EXPECT_DOUBLE_EQ(named.lr(60e6), 5e-5);
  EXPECT_EQ(named.phases()[1].Begin, 20e6);
  for (double t = 0; t <= 100e6; t += 7e6)
    EXPECT_EQ(named.lr(t), positional.lr(t));

  // A constant with no length before another phase takes the rest of the horizon.
  Schedule middle = compileOk("warmup(10M, peak = 1e-3) then constant then linear(100M, to = 0)",
                              1e9);
  EXPECT_EQ(lengthOf(middle.phases()[1]), 890e6);
  EXPECT_EQ(middle.end(), 1e9);
}

TEST(ScheduleText, FinalAndToAreTheSameArgument) {
  Schedule to = compileOk("cosine(1B, from = 3e-4, to = 3e-5)", 1e9);
  Schedule final = compileOk("cosine(1B, from = 3e-4, final = 3e-5)", 1e9);
  Schedule length = compileOk("cosine(length = 1B, from = 3e-4, final = 3e-5)", 1e9);
  for (double t = 0; t <= 1e9; t += 50e6) {
    EXPECT_EQ(to.lr(t), final.lr(t));
    EXPECT_EQ(to.lr(t), length.lr(t));
  }
}

//===----------------------------------------------------------------------===//
// Diagnostics from interpretSchedule(), with the text they point at
//===----------------------------------------------------------------------===//

TEST(ScheduleTextErrors, UnknownFunction) {
  OneError e = compileError("warmup(20M, peak = 3e-4) then cosin(final = 3e-5)");
  EXPECT_EQ(e.Diag.Code, DiagCode::UnknownFunction);
  EXPECT_EQ(e.Diag.Message, "unknown schedule 'cosin'");
  EXPECT_EQ(e.At, "cosin");
  EXPECT_EQ(e.Diag.Fixit, "cosine");
  ASSERT_EQ(e.Diag.Notes.size(), 1u);
  EXPECT_EQ(e.Diag.Notes[0].Message, "did you mean 'cosine'?");

  e = compileError("warmup(20M, peak = 3e-4) then sawtooth");
  EXPECT_EQ(e.Diag.Code, DiagCode::UnknownFunction);
  EXPECT_EQ(e.At, "sawtooth");
  EXPECT_EQ(e.Diag.Fixit, "");
  ASSERT_EQ(e.Diag.Notes.size(), 1u);
  EXPECT_EQ(e.Diag.Notes[0].Message, "schedules are 'warmup', 'constant', 'linear', 'cosine', "
                                     "'exp', 'inverse_sqrt', 'wsd' and 'infinite'");

  e = compileError("0.95 med + 0.05 web");
  EXPECT_EQ(e.Diag.Code, DiagCode::BadValue);

  e = compileError("20M tokens");
  EXPECT_EQ(e.Diag.Code, DiagCode::Units);
  EXPECT_EQ(e.Diag.Message, "a constant learning rate must be a plain number, not tokens");
  EXPECT_EQ(e.At, "20M tokens");
}

TEST(ScheduleTextErrors, UnknownArgument) {
  OneError e = compileError("warmup(20M, pek = 3e-4) then cosine(final = 3e-5)");
  EXPECT_EQ(e.Diag.Code, DiagCode::BadArgument);
  EXPECT_EQ(e.Diag.Message, "unknown argument 'pek' to warmup");
  EXPECT_EQ(e.At, "pek");
  EXPECT_EQ(e.Diag.Fixit, "peak");
  ASSERT_EQ(e.Diag.Notes.size(), 1u);
  EXPECT_EQ(e.Diag.Notes[0].Message, "did you mean 'peak'?");

  e = compileError("cosine(from = 3e-4, fnal = 3e-5)");
  EXPECT_EQ(e.Diag.Fixit, "final");

  e = compileError("warmup(20M, peak = 3e-4, steepness = 2)");
  EXPECT_EQ(e.At, "steepness");
  ASSERT_EQ(e.Diag.Notes.size(), 1u);
  EXPECT_EQ(e.Diag.Notes[0].Message, "warmup takes 'length', 'peak' and 'from'");
}

TEST(ScheduleTextErrors, DuplicateArgument) {
  Compiled c = compile("warmup(20M, peak = 3e-4, peak = 1e-4)", 1e9);
  ASSERT_EQ(c.Diags.size(), 1u);
  EXPECT_EQ(c.Diags[0].Code, DiagCode::BadArgument);
  EXPECT_EQ(c.Diags[0].Message, "argument 'peak' of warmup is given twice");
  EXPECT_EQ(c.Diags[0].Range.Begin, c.Text.rfind("peak"));
  ASSERT_EQ(c.Diags[0].Notes.size(), 1u);
  EXPECT_EQ(c.at(c.Diags[0].Notes[0].Range), "peak");
  EXPECT_EQ(c.Diags[0].Notes[0].Range.Begin, c.Text.find("peak"));

  OneError e = compileError("cosine(from = 3e-4, to = 3e-5, final = 3e-5)");
  EXPECT_EQ(e.Diag.Message, "argument 'to' of cosine is given twice");
  EXPECT_EQ(e.At, "final");

  e = compileError("warmup(20M, length = 30M, peak = 3e-4)");
  EXPECT_EQ(e.Diag.Message, "argument 'length' of warmup is given twice");
  EXPECT_EQ(e.At, "length");
}

TEST(ScheduleTextErrors, PositionalArguments) {
  OneError e = compileError("cosine(1B, 2B, to = 0, from = 1e-4)");
  EXPECT_EQ(e.Diag.Code, DiagCode::BadArgument);
  EXPECT_EQ(e.At, "2B");
  EXPECT_EQ(e.Diag.Message, "too many positional arguments to cosine; name the others, such as "
                            "to = ...");
  e = compileError("wsd(20M, peak = 3e-4, decay = 10%, final = 0)");
  EXPECT_EQ(e.Diag.Message, "wsd takes only named arguments, such as warmup = ...");
  EXPECT_EQ(e.At, "20M");
}

TEST(ScheduleTextErrors, MissingArgument) {
  OneError e = compileError("warmup(peak = 3e-4) then cosine(final = 3e-5)");
  EXPECT_EQ(e.Diag.Code, DiagCode::BadArgument);
  EXPECT_EQ(e.Diag.Message, "warmup needs a length, as in warmup(20M, peak = 3e-4)");
  EXPECT_EQ(e.At, "warmup");

  e = compileError("warmup(20M) then cosine(final = 3e-5)");
  EXPECT_EQ(e.Diag.Message, "warmup needs 'peak = <learning rate>'");

  e = compileError("warmup(20M, peak = 3e-4) then linear");
  EXPECT_EQ(e.Diag.Message, "linear needs 'to = <learning rate>'");
  EXPECT_EQ(e.At, "linear");

  e = compileError("wsd(warmup = 20M, peak = 3e-4, decay = 10%)");
  EXPECT_EQ(e.Diag.Message, "wsd needs 'final = ...'");

  e = compileError("infinite(warmup = 20M, peak = 3e-4, constant = 1e-4)");
  EXPECT_EQ(e.Diag.Message, "infinite needs 'cooldown = ...'");

  // Resolution: a first phase that continues from nothing.
  e = compileError("cosine(final = 3e-5)");
  EXPECT_EQ(e.Diag.Code, DiagCode::BadArgument);
  EXPECT_EQ(e.At, "cosine(final = 3e-5)");
}

TEST(ScheduleTextErrors, Units) {
  OneError e = compileError("warmup(3 epochs, peak = 3e-4) then cosine(final = 3e-5)");
  EXPECT_EQ(e.Diag.Code, DiagCode::Units);
  EXPECT_EQ(e.At, "3 epochs");
  EXPECT_EQ(e.Diag.Message,
            "the length of warmup must be in tokens or a fraction of the horizon (%), not epochs");

  e = compileError("warmup(1000, peak = 3e-4) then cosine(final = 3e-5)");
  EXPECT_EQ(e.Diag.Message, "the length of warmup must be in tokens or a fraction of the horizon "
                            "(%), not a plain number");

  e = compileError("warmup(20M, peak = 20M tokens) then cosine(final = 3e-5)");
  EXPECT_EQ(e.Diag.Code, DiagCode::Units);
  EXPECT_EQ(e.At, "20M tokens");
  EXPECT_EQ(e.Diag.Message, "'peak' (a learning rate) must be a plain number, not tokens");

  e = compileError("warmup(20M, peak = 3e-4) then cosine(final = 1%)");
  EXPECT_EQ(e.Diag.Message, "'final' (a learning rate) must be a plain number, not a fraction (%)");
  EXPECT_EQ(e.At, "1%");

  e = compileError("warmup(20M, peak = 3M) then constant");
  EXPECT_EQ(e.Diag.Message, "'peak' (a learning rate) must be a plain number, not tokens");

  e = compileError("wsd(warmup = 20M, peak = 3e-4, decay = 1000 steps, final = 0)");
  EXPECT_EQ(e.At, "1000 steps");
  EXPECT_EQ(e.Diag.Message,
            "the length of decay must be in tokens or a fraction of the horizon (%), not steps");

  e = compileError("inverse_sqrt(from = 1e-3, timescale = 5%)");
  EXPECT_EQ(e.Diag.Message, "timescale must be in tokens, not a fraction (%)");

  e = compileError("warmup(20M, peak = web)");
  EXPECT_EQ(e.Diag.Code, DiagCode::BadArgument);
  EXPECT_EQ(e.Diag.Message, "'peak' (a learning rate) must be a number");
  EXPECT_EQ(e.At, "web");
}

TEST(ScheduleTextErrors, InverseSqrtForms) {
  OneError e = compileError("inverse_sqrt(from = 1e-3)");
  EXPECT_EQ(e.Diag.Code, DiagCode::BadArgument);
  EXPECT_EQ(e.At, "inverse_sqrt");
  e = compileError("inverse_sqrt(from = 1e-3, to = 0, timescale = 1M)");
  EXPECT_EQ(e.At, "timescale");
  EXPECT_EQ(e.Diag.Message,
            "inverse_sqrt takes 'to' (a cooldown) or 'timescale' (a decay), not both");
  e = compileError("inverse_sqrt(from = 1e-3, timescale = 1M, alpha = 2)");
  EXPECT_EQ(e.At, "alpha");
  e = compileError("inverse_sqrt(1B, from = 1e-3, to = 1e-4, alpha = 0)", 1e9);
  EXPECT_EQ(e.Diag.Code, DiagCode::ScheduleDomain);
  EXPECT_EQ(e.Diag.Message, "'alpha' must be positive");
  EXPECT_EQ(e.At, "0");
  e = compileError("inverse_sqrt(from = 1e-3, timescale = 0 tokens)", 1e9);
  EXPECT_EQ(e.Diag.Code, DiagCode::ScheduleDomain);
  EXPECT_EQ(e.At, "0 tokens");
}

TEST(ScheduleTextErrors, WsdShape) {
  OneError e =
      compileError("wsd(warmup = 20M, peak = 3e-4, decay = 10%, final = 0, shape = cosin)");
  EXPECT_EQ(e.Diag.Code, DiagCode::BadArgument);
  EXPECT_EQ(e.At, "cosin");
  EXPECT_EQ(e.Diag.Fixit, "cosine");
  EXPECT_EQ(e.Diag.Message, "the shape of wsd's decay is linear, cosine or sqrt (1-sqrt)");
}

TEST(ScheduleTextErrors, InfiniteCooldown) {
  const std::string head = "infinite(warmup = 20M, peak = 3e-4, constant = 1e-4, cooldown = ";
  OneError e = compileError(head + "linear(1B))");
  EXPECT_EQ(e.Diag.Code, DiagCode::BadArgument);
  EXPECT_EQ(e.At, "linear");
  EXPECT_EQ(e.Diag.Message,
            "the cooldown is cosine(<length>) or inverse_sqrt(<length>, alpha = ...)");

  e = compileError(head + "cosin(1B))");
  EXPECT_EQ(e.Diag.Code, DiagCode::UnknownFunction);
  EXPECT_EQ(e.Diag.Fixit, "cosine");

  e = compileError(head + "cosine)");
  EXPECT_EQ(e.Diag.Message, "cosine needs a length: the cooldown has a fixed length, as in "
                            "cosine(1B)");

  e = compileError(head + "cosine(1B, to = 0))");
  EXPECT_EQ(e.Diag.Message, "unknown argument 'to' to cosine");
  EXPECT_EQ(e.At, "to");

  e = compileError(head + "1B)");
  EXPECT_EQ(e.At, "1B");
}

TEST(ScheduleTextErrors, DomainErrorsPointAtTheArgument) {
  OneError e = compileError("wsd(warmup = 400M, peak = 3e-4, decay = 1.8B, final = 0)", 2e9);
  EXPECT_EQ(e.Diag.Code, DiagCode::ScheduleDomain);
  EXPECT_EQ(e.Diag.Message, "decay ends at 2200M tokens, past the horizon of 2B tokens");
  EXPECT_EQ(e.At, "1.8B");

  e = compileError("warmup(3B, peak = 3e-4) then cosine(final = 3e-5)", 2e9);
  EXPECT_EQ(e.Diag.Message, "warmup of 3B tokens is longer than the horizon of 2B tokens");
  EXPECT_EQ(e.At, "3B");

  const std::string zeroPeak = "warmup(20M, peak = 0) then cosine(final = 0)";
  e = compileError(zeroPeak);
  EXPECT_EQ(e.Diag.Message, "the peak of warmup must be positive");
  EXPECT_EQ(e.At, "0");
  EXPECT_EQ(e.Diag.Range.Begin, zeroPeak.find("0)")); // the peak's, not the final's

  e = compileError("exp(from = 1.65e-4, to = 0)", 250e6);
  EXPECT_EQ(e.Diag.Code, DiagCode::ScheduleDomain);
  EXPECT_EQ(e.At, "0");

  e = compileError("linear(from = 3e-5, to = -1e-5)", 200e6);
  EXPECT_EQ(e.Diag.Message,
            "linear ends at a learning rate of -1e-5; learning rates must be finite and not "
            "negative");
  EXPECT_EQ(e.At, "-1e-5");

  e = compileError("warmup(1B, peak = 1e-3) then cosine(final = 0) then linear(to = 0)", 2e9);
  EXPECT_EQ(e.At, "linear(to = 0)");
  EXPECT_EQ(e.Diag.Message,
            "only one phase may omit its length, and cosine already takes the rest of the horizon");

  e = compileError("wsd(warmup = 50%, peak = 1e-3, decay = 50%, final = 0)", 2e9);
  EXPECT_EQ(e.Diag.Message,
            "stable phase has no tokens left: the other phases take all 2B tokens of the horizon");

  e = compileError("warmup(0 tokens, peak = 1e-3) then constant", 2e9);
  EXPECT_EQ(e.Diag.Message, "the length of warmup must be positive, not 0 tokens");
  EXPECT_EQ(e.At, "0 tokens");
  e = compileError("warmup(120%, peak = 1e-3) then constant", 2e9);
  EXPECT_EQ(e.Diag.Message,
            "the length of warmup must be a fraction of the horizon in (0%, 100%], not 120%");
  EXPECT_EQ(e.At, "120%");
}

TEST(ScheduleTextErrors, ReportsEveryPhase) {
  Compiled c = compile("warmup(3 epochs, peak = 3e-4) then cosin(final = 3e-5)", 2e9);
  ASSERT_EQ(c.Diags.size(), 2u);
  EXPECT_EQ(c.Diags[0].Code, DiagCode::Units);
  EXPECT_EQ(c.Diags[1].Code, DiagCode::UnknownFunction);
  EXPECT_FALSE(c.Spec.has_value());
}

TEST(ScheduleText, LongChains) {
  std::string text = "warmup(1M, peak = 1e-3)";
  for (int i = 0; i < 500; ++i)
    text += " then constant(1M)";
  Schedule s = compileOk(text, 1e9);
  EXPECT_EQ(s.phases().size(), 501u);
  EXPECT_EQ(s.phaseAt(250.5e6), 250u);
  EXPECT_EQ(s.lr(400e6), 1e-3);
}
