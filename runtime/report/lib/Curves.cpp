//===- Curves.cpp - a variant's curves and the final-metrics table --------===//
//
// The x axis of every curve is chain tokens: tokens trained since the init, through every
// stage the variant's chain runs through. A variant's chain is the train nodes whose plan
// entry lists it in "variants" (shared prefixes included), in plan order.
//
//===----------------------------------------------------------------------===//
#include "mixtape/report/Report.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <map>
#include <optional>

using namespace mixtape;
using namespace mixtape::report;

std::vector<std::string> mixtape::report::variantsOf(const plan::Plan &plan) {
  std::vector<std::string> out;
  llvm::StringSet<> seen;
  for (const plan::Node &node : plan.Nodes)
    for (const std::string &v : node.Variants)
      if (seen.insert(v).second)
        out.push_back(v);
  return out;
}

namespace {

/// The train nodes a variant runs through, in plan (so chain) order.
struct Chain {
  std::string Variant;
  llvm::StringSet<> Nodes;
  std::string Last;
  bool Partial = false;
};

std::vector<Chain> chainsOf(const Run &run) {
  std::vector<Chain> chains;
  for (const std::string &variant : variantsOf(run.Plan)) {
    Chain chain;
    chain.Variant = variant;
    for (size_t i = 0; i < run.Plan.Nodes.size(); ++i) {
      const plan::Node &node = run.Plan.Nodes[i];
      if (!node.train() || !llvm::is_contained(node.Variants, variant))
        continue;
      chain.Nodes.insert(node.Name);
      chain.Last = node.Name;
      chain.Partial |= run.States[i] != NodeState::Done;
    }
    chains.push_back(std::move(chain));
  }
  return chains;
}

/// Where stages start along the chain-token axis, one mark per distinct x.
std::vector<StageMark> stageMarks(const plan::Plan &plan) {
  std::map<double, std::vector<std::string>> byX;
  for (const plan::Node &node : plan.Nodes)
    if (const plan::TrainNode *t = node.train(); t && t->Exec.StageStart) {
      std::vector<std::string> &names = byX[static_cast<double>(t->Exec.ChainTokens)];
      if (!llvm::is_contained(names, t->Exec.Stage))
        names.push_back(t->Exec.Stage);
    }
  std::vector<StageMark> marks;
  for (auto &[x, names] : byX)
    marks.push_back({x, llvm::join(names, ", ")});
  return marks;
}

/// File names from user names: anything outside [A-Za-z0-9._-] becomes '_'; a clash gets a
/// numeric suffix.
std::string fileStem(llvm::StringRef name, llvm::StringSet<> &taken) {
  std::string stem;
  for (char c : name)
    stem += (llvm::isAlnum(c) || c == '.' || c == '-' || c == '_') ? c : '_';
  std::string unique = stem;
  for (int n = 2; !taken.insert(unique).second; ++n)
    unique = stem + "-" + std::to_string(n);
  return unique;
}

void sortByX(std::vector<Point> &points) {
  std::stable_sort(points.begin(), points.end(),
                   [](const Point &a, const Point &b) { return a.X < b.X; });
}

/// A chart 540 px wide shows no more than ~1000 points per line: keep every k-th step and the
/// last, so a long run's LR chart stays a small file. LR schedules are smooth between steps.
void thin(std::vector<Point> &points) {
  const size_t limit = 1000;
  if (points.size() <= limit)
    return;
  size_t stride = (points.size() + limit - 1) / limit;
  std::vector<Point> kept;
  for (size_t i = 0; i < points.size(); i += stride)
    kept.push_back(points[i]);
  if ((points.size() - 1) % stride != 0)
    kept.push_back(points.back());
  points = std::move(kept);
}

/// An empty chart against tokens trained since init, with the stages marked.
Chart tokensChart(std::string title, std::string yLabel, std::string stem, std::vector<StageMark> stages) {
  Chart chart;
  chart.Title = std::move(title);
  chart.XLabel = "tokens trained since init (linear)";
  chart.YLabel = std::move(yLabel);
  chart.FileStem = std::move(stem);
  chart.Stages = std::move(stages);
  return chart;
}

std::string seriesName(const rundir::EvalRecord &r) {
  return r.Eval + " " + r.Stream + "." + plan::enumName(r.Split).str();
}

/// One curve per chain: `value` of its train records against chain tokens (records without
/// a value left out), thinned; chains with no point draw nothing.
void addTrainCurve(Chart &chart, const Chain &chain, Curve curve, const Run &run,
                   llvm::function_ref<std::optional<double>(const rundir::TrainRecord &)> value) {
  curve.Partial = chain.Partial;
  for (const Logged<rundir::TrainRecord> &logged : run.Logs.Train)
    if (chain.Nodes.contains(logged.Record.Node))
      if (std::optional<double> y = value(logged.Record))
        curve.Points.push_back({static_cast<double>(logged.Record.ChainTokens), *y});
  sortByX(curve.Points);
  thin(curve.Points);
  if (!curve.Points.empty())
    chart.Curves.push_back(std::move(curve));
}

void addTrainCurves(Chart &chart, llvm::ArrayRef<Chain> chains, const Run &run,
                    llvm::function_ref<std::optional<double>(const rundir::TrainRecord &)> value) {
  for (size_t c = 0; c < chains.size(); ++c) {
    Curve curve;
    curve.Label = chains[c].Variant;
    curve.Style = c;
    addTrainCurve(chart, chains[c], std::move(curve), run, value);
  }
}

/// lr_scale and freeze: a curve per parameter group a chain's nodes name, the LR times the
/// group's scale there (1 where a node does not scale it, 0 while it is frozen), dashed in
/// its variant's colour.
void addGroupLRCurves(Chart &chart, llvm::ArrayRef<Chain> chains, const Run &run) {
  for (size_t c = 0; c < chains.size(); ++c) {
    std::map<std::string, std::map<std::string, double>> scales; // group -> node -> scale
    for (const plan::Node &node : run.Plan.Nodes) {
      const plan::TrainNode *t = node.train();
      if (!t || !chains[c].Nodes.contains(node.Name))
        continue;
      for (const auto &[group, scale] : t->Settings.LRScale.value_or(plan::GroupScales()))
        scales[group][node.Name] = scale;
      for (const std::string &group : t->Settings.Freeze.value_or(std::vector<std::string>()))
        scales[group][node.Name] = 0;
    }
    size_t dash = 1;
    for (const auto &[group, byNode] : scales) {
      Curve curve;
      curve.Label = chains[c].Variant + " " + group;
      curve.Style = c;
      curve.Dash = dash++;
      addTrainCurve(chart, chains[c], std::move(curve), run, [&](const rundir::TrainRecord &r) {
        auto it = byNode.find(r.Node);
        return std::optional<double>(r.LR * (it == byNode.end() ? 1.0 : it->second));
      });
    }
  }
}

} // namespace

namespace {

/// One curve per chain of the (final or in-loop) points `value` gives, ordered as a loss
/// chart's: the chain's in-loop points by x, then the final eval of its last node.
template <typename R>
void addEvalCurves(Chart &chart, llvm::ArrayRef<Chain> chains, llvm::ArrayRef<Logged<R>> records,
                   llvm::function_ref<std::optional<double>(const R &)> value) {
  for (size_t c = 0; c < chains.size(); ++c) {
    const Chain &chain = chains[c];
    Curve curve;
    curve.Label = chain.Variant;
    curve.Partial = chain.Partial;
    curve.Style = c;
    std::vector<Point> final;
    for (const Logged<R> &logged : records) {
      const R &r = logged.Record;
      std::optional<double> y = value(r);
      if (!y)
        continue;
      const Point point{static_cast<double>(r.ChainTokens), *y};
      if (!r.Final && chain.Nodes.contains(r.Node))
        curve.Points.push_back(point);
      else if (r.Final && r.Node == chain.Last)
        final.push_back(point);
      else
        continue;
      curve.Partial |= logged.Partial;
    }
    sortByX(curve.Points);
    // The final eval closes the curve even where a during point shares its x.
    sortByX(final);
    llvm::append_range(curve.Points, final);
    if (!curve.Points.empty())
      chart.Curves.push_back(std::move(curve));
  }
}

std::string taskSeriesName(const rundir::TaskRecord &r) { return r.Eval + " " + r.Task; }

} // namespace

std::vector<Chart> mixtape::report::lossCharts(const Run &run) {
  // One chart per (eval, stream, split), in order of first appearance.
  std::vector<std::string> series;
  llvm::StringSet<> seen;
  for (const Logged<rundir::EvalRecord> &logged : run.Logs.Evals)
    if (seen.insert(seriesName(logged.Record)).second)
      series.push_back(seriesName(logged.Record));

  std::vector<Chain> chains = chainsOf(run);
  std::vector<StageMark> stages = stageMarks(run.Plan);
  llvm::StringSet<> stems{"lr"};
  std::vector<Chart> charts;
  for (const std::string &name : series) {
    Chart chart = tokensChart("Eval loss: " + name, "loss (nats per token)", "loss-" + fileStem(name, stems), stages);
    chart.Markers = true;
    addEvalCurves<rundir::EvalRecord>(chart, chains, run.Logs.Evals, [&](const rundir::EvalRecord &r) {
      return seriesName(r) == name ? std::optional<double>(r.Loss) : std::nullopt;
    });
    charts.push_back(std::move(chart));
  }
  return charts;
}

std::vector<Chart> mixtape::report::taskCharts(const Run &run) {
  std::vector<std::pair<std::string, plan::TaskKind>> series;
  llvm::StringSet<> seen;
  for (const Logged<rundir::TaskRecord> &logged : run.Logs.Tasks)
    if (seen.insert(taskSeriesName(logged.Record)).second)
      series.emplace_back(taskSeriesName(logged.Record), logged.Record.Kind);

  std::vector<Chain> chains = chainsOf(run);
  std::vector<StageMark> stages = stageMarks(run.Plan);
  llvm::StringSet<> stems;
  std::vector<Chart> charts;
  for (const auto &entry : series) {
    const std::string &name = entry.first; // not a structured binding: C++17 lambdas cannot capture one
    // A task's main metric: what its forgetting numbers follow too.
    std::string metric = rundir::taskMetrics(entry.second).front().str();
    Chart chart = tokensChart("Task " + metric + ": " + name, metric + " (fraction of items)",
                              "task-" + fileStem(name, stems), stages);
    chart.Markers = true;
    addEvalCurves<rundir::TaskRecord>(chart, chains, run.Logs.Tasks, [&](const rundir::TaskRecord &r) {
      auto it = r.Scores.find(metric);
      if (taskSeriesName(r) != name || it == r.Scores.end())
        return std::optional<double>();
      return std::optional<double>(it->second);
    });
    charts.push_back(std::move(chart));
  }
  return charts;
}

Chart mixtape::report::lrChart(const Run &run) {
  Chart chart = tokensChart("Learning rate", "learning rate", "lr", stageMarks(run.Plan));
  chart.YFromZero = true;
  std::vector<Chain> chains = chainsOf(run);
  addTrainCurves(chart, chains, run, [](const rundir::TrainRecord &r) { return std::optional<double>(r.LR); });
  addGroupLRCurves(chart, chains, run);
  return chart;
}

Chart mixtape::report::gradNormChart(const Run &run) {
  Chart chart = tokensChart("Gradient norm", "global gradient norm (before clipping)", "grad-norm",
                            stageMarks(run.Plan));
  chart.YFromZero = true;
  addTrainCurves(chart, chainsOf(run), run, [](const rundir::TrainRecord &r) { return r.GradNorm; });
  return chart;
}

std::vector<Chart> mixtape::report::trainLossCharts(const Run &run) {
  std::vector<std::string> streams;
  for (const Logged<rundir::TrainRecord> &logged : run.Logs.Train)
    for (const auto &[stream, loss] : logged.Record.LossByStream)
      if (!llvm::is_contained(streams, stream))
        streams.push_back(stream);
  std::vector<Chain> chains = chainsOf(run);
  llvm::StringSet<> stems;
  std::vector<Chart> charts;
  for (const std::string &stream : streams) {
    Chart chart = tokensChart("Training loss: " + stream, "loss (nats per token)",
                              "train-loss-" + fileStem(stream, stems), stageMarks(run.Plan));
    addTrainCurves(chart, chains, run, [&](const rundir::TrainRecord &r) -> std::optional<double> {
      auto it = r.LossByStream.find(stream);
      return it == r.LossByStream.end() ? std::nullopt : std::optional<double>(it->second);
    });
    charts.push_back(std::move(chart));
  }
  return charts;
}

std::vector<const Chart *> ReportCharts::all() const {
  std::vector<const Chart *> out;
  for (const std::vector<Chart> *charts : {&Loss, &Task})
    for (const Chart &chart : *charts)
      out.push_back(&chart);
  out.push_back(&LR);
  if (!GradNorm.Curves.empty())
    out.push_back(&GradNorm);
  for (const Chart &chart : TrainLoss)
    out.push_back(&chart);
  return out;
}

ReportCharts mixtape::report::chartsOf(const Run &run) {
  return {lossCharts(run), taskCharts(run), lrChart(run), gradNormChart(run), trainLossCharts(run)};
}

std::vector<NodeTiming> mixtape::report::nodeTimings(const Run &run) {
  std::vector<NodeTiming> out;
  for (const plan::Node &node : run.Plan.Nodes) {
    NodeTiming t;
    t.Node = node.Name;
    std::vector<double> stepRates;
    double mfuSum = 0;
    size_t mfuSteps = 0;
    const rundir::TrainRecord *first = nullptr, *last = nullptr;
    for (const Logged<rundir::TrainRecord> &logged : run.Logs.Train) {
      const rundir::TrainRecord &r = logged.Record;
      if (r.Node != node.Name)
        continue;
      t.Partial |= logged.Partial;
      ++t.Steps;
      if (!first || r.Step < first->Step)
        first = &r;
      if (!last || r.Step > last->Step)
        last = &r;
      if (r.TokensPerS)
        stepRates.push_back(*r.TokensPerS);
      if (r.Mfu) {
        mfuSum += *r.Mfu;
        ++mfuSteps;
      }
      if (r.PeakMemoryBytes)
        t.PeakMemoryBytes = std::max(t.PeakMemoryBytes.value_or(0), *r.PeakMemoryBytes);
    }
    if (!first)
      continue;
    // A step's record says the stage tokens through it, so step 1's are one step's tokens.
    const uint64_t perStep = first->Step ? first->StageTokens / first->Step : 0;
    t.Tokens = last->StageTokens - (first->Step - 1) * perStep;
    t.Seconds = last->ElapsedS;
    if (t.Seconds && *t.Seconds > 0)
      t.TokensPerS = static_cast<double>(t.Tokens) / *t.Seconds;
    if (!stepRates.empty()) {
      std::sort(stepRates.begin(), stepRates.end());
      t.MedianStepTokensPerS = stepRates[(stepRates.size() - 1) / 2];
    }
    if (mfuSteps)
      t.Mfu = mfuSum / static_cast<double>(mfuSteps);
    out.push_back(std::move(t));
  }
  return out;
}

void mixtape::report::printTimings(llvm::ArrayRef<NodeTiming> timings, llvm::raw_ostream &os) {
  if (llvm::none_of(timings, [](const NodeTiming &t) { return t.Seconds.has_value(); }))
    return;
  os << "\nthroughput (wall time from the train records; tokens/s: the node's tokens over it, and the median "
        "step's)\n";
  size_t width = 4;
  for (const NodeTiming &t : timings)
    width = std::max(width, t.Node.size() + (t.Partial ? 10 : 0));
  for (const NodeTiming &t : timings) {
    auto rate = [](const std::optional<double> &r) { return r ? llvm::formatv("{0:F0}", *r).str() : std::string("-"); };
    os << llvm::formatv("  {0}  {1,7} steps  {2,8} tokens  {3,14}  {4,10} tok/s  median step {5,10} tok/s",
                        llvm::left_justify(t.Node + (t.Partial ? " (partial)" : ""), width), t.Steps,
                        formatTokens(static_cast<double>(t.Tokens)),
                        t.Seconds ? formatDuration(*t.Seconds) : std::string("-"), rate(t.TokensPerS),
                        rate(t.MedianStepTokensPerS));
    if (t.Mfu)
      os << llvm::formatv("  MFU {0:F1}%", *t.Mfu * 100);
    if (t.PeakMemoryBytes)
      os << llvm::formatv("  peak {0:F1} GiB", static_cast<double>(*t.PeakMemoryBytes) / (1u << 30));
    os << "\n";
  }
}

MetricsTable mixtape::report::finalMetrics(const Run &run) {
  MetricsTable table;
  auto column = [&](const rundir::EvalRecord &r) {
    std::string name = seriesName(r);
    auto it = llvm::find(table.Columns, name);
    if (it != table.Columns.end())
      return static_cast<size_t>(it - table.Columns.begin());
    table.Columns.push_back(name);
    return table.Columns.size() - 1;
  };
  auto taskColumn = [&](const rundir::TaskRecord &r) {
    std::string name = taskSeriesName(r);
    auto it = llvm::find_if(table.TaskColumns, [&](const MetricsTable::TaskColumn &c) { return c.Name == name; });
    if (it != table.TaskColumns.end())
      return static_cast<size_t>(it - table.TaskColumns.begin());
    table.TaskColumns.push_back({name, r.Kind});
    return table.TaskColumns.size() - 1;
  };
  for (const Logged<rundir::EvalRecord> &logged : run.Logs.Evals)
    if (logged.Record.Final)
      column(logged.Record);
  for (const Logged<rundir::TaskRecord> &logged : run.Logs.Tasks)
    if (logged.Record.Final)
      taskColumn(logged.Record);
  for (const plan::Node &node : run.Plan.Nodes) {
    MetricsTable::Row row;
    row.Model = node.Name;
    row.Cells.resize(table.Columns.size());
    row.TaskCells.resize(table.TaskColumns.size());
    bool any = false;
    for (const Logged<rundir::EvalRecord> &logged : run.Logs.Evals) {
      const rundir::EvalRecord &r = logged.Record;
      if (!r.Final || r.Node != node.Name)
        continue;
      any = true;
      row.ChainTokens = static_cast<double>(r.ChainTokens);
      row.Partial |= logged.Partial;
      row.Cells[column(r)] = MetricsTable::Cell{r.Loss, r.Ppl};
    }
    for (const Logged<rundir::TaskRecord> &logged : run.Logs.Tasks) {
      const rundir::TaskRecord &r = logged.Record;
      if (!r.Final || r.Node != node.Name)
        continue;
      any = true;
      row.ChainTokens = static_cast<double>(r.ChainTokens);
      row.Partial |= logged.Partial;
      row.TaskCells[taskColumn(r)] = r.Scores;
    }
    if (any)
      table.Rows.push_back(std::move(row));
  }
  return table;
}

std::string mixtape::report::formatScore(const MetricsTable::TaskCell &cell, llvm::StringRef metric,
                                         llvm::StringRef plusMinus) {
  auto value = cell.find(metric.str()), error = cell.find(metric.str() + "_stderr");
  if (value == cell.end())
    return "-";
  std::string text = llvm::formatv("{0:F4}", value->second).str();
  if (error != cell.end())
    text += (plusMinus + llvm::formatv("{0:F4}", error->second).str()).str();
  return text;
}

void mixtape::report::printTable(const MetricsTable &table, llvm::raw_ostream &os) {
  if (table.Rows.empty()) {
    os << "no final evals yet\n";
    return;
  }
  // Two header lines: the series, then loss and ppl under each.
  std::vector<std::vector<std::string>> cells;
  cells.push_back({"model", "tokens"});
  cells.push_back({"", ""});
  for (const std::string &c : table.Columns) {
    cells[0].insert(cells[0].end(), {c, ""});
    cells[1].insert(cells[1].end(), {"loss", "ppl"});
  }
  // Every task kind has two metrics, so task columns pair up as loss and ppl do.
  for (const MetricsTable::TaskColumn &c : table.TaskColumns) {
    cells[0].insert(cells[0].end(), {c.Name, ""});
    for (llvm::StringRef metric : rundir::taskMetrics(c.Kind))
      cells[1].push_back(metric.str());
  }
  for (const MetricsTable::Row &row : table.Rows) {
    std::vector<std::string> line{row.Model + (row.Partial ? " (partial)" : ""),
                                  formatTokens(row.ChainTokens)};
    for (const std::optional<MetricsTable::Cell> &cell : row.Cells) {
      line.push_back(cell ? llvm::formatv("{0:F4}", cell->Loss).str() : "-");
      line.push_back(cell ? llvm::formatv("{0:F2}", cell->Ppl).str() : "-");
    }
    for (size_t c = 0; c < table.TaskColumns.size(); ++c)
      for (llvm::StringRef metric : rundir::taskMetrics(table.TaskColumns[c].Kind))
        line.push_back(row.TaskCells[c] ? formatScore(*row.TaskCells[c], metric, "+-") : "-");
    cells.push_back(std::move(line));
  }
  // A series name spans its loss and ppl columns: widen the pair to fit it.
  std::vector<size_t> width(cells[0].size(), 0);
  for (const std::vector<std::string> &line : cells)
    for (size_t i = 0; i < line.size(); ++i)
      if (i < 2 || cells[0][i].empty() || &line != &cells[0])
        width[i] = std::max(width[i], line[i].size());
  for (size_t i = 2; i + 1 < width.size(); i += 2) {
    size_t need = cells[0][i].size();
    if (width[i] + 2 + width[i + 1] < need)
      width[i + 1] = need - width[i] - 2;
  }
  for (const std::vector<std::string> &line : cells) {
    std::string text;
    for (size_t i = 0; i < line.size(); ++i) {
      if (i > 0)
        text += "  ";
      bool header = &line == &cells[0] && i >= 2;
      if (header && i % 2 == 0) {
        // The series name, left-aligned over its two columns.
        text += line[i] + std::string(width[i] + 2 + width[i + 1] - line[i].size(), ' ');
        ++i;
      } else if (i < 1)
        text += line[i] + std::string(width[i] - line[i].size(), ' ');
      else
        text += std::string(width[i] - line[i].size(), ' ') + line[i];
    }
    os << llvm::StringRef(text).rtrim() << "\n";
  }
}

std::vector<AblationRanking> mixtape::report::rankAblations(const Run &run, const MetricsTable &table) {
  std::vector<AblationRanking> out;
  for (const plan::AblationLedger &ablation : run.Plan.Ablations)
    for (size_t c = 0; c < table.Columns.size(); ++c) {
      AblationRanking r{ablation.Name, table.Columns[c], {}};
      for (const MetricsTable::Row &row : table.Rows)
        if (llvm::StringRef(row.Model).startswith(ablation.Name + "{") && row.Cells[c])
          r.Ranked.emplace_back(row.Model, row.Cells[c]->Loss);
      std::stable_sort(r.Ranked.begin(), r.Ranked.end(),
                       [](const auto &a, const auto &b) { return a.second < b.second; });
      if (!r.Ranked.empty())
        out.push_back(std::move(r));
    }
  return out;
}

void mixtape::report::printRankings(llvm::ArrayRef<AblationRanking> rankings, llvm::raw_ostream &os) {
  for (const AblationRanking &r : rankings) {
    os << "\nablation " << r.Ablation << ": candidate mixtures by proxy loss on " << r.Column << "\n";
    for (size_t i = 0; i < r.Ranked.size(); ++i)
      os << llvm::formatv("  {0,3}. {1,-40} {2:F4}\n", i + 1, r.Ranked[i].first, r.Ranked[i].second);
  }
}
