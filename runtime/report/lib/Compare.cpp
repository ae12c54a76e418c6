//===- Compare.cpp - two runs side by side -----------------------------------===//
//
// `mixtape report RUN_A RUN_B` matches models by name: the same recipe run twice (another
// seed, another machine, a changed setting that kept the node names) gives every model a
// row. The final evals' numbers go side by side with B - A; the eval charts of both runs are
// drawn on one set of axes, A solid and B dashed.
//
//===----------------------------------------------------------------------===//
#include "mixtape/report/Report.h"

#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"

#include <map>

using namespace mixtape;
using namespace mixtape::report;

namespace {

/// One run's final evals as (model, metric) -> value, with the metrics and models in order.
struct FinalValues {
  std::vector<std::string> Metrics, Models;
  std::map<std::pair<std::string, std::string>, double> Values;
};

FinalValues finalValues(const Run &run) {
  const MetricsTable table = finalMetrics(run);
  FinalValues out;
  for (const std::string &column : table.Columns)
    out.Metrics.push_back(column + " loss");
  for (const MetricsTable::TaskColumn &column : table.TaskColumns)
    for (llvm::StringRef metric : rundir::taskMetrics(column.Kind))
      out.Metrics.push_back(column.Name + " " + metric.str());
  for (const MetricsTable::Row &row : table.Rows) {
    out.Models.push_back(row.Model);
    for (size_t c = 0; c < row.Cells.size(); ++c)
      if (row.Cells[c])
        out.Values[{row.Model, table.Columns[c] + " loss"}] = row.Cells[c]->Loss;
    for (size_t c = 0; c < row.TaskCells.size(); ++c)
      if (row.TaskCells[c])
        for (llvm::StringRef metric : rundir::taskMetrics(table.TaskColumns[c].Kind))
          if (auto it = row.TaskCells[c]->find(metric.str()); it != row.TaskCells[c]->end())
            out.Values[{row.Model, table.TaskColumns[c].Name + " " + metric.str()}] = it->second;
  }
  return out;
}

void appendNew(std::vector<std::string> &to, llvm::ArrayRef<std::string> from) {
  for (const std::string &x : from)
    if (!llvm::is_contained(to, x))
      to.push_back(x);
}

std::string fixed4(const std::optional<double> &v) { return v ? llvm::formatv("{0:F4}", *v).str() : "-"; }
std::string delta(const std::optional<double> &a, const std::optional<double> &b) {
  return a && b ? llvm::formatv("{0}", llvm::format("%+.4f", *b - *a + 0.0)).str() : "-";
}

} // namespace

RunComparison mixtape::report::compareRuns(const Run &a, llvm::StringRef pathA, const Run &b, llvm::StringRef pathB) {
  const FinalValues va = finalValues(a), vb = finalValues(b);
  RunComparison out;
  out.PathA = pathA.str();
  out.PathB = pathB.str();
  out.Metrics = va.Metrics;
  appendNew(out.Metrics, vb.Metrics);
  std::vector<std::string> models = va.Models;
  appendNew(models, vb.Models);
  for (const std::string &model : models) {
    RunComparison::Row row{model, {}, {}};
    for (const std::string &metric : out.Metrics)
      for (auto [values, cells] : {std::pair{&va, &row.A}, std::pair{&vb, &row.B}}) {
        auto it = values->Values.find({model, metric});
        cells->push_back(it == values->Values.end() ? std::nullopt : std::optional<double>(it->second));
      }
    out.Rows.push_back(std::move(row));
  }
  return out;
}

void mixtape::report::printComparison(const RunComparison &comparison, llvm::raw_ostream &os) {
  os << "A: " << comparison.PathA << "\nB: " << comparison.PathB << "\n";
  if (comparison.Rows.empty()) {
    os << "no final evals in either run yet\n";
    return;
  }
  size_t modelWidth = 5, metricWidth = 6;
  for (const RunComparison::Row &row : comparison.Rows)
    modelWidth = std::max(modelWidth, row.Model.size());
  for (const std::string &metric : comparison.Metrics)
    metricWidth = std::max(metricWidth, metric.size());
  auto line = [&](llvm::StringRef model, llvm::StringRef metric, llvm::StringRef a, llvm::StringRef b,
                  llvm::StringRef d) {
    os << llvm::formatv("{0}  {1}  {2,9}  {3,9}  {4,9}", llvm::left_justify(model, modelWidth),
                        llvm::left_justify(metric, metricWidth), a, b, d)
              .str()
       << "\n";
  };
  line("model", "metric", "A", "B", "B-A");
  for (const RunComparison::Row &row : comparison.Rows)
    for (size_t m = 0; m < comparison.Metrics.size(); ++m)
      if (row.A[m] || row.B[m])
        line(row.Model, comparison.Metrics[m], fixed4(row.A[m]), fixed4(row.B[m]), delta(row.A[m], row.B[m]));
}

std::vector<Chart> mixtape::report::overlaidCharts(const Run &a, const Run &b) {
  std::vector<std::string> variants = variantsOf(a.Plan);
  appendNew(variants, variantsOf(b.Plan));
  std::vector<Chart> out;
  for (auto [run, name, dash] : {std::tuple{&a, "A", size_t(0)}, std::tuple{&b, "B", size_t(1)}}) {
    std::vector<Chart> charts = lossCharts(*run);
    llvm::append_range(charts, taskCharts(*run));
    for (Chart &chart : charts) {
      auto same = llvm::find_if(out, [&](const Chart &c) { return c.Title == chart.Title; });
      if (same == out.end()) {
        out.push_back(chart);
        out.back().Curves.clear();
        same = std::prev(out.end());
      }
      for (Curve &curve : chart.Curves) {
        curve.Style = static_cast<size_t>(llvm::find(variants, curve.Label) - variants.begin());
        curve.Dash = dash;
        curve.Label = std::string(name) + ": " + curve.Label;
        same->Curves.push_back(std::move(curve));
      }
    }
  }
  return out;
}

llvm::Error mixtape::report::writeComparison(const Run &a, llvm::StringRef pathA, const Run &b, llvm::StringRef pathB,
                                             llvm::StringRef outDir, llvm::raw_ostream &tableOut) {
  if (std::error_code ec = llvm::sys::fs::create_directories(outDir))
    return fileError(outDir, "cannot create: " + ec.message());
  const RunComparison comparison = compareRuns(a, pathA, b, pathB);
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n"
     << "<meta charset=\"utf-8\"/>\n<title>mixtape report: " << escapeXml(a.Plan.Recipe) << " against "
     << escapeXml(b.Plan.Recipe) << "</title>\n<style>\n" << reportStyle() << "</style>\n</head>\n<body>\n"
     << "<h1>Two runs compared</h1>\n<p>A: <code>" << escapeXml(pathA) << "</code> (recipe <code>"
     << escapeXml(a.Plan.Recipe) << "</code>)<br/>B: <code>" << escapeXml(pathB) << "</code> (recipe <code>"
     << escapeXml(b.Plan.Recipe) << "</code>)</p>\n<h2>Final metrics</h2>\n"
     << "<p>Models of the same name side by side; B-A is positive where B's number is higher (worse for a "
        "loss, better for an accuracy).</p>\n"
     << "<table id=\"comparison\">\n<thead><tr><th>model</th><th>metric</th><th>A</th><th>B</th><th>B-A</th>"
        "</tr></thead>\n<tbody>\n";
  for (const RunComparison::Row &row : comparison.Rows)
    for (size_t m = 0; m < comparison.Metrics.size(); ++m)
      if (row.A[m] || row.B[m])
        os << "<tr data-model=\"" << escapeXml(row.Model) << "\" data-metric=\"" << escapeXml(comparison.Metrics[m])
           << "\"><td>" << escapeXml(row.Model) << "</td><td>" << escapeXml(comparison.Metrics[m])
           << "</td><td class=\"num\">" << fixed4(row.A[m]) << "</td><td class=\"num\">" << fixed4(row.B[m])
           << "</td><td class=\"num\">" << delta(row.A[m], row.B[m]) << "</td></tr>\n";
  os << "</tbody>\n</table>\n<h2>Evals</h2>\n<p>Each eval chart of both runs on one set of axes: a variant in "
        "one colour, A's line solid and B's dashed; hover over a line for its values.</p>\n";
  for (const Chart &chart : overlaidCharts(a, b))
    os << "<figure>\n" << renderSvg(chart) << "</figure>\n";
  os << "</body>\n</html>\n";
  if (llvm::Error e = writeFileDurably(joinPath(outDir, "compare.html"), os.str()))
    return e;
  printComparison(comparison, tableOut);
  return llvm::Error::success();
}
