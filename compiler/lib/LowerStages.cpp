//===- LowerStages.cpp - stage variants as chains of train nodes ----------===//
#include "Lowering.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mixtape;
using namespace mixtape::lower;

/// Settings a stage variant's chain shares: everything but its steps, optimizer start and
/// data.
static plan::TrainSettings chainSettings(const StageVariant &v, double modelRopeTheta) {
  plan::TrainSettings s;
  s.SeqLen = v.SeqLen;
  s.BatchSequences = v.BatchSequences;
  // A base the recipe never wrote is the checkpoint's (hf: init), not 10000.
  s.RopeTheta = v.RopeThetaWritten ? v.RopeTheta : modelRopeTheta;
  s.Attention = v.Attention;
  s.LR = v.LR;
  s.LR.Horizon = v.Horizon;
  s.Mixture = v.Mixture;
  s.Optimizer = planOptimizer(v.Optimizer);
  s.GradClip = v.GradClip;
  s.OnNonFinite = v.SkipNonFinite ? plan::NonFiniteAction::Skip : plan::NonFiniteAction::Stop;
  return s;
}

/// What groups variants into one chain: their shared settings, start node, cursors and
/// optimizer start.
static std::string chainKey(const plan::Plan &plan, const plan::TrainSettings &settings, size_t startNode,
                            const Cursors &cursors, bool keepOptimizer) {
  plan::Node probe = plan::makeNode("", plan::TrainNode{settings, {}, {}});
  std::string key = plan::settingsKey(plan, probe) + "|" + plan.Nodes[startNode].Hash + "|";
  for (const auto &[stream, offset] : cursors)
    key += stream + "=" + std::to_string(offset) + ",";
  return key + (keepOptimizer ? "keep" : "reset");
}

/// The labels that distinguish this stage's variants, e.g. "[replay=r5]".
static std::string displayLabels(const StageVariant &v) {
  llvm::StringRef name = v.DisplayName;
  size_t open = name.find('[');
  return open == llvm::StringRef::npos ? "" : name.substr(open).str();
}

void Lowering::lowerStage(size_t s) {
  const StageSpec &stage = Recipe.Stages[s];
  Variants.emplace_back();
  std::vector<LoweredVariant> &lowered = Variants.back();
  int parent = stage.Parent.empty() ? -1 : Recipe.stageIndex(stage.Parent);
  // Where each variant starts, and the chain it belongs to.
  std::vector<Group> groups;
  llvm::StringMap<size_t> groupByKey;
  std::vector<plan::TrainSettings> settings; // per variant: its chain settings, computed once
  for (size_t i = 0; i < stage.Variants.size(); ++i) {
    const StageVariant &v = stage.Variants[i];
    LoweredVariant lv;
    if (parent < 0) {
      lv.StartNode = Recipe.Sizes.empty() ? InitNode : SizeInits[v.Size];
      for (const StreamSpec &st : Recipe.Streams)
        lv.StartCursors[st.Name] = 0;
      for (const std::string &p : Recipe.Model.PretrainedOn)
        lv.TrainedOn.insert(Recipe.stream(p)->Root);
    } else {
      const StageVariant &pv = Recipe.Stages[parent].Variants[v.ParentVariant];
      uint64_t step = v.BranchTokens / pv.batchTokens();
      lv.StartNode = nodeAtStep(parent, v.ParentVariant, step);
      lv.StartCursors = cursorsAt(parent, v.ParentVariant, step);
      lv.TrainedOn = Variants[parent][v.ParentVariant].TrainedOn;
    }
    settings.push_back(chainSettings(v, ModelRopeTheta));
    std::string key = chainKey(Result, settings.back(), lv.StartNode, lv.StartCursors, v.KeepOptimizer);
    auto [it, fresh] = groupByKey.try_emplace(key, groups.size());
    if (fresh)
      groups.push_back(Group{i, {}, {}, {}});
    lv.Group = it->second;
    groups[lv.Group].Cuts.push_back(v.Steps);
    lowered.push_back(std::move(lv));
  }
  // Branch points of child stages cut the chain too.
  for (const StageSpec &child : Recipe.Stages) {
    if (child.Parent != stage.Name)
      continue;
    for (const StageVariant &cv : child.Variants) {
      const StageVariant &pv = stage.Variants[cv.ParentVariant];
      groups[lowered[cv.ParentVariant].Group].Cuts.push_back(cv.BranchTokens / pv.batchTokens());
    }
  }
  StageGroups.emplace_back();
  for (Group &g : groups)
    buildChain(s, g, std::move(settings[g.FirstVariant]));
  for (size_t i = 0; i < stage.Variants.size(); ++i) {
    const StageVariant &v = stage.Variants[i];
    LoweredVariant &lv = lowered[i];
    Group &g = groups[lv.Group];
    for (const auto &[end, node] : g.NodeEndingAt)
      if (end <= v.Steps) {
        lv.Nodes.push_back(node);
        addVariant(node, v.DisplayName);
      }
    // The variant also runs through its ancestry's nodes up to its branch point.
    for (size_t up = lv.StartNode; Result.Nodes[up].Kind == plan::NodeKind::Train; up = Result.Nodes[up].Inputs.front().Index)
      addVariant(up, v.DisplayName);
    for (const std::string &st : v.Mixture.Streams)
      lv.TrainedOn.insert(Recipe.stream(st)->Root);
    VariantTokens += chainTokens(s, i);
  }
  StageGroups.back() = std::move(groups);
}

std::vector<uint64_t> Lowering::blendCounts(const plan::Mixture &m, uint64_t seqLen, uint64_t samples) {
  // Variants often share a mixture: one blender per mixture moves forward and is reused.
  std::string key = std::to_string(seqLen) + "|";
  for (const std::string &s : m.Streams)
    key += s + ",";
  for (double p : m.Positions)
    key += llvm::formatv("{0:e17},", p).str();
  for (const std::vector<double> &row : m.Weights)
    for (double w : row)
      key += llvm::formatv("{0:e17},", w).str();
  std::unique_ptr<CachedBlend> &slot = Blenders[key];
  if (!slot)
    slot = std::make_unique<CachedBlend>(CachedBlend{m, std::nullopt});
  if (!slot->Blender || slot->Blender->samplesDone() > samples)
    slot->Blender.emplace(slot->Mixture, seqLen);
  slot->Blender->skipTo(samples);
  return slot->Blender->counts();
}

/// Tokens a variant would train if nothing were shared: its ancestry up to its branch,
/// and itself.
uint64_t Lowering::chainTokens(size_t s, size_t i) const {
  const StageSpec &stage = Recipe.Stages[s];
  const StageVariant &v = stage.Variants[i];
  if (stage.Parent.empty())
    return v.Tokens;
  return v.Tokens + chainTokensUpTo(Recipe.stageIndex(stage.Parent), v.ParentVariant, v.BranchTokens);
}

uint64_t Lowering::chainTokensUpTo(size_t s, size_t i, uint64_t tokens) const {
  const StageSpec &stage = Recipe.Stages[s];
  const StageVariant &v = stage.Variants[i];
  if (stage.Parent.empty())
    return tokens;
  return tokens + chainTokensUpTo(Recipe.stageIndex(stage.Parent), v.ParentVariant, v.BranchTokens);
}

void Lowering::buildChain(size_t s, Group &g, plan::TrainSettings shared) {
  const StageSpec &stage = Recipe.Stages[s];
  const StageVariant &v = stage.Variants[g.FirstVariant];
  const LoweredVariant &lv = Variants[s][g.FirstVariant];
  llvm::sort(g.Cuts);
  g.Cuts.erase(std::unique(g.Cuts.begin(), g.Cuts.end()), g.Cuts.end());
  g.Cuts.erase(std::remove(g.Cuts.begin(), g.Cuts.end(), 0u), g.Cuts.end());
  // Samples per stream at every cut.
  g.Counts[0] = std::vector<uint64_t>(v.Mixture.Streams.size(), 0);
  for (uint64_t cut : g.Cuts)
    g.Counts[cut] = blendCounts(v.Mixture, v.SeqLen, cut * v.BatchSequences);
  size_t input = lv.StartNode;
  uint64_t begin = 0;
  for (uint64_t end : g.Cuts) {
    plan::TrainNode t;
    t.Settings = shared;
    t.Settings.Steps = {begin, end};
    // A segment after the first continues the same run.
    t.Settings.OptimizerState =
        begin == 0 && !v.KeepOptimizer ? plan::OptimizerStart::Reset : plan::OptimizerStart::Keep;
    const Cursors &at = lv.StartCursors;
    for (size_t k = 0; k < v.Mixture.Streams.size(); ++k) {
      const std::string &st = v.Mixture.Streams[k];
      uint64_t before = g.Counts[begin][k], after = g.Counts[end][k];
      t.Settings.Data.Cursors[st] = at.at(st) + before * v.SeqLen;
      t.Settings.Data.Samples[st] = after - before;
      t.Ledger.TokensByStream[st] = (after - before) * v.SeqLen;
      t.Ledger.Tokens += (after - before) * v.SeqLen;
      uint64_t endCursor = at.at(st) + after * v.SeqLen;
      if (Stats[st] && Stats[st]->TrainTokens)
        t.Ledger.EpochsAtEnd[st] = static_cast<double>(endCursor) / static_cast<double>(Stats[st]->TrainTokens);
    }
    double replayed = 0;
    for (const auto &[st, tokens] : t.Ledger.TokensByStream)
      if (lv.TrainedOn.count(Recipe.stream(st)->Root))
        replayed += static_cast<double>(tokens);
    t.Ledger.ReplayFraction = t.Ledger.Tokens ? replayed / static_cast<double>(t.Ledger.Tokens) : 0;
    setFlops(t.Ledger, v.SeqLen, architectureOf(input));
    t.Exec.MicroBatch = v.MicroBatchSequences;
    t.Exec.Zero1 = v.Zero1;
    t.Exec.CheckpointEvery = v.CheckpointEvery;
    t.Exec.CheckpointKeep = v.CheckpointKeep;
    t.Exec.Stage = stage.Name;
    t.Exec.StageStart = begin == 0;
    t.Exec.ChainTokens = tokensThrough(input);
    if (end == v.Steps && g.Cuts.size() == 1)
      t.Exec.RequestedTokens = v.RequestedTokens;
    plan::Node n = plan::makeNode(
        stage.Name + displayLabels(v) + (g.Cuts.size() > 1 ? llvm::formatv("@{0}-{1}", begin, end).str() : ""),
        std::move(t));
    n.Inputs = {plan::NodeRef{input}};
    size_t node = addNode(std::move(n), v.Mixture.Streams);
    g.NodeEndingAt[end] = node;
    input = node;
    begin = end;
  }
}

void Lowering::setFlops(plan::Ledger &ledger, uint64_t seqLen, const plan::Architecture &model) const {
  ledger.Flops = flopsPerToken(model, seqLen) * static_cast<double>(ledger.Tokens);
  ledger.GpuHours = ledger.Flops / (Result.Cost.PeakFlops * Result.Cost.Mfu) / 3600;
}

size_t Lowering::nodeAtStep(size_t s, size_t variant, uint64_t step) const {
  const LoweredVariant &lv = Variants[s][variant];
  if (step == 0)
    return lv.StartNode;
  return StageGroups[s][lv.Group].NodeEndingAt.at(step);
}

Cursors Lowering::cursorsAt(size_t s, size_t variant, uint64_t step) const {
  const StageVariant &v = Recipe.Stages[s].Variants[variant];
  const LoweredVariant &lv = Variants[s][variant];
  Cursors c = lv.StartCursors;
  const std::vector<uint64_t> &counts = StageGroups[s][lv.Group].Counts.at(step);
  for (size_t k = 0; k < v.Mixture.Streams.size(); ++k)
    c[v.Mixture.Streams[k]] += counts[k] * v.SeqLen;
  return c;
}
