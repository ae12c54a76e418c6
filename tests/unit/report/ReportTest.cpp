//===- ReportTest.cpp - ticks, metrics parsing, curve assembly ------------===//
#include "mixtape/report/Report.h"

#include "llvm/ADT/StringRef.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace mixtape::report;

namespace {

template <typename T> T take(llvm::Expected<T> value) {
  if (!value) {
    ADD_FAILURE() << llvm::toString(value.takeError());
    return T();
  }
  return std::move(*value);
}

template <typename T> std::string errorText(llvm::Expected<T> value) {
  return value ? std::string("(no error)") : llvm::toString(value.takeError());
}

TEST(NiceTicks, StepsOfOneTwoFive) {
  Ticks x = niceTicks(0, 1572864, 8);
  EXPECT_EQ(x.step, 200000);
  EXPECT_EQ(x.lo, 0);
  EXPECT_EQ(x.hi, 1600000);
  EXPECT_EQ(x.values.size(), 9u);

  Ticks y = niceTicks(1.43, 2.71, 6);
  EXPECT_DOUBLE_EQ(y.step, 0.2);
  EXPECT_DOUBLE_EQ(y.lo, 1.4);
  EXPECT_DOUBLE_EQ(y.hi, 2.8);
  EXPECT_EQ(y.values.size(), 8u);
}

TEST(NiceTicks, FlatSeriesGetsARange) {
  Ticks t = niceTicks(2, 2, 5);
  EXPECT_LT(t.lo, 2);
  EXPECT_GT(t.hi, 2);
  EXPECT_DOUBLE_EQ(t.step, 0.1);
}

TEST(Format, Tokens) {
  EXPECT_EQ(formatTokens(0), "0");
  EXPECT_EQ(formatTokens(999), "999");
  EXPECT_EQ(formatTokens(500000), "500K");
  EXPECT_EQ(formatTokens(1048576), "1.049M");
  EXPECT_EQ(formatTokens(1.6e6), "1.6M");
  EXPECT_EQ(formatTokens(2e9), "2G");
}

TEST(Format, EscapeXml) {
  EXPECT_EQ(escapeXml("a<b>&\"c'\x01"), "a&lt;b&gt;&amp;&quot;c&#39;\xEF\xBF\xBD");
}

TEST(ParseMetrics, SkipsATruncatedLastLineOnly) {
  llvm::StringRef text =
      R"({"type":"train","node":"a","stage":"s","step":1,"stage_tokens":8,"chain_tokens":8,"loss":3,"lr":0.1}
{"type":"checkpoint","node":"a"}

{"type":"train","node":"a","stage":"s","step":2,"stage_tok)";
  Metrics m = take(parseMetrics(text, "m.jsonl"));
  ASSERT_EQ(m.train.size(), 1u);
  EXPECT_EQ(m.train[0].step, 1);
  ASSERT_EQ(m.warnings.size(), 1u);
  EXPECT_TRUE(llvm::StringRef(m.warnings[0]).startswith("m.jsonl:4: skipped a truncated last line"))
      << m.warnings[0];
}

TEST(ParseMetrics, ErrorsNameFileAndLine) {
  EXPECT_EQ(errorText(parseMetrics("{\"type\":\"train\"\n{}\n", "m.jsonl")).substr(0, 23),
            "m.jsonl:1: invalid JSON");
  std::string missing = errorText(parseMetrics(
      R"({"type":"eval","node":"a","eval":"ppl","point":"final","stage":null,"stage_tokens":0,"chain_tokens":0,"stream":"p","split":"val","ppl":3}
)",
      "m.jsonl"));
  EXPECT_EQ(missing, "m.jsonl:1: \"loss\" must be a number");
  std::string point = errorText(parseMetrics(
      R"({"type":"eval","node":"a","eval":"ppl","point":"after","stage":null,"stage_tokens":0,"chain_tokens":0,"stream":"p","split":"val","loss":1,"ppl":3}
)",
      "m.jsonl"));
  EXPECT_EQ(point, "m.jsonl:1: \"point\" must be \"during\" or \"final\", not 'after'");
}

TEST(ParseMetrics, TrainingLossPerStream) {
  Metrics m = take(parseMetrics(
      R"({"type":"train","node":"a","stage":"s","step":1,"stage_tokens":8,"chain_tokens":8,"loss":3,"lr":0.1,"loss_by_stream":{"web":3.5,"code":1}}
)",
      "m.jsonl"));
  ASSERT_EQ(m.train.size(), 1u);
  using ByStream = std::vector<std::pair<std::string, double>>;
  EXPECT_EQ(m.train[0].lossByStream, (ByStream{{"code", 1}, {"web", 3.5}}));
  EXPECT_EQ(errorText(parseMetrics(
                R"({"type":"train","node":"a","stage":"s","step":1,"stage_tokens":8,"chain_tokens":8,"loss":3,"lr":0.1,"loss_by_stream":{"web":"x"}}
)",
                "m.jsonl")),
            "m.jsonl:1: \"loss_by_stream\" must be an object of numbers");
}

// Two stages: `base` shared by variants base, b[x] and b[y]; b[y] has not finished.
const char kPlan[] = R"({"format":"mixtape-plan","recipe":"r","nodes":[
 {"name":"init","kind":"init","dir":"init-0","inputs":[],"variants":[],"exec":{}},
 {"name":"base","kind":"train","dir":"base-1","inputs":["init"],"variants":["base","b[x]","b[y]"],
  "exec":{"stage":"base","stage_start":true,"chain_tokens":0}},
 {"name":"b[x]","kind":"train","dir":"b.x.-2","inputs":["base"],"variants":["b[x]"],
  "exec":{"stage":"b","stage_start":true,"chain_tokens":100}},
 {"name":"b[y]","kind":"train","dir":"b.y.-3","inputs":["base"],"variants":["b[y]"],
  "exec":{"stage":"b","stage_start":true,"chain_tokens":100}},
 {"name":"ppl@b[x]","kind":"eval","dir":"ppl.b.x.-4","inputs":["b[x]"],"variants":[],
  "exec":{"chain_tokens":150}},
 {"name":"ppl@init","kind":"eval","dir":"ppl.init-5","inputs":["init"],"variants":[],
  "exec":{"chain_tokens":0}}]})";

EvalRecord eval(llvm::StringRef model, bool final, double x, double loss) {
  EvalRecord r;
  r.model = model.str();
  r.eval = "ppl";
  r.stream = "prose";
  r.split = "val";
  r.final = final;
  r.chainTokens = x;
  r.loss = loss;
  r.ppl = 2 * loss;
  return r;
}

mixtape::report::Run sampleRun() {
  mixtape::report::Run run;
  run.plan = take(parsePlan(kPlan, "plan.json"));
  run.states = {NodeState::Done,    NodeState::Done,   NodeState::Done,
                NodeState::Partial, NodeState::Done,   NodeState::Done};
  run.metrics.evals = {eval("base", false, 50, 4),   eval("base", false, 0, 5),
                       eval("b[x]", false, 100, 3),  eval("b[y]", false, 100, 3.1),
                       eval("b[x]", true, 150, 3.5), eval("init", true, 0, 5.5)};
  for (double x : {50, 100})
    run.metrics.train.push_back({"base", "base", 0, x, x, 4, x / 1000, false});
  run.metrics.train.push_back({"b[x]", "b", 0, 50, 150, 4, 0.01, false});
  return run;
}

TEST(Curves, TrainingLossPerStreamFollowsEachVariantThatTrainedTheStream) {
  mixtape::report::Run run = sampleRun();
  run.metrics.train[0].lossByStream = {{"web", 4}};
  run.metrics.train[1].lossByStream = {{"web", 3.8}};
  run.metrics.train[2].lossByStream = {{"code", 2}, {"web", 4.2}};
  std::vector<Chart> charts = trainLossCharts(run);
  ASSERT_EQ(charts.size(), 2u);
  EXPECT_EQ(charts[0].fileStem, "train-loss-web");
  EXPECT_EQ(charts[1].fileStem, "train-loss-code");
  // web: base's steps for every variant through base; b[x] adds its own.
  ASSERT_EQ(charts[0].curves.size(), 3u);
  EXPECT_EQ(charts[0].curves[1].label, "b[x]");
  ASSERT_EQ(charts[0].curves[1].points.size(), 3u);
  EXPECT_EQ(charts[0].curves[1].points[2].y, 4.2);
  // code: only b[x] trained on it.
  ASSERT_EQ(charts[1].curves.size(), 1u);
  EXPECT_EQ(charts[1].curves[0].label, "b[x]");
  EXPECT_TRUE(trainLossCharts(sampleRun()).empty());
}

TEST(Curves, AVariantRunsThroughItsSharedNodesThenItsFinalEval) {
  mixtape::report::Run run = sampleRun();
  EXPECT_EQ(variantsOf(run.plan), (std::vector<std::string>{"base", "b[x]", "b[y]"}));
  std::vector<Chart> charts = lossCharts(run);
  ASSERT_EQ(charts.size(), 1u);
  const Chart &c = charts[0];
  EXPECT_EQ(c.fileStem, "loss-ppl_prose.val");
  ASSERT_EQ(c.stages.size(), 2u);
  EXPECT_EQ(c.stages[1].x, 100);
  EXPECT_EQ(c.stages[1].label, "b");
  ASSERT_EQ(c.curves.size(), 3u);
  auto xs = [](const Curve &curve) {
    std::vector<std::pair<double, double>> out;
    for (const Point &p : curve.points)
      out.push_back({p.x, p.y});
    return out;
  };
  using XY = std::vector<std::pair<double, double>>;
  EXPECT_EQ(xs(c.curves[0]), (XY{{0, 5}, {50, 4}}));
  EXPECT_EQ(xs(c.curves[1]), (XY{{0, 5}, {50, 4}, {100, 3}, {150, 3.5}}));
  EXPECT_EQ(xs(c.curves[2]), (XY{{0, 5}, {50, 4}, {100, 3.1}}));
  EXPECT_FALSE(c.curves[1].partial);
  EXPECT_TRUE(c.curves[2].partial);

  Chart lr = lrChart(run);
  ASSERT_EQ(lr.curves.size(), 3u);
  EXPECT_EQ(lr.curves[1].points.size(), 3u);
  EXPECT_EQ(lr.curves[2].points.size(), 2u);
}

TEST(Curves, LongLrCurvesAreThinnedKeepingTheLastStep) {
  mixtape::report::Run run = sampleRun();
  run.metrics.train.clear();
  for (int step = 1; step <= 2500; ++step)
    run.metrics.train.push_back({"base", "base", step, 1.0 * step, 1.0 * step, 4, 1e-3, false});
  Chart lr = lrChart(run);
  const Curve &curve = lr.curves[0];
  EXPECT_LE(curve.points.size(), 1001u);
  EXPECT_EQ(curve.points.front().x, 1);
  EXPECT_EQ(curve.points.back().x, 2500);
}

TEST(Table, RowsAreEvaluatedModelsInPlanOrder) {
  MetricsTable t = finalMetrics(sampleRun());
  EXPECT_EQ(t.columns, (std::vector<std::string>{"ppl prose.val"}));
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0].model, "init");
  EXPECT_EQ(t.rows[1].model, "b[x]");
  EXPECT_EQ(t.rows[1].chainTokens, 150);
  ASSERT_TRUE(t.rows[1].cells[0].has_value());
  EXPECT_EQ(t.rows[1].cells[0]->loss, 3.5);
}

TEST(Svg, OnePolylinePerCurveAndDeterministic) {
  mixtape::report::Run run = sampleRun();
  std::string svg = renderSvg(lossCharts(run)[0]);
  size_t polylines = 0;
  for (size_t at = svg.find("<polyline"); at != std::string::npos;
       at = svg.find("<polyline", at + 1))
    ++polylines;
  EXPECT_EQ(polylines, 3u);
  EXPECT_NE(svg.find("data-variant=\"b[y]\""), std::string::npos);
  EXPECT_NE(svg.find(">b[y] (partial)</text>"), std::string::npos);
  EXPECT_EQ(svg, renderSvg(lossCharts(run)[0]));
}

} // namespace

TEST(Ablations, CandidatesRankByProxyLossPerColumn) {
  mixtape::report::Run run;
  run.plan.ablations = {"which"};
  mixtape::report::MetricsTable table;
  table.columns = {"ppl code.val", "ppl prose.val"};
  auto row = [](std::string model, double a, double b) {
    mixtape::report::MetricsTable::Row r;
    r.model = std::move(model);
    r.cells = {mixtape::report::MetricsTable::Cell{a, std::exp(a)}, mixtape::report::MetricsTable::Cell{b, std::exp(b)}};
    return r;
  };
  table.rows = {row("which{0}", 2.0, 1.0), row("which{1}", 1.5, 3.0), row("which{0,1}", 1.7, 2.0), row("soup", 0.1, 0.1)};
  auto rankings = mixtape::report::rankAblations(run, table);
  ASSERT_EQ(rankings.size(), 2u);
  ASSERT_EQ(rankings[0].ranked.size(), 3u); // "soup" is no candidate
  EXPECT_EQ(rankings[0].ranked[0].first, "which{1}");
  EXPECT_EQ(rankings[0].ranked[2].first, "which{0}");
  EXPECT_EQ(rankings[1].column, "ppl prose.val");
  EXPECT_EQ(rankings[1].ranked[0].first, "which{0}");
}
