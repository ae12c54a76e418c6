//===- LowerModelUsers.cpp - merges, ablations and evals -------------------===//
#include "Lowering.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

using namespace mixtape;
using namespace mixtape::lower;

void Lowering::lowerMerges() {
  mergeNodes.assign(recipe.merges.size(), SIZE_MAX);
  // Merges may use merges: place them once their inputs are placed (sema ruled out cycles).
  bool progress = true;
  while (progress) {
    progress = false;
    for (size_t i = 0; i < recipe.merges.size(); ++i) {
      if (mergeNodes[i] != SIZE_MAX)
        continue;
      const MergeSpec &m = recipe.merges[i];
      bool ready = llvm::all_of(
          m.models, [&](const ModelRef &r) { return r.kind != ModelRef::Merge || mergeNodes[r.index] != SIZE_MAX; });
      if (!ready)
        continue;
      using plan::MergeMethod;
      plan::MergeNode merge;
      plan::MergeSettings &s = merge.Settings;
      s.Method = m.method;
      s.Normalize = m.normalize;
      s.Weights = m.weights;
      bool dare = m.method == MergeMethod::DareLinear || m.method == MergeMethod::DareTies;
      if (m.method == MergeMethod::Ties || dare)
        s.Density = m.density;
      if (m.method == MergeMethod::Slerp)
        s.T = m.t;
      if (dare)
        s.Seed = m.seed;
      plan::Node n = plan::makeNode(m.name, std::move(merge));
      for (const ModelRef &r : m.models)
        n.Inputs.push_back({finalNode(r)});
      if (m.base) {
        n.Inputs.push_back({finalNode(*m.base)});
        n.merge()->Settings.BaseInput = n.Inputs.size() - 1;
      }
      mergeNodes[i] = addNode(std::move(n), {});
      progress = true;
    }
  }
}

namespace {

/// One unit of an ablation, lowered to a stream of its own.
struct LoweredUnit {
  std::string stream; ///< "code%unit0of4", "code%source=filter"
  std::string node;   ///< its train node: "<ablation>/unit0", "<ablation>/source=filter"
  std::string label;  ///< in combination names and `combine` lists: "0", "filter"
};

/// Most units a `by` column may make: each trains a model, and subsets multiply.
constexpr size_t kMaxColumnUnits = 64;

/// The combinations to evaluate, as indices into `units`; a listed unit that is not one
/// of them is reported.
std::vector<std::vector<size_t>> combinations(Lowering &l, const AblationSpec &a,
                                              const std::vector<LoweredUnit> &units) {
  std::vector<std::vector<size_t>> out;
  size_t k = units.size();
  if (a.maxSubset) {
    // All subsets of 1..max units, smallest first, each in lexicographic order.
    for (size_t size = 1; size <= std::min<size_t>(a.maxSubset, k); ++size) {
      std::vector<size_t> pick(size);
      for (size_t i = 0; i < size; ++i)
        pick[i] = i;
      while (true) {
        out.push_back(pick);
        int64_t i = static_cast<int64_t>(size) - 1;
        while (i >= 0 && pick[i] == k - size + static_cast<size_t>(i))
          --i;
        if (i < 0)
          break;
        ++pick[i];
        for (size_t j = static_cast<size_t>(i) + 1; j < size; ++j)
          pick[j] = pick[j - 1] + 1;
      }
    }
    return out;
  }
  std::vector<std::string> labels;
  for (const LoweredUnit &u : units)
    labels.push_back(u.label);
  for (const auto &listed : a.combinations) {
    std::vector<size_t> pick;
    for (const std::string &u : listed) {
      auto at = llvm::find(labels, u);
      if (at == labels.end()) {
        l.error(DiagCode::DataError, "ablation '" + a.name + "': unit '" + u + "' is not one of " +
                                         (a.by.empty() ? "0.." + std::to_string(k - 1) : llvm::join(labels, ", ")));
        continue;
      }
      pick.push_back(static_cast<size_t>(at - labels.begin()));
    }
    out.push_back(pick);
  }
  return out;
}

/// `split = K`: K equal random units, seeded by the recipe.
std::vector<LoweredUnit> splitUnits(Lowering &l, const AblationSpec &a) {
  std::vector<LoweredUnit> units;
  for (uint64_t k = 0; k < a.split; ++k) {
    LoweredUnit u{llvm::formatv("{0}%unit{1}of{2}", a.stream, k, a.split).str(),
                  llvm::formatv("{0}/unit{1}", a.name, k).str(), std::to_string(k)};
    plan::Stream s = l.result.Streams.at(a.stream);
    s.Unit = plan::AblationUnit{a.stream, a.split, k, l.recipe.seed, std::nullopt, std::nullopt};
    l.result.Streams[u.stream] = std::move(s);
    l.fingerprints[u.stream] = l.fingerprints[a.stream];
    l.identities[u.stream] =
        l.identities[a.stream] + llvm::formatv("#unit{0}of{1}seed{2}", k, a.split, l.recipe.seed).str();
    l.stats[u.stream] = std::nullopt;
    units.push_back(std::move(u));
  }
  return units;
}

/// `by = column`: one unit per value of the column among the stream's training documents
/// (documents without one are a unit of their own). Needs the data: without it the plan
/// is provisional and the ablation has no nodes yet.
std::vector<LoweredUnit> columnUnits(Lowering &l, const AblationSpec &a) {
  llvm::Expected<std::optional<plan::ColumnGroups>> grouped = l.env.groupBy(l.result, a.stream, a.by);
  if (!grouped) {
    l.error(DiagCode::DataError, "ablation '" + a.name + "': " + llvm::toString(grouped.takeError()));
    return {};
  }
  if (!*grouped) {
    l.provisional("ablation '" + a.name + "': its units are the values of '" + a.by + "' in stream '" + a.stream +
                  "', whose data is absent");
    return {};
  }
  const std::vector<plan::ColumnGroup> &groups = (*grouped)->Groups;
  if (groups.empty()) {
    Diagnostic &d = l.diags.report(DiagCode::UnknownColumn, a.byRange,
                                   "stream '" + a.stream + "' has no metadata column '" + a.by + "'");
    if (!(*grouped)->Columns.empty())
      DiagnosticEngine::suggest(d, a.by, (*grouped)->Columns, a.byRange);
    return {};
  }
  if (groups.size() > kMaxColumnUnits) {
    l.diags.report(DiagCode::UnitCount, a.byRange,
                   llvm::formatv("'{0}' has {1} distinct values in stream '{2}': more than {3} units to train; "
                                 "use split = K for K random units",
                                 a.by, groups.size(), a.stream, kMaxColumnUnits)
                       .str());
    return {};
  }
  if (groups.size() == 1) {
    l.diags.report(DiagCode::UnitCount, a.byRange,
                   "every training document of stream '" + a.stream + "' has " + a.by + " = '" +
                       groups[0].Value.label() + "': one unit leaves nothing to ablate");
    return {};
  }
  std::vector<LoweredUnit> units;
  for (const plan::ColumnGroup &g : groups) {
    std::string label = g.Value.label();
    LoweredUnit u{a.stream + "%" + a.by + "=" + label, a.name + "/" + a.by + "=" + label, label};
    plan::Stream s = l.result.Streams.at(a.stream);
    s.Unit = plan::AblationUnit{a.stream, std::nullopt, std::nullopt, std::nullopt, a.by, g.Value};
    s.TrainTokens = g.TrainTokens;
    s.TrainDocuments = g.TrainDocuments;
    s.ValTokens = g.ValTokens;
    s.ValDocuments = g.ValDocuments;
    l.result.Streams[u.stream] = std::move(s);
    l.fingerprints[u.stream] = l.fingerprints[a.stream];
    // Content-addressed: the parent's identity, the column and the value; no name, no seed.
    l.identities[u.stream] =
        l.identities[a.stream] + "#by:" + llvm::formatv("{0}", llvm::json::Value(a.by)).str() + "=" + label;
    plan::StreamStats st = l.stats[a.stream].value_or(plan::StreamStats());
    st.TrainDocuments = g.TrainDocuments;
    st.TrainTokens = g.TrainTokens;
    st.ValDocuments = g.ValDocuments;
    st.ValTokens = g.ValTokens;
    l.stats[u.stream] = st;
    units.push_back(std::move(u));
  }
  return units;
}

} // namespace

void Lowering::lowerAblations() {
  for (const AblationSpec &a : recipe.ablations) {
    ablationNodes.emplace_back();
    std::vector<LoweredUnit> units = a.by.empty() ? splitUnits(*this, a) : columnUnits(*this, a);
    if (units.empty())
      continue;
    size_t from = finalNode(a.from);
    Cursors start;
    for (const StreamSpec &st : recipe.streams)
      start[st.name] = 0;
    if (a.from.kind == ModelRef::Stage) {
      const StageVariant &v = recipe.stages[a.from.index].variants[a.from.variant];
      start = cursorsAt(a.from.index, a.from.variant, v.steps);
    }
    std::vector<size_t> unitNodes;
    for (const LoweredUnit &unit : units) {
      plan::TrainNode t;
      plan::TrainSettings &s = t.Settings;
      s.Mixture = a.mixture;
      for (std::string &stream : s.Mixture.Streams)
        if (stream == "unit")
          stream = unit.stream;
      uint64_t steps = a.batchSequences ? a.tokens / (a.batchSequences * a.seqLen) : 0;
      s.Steps = {0, steps};
      s.SeqLen = a.seqLen;
      s.BatchSequences = a.batchSequences;
      s.RopeTheta = modelRopeTheta;
      s.Attention = recipe.model.attention;
      s.LR = a.lr;
      s.LR.Horizon = a.tokens;
      s.Optimizer = planOptimizer(OptimizerSpec());
      s.GradClip = defaults::GradClip;
      s.OnNonFinite = plan::NonFiniteAction::Stop;
      s.OptimizerState = plan::OptimizerStart::Reset;
      plan::Blender blender(s.Mixture, a.seqLen);
      blender.skipTo(steps * a.batchSequences);
      for (size_t i = 0; i < s.Mixture.Streams.size(); ++i) {
        const std::string &st = s.Mixture.Streams[i];
        uint64_t cursor = start.count(st) ? start[st] : 0, tokens = blender.counts()[i] * a.seqLen;
        s.Data.Cursors[st] = cursor;
        s.Data.Samples[st] = blender.counts()[i];
        t.Ledger.TokensByStream[st] = tokens;
        t.Ledger.Tokens += tokens;
        if (stats[st] && stats[st]->TrainTokens)
          t.Ledger.EpochsAtEnd[st] = static_cast<double>(cursor + tokens) / static_cast<double>(stats[st]->TrainTokens);
      }
      setFlops(t.Ledger, a.seqLen);
      t.Exec.MicroBatch = a.batchSequences;
      t.Exec.CheckpointKeep = defaults::CheckpointKeep;
      t.Exec.Stage = a.name;
      t.Exec.StageStart = true;
      t.Exec.ChainTokens = tokensThrough(from);
      std::vector<std::string> streams = t.Settings.Mixture.Streams;
      plan::Node n = plan::makeNode(unit.node, std::move(t));
      n.Inputs = {plan::NodeRef{from}};
      unitNodes.push_back(addNode(std::move(n), streams));
    }
    // Cost grows with K, not with the number of mixtures evaluated (Na et al. 2024).
    plan::AblationLedger ledger{a.name, 0, 0, 0};
    for (size_t node : unitNodes)
      ledger.UnitTokens += result.Nodes[node].train()->Ledger.Tokens;
    for (const std::vector<size_t> &combo : combinations(*this, a, units)) {
      plan::MergeNode merge;
      merge.Settings.Method = plan::MergeMethod::Linear;
      merge.Settings.Normalize = true;
      std::vector<std::string> parts;
      std::vector<plan::NodeRef> inputs;
      for (size_t k : combo) {
        ledger.DirectTokens += result.Nodes[unitNodes[k]].train()->Ledger.Tokens;
        inputs.push_back({unitNodes[k]});
        parts.push_back(units[k].label);
      }
      plan::Node n = plan::makeNode(a.name + "{" + llvm::join(parts, ",") + "}", std::move(merge));
      n.Inputs = std::move(inputs);
      ablationNodes.back().push_back(addNode(std::move(n), {}));
      ++ledger.Combinations;
    }
    result.Ablations.push_back(std::move(ledger));
  }
}

void Lowering::lowerEvals() {
  for (const EvalSpec &e : recipe.evals) {
    std::vector<std::string> used;
    for (const plan::EvalSplit &split : e.splits)
      used.push_back(split.Stream);
    std::vector<size_t> models;
    for (const ModelRef &r : e.on) {
      if (r.kind == ModelRef::Ablation)
        llvm::append_range(models, ablationNodes[r.index]);
      else
        models.push_back(finalNode(r));
    }
    for (size_t model : models) {
      plan::EvalNode eval;
      eval.Settings.Splits = e.splits;
      eval.Settings.MaxTokens = e.maxTokens;
      eval.Exec.ChainTokens = tokensThrough(model);
      plan::Node n = plan::makeNode(e.name + "@" + result.Nodes[model].Name, std::move(eval));
      n.Inputs = {plan::NodeRef{model}};
      addNode(std::move(n), used);
    }
    if (!e.duringEvery)
      continue;
    // In-loop points: step 0 of each stage, then every N tokens; execution-only.
    for (plan::Node &n : result.Nodes) {
      plan::TrainNode *t = n.train();
      if (!t)
        continue;
      const uint64_t perStep = plan::tokensPerStep(t->Settings);
      plan::DuringEval during{e.splits, e.maxTokens, {}};
      for (uint64_t tokens = 0; tokens < t->Settings.Steps.End * perStep; tokens += e.duringEvery)
        if (tokens >= t->Settings.Steps.Begin * perStep && (tokens > 0 || t->Exec.StageStart))
          during.StageTokens.push_back(tokens);
      t->Exec.EvalDuring[e.name] = std::move(during);
    }
  }
}
