//===- ReportTest.cpp - ticks, metrics parsing, curves, tables, forgetting -===//
#include "mixtape/report/Forgetting.h"
#include "mixtape/report/Report.h"
#include "mixtape/report/TensorBoard.h"

#include "llvm/ADT/StringRef.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace mixtape;
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
  EXPECT_EQ(x.Step, 200000);
  EXPECT_EQ(x.Lo, 0);
  EXPECT_EQ(x.Hi, 1600000);
  EXPECT_EQ(x.Values.size(), 9u);

  Ticks y = niceTicks(1.43, 2.71, 6);
  EXPECT_DOUBLE_EQ(y.Step, 0.2);
  EXPECT_DOUBLE_EQ(y.Lo, 1.4);
  EXPECT_DOUBLE_EQ(y.Hi, 2.8);
  EXPECT_EQ(y.Values.size(), 8u);
}

TEST(NiceTicks, FlatSeriesGetsARange) {
  Ticks t = niceTicks(2, 2, 5);
  EXPECT_LT(t.Lo, 2);
  EXPECT_GT(t.Hi, 2);
  EXPECT_DOUBLE_EQ(t.Step, 0.1);
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

/// A node of a test plan: only what the report reads.
plan::Node node(std::string name, plan::NodeKind kind, std::vector<size_t> inputs, std::vector<std::string> variants,
                std::string stage = "", uint64_t chainTokens = 0) {
  plan::Node n;
  switch (kind) {
  case plan::NodeKind::Train: {
    plan::TrainNode t;
    t.Exec.Stage = stage;
    t.Exec.StageStart = true;
    t.Exec.ChainTokens = chainTokens;
    n = plan::makeNode(name, std::move(t));
    break;
  }
  case plan::NodeKind::Eval: {
    plan::EvalNode e;
    e.Exec.ChainTokens = chainTokens;
    n = plan::makeNode(name, std::move(e));
    break;
  }
  default:
    n = plan::makeNode(name, plan::InitNode{});
  }
  for (size_t i : inputs)
    n.Inputs.push_back({i});
  n.Variants = std::move(variants);
  n.Dir = name + "-dir";
  return n;
}

// Two stages: `base` shared by variants base, b[x] and b[y]; b[y] has not finished.
plan::Plan samplePlan() {
  using plan::NodeKind;
  plan::Plan p;
  p.Recipe = "r";
  p.Nodes = {node("init", NodeKind::Init, {}, {}),
             node("base", NodeKind::Train, {0}, {"base", "b[x]", "b[y]"}, "base", 0),
             node("b[x]", NodeKind::Train, {1}, {"b[x]"}, "b", 100),
             node("b[y]", NodeKind::Train, {1}, {"b[y]"}, "b", 100),
             node("ppl@b[x]", NodeKind::Eval, {2}, {}, "", 150),
             node("ppl@init", NodeKind::Eval, {0}, {}, "", 0)};
  return p;
}

Logged<rundir::EvalRecord> eval(llvm::StringRef model, bool final, uint64_t x, double loss, bool partial = false) {
  rundir::EvalRecord r;
  r.Node = model.str();
  r.Eval = "ppl";
  r.Stream = "prose";
  r.Split = plan::SplitKind::Val;
  r.Final = final;
  r.ChainTokens = x;
  r.Loss = loss;
  r.Ppl = 2 * loss;
  return {r, partial};
}

Logged<rundir::TrainRecord> train(llvm::StringRef node, llvm::StringRef stage, uint64_t step, uint64_t stageTokens,
                                  uint64_t chainTokens, double lr) {
  rundir::TrainRecord r;
  r.Node = node.str();
  r.Stage = stage.str();
  r.Step = step;
  r.StageTokens = stageTokens;
  r.ChainTokens = chainTokens;
  r.Loss = 4;
  r.LR = lr;
  return {r, false};
}

mixtape::report::Run sampleRun() {
  mixtape::report::Run run;
  run.Plan = samplePlan();
  run.States = {NodeState::Done, NodeState::Done, NodeState::Done, NodeState::Partial, NodeState::Done, NodeState::Done};
  run.Logs.Evals = {eval("base", false, 50, 4),  eval("base", false, 0, 5),       eval("b[x]", false, 100, 3),
                    eval("b[y]", false, 100, 3.1, true), eval("b[x]", true, 150, 3.5), eval("init", true, 0, 5.5)};
  for (uint64_t x : {50, 100})
    run.Logs.Train.push_back(train("base", "base", 0, x, x, x / 1000.0));
  run.Logs.Train.push_back(train("b[x]", "b", 0, 50, 150, 0.01));
  return run;
}

TEST(Curves, TrainingLossPerStreamFollowsEachVariantThatTrainedTheStream) {
  mixtape::report::Run run = sampleRun();
  run.Logs.Train[0].Record.LossByStream = {{"web", 4}};
  run.Logs.Train[1].Record.LossByStream = {{"web", 3.8}};
  run.Logs.Train[2].Record.LossByStream = {{"code", 2}, {"web", 4.2}};
  std::vector<Chart> charts = trainLossCharts(run);
  ASSERT_EQ(charts.size(), 2u);
  EXPECT_EQ(charts[0].FileStem, "train-loss-web");
  EXPECT_EQ(charts[1].FileStem, "train-loss-code");
  // web: base's steps for every variant through base; b[x] adds its own.
  ASSERT_EQ(charts[0].Curves.size(), 3u);
  EXPECT_EQ(charts[0].Curves[1].Label, "b[x]");
  ASSERT_EQ(charts[0].Curves[1].Points.size(), 3u);
  EXPECT_EQ(charts[0].Curves[1].Points[2].Y, 4.2);
  // code: only b[x] trained on it.
  ASSERT_EQ(charts[1].Curves.size(), 1u);
  EXPECT_EQ(charts[1].Curves[0].Label, "b[x]");
  EXPECT_TRUE(trainLossCharts(sampleRun()).empty());
}

TEST(Curves, AVariantRunsThroughItsSharedNodesThenItsFinalEval) {
  mixtape::report::Run run = sampleRun();
  EXPECT_EQ(variantsOf(run.Plan), (std::vector<std::string>{"base", "b[x]", "b[y]"}));
  std::vector<Chart> charts = lossCharts(run);
  ASSERT_EQ(charts.size(), 1u);
  const Chart &c = charts[0];
  EXPECT_EQ(c.FileStem, "loss-ppl_prose.val");
  ASSERT_EQ(c.Stages.size(), 2u);
  EXPECT_EQ(c.Stages[1].X, 100);
  EXPECT_EQ(c.Stages[1].Label, "b");
  ASSERT_EQ(c.Curves.size(), 3u);
  auto xs = [](const Curve &curve) {
    std::vector<std::pair<double, double>> out;
    for (const Point &p : curve.Points)
      out.push_back({p.X, p.Y});
    return out;
  };
  using XY = std::vector<std::pair<double, double>>;
  EXPECT_EQ(xs(c.Curves[0]), (XY{{0, 5}, {50, 4}}));
  EXPECT_EQ(xs(c.Curves[1]), (XY{{0, 5}, {50, 4}, {100, 3}, {150, 3.5}}));
  EXPECT_EQ(xs(c.Curves[2]), (XY{{0, 5}, {50, 4}, {100, 3.1}}));
  EXPECT_FALSE(c.Curves[1].Partial);
  EXPECT_TRUE(c.Curves[2].Partial);

  Chart lr = lrChart(run);
  ASSERT_EQ(lr.Curves.size(), 3u);
  EXPECT_EQ(lr.Curves[1].Points.size(), 3u);
  EXPECT_EQ(lr.Curves[2].Points.size(), 2u);
}

TEST(Curves, LongLrCurvesAreThinnedKeepingTheLastStep) {
  mixtape::report::Run run = sampleRun();
  run.Logs.Train.clear();
  for (uint64_t step = 1; step <= 2500; ++step)
    run.Logs.Train.push_back(train("base", "base", step, step, step, 1e-3));
  Chart lr = lrChart(run);
  const Curve &curve = lr.Curves[0];
  EXPECT_LE(curve.Points.size(), 1001u);
  EXPECT_EQ(curve.Points.front().X, 1);
  EXPECT_EQ(curve.Points.back().X, 2500);
}

TEST(Table, RowsAreEvaluatedModelsInPlanOrder) {
  MetricsTable t = finalMetrics(sampleRun());
  EXPECT_EQ(t.Columns, (std::vector<std::string>{"ppl prose.val"}));
  ASSERT_EQ(t.Rows.size(), 2u);
  EXPECT_EQ(t.Rows[0].Model, "init");
  EXPECT_EQ(t.Rows[1].Model, "b[x]");
  EXPECT_EQ(t.Rows[1].ChainTokens, 150);
  ASSERT_TRUE(t.Rows[1].Cells[0].has_value());
  EXPECT_EQ(t.Rows[1].Cells[0]->Loss, 3.5);
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

Logged<rundir::TaskRecord> task(llvm::StringRef model, llvm::StringRef name, bool final, uint64_t stageTokens,
                                 double acc) {
  rundir::TaskRecord r;
  r.Node = model.str();
  r.Eval = "down";
  r.Task = name.str();
  r.Kind = plan::TaskKind::Choice;
  r.Final = final;
  r.StageTokens = stageTokens;
  r.Items = 100;
  r.Scores = {{"acc", acc}, {"acc_stderr", 0.01}, {"acc_norm", acc / 2}, {"acc_norm_stderr", 0.02}};
  return {r, false};
}

Logged<rundir::EvalRecord> during(llvm::StringRef node, uint64_t stageTokens, double loss) {
  Logged<rundir::EvalRecord> r = eval(node, false, 0, loss);
  r.Record.StageTokens = stageTokens;
  return r;
}

TEST(Tasks, TableColumnsAndChartsBesideLoss) {
  mixtape::report::Run run = sampleRun();
  run.Logs.Tasks = {task("base", "sciq", false, 50, 0.4), task("b[x]", "sciq", true, 0, 0.7),
                    task("init", "sciq", true, 0, 0.25)};
  run.Logs.Tasks[1].Record.ChainTokens = 150;
  MetricsTable t = finalMetrics(run);
  ASSERT_EQ(t.TaskColumns.size(), 1u);
  EXPECT_EQ(t.TaskColumns[0].Name, "down sciq");
  ASSERT_TRUE(t.Rows[1].TaskCells[0].has_value());
  EXPECT_EQ(formatScore(*t.Rows[1].TaskCells[0], "acc", "+-"), "0.7000+-0.0100");
  EXPECT_EQ(formatScore(*t.Rows[1].TaskCells[0], "exact_match", "+-"), "-");
  std::string text;
  llvm::raw_string_ostream os(text);
  printTable(t, os);
  EXPECT_NE(text.find("acc_norm"), std::string::npos);
  EXPECT_NE(text.find("0.3500+-0.0200"), std::string::npos);

  std::vector<Chart> charts = taskCharts(run);
  ASSERT_EQ(charts.size(), 1u);
  EXPECT_EQ(charts[0].FileStem, "task-down_sciq");
  // b[x] runs through base's in-loop point, then its final eval; the variants keep the
  // loss charts' styles.
  ASSERT_EQ(charts[0].Curves.size(), 3u);
  EXPECT_EQ(charts[0].Curves[1].Label, "b[x]");
  ASSERT_EQ(charts[0].Curves[1].Points.size(), 2u);
  EXPECT_EQ(charts[0].Curves[1].Points[1].Y, 0.7);
  EXPECT_EQ(charts[0].Curves[2].Style, std::optional<size_t>(2));
}

// Two stages: a learns task A, b (two segments: b.0 then b) learns task B and forgets A.
// Values by hand (finals):       loss   A     B
//   init                         5.0  0.25  0.25
//   a                            2.0  0.80  0.30
//   b                            2.5  0.50  0.90
// b's in-loop points at stage tokens 0 (on b.0), 100 (b.0), 200 and 300 (b):
//   loss 2.1 2.6 2.4 2.3 (never back to 2.1)   A 0.78 0.60 0.70 0.79   B 0.31 0.28 0.50 0.85
// a's in-loop points: A 0.25 at 0, 0.5 at 100 (never below its start).
struct TwoStages {
  plan::Plan Plan;
  mixtape::report::Metrics Logs;
  TwoStages() {
    using plan::NodeKind;
    Plan.Nodes = {node("init", NodeKind::Init, {}, {}), node("a", NodeKind::Train, {0}, {"a", "b"}, "a", 0),
                  node("b.0", NodeKind::Train, {1}, {"b"}, "b", 1000), node("b", NodeKind::Train, {2}, {"b"}, "b", 1100),
                  node("ppl@b", NodeKind::Eval, {3}, {}, "", 1300)};
    Plan.Nodes[3].train()->Exec.StageStart = false;
    Logs.Evals = {eval("init", true, 0, 5.0), eval("a", true, 0, 2.0),  eval("b", true, 0, 2.5),
                  during("b.0", 0, 2.1),      during("b.0", 100, 2.6), during("b", 200, 2.4),
                  during("b", 300, 2.3)};
    Logs.Tasks = {task("init", "A", true, 0, 0.25), task("init", "B", true, 0, 0.25), task("a", "A", true, 0, 0.80),
                  task("a", "B", true, 0, 0.30),    task("b", "A", true, 0, 0.50),    task("b", "B", true, 0, 0.90),
                  task("a", "A", false, 0, 0.25),   task("a", "A", false, 100, 0.5)};
    double a[] = {0.78, 0.60, 0.70, 0.79}, b[] = {0.31, 0.28, 0.50, 0.85};
    for (uint64_t i = 0; i < 4; ++i) {
      Logs.Tasks.push_back(task(i < 2 ? "b.0" : "b", "A", false, 100 * i, a[i]));
      Logs.Tasks.push_back(task(i < 2 ? "b.0" : "b", "B", false, 100 * i, b[i]));
    }
  }
};

TEST(Forgetting, KeysSayWhichWayIsBetter) {
  std::vector<MetricKey> keys = metricKeys(TwoStages().Logs);
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys[0].Name, "ppl prose.val loss");
  EXPECT_FALSE(keys[0].HigherIsBetter);
  EXPECT_EQ(keys[1].Name, "down A acc");
  EXPECT_TRUE(keys[1].HigherIsBetter);
  EXPECT_EQ(keys[2].Name, "down B acc");
}

TEST(Forgetting, EachStageAgainstTheModelItStartedFrom) {
  Forgetting f = forgettingOf(TwoStages().Plan, TwoStages().Logs);
  ASSERT_EQ(f.Stages.size(), 2u);
  const StageForgetting &a = f.Stages[0], &b = f.Stages[1];
  EXPECT_EQ(a.Model, "a");
  EXPECT_EQ(a.StartModel, "init");
  ASSERT_EQ(a.Changes.size(), 3u);
  // loss: no in-loop point of a: init's final eval; 5.0 -> 2.0 is better.
  EXPECT_FALSE(a.Changes[0].StartDuring);
  EXPECT_DOUBLE_EQ(a.Changes[0].Change, -3.0);
  EXPECT_TRUE(a.Changes[0].Better);
  // A: a's in-loop point at 0 (0.25), to 0.80.
  EXPECT_TRUE(a.Changes[1].StartDuring);
  EXPECT_DOUBLE_EQ(a.Changes[1].Change, 0.55);
  EXPECT_TRUE(a.Changes[1].Better);
  // b is two segments: its model is b, it started from a, its start point is b.0's at 0.
  EXPECT_EQ(b.Model, "b");
  EXPECT_EQ(b.Stage, "b");
  EXPECT_EQ(b.StartModel, "a");
  EXPECT_EQ(b.Variants, (std::vector<std::string>{"b"}));
  ASSERT_EQ(b.Changes.size(), 3u);
  EXPECT_TRUE(b.Changes[0].StartDuring);
  EXPECT_DOUBLE_EQ(b.Changes[0].Start, 2.1);
  EXPECT_DOUBLE_EQ(b.Changes[0].Change, 0.4); // loss up: worse
  EXPECT_FALSE(b.Changes[0].Better);
  EXPECT_DOUBLE_EQ(b.Changes[1].Change, 0.50 - 0.78); // A forgotten
  EXPECT_FALSE(b.Changes[1].Better);
  EXPECT_DOUBLE_EQ(b.Changes[2].Change, 0.90 - 0.31); // B learned
  EXPECT_TRUE(b.Changes[2].Better);
}

TEST(Forgetting, TransferMatrixOfAChain) {
  Forgetting f = forgettingOf(TwoStages().Plan, TwoStages().Logs);
  ASSERT_EQ(f.Chains.size(), 2u);
  // Variant a: init, a. One stage: every column learned at row 1, no means.
  EXPECT_EQ(f.Chains[0].Variant, "a");
  EXPECT_EQ(f.Chains[0].Rows.size(), 2u);
  EXPECT_FALSE(f.Chains[0].Bwt.has_value());
  EXPECT_FALSE(f.Chains[0].Fwt.has_value());

  const ChainForgetting &c = f.Chains[1];
  EXPECT_EQ(c.Variant, "b");
  ASSERT_EQ(c.Rows.size(), 3u);
  EXPECT_EQ(c.Rows[0].Model, "init");
  EXPECT_FALSE(c.Rows[0].Stage.has_value());
  EXPECT_EQ(c.Rows[1].Model, "a");
  EXPECT_EQ(c.Rows[2].Model, "b");
  EXPECT_EQ(*c.Rows[2].Stage, "b");
  EXPECT_EQ(c.Columns, (std::vector<std::string>{"ppl prose.val loss", "down A acc", "down B acc"}));
  // Row 0: the init's final loss, A from a's in-loop point at 0 (0.25, as the final), B final.
  using Matrix = std::vector<std::vector<double>>;
  EXPECT_EQ(c.R, (Matrix{{5.0, 0.25, 0.25}, {2.0, 0.80, 0.30}, {2.5, 0.50, 0.90}}));
  ASSERT_EQ(c.Transfers.size(), 3u);
  // loss: learned at a (-3.0); b raised it by 0.5: BWT -0.5; FWT 0 (learned first).
  EXPECT_EQ(c.Transfers[0].LearnedAt, 1u);
  EXPECT_DOUBLE_EQ(c.Transfers[0].Bwt, -0.5);
  EXPECT_DOUBLE_EQ(c.Transfers[0].Fwt, 0);
  // A: learned at a; BWT = R[2][A] - R[1][A] = 0.50 - 0.80.
  EXPECT_EQ(c.Transfers[1].LearnedAt, 1u);
  EXPECT_DOUBLE_EQ(c.Transfers[1].Bwt, 0.50 - 0.80);
  // B: learned at b (+0.60 > +0.05); FWT = R[1][B] - R[0][B] = 0.30 - 0.25; BWT 0.
  EXPECT_EQ(c.Transfers[2].LearnedAt, 2u);
  EXPECT_DOUBLE_EQ(c.Transfers[2].Bwt, 0);
  EXPECT_DOUBLE_EQ(c.Transfers[2].Fwt, 0.30 - 0.25);
  // GEM's means: BWT over the columns learned before the last stage (loss, A), FWT over those
  // learned after the first (B).
  EXPECT_DOUBLE_EQ(*c.Bwt, (-0.5 + (0.50 - 0.80)) / 2);
  EXPECT_DOUBLE_EQ(*c.Fwt, 0.30 - 0.25);
}

TEST(Forgetting, StabilityGapWithAndWithoutRecovery) {
  Forgetting f = forgettingOf(TwoStages().Plan, TwoStages().Logs);
  ASSERT_EQ(f.Gaps.size(), 2u);
  // a: A never falls below its start.
  EXPECT_EQ(f.Gaps[0].Model, "a");
  ASSERT_EQ(f.Gaps[0].Gaps.size(), 1u);
  EXPECT_EQ(f.Gaps[0].Gaps[0].Drop, 0);
  EXPECT_EQ(f.Gaps[0].Gaps[0].TokensToRecover, std::optional<uint64_t>(0));
  // b, across its two segments.
  const StageGaps &b = f.Gaps[1];
  EXPECT_EQ(b.Model, "b");
  ASSERT_EQ(b.Gaps.size(), 3u);
  // loss: 2.1 up to 2.6 at 100, back to 2.3 only: never recovered.
  EXPECT_EQ(b.Gaps[0].Key, "ppl prose.val loss");
  EXPECT_DOUBLE_EQ(b.Gaps[0].Drop, 0.5);
  EXPECT_EQ(b.Gaps[0].AtStageTokens, 100u);
  EXPECT_FALSE(b.Gaps[0].TokensToRecover.has_value());
  // A: 0.78 down to 0.60 at 100; 0.79 >= 0.78 at 300: 200 tokens.
  EXPECT_DOUBLE_EQ(b.Gaps[1].Start, 0.78);
  EXPECT_DOUBLE_EQ(b.Gaps[1].Deepest, 0.60);
  EXPECT_DOUBLE_EQ(b.Gaps[1].Drop, 0.60 - 0.78);
  EXPECT_EQ(b.Gaps[1].AtStageTokens, 100u);
  EXPECT_EQ(b.Gaps[1].TokensToRecover, std::optional<uint64_t>(200));
  // B: the dip to 0.28 at 100, above 0.31 at 200.
  EXPECT_EQ(b.Gaps[2].TokensToRecover, std::optional<uint64_t>(100));
}

TEST(Forgetting, JsonIsDeterministicAndComplete) {
  TwoStages s;
  std::string json = forgettingJSON(forgettingOf(s.Plan, s.Logs));
  EXPECT_EQ(json, forgettingJSON(forgettingOf(s.Plan, s.Logs)));
  for (const char *want : {"\"format\": \"mixtape-forgetting\"", "\"higher_is_better\": true",
                           "\"start_point\": \"during\"", "\"learned_at\": 2", "\"tokens_to_recover\": null",
                           "\"stage\": null", "\"better\": false"})
    EXPECT_NE(json.find(want), std::string::npos) << want;
  std::string text;
  llvm::raw_string_ostream os(text);
  printForgetting(forgettingOf(s.Plan, s.Logs), os);
  for (const char *want : {"b (stage b, from a)", "down A acc", "-0.2800  worse", "learned at a",
                           "BWT -0.4000, FWT +0.0500", "at 100  recovered after 200", "never below it"})
    EXPECT_NE(text.find(want), std::string::npos) << want << " in\n" << text;
  // No stage with evals at both ends: empty sections, still a document.
  Forgetting none = forgettingOf(s.Plan, {});
  EXPECT_TRUE(none.Stages.empty() && none.Chains.empty() && none.Gaps.empty());
  EXPECT_NE(forgettingJSON(none).find("\"stages\": []"), std::string::npos);
}

} // namespace

TEST(Ablations, CandidatesRankByProxyLossPerColumn) {
  mixtape::report::Run run;
  run.Plan.Ablations = {plan::AblationLedger{"which", 0, 0, 0}};
  mixtape::report::MetricsTable table;
  table.Columns = {"ppl code.val", "ppl prose.val"};
  auto row = [](std::string model, double a, double b) {
    mixtape::report::MetricsTable::Row r;
    r.Model = std::move(model);
    r.Cells = {mixtape::report::MetricsTable::Cell{a, std::exp(a)}, mixtape::report::MetricsTable::Cell{b, std::exp(b)}};
    return r;
  };
  table.Rows = {row("which{0}", 2.0, 1.0), row("which{1}", 1.5, 3.0), row("which{0,1}", 1.7, 2.0), row("soup", 0.1, 0.1)};
  auto rankings = mixtape::report::rankAblations(run, table);
  ASSERT_EQ(rankings.size(), 2u);
  ASSERT_EQ(rankings[0].Ranked.size(), 3u); // "soup" is no candidate
  EXPECT_EQ(rankings[0].Ranked[0].first, "which{1}");
  EXPECT_EQ(rankings[0].Ranked[2].first, "which{0}");
  EXPECT_EQ(rankings[1].Column, "ppl prose.val");
  EXPECT_EQ(rankings[1].Ranked[0].first, "which{0}");
}

TEST(Format, Duration) {
  EXPECT_EQ(formatDuration(42.54), "42.5 s");
  EXPECT_EQ(formatDuration(185), "3 min 05 s");
  EXPECT_EQ(formatDuration(7380), "2 h 03 min");
}

// Steps 3 to 5 logged (a node resumed into its metrics), 64 tokens a step: 192 tokens over the
// last record's elapsed_s; the median of the steps' own rates; MFU averaged, memory's peak.
TEST(Timings, TokensOverTheLastElapsedSeconds) {
  mixtape::report::Run run = sampleRun();
  run.Logs.Train.clear();
  for (uint64_t step : {3, 4, 5}) {
    Logged<rundir::TrainRecord> r = train("b[x]", "b", step, step * 64, 100 + step * 64, 1e-3);
    r.Record.ElapsedS = 2.0 * static_cast<double>(step);
    r.Record.TokensPerS = step == 4 ? 10 : 40;
    r.Record.Mfu = 0.1 * static_cast<double>(step);
    r.Record.PeakMemoryBytes = step == 4 ? 3u << 30 : 1u << 30;
    run.Logs.Train.push_back(r);
  }
  run.Logs.Train.push_back(train("base", "base", 1, 50, 50, 1e-3)); // older records: no wall clock
  std::vector<NodeTiming> timings = nodeTimings(run);
  ASSERT_EQ(timings.size(), 2u);
  EXPECT_EQ(timings[0].Node, "base");
  EXPECT_EQ(timings[0].Tokens, 50u);
  EXPECT_FALSE(timings[0].Seconds || timings[0].TokensPerS || timings[0].MedianStepTokensPerS);
  const NodeTiming &t = timings[1];
  EXPECT_EQ(t.Node, "b[x]");
  EXPECT_EQ(t.Steps, 3u);
  EXPECT_EQ(t.Tokens, 192u);
  EXPECT_EQ(t.Seconds, 10);
  EXPECT_DOUBLE_EQ(*t.TokensPerS, 19.2);
  EXPECT_EQ(t.MedianStepTokensPerS, 40);
  EXPECT_DOUBLE_EQ(*t.Mfu, 0.4);
  EXPECT_EQ(t.PeakMemoryBytes, 3u << 30);
  std::string text;
  llvm::raw_string_ostream os(text);
  printTimings(timings, os);
  EXPECT_NE(text.find("\n  b[x]        3 steps       192 tokens          10.0 s          19 tok/s  median step         "
                      "40 tok/s  MFU 40.0%  peak 3.0 GiB\n"),
            std::string::npos)
      << text;
}

TEST(TensorBoard, Crc32cOfTheStandardVectors) {
  // RFC 3720, B.4: 32 bytes of zeros; and the check value of "123456789".
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
}

// The bytes of a file with one scalar, worked from the formats by hand.
TEST(TensorBoard, EventFileBytes) {
  NodeScalars node{"n", 2.0, {{"a", 300, 2.0, 1.5f}}};
  std::string file = eventFile(node);
  // The version event: wall_time (field 1, fixed64) 2.0, file_version (field 3) "brain.Event:2".
  const std::string version = std::string("\x09\0\0\0\0\0\0\0\x40\x1a\x0d", 11) + "brain.Event:2";
  // The scalar: wall_time, step (field 2, varint) 300 = 0xAC 0x02, summary (field 5) holding
  // value (field 1, 8 bytes) holding tag (field 1) "a" and simple_value (field 2, fixed32) 1.5f.
  const std::string value = std::string("\x0a\x01" "a" "\x15\0\0\xc0\x3f", 8);
  const std::string scalar = std::string("\x09\0\0\0\0\0\0\0\x40\x10\xac\x02\x2a\x0a\x0a\x08", 16) + value;
  auto u32 = [](uint32_t x) { return std::string{char(x), char(x >> 8), char(x >> 16), char(x >> 24)}; };
  auto masked = [](llvm::StringRef data) {
    uint32_t c = crc32c(data);
    return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
  };
  auto record = [&](const std::string &data) {
    std::string length = u32(static_cast<uint32_t>(data.size())) + std::string(4, '\0');
    return length + u32(masked(length)) + data + u32(masked(data));
  };
  EXPECT_EQ(file, record(version) + record(scalar));
}

TEST(TensorBoard, ScalarsByModelInStepOrder) {
  mixtape::report::Run run = sampleRun();
  run.Logs.Train[0].Record.Time = 1000.5;
  run.Logs.Train[1].Record.Time = 1002.5;
  run.Logs.Train[1].Record.GradNorm = 0.5;
  std::vector<NodeScalars> nodes = tensorBoardScalars(run);
  std::vector<std::string> names;
  for (const NodeScalars &n : nodes)
    names.push_back(n.Node);
  EXPECT_EQ(names, (std::vector<std::string>{"init", "base", "b[x]", "b[y]"}));
  const NodeScalars &base = nodes[1];
  EXPECT_EQ(base.WallTime, 1000.5);
  std::vector<std::tuple<std::string, uint64_t, double, float>> got;
  for (const Scalar &s : base.Scalars)
    got.emplace_back(s.Tag, s.Step, s.WallTime, s.Value);
  // The eval at 0 takes the first train record's time (none is before it), the one at 50 that
  // of step 50.
  using T = std::tuple<std::string, uint64_t, double, float>;
  EXPECT_EQ(got, (std::vector<T>{T{"eval/ppl/prose.val/loss", 0, 1000.5, 5.f},
                                 T{"eval/ppl/prose.val/ppl", 0, 1000.5, 10.f},
                                 T{"train/loss", 50, 1000.5, 4.f},
                                 T{"train/lr", 50, 1000.5, 0.05f},
                                 T{"eval/ppl/prose.val/loss", 50, 1000.5, 4.f},
                                 T{"eval/ppl/prose.val/ppl", 50, 1000.5, 8.f},
                                 T{"train/loss", 100, 1002.5, 4.f},
                                 T{"train/lr", 100, 1002.5, 0.1f},
                                 T{"train/grad_norm", 100, 1002.5, 0.5f}}));
}

TEST(Compare, ModelsOfOneNameSideBySide) {
  mixtape::report::Run a = sampleRun(), b = sampleRun();
  b.Logs.Evals.pop_back(); // B has no final eval of the init
  b.Logs.Evals.back().Record.Loss = 3.25;
  RunComparison c = compareRuns(a, "runs/a", b, "runs/b");
  EXPECT_EQ(c.Metrics, (std::vector<std::string>{"ppl prose.val loss"}));
  ASSERT_EQ(c.Rows.size(), 2u);
  EXPECT_EQ(c.Rows[0].Model, "init");
  EXPECT_EQ(c.Rows[0].A[0], 5.5);
  EXPECT_FALSE(c.Rows[0].B[0]);
  EXPECT_EQ(c.Rows[1].Model, "b[x]");
  EXPECT_EQ(c.Rows[1].B[0], 3.25);
  std::string text;
  llvm::raw_string_ostream os(text);
  printComparison(c, os);
  EXPECT_EQ(text, "A: runs/a\nB: runs/b\n"
                  "model  metric                      A          B        B-A\n"
                  "init   ppl prose.val loss     5.5000          -          -\n"
                  "b[x]   ppl prose.val loss     3.5000     3.2500    -0.2500\n");
  // Overlaid: A's curves then B's, one colour (the variant's) for both, B dashed.
  std::vector<Chart> charts = overlaidCharts(a, b);
  ASSERT_EQ(charts.size(), 1u);
  ASSERT_EQ(charts[0].Curves.size(), 6u);
  EXPECT_EQ(charts[0].Curves[1].Label, "A: b[x]");
  EXPECT_EQ(charts[0].Curves[4].Label, "B: b[x]");
  EXPECT_EQ(charts[0].Curves[4].Style, charts[0].Curves[1].Style);
  EXPECT_EQ(charts[0].Curves[1].Dash, 0u);
  EXPECT_EQ(charts[0].Curves[4].Dash, 1u);
}
