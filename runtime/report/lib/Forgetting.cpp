//===- Forgetting.cpp - stage changes, transfer matrices, stability gaps ---===//
//
// Everything is computed from the plan's node graph and the logged values, nothing from
// file order but which of two records of one point wins (the later). A stage is a run of
// train nodes of one `exec.stage`, from its `stage_start` node through the inputs that
// continue it (segments); its model is its last node.
//
//===----------------------------------------------------------------------===//
#include "mixtape/report/Forgetting.h"

#include "mixtape/support/Format.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

#include <cmath>
#include <map>

using namespace mixtape;
using namespace mixtape::report;

namespace {

/// A task's main metric, the one its charts and forgetting numbers follow.
llvm::StringRef mainMetric(plan::TaskKind kind) { return rundir::taskMetrics(kind).front(); }

MetricKey keyOf(const rundir::EvalRecord &r) {
  MetricKey k;
  k.Eval = r.Eval;
  k.Stream = r.Stream;
  k.Split = r.Split;
  k.Metric = "loss";
  k.Name = r.Eval + " " + r.Stream + "." + plan::enumName(r.Split).str() + " loss";
  return k;
}

MetricKey keyOf(const rundir::TaskRecord &r) {
  MetricKey k;
  k.Eval = r.Eval;
  k.Task = r.Task;
  k.Metric = mainMetric(r.Kind).str();
  k.HigherIsBetter = true;
  k.Name = r.Eval + " " + r.Task + " " + k.Metric;
  return k;
}

struct Value {
  double V = 0;
  bool Partial = false;
};

/// The logged values by key: final ones by model, in-loop ones by train node and stage tokens.
struct Index {
  std::map<std::pair<std::string, std::string>, Value> Final;
  std::map<std::pair<std::string, std::string>, std::map<uint64_t, Value>> During;

  void add(bool isFinal, const std::string &node, const std::string &key, uint64_t stageTokens, Value v) {
    if (isFinal)
      Final[{node, key}] = v;
    else
      During[{node, key}][stageTokens] = v;
  }
  std::optional<Value> finalOf(const std::string &model, const std::string &key) const {
    auto it = Final.find({model, key});
    return it == Final.end() ? std::nullopt : std::optional<Value>(it->second);
  }
  const std::map<uint64_t, Value> *duringOf(const std::string &node, const std::string &key) const {
    auto it = During.find({node, key});
    return it == During.end() ? nullptr : &it->second;
  }
};

Index indexOf(const Metrics &logs) {
  Index index;
  for (const Logged<rundir::EvalRecord> &l : logs.Evals)
    index.add(l.Record.Final, l.Record.Node, keyOf(l.Record).Name, l.Record.StageTokens, {l.Record.Loss, l.Partial});
  for (const Logged<rundir::TaskRecord> &l : logs.Tasks) {
    auto it = l.Record.Scores.find(mainMetric(l.Record.Kind).str());
    if (it != l.Record.Scores.end())
      index.add(l.Record.Final, l.Record.Node, keyOf(l.Record).Name, l.Record.StageTokens, {it->second, l.Partial});
  }
  return index;
}

/// A stage: its train nodes in order, and the model it started from.
struct StageRun {
  std::vector<size_t> Nodes;
  size_t StartModel = 0;
};

/// Every stage that ends somewhere, in plan order of its last node.
std::vector<StageRun> stagesOf(const plan::Plan &plan) {
  auto continues = [&](size_t next, size_t prev) {
    const plan::TrainNode *n = plan.Nodes[next].train(), *p = plan.Nodes[prev].train();
    return n && p && !n->Exec.StageStart && n->Exec.Stage == p->Exec.Stage && !plan.Nodes[next].Inputs.empty() &&
           plan.Nodes[next].Inputs[0].Index == prev;
  };
  std::vector<StageRun> stages;
  for (size_t i = 0; i < plan.Nodes.size(); ++i) {
    if (!plan.Nodes[i].train())
      continue;
    bool end = true;
    for (size_t j = i + 1; j < plan.Nodes.size() && end; ++j)
      end = !continues(j, i);
    if (!end)
      continue;
    StageRun stage{{i}, 0};
    while (!plan.Nodes[stage.Nodes.front()].Inputs.empty()) {
      size_t input = plan.Nodes[stage.Nodes.front()].Inputs[0].Index;
      if (!continues(stage.Nodes.front(), input))
        break;
      stage.Nodes.insert(stage.Nodes.begin(), input);
    }
    if (plan.Nodes[stage.Nodes.front()].Inputs.empty())
      continue; // no model it started from (not a plan the compiler writes)
    stage.StartModel = plan.Nodes[stage.Nodes.front()].Inputs[0].Index;
    stages.push_back(std::move(stage));
  }
  return stages;
}

/// The model a stage started from, for one key: the stage's in-loop point at stage token 0
/// (those weights, evaluated as the stage's other points are), else a final eval of it.
std::optional<std::pair<Value, bool>> startValue(const Index &index, const plan::Plan &plan, size_t firstNode,
                                                 size_t startModel, const std::string &key) {
  if (const std::map<uint64_t, Value> *points = index.duringOf(plan.Nodes[firstNode].Name, key))
    if (auto it = points->find(0); it != points->end())
      return std::make_pair(it->second, true);
  if (std::optional<Value> v = index.finalOf(plan.Nodes[startModel].Name, key))
    return std::make_pair(*v, false);
  return std::nullopt;
}

/// Positive is better.
double goodness(const MetricKey &key, double change) { return key.HigherIsBetter ? change : -change; }

void fillTransfer(ChainForgetting &chain, llvm::ArrayRef<const MetricKey *> keys) {
  size_t last = chain.R.size() - 1;
  double bwtSum = 0, fwtSum = 0;
  size_t bwtCount = 0, fwtCount = 0;
  for (size_t j = 0; j < chain.Columns.size(); ++j) {
    const MetricKey &key = *keys[j];
    Transfer t;
    t.Key = key.Name;
    t.LearnedAt = 1;
    double best = 0;
    for (size_t i = 1; i <= last; ++i) {
      double gain = goodness(key, chain.R[i][j] - chain.R[i - 1][j]);
      if (i == 1 || gain > best) { // ties: the earliest stage
        best = gain;
        t.LearnedAt = i;
      }
    }
    t.Bwt = goodness(key, chain.R[last][j] - chain.R[t.LearnedAt][j]);
    t.Fwt = goodness(key, chain.R[t.LearnedAt - 1][j] - chain.R[0][j]);
    // As in GEM: the last stage's columns have no backward transfer yet, the first's no
    // forward transfer; both would only pull the means to 0.
    if (t.LearnedAt < last) {
      bwtSum += t.Bwt;
      ++bwtCount;
    }
    if (t.LearnedAt > 1) {
      fwtSum += t.Fwt;
      ++fwtCount;
    }
    chain.Transfers.push_back(std::move(t));
  }
  if (bwtCount)
    chain.Bwt = bwtSum / static_cast<double>(bwtCount);
  if (fwtCount)
    chain.Fwt = fwtSum / static_cast<double>(fwtCount);
}

} // namespace

std::vector<MetricKey> mixtape::report::metricKeys(const Metrics &logs) {
  std::vector<MetricKey> keys;
  auto add = [&](MetricKey key) {
    if (llvm::none_of(keys, [&](const MetricKey &k) { return k.Name == key.Name; }))
      keys.push_back(std::move(key));
  };
  for (const Logged<rundir::EvalRecord> &l : logs.Evals)
    add(keyOf(l.Record));
  for (const Logged<rundir::TaskRecord> &l : logs.Tasks)
    add(keyOf(l.Record));
  return keys;
}

Forgetting mixtape::report::forgettingOf(const plan::Plan &plan, const Metrics &logs) {
  Forgetting out;
  out.Keys = metricKeys(logs);
  Index index = indexOf(logs);
  std::vector<StageRun> stages = stagesOf(plan);

  // (a) Each stage's end against the model it started from.
  for (const StageRun &stage : stages) {
    const plan::Node &end = plan.Nodes[stage.Nodes.back()];
    StageForgetting s;
    s.Model = end.Name;
    s.Stage = end.train()->Exec.Stage;
    s.StartModel = plan.Nodes[stage.StartModel].Name;
    s.Variants = end.Variants;
    for (const MetricKey &key : out.Keys) {
      std::optional<Value> last = index.finalOf(end.Name, key.Name);
      std::optional<std::pair<Value, bool>> start =
          startValue(index, plan, stage.Nodes.front(), stage.StartModel, key.Name);
      if (!last || !start)
        continue;
      StageChange c;
      c.Key = key.Name;
      c.Start = start->first.V;
      c.End = last->V;
      c.Change = c.End - c.Start;
      c.Better = goodness(key, c.Change) > 0;
      c.StartDuring = start->second;
      s.Partial |= last->Partial || start->first.Partial;
      s.Changes.push_back(std::move(c));
    }
    if (!s.Changes.empty())
      out.Stages.push_back(std::move(s));
  }

  // (b) The transfer matrix of each variant's chain: row 0 its first model, then the end of
  // each stage it runs through.
  for (const std::string &variant : variantsOf(plan)) {
    std::vector<std::vector<size_t>> groups; // the chain's train nodes, by stage
    for (size_t i = 0; i < plan.Nodes.size(); ++i) {
      const plan::TrainNode *t = plan.Nodes[i].train();
      if (!t || !llvm::is_contained(plan.Nodes[i].Variants, variant))
        continue;
      if (groups.empty() || t->Exec.StageStart)
        groups.emplace_back();
      groups.back().push_back(i);
    }
    if (groups.empty() || plan.Nodes[groups[0][0]].Inputs.empty())
      continue;
    ChainForgetting chain;
    chain.Variant = variant;
    size_t first = plan.Nodes[groups[0][0]].Inputs[0].Index;
    chain.Rows.push_back({plan.Nodes[first].Name, std::nullopt});
    for (const std::vector<size_t> &group : groups)
      chain.Rows.push_back({plan.Nodes[group.back()].Name, plan.Nodes[group.back()].train()->Exec.Stage});
    chain.R.resize(chain.Rows.size());
    std::vector<const MetricKey *> columns;
    for (const MetricKey &key : out.Keys) {
      std::vector<Value> values;
      if (auto start = startValue(index, plan, groups[0][0], first, key.Name))
        values.push_back(start->first);
      for (size_t row = 1; row < chain.Rows.size() && values.size() == row; ++row)
        if (std::optional<Value> v = index.finalOf(chain.Rows[row].Model, key.Name))
          values.push_back(*v);
      if (values.size() != chain.Rows.size())
        continue; // a column needs a value at every row
      columns.push_back(&key);
      chain.Columns.push_back(key.Name);
      for (size_t row = 0; row < values.size(); ++row) {
        chain.R[row].push_back(values[row].V);
        chain.Partial |= values[row].Partial;
      }
    }
    if (chain.Columns.empty())
      continue;
    fillTransfer(chain, columns);
    out.Chains.push_back(std::move(chain));
  }

  // (c) The stability gap of each stage's in-loop points.
  for (const StageRun &stage : stages) {
    const plan::Node &end = plan.Nodes[stage.Nodes.back()];
    StageGaps g;
    g.Model = end.Name;
    g.Stage = end.train()->Exec.Stage;
    for (const MetricKey &key : out.Keys) {
      std::map<uint64_t, Value> points;
      for (size_t node : stage.Nodes)
        if (const std::map<uint64_t, Value> *p = index.duringOf(plan.Nodes[node].Name, key.Name))
          for (const auto &[tokens, v] : *p)
            points[tokens] = v;
      auto start = points.find(0);
      if (start == points.end())
        continue;
      StabilityGap gap;
      gap.Key = key.Name;
      gap.Start = gap.Deepest = start->second.V;
      double worst = 0; // goodness of the deepest point against the start
      for (const auto &[tokens, v] : points) {
        g.Partial |= v.Partial;
        if (goodness(key, v.V - gap.Start) < worst) {
          worst = goodness(key, v.V - gap.Start);
          gap.Deepest = v.V;
          gap.AtStageTokens = tokens;
        }
      }
      gap.Drop = gap.Deepest - gap.Start;
      if (worst >= 0)
        gap.TokensToRecover = 0; // never below the start: nothing to recover
      else
        for (auto it = points.upper_bound(gap.AtStageTokens); it != points.end(); ++it)
          if (goodness(key, it->second.V - gap.Start) >= 0) {
            gap.TokensToRecover = it->first - gap.AtStageTokens;
            break;
          }
      g.Gaps.push_back(std::move(gap));
    }
    if (!g.Gaps.empty())
      out.Gaps.push_back(std::move(g));
  }
  return out;
}

//===--- Output ---------------------------------------------------------===//

namespace {

/// The shortest spelling that reads back exactly; JSON has no NaN or infinity: written as
/// metrics.jsonl writes them.
void number(llvm::json::OStream &out, double v) {
  if (std::isfinite(v))
    out.rawValue(formatNumber(v));
  else
    out.value(rundir::nonFiniteName(v));
}

void numberAttribute(llvm::json::OStream &out, llvm::StringRef key, double v) {
  out.attributeBegin(key);
  number(out, v);
  out.attributeEnd();
}

void optionalNumber(llvm::json::OStream &out, const std::optional<double> &v) {
  if (v)
    number(out, *v);
  else
    out.value(nullptr);
}

void optionalNumberAttribute(llvm::json::OStream &out, llvm::StringRef key, const std::optional<double> &v) {
  out.attributeBegin(key);
  optionalNumber(out, v);
  out.attributeEnd();
}

std::string fixed(double v) { return llvm::formatv("{0}", llvm::format("%.4f", v + 0.0)).str(); }
std::string signedFixed(double v) { return llvm::formatv("{0}", llvm::format("%+.4f", v + 0.0)).str(); }

} // namespace

std::string mixtape::report::forgettingJSON(const Forgetting &f) {
  std::string text;
  llvm::raw_string_ostream os(text);
  llvm::json::OStream out(os, 2);
  out.object([&] {
    out.attribute("format", "mixtape-forgetting");
    out.attribute("version", 1);
    out.attributeArray("keys", [&] {
      for (const MetricKey &k : f.Keys)
        out.object([&] {
          out.attribute("key", k.Name);
          out.attribute("eval", k.Eval);
          if (k.Task.empty()) {
            out.attribute("stream", k.Stream);
            out.attribute("split", plan::enumName(k.Split));
          } else
            out.attribute("task", k.Task);
          out.attribute("metric", k.Metric);
          out.attribute("higher_is_better", k.HigherIsBetter);
        });
    });
    out.attributeArray("stages", [&] {
      for (const StageForgetting &s : f.Stages)
        out.object([&] {
          out.attribute("model", s.Model);
          out.attribute("stage", s.Stage);
          out.attribute("start_model", s.StartModel);
          out.attributeArray("variants", [&] {
            for (const std::string &v : s.Variants)
              out.value(v);
          });
          out.attribute("partial", s.Partial);
          out.attributeArray("changes", [&] {
            for (const StageChange &c : s.Changes)
              out.object([&] {
                out.attribute("key", c.Key);
                out.attribute("start_point", c.StartDuring ? "during" : "final");
                numberAttribute(out, "start", c.Start);
                numberAttribute(out, "end", c.End);
                numberAttribute(out, "change", c.Change);
                out.attribute("better", c.Better);
              });
          });
        });
    });
    out.attributeArray("chains", [&] {
      for (const ChainForgetting &c : f.Chains)
        out.object([&] {
          out.attribute("variant", c.Variant);
          out.attribute("partial", c.Partial);
          out.attributeArray("rows", [&] {
            for (const ChainForgetting::Row &r : c.Rows)
              out.object([&] {
                out.attribute("model", r.Model);
                out.attribute("stage", r.Stage ? llvm::json::Value(*r.Stage) : llvm::json::Value(nullptr));
              });
          });
          out.attributeArray("columns", [&] {
            for (const std::string &k : c.Columns)
              out.value(k);
          });
          out.attributeArray("matrix", [&] {
            for (const std::vector<double> &row : c.R)
              out.array([&] {
                for (double v : row)
                  number(out, v);
              });
          });
          out.attributeArray("transfer", [&] {
            for (const Transfer &t : c.Transfers)
              out.object([&] {
                out.attribute("key", t.Key);
                out.attribute("learned_at", static_cast<int64_t>(t.LearnedAt));
                numberAttribute(out, "bwt", t.Bwt);
                numberAttribute(out, "fwt", t.Fwt);
              });
          });
          optionalNumberAttribute(out, "bwt", c.Bwt);
          optionalNumberAttribute(out, "fwt", c.Fwt);
        });
    });
    out.attributeArray("stability_gap", [&] {
      for (const StageGaps &g : f.Gaps)
        out.object([&] {
          out.attribute("model", g.Model);
          out.attribute("stage", g.Stage);
          out.attribute("partial", g.Partial);
          out.attributeArray("keys", [&] {
            for (const StabilityGap &gap : g.Gaps)
              out.object([&] {
                out.attribute("key", gap.Key);
                numberAttribute(out, "start", gap.Start);
                numberAttribute(out, "deepest", gap.Deepest);
                numberAttribute(out, "drop", gap.Drop);
                out.attribute("at_stage_tokens", static_cast<int64_t>(gap.AtStageTokens));
                out.attribute("tokens_to_recover", gap.TokensToRecover
                                                       ? llvm::json::Value(static_cast<int64_t>(*gap.TokensToRecover))
                                                       : llvm::json::Value(nullptr));
              });
          });
        });
    });
  });
  os << "\n";
  return text;
}

void mixtape::report::printForgetting(const Forgetting &f, llvm::raw_ostream &os) {
  if (f.Stages.empty() && f.Chains.empty() && f.Gaps.empty())
    return;
  os << "\nforgetting: each stage's end against the model it started from\n";
  for (const StageForgetting &s : f.Stages) {
    os << "  " << s.Model << " (stage " << s.Stage << ", from " << s.StartModel << ")"
       << (s.Partial ? " (partial)" : "") << "\n";
    for (const StageChange &c : s.Changes)
      os << llvm::formatv("    {0,-32} {1} -> {2}  {3}  {4}\n", c.Key, fixed(c.Start), fixed(c.End),
                          signedFixed(c.Change), c.Change == 0 ? "same" : c.Better ? "better" : "worse");
  }
  if (!f.Chains.empty())
    os << "\ntransfer along each variant's chain (positive is better)\n";
  for (const ChainForgetting &c : f.Chains) {
    auto mean = [](const std::optional<double> &v) { return v ? signedFixed(*v) : std::string("-"); };
    os << "  " << c.Variant << (c.Partial ? " (partial)" : "") << ": BWT " << mean(c.Bwt) << ", FWT "
       << mean(c.Fwt) << "\n";
    for (const Transfer &t : c.Transfers)
      os << llvm::formatv("    {0,-32} learned at {1}  BWT {2}  FWT {3}\n", t.Key, c.Rows[t.LearnedAt].Model,
                          signedFixed(t.Bwt), signedFixed(t.Fwt));
  }
  if (!f.Gaps.empty())
    os << "\nstability gap of in-loop evals (deepest drop from the stage's start)\n";
  for (const StageGaps &g : f.Gaps) {
    os << "  " << g.Model << " (stage " << g.Stage << ")" << (g.Partial ? " (partial)" : "") << "\n";
    for (const StabilityGap &gap : g.Gaps) {
      if (gap.Drop == 0) {
        os << llvm::formatv("    {0,-32} start {1}  never below it\n", gap.Key, fixed(gap.Start));
        continue;
      }
      os << llvm::formatv("    {0,-32} start {1}  deepest {2} ({3}) at {4}  {5}\n", gap.Key,
                          fixed(gap.Start), fixed(gap.Deepest), signedFixed(gap.Drop),
                          formatTokens(static_cast<double>(gap.AtStageTokens)),
                          gap.TokensToRecover ? "recovered after " + formatTokens(static_cast<double>(*gap.TokensToRecover))
                                              : std::string("not recovered"));
    }
  }
}
