//===- Report.h - tables and plots of a run directory ----------*- C++ -*-===//
//
// `mixtape report RUN_DIR` reads the plan that ran (plan/PlanJSON.h) and the metrics.jsonl
// of every node (rundir/Metrics.h, docs/run-format.md), and writes a table of final metrics,
// SVG plots of eval loss, task accuracy, LR and gradient norm against the tokens trained since
// the init (one line per stage variant), a throughput table, an HTML page with all of them,
// forgetting.json (Forgetting.h), and the comparison of two runs. Everything here is pure text
// in, text out, except loadRun, writeReport and writeComparison;
// output is deterministic (same run directory, same bytes).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Plan.h"
#include "mixtape/rundir/Metrics.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mixtape::report {

/// A record of a node's metrics.jsonl, and whether that node had finished.
template <typename R> struct Logged {
  R Record;
  bool Partial = false;
};

struct Metrics {
  std::vector<Logged<rundir::TrainRecord>> Train;
  std::vector<Logged<rundir::EvalRecord>> Evals;
  std::vector<Logged<rundir::TaskRecord>> Tasks;
  /// "file:line: message" for a skipped truncated last line.
  std::vector<std::string> Warnings;
};

enum class NodeState { Done, Partial, NotRun };
llvm::StringRef stateName(NodeState state);

struct Run {
  plan::Plan Plan;
  /// Parallel to Plan.Nodes.
  std::vector<NodeState> States;
  /// Every node's records, in plan order, then file order.
  Metrics Logs;
};

/// Reads RUN_DIR/plan.json and the metrics.jsonl of every node directory; a record that
/// names a node the plan lacks is an error (a stale run directory).
llvm::Expected<Run> loadRun(llvm::StringRef runDir);

//===--- Curves ---------------------------------------------------------===//

struct Point {
  double X = 0, Y = 0;
};

struct Curve {
  std::string Label;
  std::vector<Point> Points;
  /// Some node of the curve's chain has not finished.
  bool Partial = false;
  /// The colour, width and dash: the variant's index, so a variant looks the same on every
  /// chart even where others draw nothing; unset: the curve's index.
  std::optional<size_t> Style;
  /// The dash pattern's index where it is not Style's (a comparison draws run B dashed).
  std::optional<size_t> Dash;
  /// No markers even on a chart with them: a fitted law drawn through measured points.
  bool LineOnly = false;
};

/// A stage starts at `x` (several stages starting at the same x share one mark).
struct StageMark {
  double X = 0;
  std::string Label;
};

struct Chart {
  std::string Title, XLabel, YLabel;
  /// The SVG's file name without extension, made of [A-Za-z0-9._-] only.
  std::string FileStem;
  std::vector<Curve> Curves;
  std::vector<StageMark> Stages;
  /// Draw a marker at each point (sparse eval points; not the per-step LR).
  bool Markers = false;
  /// The y axis starts at 0 (learning rates); otherwise it fits the data (losses).
  bool YFromZero = false;
  /// x counts tokens (ticks 500K, 1.5M); otherwise plain numbers (a mixture share).
  bool XTokens = true;
};

/// The stage variants of the plan, in order of first appearance.
std::vector<std::string> variantsOf(const plan::Plan &plan);

/// One chart per (eval, stream, split): a variant's curve is the during points of every train
/// node its chain runs through, then the final eval of the chain's last train node.
std::vector<Chart> lossCharts(const Run &run);

/// One chart per (eval, task) of its main metric (acc for choice, exact_match for generate),
/// its curves assembled as lossCharts'.
std::vector<Chart> taskCharts(const Run &run);

/// The learning rate of every step, per variant.
Chart lrChart(const Run &run);

/// The gradient norm (before clipping) of every step, per variant; no curves when the
/// records have none.
Chart gradNormChart(const Run &run);

/// One chart per stream the train records break their loss down by: that stream's training
/// loss at every step, per variant.
std::vector<Chart> trainLossCharts(const Run &run);

//===--- Table ----------------------------------------------------------===//

struct MetricsTable {
  /// "EVAL STREAM.SPLIT", in order of first appearance.
  std::vector<std::string> Columns;
  struct Cell {
    double Loss = 0, Ppl = 0;
  };
  /// "EVAL TASK", in order of first appearance, after the stream columns.
  struct TaskColumn {
    std::string Name;
    plan::TaskKind Kind = plan::TaskKind::Choice;
  };
  std::vector<TaskColumn> TaskColumns;
  /// rundir::taskMetrics(Kind) and their "_stderr".
  using TaskCell = std::map<std::string, double>;
  struct Row {
    std::string Model;
    double ChainTokens = 0;
    bool Partial = false;
    std::vector<std::optional<Cell>> Cells;
    std::vector<std::optional<TaskCell>> TaskCells; ///< parallel to TaskColumns
  };
  /// Evaluated models, in plan order.
  std::vector<Row> Rows;
};

/// The final ("on") evals of every evaluated model, init and merges included, loss and task
/// scores.
MetricsTable finalMetrics(const Run &run);
void printTable(const MetricsTable &table, llvm::raw_ostream &os);
/// A task score with its standard error: "0.6250+-0.0121" (`plusMinus` between them); "-"
/// where the cell lacks the metric.
std::string formatScore(const MetricsTable::TaskCell &cell, llvm::StringRef metric, llvm::StringRef plusMinus);

/// Wall time and throughput of one train node, from its train records' wall-clock fields.
struct NodeTiming {
  std::string Node;
  bool Partial = false;
  uint64_t Steps = 0, Tokens = 0; ///< logged steps and the tokens they trained
  std::optional<double> Seconds;  ///< the last record's elapsed_s
  std::optional<double> TokensPerS, MedianStepTokensPerS; ///< Tokens / Seconds; the steps' median
  std::optional<double> Mfu;                ///< mean over the steps (CUDA)
  std::optional<uint64_t> PeakMemoryBytes;  ///< the largest (CUDA)
};

/// Every train node with train records, in plan order.
std::vector<NodeTiming> nodeTimings(const Run &run);
void printTimings(llvm::ArrayRef<NodeTiming> timings, llvm::raw_ostream &os);
/// "42.5 s", "3 min 05 s", "2 h 03 min".
std::string formatDuration(double seconds);

/// An ablation's candidate mixtures ranked by proxy loss (best first) on one eval column.
struct AblationRanking {
  std::string Ablation, Column;
  std::vector<std::pair<std::string, double>> Ranked; ///< (candidate, loss)
};
std::vector<AblationRanking> rankAblations(const Run &run, const MetricsTable &table);
void printRankings(llvm::ArrayRef<AblationRanking> rankings, llvm::raw_ostream &os);

//===--- Rendering ------------------------------------------------------===//

/// Axis ticks at 1, 2 or 5 times a power of ten, covering [lo, hi] with about `target` ticks.
struct Ticks {
  double Lo = 0, Hi = 1, Step = 1;
  std::vector<double> Values;
};
Ticks niceTicks(double lo, double hi, int target);

/// Token counts as tick labels: 0, 500K, 1.5M, 2G.
std::string formatTokens(double tokens);

/// XML-escapes text for element content and attribute values.
std::string escapeXml(llvm::StringRef text);

/// The pages' style sheet.
llvm::StringRef reportStyle();

/// A standalone SVG document (no XML declaration, so it can be inlined in XHTML).
std::string renderSvg(const Chart &chart);

struct Forgetting;

/// Every chart of a report.
struct ReportCharts {
  std::vector<Chart> Loss, Task;
  Chart LR, GradNorm; ///< GradNorm may have no curves: then it is left out
  std::vector<Chart> TrainLoss;

  /// Each chart drawn, in page order.
  std::vector<const Chart *> all() const;
};
ReportCharts chartsOf(const Run &run);

/// The page: recipe, warnings, the table, forgetting, the charts inline, throughput, node
/// statuses. Well-formed XHTML.
std::string renderHtml(const Run &run, const MetricsTable &table, const Forgetting &forgetting,
                       const ReportCharts &charts, llvm::ArrayRef<NodeTiming> timings);

/// Writes report.html, forgetting.json and one SVG per chart into outDir (created if
/// needed); prints the table, the forgetting numbers and the throughput to `tableOut`.
llvm::Error writeReport(const Run &run, llvm::StringRef outDir, llvm::raw_ostream &tableOut);

//===--- Two runs -------------------------------------------------------===//

/// `mixtape report RUN_A RUN_B`: the final metrics of models of the same name side by side.
struct RunComparison {
  std::string PathA, PathB;
  /// "EVAL STREAM.SPLIT loss" and "EVAL TASK METRIC", A's order of first appearance, then B's.
  std::vector<std::string> Metrics;
  struct Row {
    std::string Model;
    std::vector<std::optional<double>> A, B; ///< parallel to Metrics
  };
  /// Models with a final eval in either run: A's plan order, then B's others.
  std::vector<Row> Rows;
};
RunComparison compareRuns(const Run &a, llvm::StringRef pathA, const Run &b, llvm::StringRef pathB);
/// One line per (model, metric) that either run has: A, B and B - A.
void printComparison(const RunComparison &comparison, llvm::raw_ostream &os);

/// The eval-loss and task charts of both runs overlaid, by title: A's variants solid and
/// B's dashed, a variant (by name) in one colour across both.
std::vector<Chart> overlaidCharts(const Run &a, const Run &b);

/// Writes compare.html (the table and the overlaid charts) into outDir; prints the table.
llvm::Error writeComparison(const Run &a, llvm::StringRef pathA, const Run &b, llvm::StringRef pathB,
                            llvm::StringRef outDir, llvm::raw_ostream &tableOut);

} // namespace mixtape::report
