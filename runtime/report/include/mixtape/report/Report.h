//===- Report.h - tables and plots of a run directory ----------*- C++ -*-===//
//
// `mixtape report RUN_DIR` reads the plan that ran and the metrics.jsonl of every node
// (docs/run-format.md), and writes a table of final metrics, SVG plots of eval loss and LR
// against the tokens trained since the init (one line per stage variant), and an HTML page
// with both. Everything here is pure text in, text out, except loadRun and writeReport;
// output is deterministic (same run directory, same bytes).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mixtape::report {

/// What the report needs of a plan node (docs/plan-format.md).
struct PlanNode {
  std::string name, kind, dir;
  std::vector<std::string> inputs;
  /// The stage variants that run through this node.
  std::vector<std::string> variants;
  /// Train nodes: the stage, and whether the node is its first.
  std::string stage;
  bool stageStart = false;
  /// Train nodes: tokens trained from the init to this node's start.
  double chainTokens = 0;
};

struct RunPlan {
  std::string recipe;
  /// Merge-based data ablations: their candidate mixtures are the merges "<name>{i,j,...}".
  std::vector<std::string> ablations;
  /// In topological order.
  std::vector<PlanNode> nodes;
  const PlanNode *find(llvm::StringRef name) const;
};

/// Parses a plan; errors name `file`.
llvm::Expected<RunPlan> parsePlan(llvm::StringRef text, llvm::StringRef file);

/// A "train" record: one optimizer step.
struct TrainRecord {
  std::string node, stage;
  int64_t step = 0;
  double stageTokens = 0, chainTokens = 0, loss = 0, lr = 0;
  /// From a node without its DONE marker.
  bool partial = false;
  /// The training loss over each stream's samples of the step (optional "loss_by_stream").
  std::vector<std::pair<std::string, double>> lossByStream;
};

/// An "eval" record: one (stream, split) of one eval of one model.
struct EvalRecord {
  /// The model evaluated: a train node for during points, input 0 of the eval node for final ones.
  std::string model, eval, stream, split;
  bool final = false;
  double chainTokens = 0, loss = 0, ppl = 0;
  bool partial = false;
};

struct Metrics {
  std::vector<TrainRecord> train;
  std::vector<EvalRecord> evals;
  /// "file:line: message" for a skipped truncated last line.
  std::vector<std::string> warnings;
};

/// Parses one metrics.jsonl. An unparsable last line is skipped with a warning (a killed run);
/// any other bad line is an error "file:line: message", as is a record naming a node `plan`
/// (when given) lacks. Records of other types are ignored.
llvm::Expected<Metrics> parseMetrics(llvm::StringRef text, llvm::StringRef file,
                                     const RunPlan *plan = nullptr);

enum class NodeState { Done, Partial, NotRun };
llvm::StringRef stateName(NodeState state);

struct Run {
  RunPlan plan;
  /// Parallel to plan.nodes.
  std::vector<NodeState> states;
  /// Every node's records, in plan order, then file order.
  Metrics metrics;
};

/// Reads RUN_DIR/plan.json and the metrics.jsonl of every node directory.
llvm::Expected<Run> loadRun(llvm::StringRef runDir);

//===--- Curves ---------------------------------------------------------===//

struct Point {
  double x = 0, y = 0;
};

struct Curve {
  std::string label;
  std::vector<Point> points;
  /// Some node of the curve's chain has not finished.
  bool partial = false;
};

/// A stage starts at `x` (several stages starting at the same x share one mark).
struct StageMark {
  double x = 0;
  std::string label;
};

struct Chart {
  std::string title, xLabel, yLabel;
  /// The SVG's file name without extension, made of [A-Za-z0-9._-] only.
  std::string fileStem;
  std::vector<Curve> curves;
  std::vector<StageMark> stages;
  /// Draw a marker at each point (sparse eval points; not the per-step LR).
  bool markers = false;
  /// The y axis starts at 0 (learning rates); otherwise it fits the data (losses).
  bool yFromZero = false;
};

/// The stage variants of the plan, in order of first appearance.
std::vector<std::string> variantsOf(const RunPlan &plan);

/// One chart per (eval, stream, split): a variant's curve is the during points of every train
/// node its chain runs through, then the final eval of the chain's last train node.
std::vector<Chart> lossCharts(const Run &run);

/// The learning rate of every step, per variant.
Chart lrChart(const Run &run);

/// One chart per stream the train records break their loss down by: that stream's training
/// loss at every step, per variant.
std::vector<Chart> trainLossCharts(const Run &run);

//===--- Table ----------------------------------------------------------===//

struct MetricsTable {
  /// "EVAL STREAM.SPLIT", in order of first appearance.
  std::vector<std::string> columns;
  struct Cell {
    double loss = 0, ppl = 0;
  };
  struct Row {
    std::string model;
    double chainTokens = 0;
    bool partial = false;
    std::vector<std::optional<Cell>> cells;
  };
  /// Evaluated models, in plan order.
  std::vector<Row> rows;
};

/// The final ("on") evals of every evaluated model, init and merges included.
MetricsTable finalMetrics(const Run &run);
void printTable(const MetricsTable &table, llvm::raw_ostream &os);

/// An ablation's candidate mixtures ranked by proxy loss (best first) on one eval column.
struct AblationRanking {
  std::string ablation, column;
  std::vector<std::pair<std::string, double>> ranked; ///< (candidate, loss)
};
std::vector<AblationRanking> rankAblations(const Run &run, const MetricsTable &table);
void printRankings(llvm::ArrayRef<AblationRanking> rankings, llvm::raw_ostream &os);

//===--- Rendering ------------------------------------------------------===//

/// Axis ticks at 1, 2 or 5 times a power of ten, covering [lo, hi] with about `target` ticks.
struct Ticks {
  double lo = 0, hi = 1, step = 1;
  std::vector<double> values;
};
Ticks niceTicks(double lo, double hi, int target);

/// Token counts as tick labels: 0, 500K, 1.5M, 2G.
std::string formatTokens(double tokens);

/// XML-escapes text for element content and attribute values.
std::string escapeXml(llvm::StringRef text);

/// A standalone SVG document (no XML declaration, so it can be inlined in XHTML).
std::string renderSvg(const Chart &chart);

/// The page: recipe, warnings, the table, the charts inline, node statuses. Well-formed XHTML.
std::string renderHtml(const Run &run, const MetricsTable &table,
                       llvm::ArrayRef<Chart> lossCharts, const Chart &lr,
                       llvm::ArrayRef<Chart> trainLossCharts);

/// Writes report.html and one SVG per chart into outDir (created if needed); prints the
/// table to `tableOut`.
llvm::Error writeReport(const Run &run, llvm::StringRef outDir, llvm::raw_ostream &tableOut);

} // namespace mixtape::report
