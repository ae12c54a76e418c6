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

using namespace mixtape::report;

std::vector<std::string> mixtape::report::variantsOf(const RunPlan &plan) {
  std::vector<std::string> out;
  llvm::StringSet<> seen;
  for (const PlanNode &node : plan.nodes)
    for (const std::string &v : node.variants)
      if (seen.insert(v).second)
        out.push_back(v);
  return out;
}

namespace {

/// The train nodes a variant runs through, in plan (so chain) order.
struct Chain {
  std::string variant;
  llvm::StringSet<> nodes;
  std::string last;
  bool partial = false;
};

std::vector<Chain> chainsOf(const Run &run) {
  std::vector<Chain> chains;
  for (const std::string &variant : variantsOf(run.plan)) {
    Chain chain;
    chain.variant = variant;
    for (size_t i = 0; i < run.plan.nodes.size(); ++i) {
      const PlanNode &node = run.plan.nodes[i];
      if (node.kind != "train" || !llvm::is_contained(node.variants, variant))
        continue;
      chain.nodes.insert(node.name);
      chain.last = node.name;
      chain.partial |= run.states[i] != NodeState::Done;
    }
    chains.push_back(std::move(chain));
  }
  return chains;
}

/// Where stages start along the chain-token axis, one mark per distinct x.
std::vector<StageMark> stageMarks(const RunPlan &plan) {
  std::map<double, std::vector<std::string>> byX;
  for (const PlanNode &node : plan.nodes)
    if (node.kind == "train" && node.stageStart) {
      std::vector<std::string> &names = byX[node.chainTokens];
      if (!llvm::is_contained(names, node.stage))
        names.push_back(node.stage);
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
                   [](const Point &a, const Point &b) { return a.x < b.x; });
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

std::string seriesName(const EvalRecord &r) { return r.eval + " " + r.stream + "." + r.split; }

/// One curve per chain: `value` of its train records against chain tokens (records without
/// a value left out), thinned; chains with no point draw nothing.
void addTrainCurves(Chart &chart, llvm::ArrayRef<Chain> chains, const Run &run,
                    llvm::function_ref<std::optional<double>(const TrainRecord &)> value) {
  for (const Chain &chain : chains) {
    Curve curve;
    curve.label = chain.variant;
    curve.partial = chain.partial;
    for (const TrainRecord &r : run.metrics.train)
      if (chain.nodes.contains(r.node))
        if (std::optional<double> y = value(r))
          curve.points.push_back({r.chainTokens, *y});
    sortByX(curve.points);
    thin(curve.points);
    if (!curve.points.empty())
      chart.curves.push_back(std::move(curve));
  }
}

} // namespace

std::vector<Chart> mixtape::report::lossCharts(const Run &run) {
  // One chart per (eval, stream, split), in order of first appearance.
  std::vector<std::string> series;
  llvm::StringSet<> seen;
  for (const EvalRecord &r : run.metrics.evals)
    if (seen.insert(seriesName(r)).second)
      series.push_back(seriesName(r));

  std::vector<Chain> chains = chainsOf(run);
  std::vector<StageMark> stages = stageMarks(run.plan);
  llvm::StringSet<> stems{"lr"};
  std::vector<Chart> charts;
  for (const std::string &name : series) {
    Chart chart;
    chart.title = "Eval loss: " + name;
    chart.xLabel = "tokens trained since init (linear)";
    chart.yLabel = "loss (nats per token)";
    chart.fileStem = "loss-" + fileStem(name, stems);
    chart.stages = stages;
    chart.markers = true;
    for (const Chain &chain : chains) {
      Curve curve;
      curve.label = chain.variant;
      curve.partial = chain.partial;
      std::vector<Point> final;
      for (const EvalRecord &r : run.metrics.evals) {
        if (seriesName(r) != name)
          continue;
        if (!r.final && chain.nodes.contains(r.model))
          curve.points.push_back({r.chainTokens, r.loss});
        else if (r.final && r.model == chain.last)
          final.push_back({r.chainTokens, r.loss});
        else
          continue;
        curve.partial |= r.partial;
      }
      sortByX(curve.points);
      // The final eval closes the curve even where a during point shares its x.
      sortByX(final);
      llvm::append_range(curve.points, final);
      if (!curve.points.empty())
        chart.curves.push_back(std::move(curve));
    }
    charts.push_back(std::move(chart));
  }
  return charts;
}

Chart mixtape::report::lrChart(const Run &run) {
  Chart chart;
  chart.title = "Learning rate";
  chart.xLabel = "tokens trained since init (linear)";
  chart.yLabel = "learning rate";
  chart.fileStem = "lr";
  chart.yFromZero = true;
  chart.stages = stageMarks(run.plan);
  addTrainCurves(chart, chainsOf(run), run, [](const TrainRecord &r) { return std::optional<double>(r.lr); });
  return chart;
}

std::vector<Chart> mixtape::report::trainLossCharts(const Run &run) {
  std::vector<std::string> streams;
  for (const TrainRecord &r : run.metrics.train)
    for (const auto &[stream, loss] : r.lossByStream)
      if (!llvm::is_contained(streams, stream))
        streams.push_back(stream);
  std::vector<Chain> chains = chainsOf(run);
  llvm::StringSet<> stems;
  std::vector<Chart> charts;
  for (const std::string &stream : streams) {
    Chart chart;
    chart.title = "Training loss: " + stream;
    chart.xLabel = "tokens trained since init (linear)";
    chart.yLabel = "loss (nats per token)";
    chart.fileStem = "train-loss-" + fileStem(stream, stems);
    chart.stages = stageMarks(run.plan);
    addTrainCurves(chart, chains, run, [&](const TrainRecord &r) -> std::optional<double> {
      for (const auto &[s, loss] : r.lossByStream)
        if (s == stream)
          return loss;
      return std::nullopt;
    });
    charts.push_back(std::move(chart));
  }
  return charts;
}

MetricsTable mixtape::report::finalMetrics(const Run &run) {
  MetricsTable table;
  auto column = [&](const EvalRecord &r) {
    std::string name = seriesName(r);
    auto it = llvm::find(table.columns, name);
    if (it != table.columns.end())
      return static_cast<size_t>(it - table.columns.begin());
    table.columns.push_back(name);
    return table.columns.size() - 1;
  };
  for (const EvalRecord &r : run.metrics.evals)
    if (r.final)
      column(r);
  for (const PlanNode &node : run.plan.nodes) {
    MetricsTable::Row row;
    row.model = node.name;
    row.cells.resize(table.columns.size());
    bool any = false;
    for (const EvalRecord &r : run.metrics.evals) {
      if (!r.final || r.model != node.name)
        continue;
      any = true;
      row.chainTokens = r.chainTokens;
      row.partial |= r.partial;
      row.cells[column(r)] = MetricsTable::Cell{r.loss, r.ppl};
    }
    if (any)
      table.rows.push_back(std::move(row));
  }
  return table;
}

void mixtape::report::printTable(const MetricsTable &table, llvm::raw_ostream &os) {
  if (table.rows.empty()) {
    os << "no final evals yet\n";
    return;
  }
  // Two header lines: the series, then loss and ppl under each.
  std::vector<std::vector<std::string>> cells;
  cells.push_back({"model", "tokens"});
  cells.push_back({"", ""});
  for (const std::string &c : table.columns) {
    cells[0].insert(cells[0].end(), {c, ""});
    cells[1].insert(cells[1].end(), {"loss", "ppl"});
  }
  for (const MetricsTable::Row &row : table.rows) {
    std::vector<std::string> line{row.model + (row.partial ? " (partial)" : ""),
                                  formatTokens(row.chainTokens)};
    for (const std::optional<MetricsTable::Cell> &cell : row.cells) {
      line.push_back(cell ? llvm::formatv("{0:F4}", cell->loss).str() : "-");
      line.push_back(cell ? llvm::formatv("{0:F2}", cell->ppl).str() : "-");
    }
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
  for (const std::string &ablation : run.plan.ablations)
    for (size_t c = 0; c < table.columns.size(); ++c) {
      AblationRanking r{ablation, table.columns[c], {}};
      for (const MetricsTable::Row &row : table.rows)
        if (llvm::StringRef(row.model).startswith(ablation + "{") && row.cells[c])
          r.ranked.emplace_back(row.model, row.cells[c]->loss);
      std::stable_sort(r.ranked.begin(), r.ranked.end(),
                       [](const auto &a, const auto &b) { return a.second < b.second; });
      if (!r.ranked.empty())
        out.push_back(std::move(r));
    }
  return out;
}

void mixtape::report::printRankings(llvm::ArrayRef<AblationRanking> rankings, llvm::raw_ostream &os) {
  for (const AblationRanking &r : rankings) {
    os << "\nablation " << r.ablation << ": candidate mixtures by proxy loss on " << r.column << "\n";
    for (size_t i = 0; i < r.ranked.size(); ++i)
      os << llvm::formatv("  {0,3}. {1,-40} {2:F4}\n", i + 1, r.ranked[i].first, r.ranked[i].second);
  }
}
