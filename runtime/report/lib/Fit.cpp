//===- Fit.cpp - `mixtape fit`: a law fitted to a run's sweep -------------===//
//
// The points are the final evals of one stage's train nodes (every variant's end, and the
// cuts where a shorter token budget of the same chain ends); their N, D and r come from the
// plan: the chain's init architecture and the stage's ledgers up to the node.
//
//===----------------------------------------------------------------------===//
#include "mixtape/report/Laws.h"
#include "mixtape/report/Report.h"

#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <map>
#include <set>

using namespace mixtape;
using namespace mixtape::report;

namespace {

/// Final eval losses by node and stream, of the selected eval or the one eval that has them.
struct FinalLosses {
  std::map<std::pair<std::string, std::string>, double> Loss;
  std::map<std::pair<std::string, std::string>, std::string> EvalOf;
};

llvm::Expected<FinalLosses> finalLosses(const Run &run, const SweepSelection &sel) {
  FinalLosses out;
  for (const Logged<rundir::EvalRecord> &logged : run.Logs.Evals) {
    const rundir::EvalRecord &r = logged.Record;
    if (!r.Final || logged.Partial || r.Split != plan::SplitKind::Val || (r.Stream != sel.Domain && r.Stream != sel.General))
      continue;
    if (!sel.Eval.empty() && r.Eval != sel.Eval)
      continue;
    auto key = std::make_pair(r.Node, r.Stream);
    auto [it, fresh] = out.EvalOf.try_emplace(key, r.Eval);
    if (!fresh && it->second != r.Eval)
      return makeError(llvm::formatv("evals '{0}' and '{1}' both score {2}.val of {3}: choose one with --eval",
                                     it->second, r.Eval, r.Stream, r.Node)
                           .str());
    out.Loss[key] = r.Loss;
  }
  return out;
}

std::string num(double v) { return llvm::formatv("{0}", llvm::format("%.4g", v)).str(); }

/// The stage variant that ends at train node `i`: one of its variants that no later segment
/// of the same stage continues (a shared chain's node is named after its first variant).
std::string endingVariant(const plan::Plan &plan, size_t i) {
  const plan::Node &node = plan.Nodes[i];
  std::set<std::string> continued;
  for (const plan::Node &n : plan.Nodes)
    if (const plan::TrainNode *t = n.train())
      if (n.Inputs.front().Index == i && t->Exec.Stage == node.train()->Exec.Stage)
        continued.insert(n.Variants.begin(), n.Variants.end());
  for (const std::string &v : node.Variants)
    if (!continued.count(v) && llvm::StringRef(v).startswith(node.train()->Exec.Stage + "["))
      return v;
  return node.Name;
}

} // namespace

llvm::Expected<Sweep> mixtape::report::sweepPoints(const Run &run, const SweepSelection &sel) {
  const plan::Plan &plan = run.Plan;
  for (const std::string *stream : {&sel.Domain, &sel.General}) {
    if (stream->empty())
      return makeError("name the domain and the general stream (--domain, --general)");
    if (!plan.Streams.count(*stream)) {
      std::vector<std::string> names;
      for (const auto &[name, s] : plan.Streams)
        names.push_back(name);
      return makeError("the plan has no stream '" + *stream + "' (streams: " + llvm::join(names, ", ") + ")");
    }
  }
  if (sel.Domain == sel.General)
    return makeError("the domain and the general stream are both '" + sel.Domain + "'");
  llvm::Expected<FinalLosses> losses = finalLosses(run, sel);
  if (!losses)
    return losses.takeError();
  auto loss = [&](const std::string &node, const std::string &stream) -> std::optional<double> {
    auto it = losses->Loss.find({node, stream});
    return it == losses->Loss.end() ? std::nullopt : std::optional<double>(it->second);
  };

  // The stage: named, or the one whose evaluated train nodes train on the domain stream.
  Sweep sweep;
  sweep.Stage = sel.Stage;
  if (sweep.Stage.empty()) {
    std::set<std::string> stages;
    for (const plan::Node &n : plan.Nodes)
      if (const plan::TrainNode *t = n.train())
        if (loss(n.Name, sel.Domain) && loss(n.Name, sel.General) && llvm::is_contained(t->Settings.Mixture.Streams, sel.Domain))
          stages.insert(t->Exec.Stage);
    if (stages.empty())
      return makeError("no train node that trains on '" + sel.Domain + "' has a final eval of both " + sel.Domain +
                       ".val and " + sel.General + ".val" +
                       " (an [[eval]] with streams = [\"" + sel.Domain + ".val\", \"" + sel.General +
                       ".val\"] on the sweep's stage, e.g. on = [\"cpt[*]\"]; the run finished?)");
    if (stages.size() > 1)
      return makeError("stages " + llvm::join(stages, ", ") + " all train on '" + sel.Domain +
                       "': choose one with --stage");
    sweep.Stage = *stages.begin();
  }

  for (size_t i = 0; i < plan.Nodes.size(); ++i) {
    const plan::Node &n = plan.Nodes[i];
    const plan::TrainNode *t = n.train();
    if (!t || t->Exec.Stage != sweep.Stage)
      continue;
    std::optional<double> domain = loss(n.Name, sel.Domain), general = loss(n.Name, sel.General);
    if (!domain || !general)
      continue;
    const std::string &eval = losses->EvalOf.at({n.Name, sel.Domain});
    if (sweep.Eval.empty())
      sweep.Eval = eval;
    else if (sweep.Eval != eval && !llvm::StringRef(sweep.Eval).contains(eval))
      sweep.Eval += "/" + eval;
    LawPoint p;
    p.Model = endingVariant(plan, i);
    p.DomainLoss = *domain;
    p.GeneralLoss = *general;
    // The stage's tokens up to this node: back through its segments to the stage's start.
    double tokens = 0, domainTokens = 0;
    size_t at = i;
    while (true) {
      const plan::TrainNode *seg = plan.Nodes[at].train();
      tokens += static_cast<double>(seg->Ledger.Tokens);
      auto it = seg->Ledger.TokensByStream.find(sel.Domain);
      if (it != seg->Ledger.TokensByStream.end())
        domainTokens += static_cast<double>(it->second);
      at = plan.Nodes[at].Inputs.front().Index;
      if (seg->Exec.StageStart)
        break;
    }
    p.GeneralBefore = loss(plan.Nodes[at].Name, sel.General);
    while (!plan.Nodes[at].init())
      at = plan.Nodes[at].Inputs.front().Index;
    p.X = {plan::parameterCount(plan.Nodes[at].init()->Settings.Model), tokens, tokens > 0 ? domainTokens / tokens : 0};
    sweep.Points.push_back(std::move(p));
  }
  if (sweep.Points.empty())
    return makeError("stage '" + sweep.Stage + "' has no train node with a final eval of both " + sel.Domain +
                     ".val and " + sel.General + ".val");
  llvm::sort(sweep.Points, [](const LawPoint &a, const LawPoint &b) {
    return std::tie(a.X.N, a.X.D, a.X.R, a.Model) < std::tie(b.X.N, b.X.D, b.X.R, b.Model);
  });
  return sweep;
}

namespace {

void printFit(const LawFit &fit, llvm::raw_ostream &os) {
  for (const FittedParameter &p : fit.Parameters) {
    os << llvm::formatv("    {0,-8} {1,11}  ", p.Name, num(p.Value));
    if (p.Held)
      os << "held (not fitted)\n";
    else if (p.Lo && p.Hi)
      os << "95% CI [" << num(*p.Lo) << ", " << num(*p.Hi) << "]\n";
    else
      os << "95% CI not determined (the points leave it free)\n";
  }
  for (const std::string &note : fit.Notes)
    os << "    note: " << note << "\n";
  os << llvm::formatv("    {0} points, {1} parameters fitted; RMSE {2}", fit.Points, fit.Free, num(fit.Rmse));
  if (fit.LooRmse)
    os << ", leave-one-out RMSE " << num(*fit.LooRmse) << " (" << fit.Points << " refits)";
  else
    os << ", no leave-one-out error (fewer points than parameters would remain)";
  os << "\n";
}

/// One group of points with the same N and D: measured and the law along the share.
struct Group {
  double N = 0, D = 0;
  std::vector<const LawPoint *> Points;
};

std::vector<Group> groupsOf(const Sweep &sweep) {
  std::vector<Group> groups;
  for (const LawPoint &p : sweep.Points) {
    if (groups.empty() || groups.back().N != p.X.N || groups.back().D != p.X.D)
      groups.push_back({p.X.N, p.X.D, {}});
    groups.back().Points.push_back(&p);
  }
  return groups;
}

/// Measured points and the law's curve (dashed, same colour) per (N, D), against x.
Chart lawChart(std::string title, std::string yLabel, std::string stem, std::string xLabel,
               const std::vector<Group> &groups, const std::function<double(const LawPoint &)> &measured,
               const std::function<double(double share)> &x, const std::function<double(const LawInput &)> &law) {
  Chart chart;
  chart.Title = std::move(title);
  chart.XLabel = std::move(xLabel);
  chart.YLabel = std::move(yLabel);
  chart.FileStem = std::move(stem);
  chart.Markers = true;
  chart.XTokens = false;
  for (size_t g = 0; g < groups.size(); ++g) {
    const Group &group = groups[g];
    std::string label = "N " + formatTokens(group.N) + ", D " + formatTokens(group.D);
    Curve points{label, {}, false, g, std::nullopt};
    for (const LawPoint *p : group.Points)
      points.Points.push_back({x(p->X.R), measured(*p)});
    double lo = group.Points.front()->X.R, hi = group.Points.back()->X.R;
    Curve fitted{label + " (law)", {}, false, g, 1};
    fitted.LineOnly = true;
    constexpr int kSteps = 50;
    for (int k = 0; k <= kSteps; ++k) {
      double share = lo + (hi - lo) * k / kSteps;
      fitted.Points.push_back({x(share), law({group.N, group.D, share})});
    }
    chart.Curves.push_back(std::move(points));
    chart.Curves.push_back(std::move(fitted));
  }
  return chart;
}

double largest(const Sweep &sweep, double LawInput::*field) {
  double v = 0;
  for (const LawPoint &p : sweep.Points)
    v = std::max(v, p.X.*field);
  return v;
}

llvm::Error writeCharts(llvm::ArrayRef<Chart> charts, llvm::StringRef outDir, llvm::raw_ostream &os) {
  if (std::error_code ec = llvm::sys::fs::create_directories(outDir))
    return fileError(outDir, "cannot create: " + ec.message());
  for (const Chart &chart : charts) {
    std::string path = joinPath(outDir, chart.FileStem + ".svg");
    if (llvm::Error e = writeFileDurably(path, renderSvg(chart)))
      return e;
    os << "wrote " << path << "\n";
  }
  return llvm::Error::success();
}

llvm::Error writeDcpt(const Sweep &sweep, const FitOptions &options, llvm::StringRef outDir, llvm::raw_ostream &os) {
  const SweepSelection &sel = options.Selection;
  std::vector<LawInput> domainX, generalX;
  std::vector<double> domainY, generalY;
  for (const LawPoint &p : sweep.Points) {
    domainX.push_back(p.X);
    generalX.push_back({p.X.N, p.X.D, 1 - p.X.R});
    domainY.push_back(p.DomainLoss);
    generalY.push_back(p.GeneralLoss);
  }
  os << "D-CPT law (Que et al. 2024): L(N, D, r) = E + A/N^alpha + B*r^eta/D^beta + C/(r + epsilon)^gamma\n";
  llvm::Expected<LawFit> domain = fitDcpt(domainX, domainY);
  if (!domain)
    return makeError("the domain loss: " + llvm::toString(domain.takeError()));
  os << "  domain loss (" << sel.Domain << ".val), r = the share of " << sel.Domain << ":\n";
  printFit(*domain, os);
  llvm::Expected<LawFit> general = fitDcpt(generalX, generalY);
  if (!general)
    return makeError("the general loss: " + llvm::toString(general.takeError()));
  os << "  general loss (" << sel.General << ".val), r = the share of " << sel.General << " (1 - the domain's):\n";
  printFit(*general, os);

  DcptParameters d = dcptParameters(*domain), g = dcptParameters(*general);
  double n = options.Size.value_or(largest(sweep, &LawInput::N));
  double tokens = options.Tokens.value_or(largest(sweep, &LawInput::D));
  double smallest = 1, widest = 0;
  for (const LawPoint &p : sweep.Points) {
    smallest = std::min(smallest, p.X.R);
    widest = std::max(widest, p.X.R);
  }
  RatioChoice choice = bestRatio(d, g, n, tokens, smallest, widest, options.MaxGeneralIncrease);
  os << llvm::formatv("\nat N = {0}, D = {1} the law predicts domain loss {2} and general loss {3} at domain share "
                      "{4}: the lowest domain loss whose general loss is at most {5}% above {6} (the law's at the "
                      "smallest swept share, {7})\n",
                      formatTokens(n), formatTokens(tokens), num(choice.DomainLoss), num(choice.GeneralLoss),
                      num(choice.Ratio), num(options.MaxGeneralIncrease * 100), num(choice.GeneralReference),
                      num(smallest));
  os << "best ratio: " << num(choice.Ratio) << "\n\n";

  std::vector<Group> groups = groupsOf(sweep);
  auto percent = [](double share) { return 100 * share; };
  std::vector<Chart> charts;
  charts.push_back(lawChart("D-CPT law: " + sel.Domain + ".val loss", "loss", "fit-domain",
                            "share of " + sel.Domain + " (%)", groups,
                            [](const LawPoint &p) { return p.DomainLoss; }, percent,
                            [&](const LawInput &x) { return dcptLoss(d, x); }));
  charts.push_back(lawChart("D-CPT law: " + sel.General + ".val loss", "loss", "fit-general",
                            "share of " + sel.Domain + " (%)", groups,
                            [](const LawPoint &p) { return p.GeneralLoss; }, percent,
                            [&](const LawInput &x) { return dcptLoss(g, {x.N, x.D, 1 - x.R}); }));
  return writeCharts(charts, outDir, os);
}

llvm::Error writeReplay(const Sweep &sweep, const FitOptions &options, llvm::StringRef outDir, llvm::raw_ostream &os) {
  const SweepSelection &sel = options.Selection;
  std::vector<LawInput> xs;
  std::vector<double> ys;
  for (const LawPoint &p : sweep.Points) {
    if (!p.GeneralBefore)
      return makeError("the replay law needs " + sel.General + ".val of the model each run starts from, and " +
                       p.Model + "'s has no final eval (add the parent stage to the eval's `on`)");
    xs.push_back({p.X.N, p.X.D, 1 - p.X.R});
    ys.push_back(p.GeneralLoss / *p.GeneralBefore - 1);
  }
  os << "replay law (after Bethune et al. 2025): L/L0 - 1 = A*D^beta / ((1 + B*p)*N)^alpha, p the share of "
     << sel.General << ", L0 its loss before the stage\n";
  llvm::Expected<LawFit> fit = fitReplay(xs, ys);
  if (!fit)
    return makeError("the general loss's rise: " + llvm::toString(fit.takeError()));
  os << "  relative rise of " << sel.General << ".val loss:\n";
  printFit(*fit, os);
  ReplayParameters r = replayParameters(*fit);
  double n = options.Size.value_or(largest(sweep, &LawInput::N));
  double tokens = options.Tokens.value_or(largest(sweep, &LawInput::D));
  // The rise falls as p grows: the largest domain share whose rise stays within the bound.
  std::optional<double> best;
  constexpr int kSteps = 1000;
  for (int i = 0; i <= kSteps; ++i) {
    double share = static_cast<double>(i) / kSteps;
    if (replayForgetting(r, {n, tokens, 1 - share}) <= options.MaxGeneralIncrease)
      best = share;
  }
  os << llvm::formatv("\nat N = {0}, D = {1}: ", formatTokens(n), formatTokens(tokens));
  if (best)
    os << "the largest domain share whose general loss rises at most " << num(options.MaxGeneralIncrease * 100)
       << "% (replay " << num(1 - *best) << ")\nbest ratio: " << num(*best) << "\n\n";
  else
    os << "even replay alone raises the general loss more than " << num(options.MaxGeneralIncrease * 100)
       << "%\nbest ratio: none\n\n";
  std::vector<Group> groups = groupsOf(sweep);
  Chart chart = lawChart("replay law: rise of " + sel.General + ".val loss", "L/L0 - 1", "fit-replay",
                         "share of " + sel.General + " (%)", groups,
                         [](const LawPoint &p) { return p.GeneralLoss / *p.GeneralBefore - 1; },
                         [](double share) { return 100 * (1 - share); },
                         [&](const LawInput &x) { return replayForgetting(r, {x.N, x.D, 1 - x.R}); });
  return writeCharts({chart}, outDir, os);
}

} // namespace

llvm::Error mixtape::report::writeFit(const Run &run, const FitOptions &options, llvm::StringRef outDir,
                                      llvm::raw_ostream &os) {
  llvm::Expected<Sweep> sweep = sweepPoints(run, options.Selection);
  if (!sweep)
    return sweep.takeError();
  std::set<double> sizes, budgets, shares;
  for (const LawPoint &p : sweep->Points) {
    sizes.insert(p.X.N);
    budgets.insert(p.X.D);
    shares.insert(p.X.R);
  }
  os << llvm::formatv("{0} runs of stage '{1}' (eval '{2}'): {3} model sizes, {4} token budgets, {5} domain shares\n",
                      sweep->Points.size(), sweep->Stage, sweep->Eval, sizes.size(), budgets.size(), shares.size())
     << "N: parameters as the plan's cost counts them (blocks and output head, not the input embedding); "
        "D: the stage's tokens; r: a stream's share of them, as trained\n";
  os << llvm::formatv("  {0,-40} {1,8} {2,8} {3,7} {4,9} {5,9}\n", "run", "N", "D", "domain", "L_domain", "L_general");
  for (const LawPoint &p : sweep->Points)
    os << llvm::formatv("  {0,-40} {1,8} {2,8} {3,7} {4,9} {5,9}\n", p.Model, formatTokens(p.X.N), formatTokens(p.X.D),
                        llvm::format("%.4f", p.X.R), llvm::format("%.4f", p.DomainLoss),
                        llvm::format("%.4f", p.GeneralLoss));
  os << "\n";
  return options.Law == LawKind::Dcpt ? writeDcpt(*sweep, options, outDir, os) : writeReplay(*sweep, options, outDir, os);
}
