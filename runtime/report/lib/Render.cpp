//===- Render.cpp - SVG charts and the HTML page, written by hand ---------===//
//
// No plotting library: a chart is a few dozen SVG elements. The HTML is well-formed XHTML
// (it parses as XML) with the SVGs inline, so one file carries the whole report. Numbers are
// printed with fixed precision, so the same run gives the same bytes.
//
//===----------------------------------------------------------------------===//
#include "mixtape/report/Report.h"

#include "mixtape/report/Forgetting.h"

#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <cmath>

using namespace mixtape;
using namespace mixtape::report;

Ticks mixtape::report::niceTicks(double lo, double hi, int target) {
  if (!(hi > lo)) {
    // A flat series still gets an axis around its value.
    double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  // Heckbert, "Nice numbers for graph labels", Graphics Gems (1990): steps of 1, 2 or 5 × 10^k.
  double rough = (hi - lo) / std::max(target, 1);
  double magnitude = std::pow(10.0, std::floor(std::log10(rough)));
  double residual = rough / magnitude;
  double nice = residual < 1.5 ? 1 : residual < 3 ? 2 : residual < 7 ? 5 : 10;
  Ticks ticks;
  ticks.Step = nice * magnitude;
  double first = std::floor(lo / ticks.Step + 1e-9), last = std::ceil(hi / ticks.Step - 1e-9);
  ticks.Lo = first * ticks.Step;
  ticks.Hi = last * ticks.Step;
  for (double k = first; k <= last; ++k)
    ticks.Values.push_back(k * ticks.Step + 0.0); // + 0.0: never print "-0"
  return ticks;
}

/// `x` with at most `decimals` decimals, trailing zeros dropped.
static std::string trimmed(double x, int decimals) {
  std::string text = llvm::formatv("{0}", llvm::format("%.*f", decimals, x + 0.0)).str();
  if (llvm::StringRef(text).contains('.')) {
    text.erase(text.find_last_not_of('0') + 1);
    if (text.back() == '.')
      text.pop_back();
  }
  return text;
}

std::string mixtape::report::formatTokens(double tokens) {
  static const struct {
    double Scale;
    const char *Suffix;
  } units[] = {{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "K"}};
  for (const auto &unit : units)
    if (std::fabs(tokens) >= unit.Scale)
      return trimmed(tokens / unit.Scale, 3) + unit.Suffix;
  return trimmed(tokens, 0);
}

std::string mixtape::report::formatDuration(double seconds) {
  const long whole = std::lround(seconds);
  if (seconds < 60)
    return llvm::formatv("{0:F1} s", seconds).str();
  if (whole < 3600)
    return llvm::formatv("{0} min {1} s", whole / 60, llvm::format("%02ld", whole % 60)).str();
  return llvm::formatv("{0} h {1} min", whole / 3600, llvm::format("%02ld", whole / 60 % 60)).str();
}

std::string mixtape::report::escapeXml(llvm::StringRef text) {
  std::string out;
  for (char c : text) {
    switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    case '\'': out += "&#39;"; break;
    default:
      // XML 1.0 allows no control characters but tab, newline and carriage return.
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r')
        out += "\xEF\xBF\xBD"; // U+FFFD
      else
        out += c;
    }
  }
  return out;
}

namespace {

// Okabe & Ito's colour-blind-safe palette, and dash patterns, so overlapping lines stay
// distinguishable where shared nodes make variants coincide.
const char *const kColors[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                               "#E69F00", "#56B4E9", "#000000"};
const char *const kDashes[] = {"", "7 4", "2 3", "9 3 2 3"};
// Later curves draw narrower, on top of wider ones, so a line that coincides with another
// (variants that share nodes) still shows at both edges.
const char *const kWidths[] = {"3.5", "2.5", "1.75", "1.25"};

std::string colorOf(size_t i) { return kColors[i % std::size(kColors)]; }
std::string dashOf(size_t i) {
  llvm::StringRef dash = kDashes[i % std::size(kDashes)];
  return dash.empty() ? "" : (" stroke-dasharray=\"" + dash + "\"").str();
}
std::string widthOf(size_t i) { return kWidths[i % std::size(kWidths)]; }

/// Hover targets of a curve without markers: a chart 540 px wide has no use for more.
constexpr size_t kMaxHoverPoints = 200;

std::string num(double x) { return llvm::formatv("{0}", llvm::format("%.2f", x + 0.0)).str(); }

std::string curveLabel(const Curve &curve) {
  return curve.Label + (curve.Partial ? " (partial)" : "");
}

/// Tick labels with as many decimals as the step needs.
std::string valueLabel(double value, double step) {
  int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  return trimmed(value, std::min(decimals, 12));
}

} // namespace

std::string mixtape::report::renderSvg(const Chart &chart) {
  const double left = 76, top = 44, plotWidth = 540, plotHeight = 240;
  const double right = left + plotWidth, bottom = top + plotHeight;
  size_t longest = 0;
  for (const Curve &curve : chart.Curves)
    longest = std::max(longest, curveLabel(curve).size());
  const double legendX = right + 20;
  const double width = legendX + 36 + 7.0 * longest + 12, height = bottom + 56;

  double xMax = 0, yMin = 0, yMax = 0;
  bool first = true;
  for (const Curve &curve : chart.Curves)
    for (const Point &p : curve.Points) {
      xMax = std::max(xMax, p.X);
      yMin = first ? p.Y : std::min(yMin, p.Y);
      yMax = first ? p.Y : std::max(yMax, p.Y);
      first = false;
    }
  for (const StageMark &mark : chart.Stages)
    xMax = std::max(xMax, mark.X);
  if (chart.YFromZero)
    yMin = std::min(yMin, 0.0);
  Ticks xTicks = niceTicks(0, xMax, 8);
  Ticks yTicks = niceTicks(yMin, yMax, 6);
  auto px = [&](double x) { return left + (x - xTicks.Lo) / (xTicks.Hi - xTicks.Lo) * plotWidth; };
  auto py = [&](double y) {
    return bottom - (y - yTicks.Lo) / (yTicks.Hi - yTicks.Lo) * plotHeight;
  };

  std::string s;
  llvm::raw_string_ostream os(s);
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << num(width) << "\" height=\""
     << num(height) << "\" viewBox=\"0 0 " << num(width) << " " << num(height)
     << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
     << "<title>" << escapeXml(chart.Title) << "</title>\n"
     << "<rect width=\"" << num(width) << "\" height=\"" << num(height) << "\" fill=\"#ffffff\"/>\n"
     << "<text class=\"title\" x=\"" << num(left) << "\" y=\"24\" font-size=\"15\" "
     << "font-weight=\"bold\">" << escapeXml(chart.Title) << "</text>\n";

  os << "<g class=\"grid\" stroke=\"#e8e8e8\">\n";
  for (double x : xTicks.Values)
    os << "<line x1=\"" << num(px(x)) << "\" y1=\"" << num(top) << "\" x2=\"" << num(px(x))
       << "\" y2=\"" << num(bottom) << "\"/>\n";
  for (double y : yTicks.Values)
    os << "<line x1=\"" << num(left) << "\" y1=\"" << num(py(y)) << "\" x2=\"" << num(right)
       << "\" y2=\"" << num(py(y)) << "\"/>\n";
  os << "</g>\n";

  os << "<g class=\"stages\" fill=\"#555555\">\n";
  for (const StageMark &mark : chart.Stages)
    os << "<line x1=\"" << num(px(mark.X)) << "\" y1=\"" << num(top) << "\" x2=\""
       << num(px(mark.X)) << "\" y2=\"" << num(bottom)
       << "\" stroke=\"#777777\" stroke-dasharray=\"5 4\"/>\n"
       << "<text x=\"" << num(px(mark.X) + 4) << "\" y=\"" << num(top + 13) << "\">"
       << escapeXml(mark.Label) << "</text>\n";
  os << "</g>\n";

  os << "<g class=\"axes\" stroke=\"#333333\">\n"
     << "<line x1=\"" << num(left) << "\" y1=\"" << num(bottom) << "\" x2=\"" << num(right)
     << "\" y2=\"" << num(bottom) << "\"/>\n"
     << "<line x1=\"" << num(left) << "\" y1=\"" << num(top) << "\" x2=\"" << num(left)
     << "\" y2=\"" << num(bottom) << "\"/>\n";
  for (double x : xTicks.Values)
    os << "<line x1=\"" << num(px(x)) << "\" y1=\"" << num(bottom) << "\" x2=\"" << num(px(x))
       << "\" y2=\"" << num(bottom + 5) << "\"/>\n";
  for (double y : yTicks.Values)
    os << "<line x1=\"" << num(left - 5) << "\" y1=\"" << num(py(y)) << "\" x2=\"" << num(left)
       << "\" y2=\"" << num(py(y)) << "\"/>\n";
  os << "</g>\n<g class=\"tick-labels\" fill=\"#333333\">\n";
  for (double x : xTicks.Values)
    os << "<text x=\"" << num(px(x)) << "\" y=\"" << num(bottom + 19)
       << "\" text-anchor=\"middle\">" << (chart.XTokens ? formatTokens(x) : valueLabel(x, xTicks.Step)) << "</text>\n";
  for (double y : yTicks.Values)
    os << "<text x=\"" << num(left - 8) << "\" y=\"" << num(py(y) + 4)
       << "\" text-anchor=\"end\">" << valueLabel(y, yTicks.Step) << "</text>\n";
  os << "</g>\n"
     << "<text class=\"x-label\" x=\"" << num(left + plotWidth / 2) << "\" y=\""
     << num(bottom + 42) << "\" text-anchor=\"middle\">" << escapeXml(chart.XLabel) << "</text>\n"
     << "<text class=\"y-label\" x=\"18\" y=\"" << num(top + plotHeight / 2)
     << "\" text-anchor=\"middle\" transform=\"rotate(-90 18 " << num(top + plotHeight / 2)
     << ")\">" << escapeXml(chart.YLabel) << "</text>\n";

  os << "<g class=\"curves\" fill=\"none\" stroke-linejoin=\"round\" stroke-opacity=\"0.9\">\n";
  auto style = [&](size_t i) { return chart.Curves[i].Style.value_or(i); };
  auto dash = [&](size_t i) { return dashOf(chart.Curves[i].Dash.value_or(style(i))); };
  for (size_t i = 0; i < chart.Curves.size(); ++i) {
    const Curve &curve = chart.Curves[i];
    os << "<polyline data-variant=\"" << escapeXml(curve.Label) << "\" stroke=\"" << colorOf(style(i))
       << "\" stroke-width=\"" << widthOf(style(i)) << "\"" << dash(i) << " points=\"";
    for (size_t k = 0; k < curve.Points.size(); ++k)
      os << (k ? " " : "") << num(px(curve.Points[k].X)) << "," << num(py(curve.Points[k].Y));
    os << "\"/>\n";
  }
  os << "</g>\n";
  // Values on hover, without scripts: each point's <title> is its tooltip. Markers carry
  // their own; curves without them get transparent targets, at most kMaxHoverPoints a curve.
  auto tooltip = [&](const Curve &curve, const Point &p) {
    std::string at = chart.XTokens ? formatTokens(p.X) + " tokens" : escapeXml(chart.XLabel) + " " + valueLabel(p.X, xTicks.Step);
    return "<title>" + escapeXml(curve.Label) + " at " + at + ": " +
           llvm::formatv("{0}", llvm::format("%.6g", p.Y + 0.0)).str() + "</title>";
  };
  os << "<g class=\"" << (chart.Markers ? "markers" : "hover\" fill=\"#000000\" fill-opacity=\"0") << "\">\n";
  for (size_t i = 0; i < chart.Curves.size(); ++i) {
    const Curve &curve = chart.Curves[i];
    if (chart.Markers && curve.LineOnly)
      continue;
    const size_t stride = chart.Markers ? 1 : (curve.Points.size() + kMaxHoverPoints - 1) / kMaxHoverPoints;
    for (size_t k = 0; k < curve.Points.size(); k += std::max<size_t>(stride, 1)) {
      const Point &p = curve.Points[k];
      os << "<circle cx=\"" << num(px(p.X)) << "\" cy=\"" << num(py(p.Y)) << "\" r=\""
         << (chart.Markers ? "3\" fill=\"" + colorOf(style(i)) + "\"" : std::string("5\"")) << ">" << tooltip(curve, p)
         << "</circle>\n";
    }
  }
  os << "</g>\n";

  os << "<g class=\"legend\">\n";
  for (size_t i = 0; i < chart.Curves.size(); ++i) {
    double y = top + 8 + 20.0 * i;
    os << "<line x1=\"" << num(legendX) << "\" y1=\"" << num(y) << "\" x2=\"" << num(legendX + 28)
       << "\" y2=\"" << num(y) << "\" stroke=\"" << colorOf(style(i)) << "\" stroke-width=\"" << widthOf(style(i))
       << "\"" << dash(i) << "/>\n"
       << "<text x=\"" << num(legendX + 36) << "\" y=\"" << num(y + 4) << "\">"
       << escapeXml(curveLabel(chart.Curves[i])) << "</text>\n";
  }
  os << "</g>\n</svg>\n";
  return os.str();
}

llvm::StringRef mixtape::report::reportStyle() {
  return R"(body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.partial td { color: #a05a00; }
.done { color: #1a7f37; } .partial { color: #a05a00; } .not-run { color: #888; }
figure { margin: 4px 0; }
.warning { color: #a05a00; }
)";
}

namespace {

std::string fixed4(double v) { return llvm::formatv("{0}", llvm::format("%.4f", v + 0.0)).str(); }
std::string signed4(double v) { return llvm::formatv("{0}", llvm::format("%+.4f", v + 0.0)).str(); }

/// The forgetting numbers as three tables (forgetting.json has the same, docs/run-format.md).
void renderForgetting(const Forgetting &f, llvm::raw_ostream &os) {
  os << "<h2>Forgetting</h2>\n";
  if (f.Stages.empty() && f.Chains.empty() && f.Gaps.empty()) {
    os << "<p>No stage has evals at its start and end yet.</p>\n";
    return;
  }
  os << "<p>The numbers behind the charts, also in <code>forgetting.json</code>. Change: a stage's "
        "end against the model it started from (its in-loop point at 0 tokens, else that model's "
        "final eval). Transfer: along each variant's chain, per eval, the stage that improved it most "
        "(learned at); BWT is what the later stages did to it, FWT what the earlier ones gave it before "
        "it was learned, both positive when better (Lopez-Paz &amp; Ranzato 2017). Stability gap: the "
        "deepest in-loop drop below a stage's start and the stage tokens until it is made good.</p>\n";
  if (!f.Stages.empty()) {
    os << "<table id=\"forgetting-stages\">\n<thead><tr><th>model</th><th>stage</th><th>from</th>"
       << "<th>eval</th><th>start</th><th>end</th><th>change</th><th></th></tr></thead>\n<tbody>\n";
    for (const StageForgetting &s : f.Stages)
      for (const StageChange &c : s.Changes)
        os << "<tr" << (s.Partial ? " class=\"partial\"" : "") << " data-model=\"" << escapeXml(s.Model)
           << "\"><td>" << escapeXml(s.Model) << "</td><td>" << escapeXml(s.Stage) << "</td><td>"
           << escapeXml(s.StartModel) << "</td><td>" << escapeXml(c.Key) << "</td><td class=\"num\">"
           << fixed4(c.Start) << "</td><td class=\"num\">" << fixed4(c.End) << "</td><td class=\"num\">"
           << signed4(c.Change) << "</td><td>" << (c.Better ? "better" : "worse") << "</td></tr>\n";
    os << "</tbody>\n</table>\n";
  }
  for (const ChainForgetting &c : f.Chains) {
    auto mean = [](const std::optional<double> &v) { return v ? signed4(*v) : std::string("-"); };
    os << "<table class=\"transfer\" data-variant=\"" << escapeXml(c.Variant) << "\">\n<caption>"
       << escapeXml(c.Variant) << (c.Partial ? " (partial)" : "") << ": BWT " << mean(c.Bwt) << ", FWT "
       << mean(c.Fwt) << "</caption>\n<thead><tr><th>model</th>";
    for (const std::string &k : c.Columns)
      os << "<th>" << escapeXml(k) << "</th>";
    os << "</tr></thead>\n<tbody>\n";
    for (size_t r = 0; r < c.Rows.size(); ++r) {
      os << "<tr><td>" << escapeXml(c.Rows[r].Model) << "</td>";
      for (double v : c.R[r])
        os << "<td class=\"num\">" << fixed4(v) << "</td>";
      os << "</tr>\n";
    }
    for (const char *what : {"learned at", "BWT", "FWT"}) {
      os << "<tr><th>" << what << "</th>";
      for (const Transfer &t : c.Transfers)
        os << "<td class=\"num\">"
           << (what[0] == 'l'   ? escapeXml(c.Rows[t.LearnedAt].Model)
               : what[0] == 'B' ? signed4(t.Bwt)
                                : signed4(t.Fwt))
           << "</td>";
      os << "</tr>\n";
    }
    os << "</tbody>\n</table>\n";
  }
  if (!f.Gaps.empty()) {
    os << "<table id=\"stability-gap\">\n<thead><tr><th>model</th><th>stage</th><th>eval</th>"
       << "<th>start</th><th>deepest</th><th>drop</th><th>at</th><th>recovered after</th></tr></thead>\n"
       << "<tbody>\n";
    for (const StageGaps &g : f.Gaps)
      for (const StabilityGap &gap : g.Gaps)
        os << "<tr" << (g.Partial ? " class=\"partial\"" : "") << "><td>" << escapeXml(g.Model) << "</td><td>"
           << escapeXml(g.Stage) << "</td><td>" << escapeXml(gap.Key) << "</td><td class=\"num\">"
           << fixed4(gap.Start) << "</td><td class=\"num\">" << fixed4(gap.Deepest) << "</td><td class=\"num\">"
           << signed4(gap.Drop) << "</td><td class=\"num\">"
           << formatTokens(static_cast<double>(gap.AtStageTokens)) << "</td><td class=\"num\">"
           << (gap.TokensToRecover ? formatTokens(static_cast<double>(*gap.TokensToRecover)) : std::string("never"))
           << "</td></tr>\n";
    os << "</tbody>\n</table>\n";
  }
}

/// Wall time and throughput per train node (train records without wall-clock fields: "-").
void renderTimings(llvm::ArrayRef<NodeTiming> timings, llvm::raw_ostream &os) {
  if (timings.empty())
    return;
  os << "<h2>Throughput</h2>\n<p>Per train node, from its train records: the wall time of its steps "
        "(resumes included, the time it was down not), the tokens it trained over that time, and the "
        "median step's tokens per second; MFU and peak memory on CUDA.</p>\n"
     << "<table id=\"throughput\">\n<thead><tr><th>node</th><th>steps</th><th>tokens</th><th>wall time</th>"
     << "<th>tokens/s</th><th>median step tokens/s</th><th>MFU</th><th>peak memory</th></tr></thead>\n<tbody>\n";
  auto cell = [](const std::optional<std::string> &text) {
    return "<td class=\"num\">" + text.value_or("-") + "</td>";
  };
  auto rate = [](const std::optional<double> &r) -> std::optional<std::string> {
    return r ? std::optional<std::string>(llvm::formatv("{0:F0}", *r).str()) : std::nullopt;
  };
  for (const NodeTiming &t : timings)
    os << "<tr" << (t.Partial ? " class=\"partial\"" : "") << " data-node=\"" << escapeXml(t.Node) << "\"><td>"
       << escapeXml(t.Node) << (t.Partial ? " (partial)" : "") << "</td>" << cell(std::to_string(t.Steps))
       << cell(formatTokens(static_cast<double>(t.Tokens)))
       << cell(t.Seconds ? std::optional<std::string>(formatDuration(*t.Seconds)) : std::nullopt)
       << cell(rate(t.TokensPerS)) << cell(rate(t.MedianStepTokensPerS))
       << cell(t.Mfu ? std::optional<std::string>(llvm::formatv("{0:F1}%", *t.Mfu * 100).str()) : std::nullopt)
       << cell(t.PeakMemoryBytes ? std::optional<std::string>(llvm::formatv(
                                       "{0:F1} GiB", static_cast<double>(*t.PeakMemoryBytes) / (1u << 30)))
                                 : std::nullopt)
       << "</tr>\n";
  os << "</tbody>\n</table>\n";
}

} // namespace

std::string mixtape::report::renderHtml(const Run &run, const MetricsTable &table, const Forgetting &forgetting,
                                        const ReportCharts &charts, llvm::ArrayRef<NodeTiming> timings) {
  std::string s;
  llvm::raw_string_ostream os(s);
  std::string recipe = escapeXml(run.Plan.Recipe);
  os << "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n"
     << "<meta charset=\"utf-8\"/>\n<title>mixtape report: " << recipe << "</title>\n"
     << "<style>\n" << reportStyle() << "</style>\n</head>\n<body>\n"
     << "<h1>Run report: recipe <code>" << recipe << "</code></h1>\n";

  if (!run.Logs.Warnings.empty()) {
    os << "<ul class=\"warnings\">\n";
    for (const std::string &w : run.Logs.Warnings)
      os << "<li class=\"warning\">" << escapeXml(w) << "</li>\n";
    os << "</ul>\n";
  }

  os << "<h2>Final metrics</h2>\n";
  if (table.Rows.empty())
    os << "<p>No final evals yet.</p>\n";
  else {
    os << "<table id=\"final-metrics\">\n<thead>\n<tr><th rowspan=\"2\">model</th>"
       << "<th rowspan=\"2\">tokens</th>";
    for (const std::string &c : table.Columns)
      os << "<th colspan=\"2\">" << escapeXml(c) << "</th>";
    for (const MetricsTable::TaskColumn &c : table.TaskColumns)
      os << "<th colspan=\"" << rundir::taskMetrics(c.Kind).size() << "\">" << escapeXml(c.Name) << "</th>";
    os << "</tr>\n<tr>";
    for (size_t i = 0; i < table.Columns.size(); ++i)
      os << "<th>loss</th><th>ppl</th>";
    for (const MetricsTable::TaskColumn &c : table.TaskColumns)
      for (llvm::StringRef metric : rundir::taskMetrics(c.Kind))
        os << "<th>" << metric << "</th>";
    os << "</tr>\n</thead>\n<tbody>\n";
    for (const MetricsTable::Row &row : table.Rows) {
      os << "<tr class=\"" << (row.Partial ? "model partial" : "model") << "\" data-model=\""
         << escapeXml(row.Model) << "\"><td>" << escapeXml(row.Model)
         << (row.Partial ? " (partial)" : "") << "</td><td class=\"num\">"
         << formatTokens(row.ChainTokens) << "</td>";
      for (const std::optional<MetricsTable::Cell> &cell : row.Cells)
        if (cell)
          os << llvm::formatv("<td class=\"num\">{0:F4}</td><td class=\"num\">{1:F2}</td>",
                              cell->Loss, cell->Ppl);
        else
          os << "<td class=\"num\">-</td><td class=\"num\">-</td>";
      for (size_t c = 0; c < table.TaskColumns.size(); ++c)
        for (llvm::StringRef metric : rundir::taskMetrics(table.TaskColumns[c].Kind))
          os << "<td class=\"num\">"
             << (row.TaskCells[c] ? formatScore(*row.TaskCells[c], metric, " \xC2\xB1 ") : std::string("-")) << "</td>";
      os << "</tr>\n";
    }
    os << "</tbody>\n</table>\n";
  }
  renderForgetting(forgetting, os);
  std::vector<AblationRanking> rankings = rankAblations(run, table);
  if (!rankings.empty()) {
    std::string text;
    llvm::raw_string_ostream ts(text);
    printRankings(rankings, ts);
    os << "<h2>Data ablations</h2>\n<p>Candidate mixtures ranked by the loss of their proxy (the average "
          "of the units' models, Na et al. 2024), best first.</p>\n<pre id=\"ablations\">"
       << escapeXml(llvm::StringRef(text).trim()) << "</pre>\n";
  }

  os << "<h2>Eval loss</h2>\n"
     << "<p>How to read: the x axis is tokens trained since the init (linear); one line per "
        "stage variant, its points the evals during training and, last, its final eval. "
        "Variants that share nodes draw the same line until they branch. Dashed grey lines "
        "mark where a stage starts. Forgetting shows as an earlier domain's loss rising after "
        "a later stage starts; replay should make it rise less. \"(partial)\": some node of "
        "the variant has not finished. A variant keeps its colour, width and dash on every chart; "
        "hover over a line for its values.</p>\n";
  if (charts.Loss.empty())
    os << "<p>No eval records yet.</p>\n";
  for (const Chart &chart : charts.Loss)
    os << "<figure>\n" << renderSvg(chart) << "</figure>\n";
  if (!charts.Task.empty())
    os << "<h2>Task accuracy</h2>\n"
       << "<p>Each task's main metric (acc for multiple choice, exact_match for generation) against "
          "the same axis, drawn as the loss charts are: one line per stage variant in the same colours, "
          "its in-loop points then its final eval. Forgetting shows as an earlier task's accuracy "
          "falling after a later stage starts.</p>\n";
  for (const Chart &chart : charts.Task)
    os << "<figure>\n" << renderSvg(chart) << "</figure>\n";
  os << "<h2>Learning rate</h2>\n<figure>\n" << renderSvg(charts.LR) << "</figure>\n";
  if (!charts.GradNorm.Curves.empty())
    os << "<h2>Gradient norm</h2>\n<p>The global norm of every step's gradient before clipping: spikes "
          "mark unstable steps, often right after a stage starts or the learning rate rewarms.</p>\n<figure>\n"
       << renderSvg(charts.GradNorm) << "</figure>\n";
  if (!charts.TrainLoss.empty())
    os << "<h2>Training loss per stream</h2>\n"
       << "<p>The loss of each optimizer step over the samples each stream contributed to its "
          "batch: a replayed stream's curve shows what the model still knows of it while the "
          "batch is mostly another domain.</p>\n";
  for (const Chart &chart : charts.TrainLoss)
    os << "<figure>\n" << renderSvg(chart) << "</figure>\n";
  renderTimings(timings, os);

  os << "<h2>Nodes</h2>\n<table id=\"nodes\">\n<thead><tr><th>node</th><th>kind</th>"
     << "<th>status</th><th>directory</th></tr></thead>\n<tbody>\n";
  for (size_t i = 0; i < run.Plan.Nodes.size(); ++i) {
    const plan::Node &node = run.Plan.Nodes[i];
    llvm::StringRef state = stateName(run.States[i]);
    os << "<tr><td>" << escapeXml(node.Name) << "</td><td>" << plan::enumName(node.Kind)
       << "</td><td class=\"" << (run.States[i] == NodeState::NotRun ? "not-run" : state)
       << "\">" << state << "</td><td><code>" << escapeXml(node.Dir) << "</code></td></tr>\n";
  }
  os << "</tbody>\n</table>\n</body>\n</html>\n";
  return os.str();
}

llvm::Error mixtape::report::writeReport(const Run &run, llvm::StringRef outDir,
                                         llvm::raw_ostream &tableOut) {
  if (std::error_code ec = llvm::sys::fs::create_directories(outDir))
    return fileError(outDir, "cannot create: " + ec.message());
  MetricsTable table = finalMetrics(run);
  Forgetting forgetting = forgettingOf(run.Plan, run.Logs);
  ReportCharts charts = chartsOf(run);
  std::vector<NodeTiming> timings = nodeTimings(run);
  for (const Chart *chart : charts.all()) {
    if (llvm::Error error = writeFileDurably(joinPath(outDir, chart->FileStem + ".svg"), renderSvg(*chart)))
      return error;
  }
  if (llvm::Error error = writeFileDurably(joinPath(outDir, "forgetting.json"), forgettingJSON(forgetting)))
    return error;
  if (llvm::Error error = writeFileDurably(joinPath(outDir, "report.html"),
                                           renderHtml(run, table, forgetting, charts, timings)))
    return error;
  printTable(table, tableOut);
  printForgetting(forgetting, tableOut);
  printRankings(rankAblations(run, table), tableOut);
  printTimings(timings, tableOut);
  return llvm::Error::success();
}
