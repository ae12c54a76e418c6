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
  s.SeqLen = v.seqLen;
  s.BatchSequences = v.batchSequences;
  // A base the recipe never wrote is the checkpoint's (hf: init), not 10000.
  s.RopeTheta = v.ropeThetaWritten ? v.ropeTheta : modelRopeTheta;
  s.Attention = v.attention;
  s.LR = v.lr;
  s.LR.Horizon = v.horizon;
  s.Mixture = v.mixture;
  s.Optimizer = planOptimizer(v.optimizer);
  s.GradClip = v.gradClip;
  s.OnNonFinite = v.skipNonFinite ? plan::NonFiniteAction::Skip : plan::NonFiniteAction::Stop;
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
  llvm::StringRef name = v.displayName;
  size_t open = name.find('[');
  return open == llvm::StringRef::npos ? "" : name.substr(open).str();
}

void Lowering::lowerStage(size_t s) {
  const StageSpec &stage = recipe.stages[s];
  variants.emplace_back();
  std::vector<LoweredVariant> &lowered = variants.back();
  int parent = stage.parent.empty() ? -1 : recipe.stageIndex(stage.parent);
  // Where each variant starts, and the chain it belongs to.
  std::vector<Group> groups;
  llvm::StringMap<size_t> groupByKey;
  std::vector<plan::TrainSettings> settings; // per variant: its chain settings, computed once
  for (size_t i = 0; i < stage.variants.size(); ++i) {
    const StageVariant &v = stage.variants[i];
    LoweredVariant lv;
    if (parent < 0) {
      lv.startNode = initNode;
      for (const StreamSpec &st : recipe.streams)
        lv.startCursors[st.name] = 0;
      for (const std::string &p : recipe.model.pretrainedOn)
        lv.trainedOn.insert(recipe.stream(p)->root);
    } else {
      const StageVariant &pv = recipe.stages[parent].variants[v.parentVariant];
      uint64_t step = v.branchTokens / pv.batchTokens();
      lv.startNode = nodeAtStep(parent, v.parentVariant, step);
      lv.startCursors = cursorsAt(parent, v.parentVariant, step);
      lv.trainedOn = variants[parent][v.parentVariant].trainedOn;
    }
    settings.push_back(chainSettings(v, modelRopeTheta));
    std::string key = chainKey(result, settings.back(), lv.startNode, lv.startCursors, v.keepOptimizer);
    auto [it, fresh] = groupByKey.try_emplace(key, groups.size());
    if (fresh)
      groups.push_back(Group{i, {}, {}, {}});
    lv.group = it->second;
    groups[lv.group].cuts.push_back(v.steps);
    lowered.push_back(std::move(lv));
  }
  // Branch points of child stages cut the chain too.
  for (const StageSpec &child : recipe.stages) {
    if (child.parent != stage.name)
      continue;
    for (const StageVariant &cv : child.variants) {
      const StageVariant &pv = stage.variants[cv.parentVariant];
      groups[lowered[cv.parentVariant].group].cuts.push_back(cv.branchTokens / pv.batchTokens());
    }
  }
  stageGroups.emplace_back();
  for (Group &g : groups)
    buildChain(s, g, std::move(settings[g.firstVariant]));
  for (size_t i = 0; i < stage.variants.size(); ++i) {
    const StageVariant &v = stage.variants[i];
    LoweredVariant &lv = lowered[i];
    Group &g = groups[lv.group];
    for (const auto &[end, node] : g.nodeEndingAt)
      if (end <= v.steps) {
        lv.nodes.push_back(node);
        addVariant(node, v.displayName);
      }
    // The variant also runs through its ancestry's nodes up to its branch point.
    for (size_t up = lv.startNode; result.Nodes[up].Kind == plan::NodeKind::Train; up = result.Nodes[up].Inputs.front().Index)
      addVariant(up, v.displayName);
    for (const std::string &st : v.mixture.Streams)
      lv.trainedOn.insert(recipe.stream(st)->root);
    variantTokens += chainTokens(s, i);
  }
  stageGroups.back() = std::move(groups);
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
  std::unique_ptr<CachedBlend> &slot = blenders[key];
  if (!slot)
    slot = std::make_unique<CachedBlend>(CachedBlend{m, std::nullopt});
  if (!slot->blender || slot->blender->samplesDone() > samples)
    slot->blender.emplace(slot->mixture, seqLen);
  slot->blender->skipTo(samples);
  return slot->blender->counts();
}

/// Tokens a variant would train if nothing were shared: its ancestry up to its branch,
/// and itself.
uint64_t Lowering::chainTokens(size_t s, size_t i) const {
  const StageSpec &stage = recipe.stages[s];
  const StageVariant &v = stage.variants[i];
  if (stage.parent.empty())
    return v.tokens;
  return v.tokens + chainTokensUpTo(recipe.stageIndex(stage.parent), v.parentVariant, v.branchTokens);
}

uint64_t Lowering::chainTokensUpTo(size_t s, size_t i, uint64_t tokens) const {
  const StageSpec &stage = recipe.stages[s];
  const StageVariant &v = stage.variants[i];
  if (stage.parent.empty())
    return tokens;
  return tokens + chainTokensUpTo(recipe.stageIndex(stage.parent), v.parentVariant, v.branchTokens);
}

void Lowering::buildChain(size_t s, Group &g, plan::TrainSettings shared) {
  const StageSpec &stage = recipe.stages[s];
  const StageVariant &v = stage.variants[g.firstVariant];
  const LoweredVariant &lv = variants[s][g.firstVariant];
  llvm::sort(g.cuts);
  g.cuts.erase(std::unique(g.cuts.begin(), g.cuts.end()), g.cuts.end());
  g.cuts.erase(std::remove(g.cuts.begin(), g.cuts.end(), 0u), g.cuts.end());
  // Samples per stream at every cut.
  g.counts[0] = std::vector<uint64_t>(v.mixture.Streams.size(), 0);
  for (uint64_t cut : g.cuts)
    g.counts[cut] = blendCounts(v.mixture, v.seqLen, cut * v.batchSequences);
  size_t input = lv.startNode;
  uint64_t begin = 0;
  for (uint64_t end : g.cuts) {
    plan::TrainNode t;
    t.Settings = shared;
    t.Settings.Steps = {begin, end};
    // A segment after the first continues the same run.
    t.Settings.OptimizerState =
        begin == 0 && !v.keepOptimizer ? plan::OptimizerStart::Reset : plan::OptimizerStart::Keep;
    const Cursors &at = lv.startCursors;
    for (size_t k = 0; k < v.mixture.Streams.size(); ++k) {
      const std::string &st = v.mixture.Streams[k];
      uint64_t before = g.counts[begin][k], after = g.counts[end][k];
      t.Settings.Data.Cursors[st] = at.at(st) + before * v.seqLen;
      t.Settings.Data.Samples[st] = after - before;
      t.Ledger.TokensByStream[st] = (after - before) * v.seqLen;
      t.Ledger.Tokens += (after - before) * v.seqLen;
      uint64_t endCursor = at.at(st) + after * v.seqLen;
      if (stats[st] && stats[st]->TrainTokens)
        t.Ledger.EpochsAtEnd[st] = static_cast<double>(endCursor) / static_cast<double>(stats[st]->TrainTokens);
    }
    double replayed = 0;
    for (const auto &[st, tokens] : t.Ledger.TokensByStream)
      if (lv.trainedOn.count(recipe.stream(st)->root))
        replayed += static_cast<double>(tokens);
    t.Ledger.ReplayFraction = t.Ledger.Tokens ? replayed / static_cast<double>(t.Ledger.Tokens) : 0;
    setFlops(t.Ledger, v.seqLen);
    t.Exec.MicroBatch = v.microBatchSequences;
    t.Exec.Zero1 = v.zero1;
    t.Exec.CheckpointEvery = v.checkpointEvery;
    t.Exec.CheckpointKeep = v.checkpointKeep;
    t.Exec.Stage = stage.name;
    t.Exec.StageStart = begin == 0;
    t.Exec.ChainTokens = tokensThrough(input);
    if (end == v.steps && g.cuts.size() == 1)
      t.Exec.RequestedTokens = v.requestedTokens;
    plan::Node n = plan::makeNode(
        stage.name + displayLabels(v) + (g.cuts.size() > 1 ? llvm::formatv("@{0}-{1}", begin, end).str() : ""),
        std::move(t));
    n.Inputs = {plan::NodeRef{input}};
    size_t node = addNode(std::move(n), v.mixture.Streams);
    g.nodeEndingAt[end] = node;
    input = node;
    begin = end;
  }
}

void Lowering::setFlops(plan::Ledger &ledger, uint64_t seqLen) const {
  ledger.Flops = flopsPerToken(seqLen) * static_cast<double>(ledger.Tokens);
  ledger.GpuHours = ledger.Flops / (result.Cost.PeakFlops * result.Cost.Mfu) / 3600;
}

size_t Lowering::nodeAtStep(size_t s, size_t variant, uint64_t step) const {
  const LoweredVariant &lv = variants[s][variant];
  if (step == 0)
    return lv.startNode;
  return stageGroups[s][lv.group].nodeEndingAt.at(step);
}

Cursors Lowering::cursorsAt(size_t s, size_t variant, uint64_t step) const {
  const StageVariant &v = recipe.stages[s].variants[variant];
  const LoweredVariant &lv = variants[s][variant];
  Cursors c = lv.startCursors;
  const std::vector<uint64_t> &counts = stageGroups[s][lv.group].counts.at(step);
  for (size_t k = 0; k < v.mixture.Streams.size(); ++k)
    c[v.mixture.Streams[k]] += counts[k] * v.seqLen;
  return c;
}
