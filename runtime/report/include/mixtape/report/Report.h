//===- Report.h - tables and plots of a run directory ----------*- C++ -*-===//
//
// `mixtape report RUN_DIR` reads the plan that ran (plan/PlanJSON.h) and the metrics.jsonl
// of every node (rundir/Metrics.h, docs/run-format.md), and writes a table of final metrics, SVG plots of eval loss,
// task accuracy and LR against the tokens trained since the init (one line per stage variant), an HTML page
// with both, and forgetting.json (Forgetting.h). Everything here is pure text in, text out, except loadRun and writeReport;
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
  /// The colour and dash: the variant's index, so a variant looks the same on every chart
  /// even where others draw nothing; unset: the curve's index.
  std::optional<size_t> Style;
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

/// A standalone SVG document (no XML declaration, so it can be inlined in XHTML).
std::string renderSvg(const Chart &chart);

struct Forgetting;

/// The page: recipe, warnings, the table, forgetting, the charts inline, node statuses.
/// Well-formed XHTML.
std::string renderHtml(const Run &run, const MetricsTable &table, const Forgetting &forgetting,
                       llvm::ArrayRef<Chart> lossCharts, llvm::ArrayRef<Chart> taskCharts, const Chart &lr,
                       llvm::ArrayRef<Chart> trainLossCharts);

/// Writes report.html, forgetting.json and one SVG per chart into outDir (created if
/// needed); prints the table and the forgetting numbers to `tableOut`.
llvm::Error writeReport(const Run &run, llvm::StringRef outDir, llvm::raw_ostream &tableOut);

} // namespace mixtape::report
