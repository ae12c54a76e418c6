//===- LowerModelUsers.cpp - merges, ablations and evals -------------------===//
#include "Lowering.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

using namespace mixtape;
using namespace mixtape::lower;

void Lowering::lowerMerges() {
  MergeNodes.assign(Recipe.Merges.size(), SIZE_MAX);
  // Merges may use merges: place them once their inputs are placed (sema ruled out cycles).
  bool progress = true;
  while (progress) {
    progress = false;
    for (size_t i = 0; i < Recipe.Merges.size(); ++i) {
      if (MergeNodes[i] != SIZE_MAX)
        continue;
      const MergeSpec &m = Recipe.Merges[i];
      bool ready = llvm::all_of(
          m.Models, [&](const ModelRef &r) { return r.Kind != ModelRef::Merge || MergeNodes[r.Index] != SIZE_MAX; });
      if (!ready)
        continue;
      using plan::MergeMethod;
      plan::MergeNode merge;
      plan::MergeSettings &s = merge.Settings;
      s.Method = m.Method;
      s.Normalize = m.Normalize.value_or(plan::normalizesByDefault(m.Method));
      s.Weights = m.Weights;
      bool dare = m.Method == MergeMethod::DareLinear || m.Method == MergeMethod::DareTies;
      if (m.Method == MergeMethod::Ties || dare)
        s.Density = m.Density;
      if (m.Method == MergeMethod::Slerp)
        s.T = m.T;
      if (dare)
        s.Seed = m.Seed;
      plan::Node n = plan::makeNode(m.Name, std::move(merge));
      std::vector<size_t> inputs;
      for (const ModelRef &r : m.Models)
        inputs.push_back(finalNode(r));
      if (m.Base)
        inputs.push_back(finalNode(*m.Base));
      checkMergeArchitectures(m, inputs);
      for (size_t k = 0; k < inputs.size(); ++k) // "<stage>.ema": the node's moving average
        n.Inputs.push_back({inputs[k], k < m.Models.size() ? m.Models[k].Average : m.Base->Average});
      if (m.Base)
        n.merge()->Settings.BaseInput = n.Inputs.size() - 1;
      MergeNodes[i] = addNode(std::move(n), {});
      progress = true;
    }
  }
}

/// The first size in which two architectures differ, as "d_model 64 vs 32"; empty when
/// their tensors have the same names and shapes.
static std::string architectureDifference(const plan::Architecture &a, const plan::Architecture &b) {
  if (a.Family != b.Family)
    return ("family " + plan::enumName(a.Family) + " vs " + plan::enumName(b.Family)).str();
  const std::pair<const char *, std::pair<uint64_t, uint64_t>> sizes[] = {
      {"vocab", {a.Vocab, b.Vocab}}, {"layers", {a.Layers, b.Layers}},   {"d_model", {a.DModel, b.DModel}},
      {"heads", {a.Heads, b.Heads}}, {"kv_heads", {a.KVHeads, b.KVHeads}}, {"ffn", {a.Ffn, b.Ffn}}};
  for (const auto &[key, values] : sizes)
    if (values.first != values.second)
      return llvm::formatv("{0} {1} vs {2}", key, values.first, values.second).str();
  if (a.Family == plan::ModelFamily::GPT2 && a.MaxPositions != b.MaxPositions)
    return llvm::formatv("max_positions {0} vs {1}", a.MaxPositions, b.MaxPositions).str();
  if (a.RotaryPct != b.RotaryPct)
    return llvm::formatv("rotary_pct {0} vs {1}", a.RotaryPct, b.RotaryPct).str();
  if (a.TieEmbeddings != b.TieEmbeddings)
    return llvm::formatv("tie_embeddings {0} vs {1}", a.TieEmbeddings, b.TieEmbeddings).str();
  return "";
}

void Lowering::checkMergeArchitectures(const MergeSpec &merge, const std::vector<size_t> &inputs) {
  std::vector<const ModelRef *> refs;
  for (const ModelRef &r : merge.Models)
    refs.push_back(&r);
  if (merge.Base)
    refs.push_back(&*merge.Base);
  auto isCheckpoint = [](const ModelRef *r) { return !r->HfPath.empty(); };
  // Against the recipe's own models; a merge of checkpoints only, against the first of them.
  auto reference = llvm::find_if(refs, [&](const ModelRef *r) { return !isCheckpoint(r); });
  if (reference == refs.end())
    reference = refs.begin();
  const size_t referenceNode = inputs[static_cast<size_t>(reference - refs.begin())];
  for (size_t i = 0; i < refs.size(); ++i) {
    if (inputs[i] == referenceNode)
      continue;
    if (!isCheckpoint(refs[i])) {
      // Weights merge row by row: a vocabulary extension on one side only has nothing to meet.
      const uint64_t vocab = architectureOf(inputs[i]).Vocab, referenceVocab = architectureOf(referenceNode).Vocab;
      if (vocab != referenceVocab)
        Diags.report(DiagCode::TokenizerMismatch, refs[i]->Range,
                     llvm::formatv("merge '{0}': '{1}' has {2} vocabulary rows but '{3}' has {4} (a vocabulary "
                                   "extension)",
                                   merge.Name, Result.Nodes[referenceNode].Name, referenceVocab,
                                   Result.Nodes[inputs[i]].Name, vocab)
                         .str());
      continue;
    }
    const std::string ref = "hf:" + refs[i]->HfPath;
    const std::optional<plan::CheckpointInfo> *info = checkpoint(ref);
    if (!info || !*info)
      continue; // unreadable (reported) or absent (provisional)
    if (!(*info)->Family) {
      Diags.report(DiagCode::DataError, refs[i]->Range,
                   "merge '" + merge.Name + "': the checkpoint '" + ref + "' has model_type '" + (*info)->ModelType +
                       "' (" + (*info)->ConfigPath + "), which Mixtape does not build");
      continue;
    }
    std::string difference = architectureDifference(architectureOf(inputs[i]), architectureOf(referenceNode));
    if (!difference.empty())
      Diags.report(DiagCode::DataError, refs[i]->Range,
                   llvm::formatv("merge '{0}': the checkpoint '{1}' and '{2}' differ in {3}: a merge needs tensors "
                                 "of one shape ({4})",
                                 merge.Name, ref, Result.Nodes[referenceNode].Name, difference, (*info)->ConfigPath)
                       .str());
  }
}

namespace {

/// One unit of an ablation, lowered to a stream of its own.
struct LoweredUnit {
  std::string Stream; ///< "code%unit0of4", "code%source=filter"
  std::string Node;   ///< its train node: "<ablation>/unit0", "<ablation>/source=filter"
  std::string Label;  ///< in combination names and `combine` lists: "0", "filter"
};

/// Most units a `by` column may make: each trains a model, and subsets multiply.
constexpr size_t kMaxColumnUnits = 64;

/// The combinations to evaluate, as indices into `units`; a listed unit that is not one
/// of them is reported.
std::vector<std::vector<size_t>> combinations(Lowering &l, const AblationSpec &a,
                                              const std::vector<LoweredUnit> &units) {
  std::vector<std::vector<size_t>> out;
  size_t k = units.size();
  if (a.MaxSubset) {
    // All subsets of 1..max units, smallest first, each in lexicographic order.
    for (size_t size = 1; size <= std::min<size_t>(a.MaxSubset, k); ++size) {
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
    labels.push_back(u.Label);
  for (const auto &listed : a.Combinations) {
    std::vector<size_t> pick;
    for (const std::string &u : listed) {
      auto at = llvm::find(labels, u);
      if (at == labels.end()) {
        l.error(DiagCode::DataError, "ablation '" + a.Name + "': unit '" + u + "' is not one of " +
                                         (a.By.empty() ? "0.." + std::to_string(k - 1) : llvm::join(labels, ", ")));
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
  for (uint64_t k = 0; k < a.Split; ++k) {
    LoweredUnit u{llvm::formatv("{0}%unit{1}of{2}", a.Stream, k, a.Split).str(),
                  llvm::formatv("{0}/unit{1}", a.Name, k).str(), std::to_string(k)};
    plan::Stream s = l.Result.Streams.at(a.Stream);
    s.Unit = plan::AblationUnit{a.Stream, a.Split, k, l.Recipe.Seed, std::nullopt, std::nullopt};
    l.Result.Streams[u.Stream] = std::move(s);
    l.Fingerprints[u.Stream] = l.Fingerprints[a.Stream];
    l.Identities[u.Stream] =
        l.Identities[a.Stream] + llvm::formatv("#unit{0}of{1}seed{2}", k, a.Split, l.Recipe.Seed).str();
    l.Stats[u.Stream] = std::nullopt;
    units.push_back(std::move(u));
  }
  return units;
}

/// `by = column`: one unit per value of the column among the stream's training documents
/// (documents without one are a unit of their own). Needs the data: without it the plan
/// is provisional and the ablation has no nodes yet.
std::vector<LoweredUnit> columnUnits(Lowering &l, const AblationSpec &a) {
  llvm::Expected<std::optional<plan::ColumnGroups>> grouped = l.Env.groupBy(l.Result, a.Stream, a.By);
  if (!grouped) {
    l.error(DiagCode::DataError, "ablation '" + a.Name + "': " + llvm::toString(grouped.takeError()));
    return {};
  }
  if (!*grouped) {
    l.provisional("ablation '" + a.Name + "': its units are the values of '" + a.By + "' in stream '" + a.Stream +
                  "', whose data is absent");
    return {};
  }
  const std::vector<plan::ColumnGroup> &groups = (*grouped)->Groups;
  if (groups.empty()) {
    Diagnostic &d = l.Diags.report(DiagCode::UnknownColumn, a.ByRange,
                                   "stream '" + a.Stream + "' has no metadata column '" + a.By + "'");
    if (!(*grouped)->Columns.empty())
      DiagnosticEngine::suggest(d, a.By, (*grouped)->Columns, a.ByRange);
    return {};
  }
  if (groups.size() > kMaxColumnUnits) {
    l.Diags.report(DiagCode::UnitCount, a.ByRange,
                   llvm::formatv("'{0}' has {1} distinct values in stream '{2}': more than {3} units to train; "
                                 "use split = K for K random units",
                                 a.By, groups.size(), a.Stream, kMaxColumnUnits)
                       .str());
    return {};
  }
  if (groups.size() == 1) {
    l.Diags.report(DiagCode::UnitCount, a.ByRange,
                   "every training document of stream '" + a.Stream + "' has " + a.By + " = '" +
                       groups[0].Value.label() + "': one unit leaves nothing to ablate");
    return {};
  }
  std::vector<LoweredUnit> units;
  for (const plan::ColumnGroup &g : groups) {
    std::string label = g.Value.label();
    LoweredUnit u{a.Stream + "%" + a.By + "=" + label, a.Name + "/" + a.By + "=" + label, label};
    plan::Stream s = l.Result.Streams.at(a.Stream);
    s.Unit = plan::AblationUnit{a.Stream, std::nullopt, std::nullopt, std::nullopt, a.By, g.Value};
    s.TrainTokens = g.TrainTokens;
    s.TrainDocuments = g.TrainDocuments;
    s.ValTokens = g.ValTokens;
    s.ValDocuments = g.ValDocuments;
    l.Result.Streams[u.Stream] = std::move(s);
    l.Fingerprints[u.Stream] = l.Fingerprints[a.Stream];
    // Content-addressed: the parent's identity, the column and the value; no name, no seed.
    l.Identities[u.Stream] =
        l.Identities[a.Stream] + "#by:" + llvm::formatv("{0}", llvm::json::Value(a.By)).str() + "=" + label;
    plan::StreamStats st = l.Stats[a.Stream].value_or(plan::StreamStats());
    st.TrainDocuments = g.TrainDocuments;
    st.TrainTokens = g.TrainTokens;
    st.ValDocuments = g.ValDocuments;
    st.ValTokens = g.ValTokens;
    l.Stats[u.Stream] = st;
    units.push_back(std::move(u));
  }
  return units;
}

} // namespace

void Lowering::lowerAblations() {
  for (const AblationSpec &a : Recipe.Ablations) {
    AblationNodes.emplace_back();
    std::vector<LoweredUnit> units = a.By.empty() ? splitUnits(*this, a) : columnUnits(*this, a);
    if (units.empty())
      continue;
    size_t from = finalNode(a.From);
    Cursors start;
    for (const StreamSpec &st : Recipe.Streams)
      start[st.Name] = 0;
    if (a.From.Kind == ModelRef::Stage) {
      const StageVariant &v = Recipe.Stages[a.From.Index].Variants[a.From.Variant];
      start = cursorsAt(a.From.Index, a.From.Variant, v.Steps);
    }
    std::vector<size_t> unitNodes;
    for (const LoweredUnit &unit : units) {
      plan::TrainNode t;
      plan::TrainSettings &s = t.Settings;
      s.Mixture = a.Mixture;
      for (std::string &stream : s.Mixture.Streams)
        if (stream == "unit")
          stream = unit.Stream;
      uint64_t steps = a.BatchSequences ? a.Tokens / (a.BatchSequences * a.SeqLen) : 0;
      s.Steps = {0, steps};
      s.SeqLen = a.SeqLen;
      s.BatchSequences = a.BatchSequences;
      s.RopeTheta = ModelRopeTheta;
      s.Attention = Recipe.Model.Attention;
      s.LR = a.LR;
      s.LR.Horizon = a.Tokens;
      s.Optimizer = planOptimizer(OptimizerSpec());
      s.GradClip = defaults::GradClip;
      s.OnNonFinite = plan::NonFiniteAction::Stop;
      s.OptimizerState = plan::OptimizerStart::Reset;
      plan::Blender blender(s.Mixture, a.SeqLen);
      blender.skipTo(steps * a.BatchSequences);
      for (size_t i = 0; i < s.Mixture.Streams.size(); ++i) {
        const std::string &st = s.Mixture.Streams[i];
        uint64_t cursor = start.count(st) ? start[st] : 0, tokens = blender.counts()[i] * a.SeqLen;
        s.Data.Cursors[st] = cursor;
        s.Data.Samples[st] = blender.counts()[i];
        t.Ledger.TokensByStream[st] = tokens;
        t.Ledger.Tokens += tokens;
        if (Stats[st] && Stats[st]->TrainTokens)
          t.Ledger.EpochsAtEnd[st] = static_cast<double>(cursor + tokens) / static_cast<double>(Stats[st]->TrainTokens);
      }
      setFlops(t.Ledger, a.SeqLen, architectureOf(from));
      t.Exec.MicroBatch = a.BatchSequences;
      t.Exec.CheckpointKeep = defaults::CheckpointKeep;
      t.Exec.Stage = a.Name;
      t.Exec.StageStart = true;
      t.Exec.ChainTokens = tokensThrough(from);
      std::vector<std::string> streams = t.Settings.Mixture.Streams;
      plan::Node n = plan::makeNode(unit.Node, std::move(t));
      n.Inputs = {plan::NodeRef{from, a.From.Average}};
      unitNodes.push_back(addNode(std::move(n), streams));
    }
    // Cost grows with K, not with the number of mixtures evaluated (Na et al. 2024).
    plan::AblationLedger ledger{a.Name, 0, 0, 0};
    for (size_t node : unitNodes)
      ledger.UnitTokens += Result.Nodes[node].train()->Ledger.Tokens;
    for (const std::vector<size_t> &combo : combinations(*this, a, units)) {
      plan::MergeNode merge;
      merge.Settings.Method = plan::MergeMethod::Linear;
      merge.Settings.Normalize = true;
      std::vector<std::string> parts;
      std::vector<plan::NodeRef> inputs;
      for (size_t k : combo) {
        ledger.DirectTokens += Result.Nodes[unitNodes[k]].train()->Ledger.Tokens;
        inputs.push_back({unitNodes[k]});
        parts.push_back(units[k].Label);
      }
      plan::Node n = plan::makeNode(a.Name + "{" + llvm::join(parts, ",") + "}", std::move(merge));
      n.Inputs = std::move(inputs);
      AblationNodes.back().push_back(addNode(std::move(n), {}));
      ++ledger.Combinations;
    }
    Result.Ablations.push_back(std::move(ledger));
  }
}

const plan::Task *Lowering::lowerTask(const std::string &name) {
  if (auto it = Tasks.find(name); it != Tasks.end())
    return it->second ? &*it->second : nullptr;
  std::optional<plan::Task> &lowered = Tasks[name];
  plan::Task task = Recipe.Tasks.at(name);
  llvm::Expected<std::optional<plan::TaskStats>> stats = Env.taskStats(Result, task);
  if (!stats) {
    error(DiagCode::DataError, "task '" + name + "': " + llvm::toString(stats.takeError()));
    return nullptr;
  }
  if (*stats) {
    task.Fingerprint = (*stats)->Fingerprint;
    task.Items = (*stats)->Items;
    task.Tokens = (*stats)->Tokens;
  } else {
    provisional("task '" + name + "': no item file at '" + recipePath(task.Path) + "'");
  }
  lowered = std::move(task);
  return &*lowered;
}

bool Lowering::readsStream(size_t model, llvm::StringRef stream) const {
  const StreamSpec *spec = Recipe.stream(stream);
  const StreamSpec *root = spec ? Recipe.stream(spec->Root) : nullptr;
  const std::string tokenizer =
      normalTokenizer(root && !root->Tokenizer.empty() ? root->Tokenizer : Recipe.Model.Tokenizer);
  // The model's tokenizer, or one it extends (an old id keeps its row).
  for (const plan::Node *n = &Result.Nodes[model];; n = &Result.Nodes[n->Inputs.front().Index]) {
    if (const plan::InitNode *init = n->init())
      return normalTokenizer(init->Settings.Model.Tokenizer) == tokenizer;
    if (const plan::TrainNode *t = n->train(); t && t->Settings.VocabExtension &&
                                               normalTokenizer(t->Settings.VocabExtension->Tokenizer) == tokenizer)
      return true;
  }
}

void Lowering::lowerEvals() {
  for (const EvalSpec &e : Recipe.Evals) {
    std::vector<std::string> used;
    for (const plan::EvalSplit &split : e.Splits)
      used.push_back(split.Stream);
    // Each task once, with what its files hold; a task without its file makes the plan
    // provisional, and so every node that scores it.
    std::optional<plan::TaskTable> tasks;
    bool tasksProvisional = false;
    for (const std::string &name : e.Tasks)
      if (const plan::Task *t = lowerTask(name)) {
        if (!tasks)
          tasks.emplace();
        (*tasks)[name] = *t;
        tasksProvisional |= !t->Fingerprint;
      }
    std::vector<plan::NodeRef> models;
    for (const ModelRef &r : e.On) {
      if (r.Kind == ModelRef::Ablation)
        for (size_t node : AblationNodes[r.Index])
          models.push_back({node});
      else
        models.push_back({finalNode(r), r.Average});
    }
    for (const plan::NodeRef &model : models) {
      for (const plan::EvalSplit &split : e.Splits)
        if (!readsStream(model.Index, split.Stream))
          error(DiagCode::TokenizerMismatch,
                llvm::formatv("eval '{0}': model '{1}' has tokenizer '{2}', but stream '{3}' holds ids of another "
                              "that it does not extend",
                              e.Name, Result.Nodes[model.Index].Name, architectureOf(model.Index).Tokenizer,
                              split.Stream)
                    .str());
      plan::EvalNode eval;
      eval.Settings.Splits = e.Splits;
      eval.Settings.MaxTokens = e.MaxTokens;
      eval.Settings.Tasks = tasks;
      eval.Exec.ChainTokens = tokensThrough(model.Index);
      plan::Node n = plan::makeNode(e.Name + "@" + Result.Nodes[model.Index].Name +
                                        (model.Average ? plan::kAverageSuffix.str() : ""),
                                    std::move(eval));
      n.Inputs = {model};
      n.Provisional = tasksProvisional;
      addNode(std::move(n), used);
    }
    if (!e.DuringEvery)
      continue;
    // In-loop points: step 0 of each stage, then every N tokens; execution-only.
    for (plan::Node &n : Result.Nodes) {
      plan::TrainNode *t = n.train();
      if (!t)
        continue;
      const uint64_t perStep = plan::tokensPerStep(t->Settings);
      // A node before a vocabulary extension skips the splits of the new tokenizer.
      plan::DuringEval during{{}, e.MaxTokens, tasks, {}};
      for (const plan::EvalSplit &split : e.Splits)
        if (readsStream(static_cast<size_t>(&n - Result.Nodes.data()), split.Stream))
          during.Splits.push_back(split);
      for (uint64_t tokens = 0; tokens < t->Settings.Steps.End * perStep; tokens += e.DuringEvery)
        if (tokens >= t->Settings.Steps.Begin * perStep && (tokens > 0 || t->Exec.StageStart))
          during.StageTokens.push_back(tokens);
      t->Exec.EvalDuring[e.Name] = std::move(during);
    }
  }
}
