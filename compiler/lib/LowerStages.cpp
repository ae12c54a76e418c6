//===- LowerStages.cpp - stage variants as chains of train nodes ----------===//
#include "Lowering.h"

#include "mixtape/plan/Growth.h"
#include "mixtape/plan/ParamGroups.h"
#include "mixtape/plan/Print.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
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
  if (!v.Freeze.empty())
    s.Freeze = v.Freeze;
  if (!v.LRScale.empty())
    s.LRScale = plan::GroupScales(v.LRScale.begin(), v.LRScale.end());
  s.Lora = v.Lora;
  // The input indices are the node's: buildChain sets them.
  if (v.Distill)
    s.Distill = plan::Distill{0, v.Distill->Weight, v.Distill->Temperature, v.Distill->Kind};
  if (v.L2ToInit > 0)
    s.L2ToInit = plan::L2ToInit{v.L2ToInit, 0};
  s.Ema = v.Ema;
  // Written only for sft: the plans (and hashes) of lm stages stay as they were.
  if (v.Objective == plan::Objective::SFT)
    s.Objective = v.Objective;
  return s;
}

/// What groups variants into one chain: their shared settings, start node, cursors and
/// optimizer start.
static std::string chainKey(const plan::Plan &plan, const plan::TrainSettings &settings, size_t startNode,
                            std::optional<size_t> teacher, const Cursors &cursors, bool keepOptimizer) {
  plan::Node probe = plan::makeNode("", plan::TrainNode{settings, {}, {}});
  std::string key = plan::settingsKey(plan, probe) + "|" + plan.Nodes[startNode].Hash + "|" +
                    (teacher ? plan.Nodes[*teacher].Hash : "") + "|";
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

/// An sft stage trains on responses: each of its streams needs documents with prompts.
void Lowering::checkSftStreams(const StageSpec &stage) {
  std::set<std::string> checked;
  for (const StageVariant &v : stage.Variants) {
    if (v.Objective != plan::Objective::SFT)
      continue;
    for (const std::string &stream : v.Mixture.Streams) {
      const std::optional<plan::StreamStats> &stats = Stats[stream];
      if (!checked.insert(stream).second || !stats || llvm::is_contained(stats->Columns, plan::kPromptTokensColumn))
        continue;
      Diags.report(DiagCode::UnknownColumn, stage.NameRange,
                   "stage '" + stage.Name + "' trains on responses (objective = \"sft\"), but stream '" + stream +
                       "' has no prompts: no metadata column '" + plan::kPromptTokensColumn.str() +
                       "', which `mixtape data prepare` writes for JSONL lines with \"prompt\" and \"response\"");
    }
  }
}

void Lowering::lowerStage(size_t s) {
  const StageSpec &stage = Recipe.Stages[s];
  checkSftStreams(stage);
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
      lv.TrainedOn.insert(Recipe.Model.PretrainedOn.begin(), Recipe.Model.PretrainedOn.end());
    } else {
      const StageVariant &pv = Recipe.Stages[parent].Variants[v.ParentVariant];
      uint64_t step = v.BranchTokens / pv.batchTokens();
      lv.StartNode = nodeAtStep(parent, v.ParentVariant, step);
      lv.StartCursors = cursorsAt(parent, v.ParentVariant, step);
      lv.TrainedOn = Variants[parent][v.ParentVariant].TrainedOn;
    }
    if (v.Distill)
      lv.Teacher = teacherNode(s, i, lv.StartNode);
    settings.push_back(chainSettings(v, ModelRopeTheta));
    settings.back().VocabExtension = vocabExtension(v, lv.StartNode);
    if (v.Grow)
      settings.back().Grow = growSettings(stage, v, architectureOf(lv.StartNode));
    std::string key = chainKey(Result, settings.back(), lv.StartNode, lv.Teacher, lv.StartCursors, v.KeepOptimizer);
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
    lv.TrainedOn.insert(v.Mixture.Streams.begin(), v.Mixture.Streams.end());
    VariantTokens += chainTokens(s, i);
  }
  StageGroups.back() = std::move(groups);
}

size_t Lowering::teacherNode(size_t s, size_t i, size_t startNode) const {
  const StageVariant &v = Recipe.Stages[s].Variants[i];
  switch (v.Distill->Teacher) {
  case DistillSpec::StageStart:
    return startNode;
  case DistillSpec::Init:
    return Recipe.Sizes.empty() ? InitNode : SizeInits[v.Size];
  case DistillSpec::Ancestor:
    break;
  }
  // Up the lineage to the teacher stage's variant; sema checked that it is an ancestor.
  size_t stage = s, variant = i;
  do {
    variant = static_cast<size_t>(Recipe.Stages[stage].Variants[variant].ParentVariant);
    stage = static_cast<size_t>(Recipe.stageIndex(Recipe.Stages[stage].Parent));
  } while (Recipe.Stages[stage].Name != v.Distill->TeacherStage);
  return nodeAtStep(stage, variant, Recipe.Stages[stage].Variants[variant].Steps);
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
  // A growing stage trains the grown model from its first step.
  const plan::Architecture model = shared.Grow ? shared.Grow->Model : architectureOf(lv.StartNode);
  const plan::ExecChoice exec = chooseExecution(stage, v, model);
  size_t input = lv.StartNode;
  uint64_t begin = 0;
  for (uint64_t end : g.Cuts) {
    plan::TrainNode t;
    t.Settings = shared;
    t.Settings.Steps = {begin, end};
    // The stage's first node moves the model to the new vocabulary; later ones continue it.
    if (begin != 0)
      t.Settings.VocabExtension.reset();
    if (begin > 0)
      t.Settings.Grow.reset();
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
      if (tokens)
        replayed += static_cast<double>(tokens) * replayShare(st, lv.TrainedOn);
    t.Ledger.ReplayFraction = t.Ledger.Tokens ? replayed / static_cast<double>(t.Ledger.Tokens) : 0;
    // Distillation adds the teacher's forward pass: a third of a training step's FLOPs.
    setFlops(t.Ledger, v.SeqLen, model, t.Settings.Distill ? 4.0 / 3.0 : 1.0);
    if (t.Settings.Freeze || t.Settings.Lora) {
      t.Ledger.Parameters = static_cast<uint64_t>(plan::countParameters(model).total());
      t.Ledger.TrainableParameters = plan::countTrainableParameters(model, t.Settings);
    }
    t.Exec.MicroBatch = exec.MicroBatch;
    t.Exec.Shard = exec.Shard;
    t.Exec.ActivationCheckpointing = exec.CheckpointEvery;
    t.Exec.CheckpointEvery = v.CheckpointEvery;
    t.Exec.CheckpointKeep = v.CheckpointKeep;
    t.Exec.Stage = stage.Name;
    t.Exec.StageStart = begin == 0;
    t.Exec.ChainTokens = tokensThrough(input);
    if (end == v.Steps && g.Cuts.size() == 1)
      t.Exec.RequestedTokens = v.RequestedTokens;
    // The regularizers' models follow the input: the teacher, and the stage's start weights.
    std::vector<plan::NodeRef> inputs = {plan::NodeRef{input}};
    auto inputFor = [&](size_t model) -> uint64_t {
      auto found = llvm::find(inputs, plan::NodeRef{model});
      if (found != inputs.end())
        return static_cast<uint64_t>(found - inputs.begin());
      inputs.push_back(plan::NodeRef{model});
      return inputs.size() - 1;
    };
    if (t.Settings.Distill)
      t.Settings.Distill->TeacherInput = inputFor(*lv.Teacher);
    if (t.Settings.L2ToInit)
      t.Settings.L2ToInit->AnchorInput = inputFor(lv.StartNode);
    plan::Node n = plan::makeNode(
        stage.Name + displayLabels(v) + (g.Cuts.size() > 1 ? llvm::formatv("@{0}-{1}", begin, end).str() : ""),
        std::move(t));
    n.Inputs = std::move(inputs);
    size_t node = addNode(std::move(n), v.Mixture.Streams);
    g.NodeEndingAt[end] = node;
    input = node;
    begin = end;
  }
}

const std::optional<std::vector<std::string>> &Lowering::tokenizerTokens(const std::string &tokenizer,
                                                                       llvm::SMRange range) {
  auto [it, fresh] = TokenizerTokens.try_emplace(tokenizer);
  if (!fresh)
    return it->second;
  std::string path = recipePath(llvm::StringRef(tokenizer).drop_front(3));
  llvm::Expected<std::optional<std::vector<std::string>>> tokens = Env.tokenizerTokens(path);
  if (!tokens)
    Diags.report(DiagCode::DataError, range, llvm::toString(tokens.takeError()));
  else if (!*tokens)
    Diags.report(DiagCode::DataError, range, "tokenizer '" + tokenizer + "': no such file " + path);
  else
    it->second = std::move(**tokens);
  return it->second;
}

std::optional<plan::VocabExtension> Lowering::vocabExtension(const StageVariant &v, size_t start) {
  if (!v.ExtendVocabulary)
    return std::nullopt;
  const plan::Architecture before = architectureOf(start);
  plan::VocabExtension e;
  e.Tokenizer = v.Tokenizer;
  e.OldTokenizer = before.Tokenizer;
  e.InitNew = *v.ExtendVocabulary;
  e.Seed = Recipe.Seed;
  e.Vocab = before.Vocab;
  const std::optional<std::vector<std::string>> &old = tokenizerTokens(before.Tokenizer, v.TokenizerRange);
  const std::optional<std::vector<std::string>> &now = tokenizerTokens(v.Tokenizer, v.TokenizerRange);
  if (!old || !now)
    return e;
  e.OldTokens = old->size();
  e.Tokens = now->size();
  e.Vocab = std::max<uint64_t>(before.Vocab, e.Tokens);
  if (!CheckedExtensions.insert(before.Tokenizer + "\n" + v.Tokenizer).second)
    return e;
  // The model keeps its rows: an old token must mean the same id in the new tokenizer.
  for (size_t id = 0; id < old->size(); ++id)
    if (id >= now->size() || (*now)[id] != (*old)[id]) {
      Diags.report(DiagCode::TokenizerMismatch, v.TokenizerRange,
                   llvm::formatv("'{0}' does not extend '{1}': token {2} is '{3}' in the old tokenizer but {4} in "
                                 "the new one ({5})",
                                 v.Tokenizer, before.Tokenizer, id, (*old)[id],
                                 id < now->size() ? "'" + (*now)[id] + "'" : std::string("absent"),
                                 recipePath(llvm::StringRef(v.Tokenizer).drop_front(3)))
                       .str());
      return e;
    }
  if (now->size() == old->size())
    Diags.report(DiagCode::TokenizerMismatch, v.TokenizerRange,
                 llvm::formatv("'{0}' adds no token to '{1}' ({2} tokens each)", v.Tokenizer, before.Tokenizer,
                               old->size())
                     .str());
  return e;
}

double Lowering::replayShare(const std::string &stream, const std::set<std::string> &earlier) {
  // Every node of a sweep's chains asks again: prove and count once per stream and history.
  std::string key = stream + "\n" + llvm::join(earlier, "\n");
  if (auto it = ReplayShares.find(key); it != ReplayShares.end())
    return it->second;
  std::vector<std::string> overlapping;
  for (const std::string &e : earlier)
    if (Recipe.mayShareDocuments(stream, e))
      overlapping.push_back(e);
  if (overlapping.empty())
    return ReplayShares[key] = 0;
  double share = 1;
  const std::optional<plan::StreamStats> &stats = Stats[stream];
  llvm::Expected<std::optional<plan::SharedDocuments>> shared = Env.sharedDocuments(Result, stream, overlapping);
  if (!shared)
    error(DiagCode::DataError, "stream '" + stream + "': " + llvm::toString(shared.takeError()));
  else if (*shared && stats && stats->TrainTokens)
    share = static_cast<double>((*shared)->Tokens) / static_cast<double>(stats->TrainTokens);
  return ReplayShares[key] = share;
}

std::optional<plan::Grow> Lowering::growSettings(const StageSpec &stage, const StageVariant &v,
                                                const plan::Architecture &parent) {
  const GrowSpec &g = *v.Grow;
  plan::GrownArchitecture grown = plan::growArchitecture(parent, g.Layers, g.DModel);
  if (grown.Problem.empty())
    return plan::Grow{grown.Model, g.Noise, Recipe.Seed};
  Diags.report(DiagCode::BadValue, g.rangeOf(grown.Key), "stage '" + stage.Name + "' cannot grow: " + grown.Problem);
  return std::nullopt;
}

plan::ExecChoice Lowering::chooseExecution(const StageSpec &stage, const StageVariant &v,
                                          const plan::Architecture &model) {
  plan::ExecChoice written{v.Shard.value_or(plan::ShardMode::None), v.MicroBatchSequences,
                           v.ActivationCheckpointing.value_or(0)};
  const ResourcesSpec &r = Recipe.Resources;
  if (!r.Gpus || !r.GpuMemory)
    return written;
  if (v.BatchSequences % r.Gpus) {
    Diags.report(DiagCode::WontFit, stage.NameRange,
                 llvm::formatv("stage '{0}': its batch of {1} sequences does not split over {2} GPUs", stage.Name,
                               v.BatchSequences, r.Gpus)
                     .str());
    return written;
  }
  plan::MemoryConfig base;
  base.Model = model;
  base.SeqLen = v.SeqLen;
  base.World = r.Gpus;
  base.LogitChunk = plan::lossChunkTokens(base.Model.Vocab);
  plan::addRegularizers(base, chainSettings(v, ModelRopeTheta));
  const uint64_t share = v.BatchSequences / r.Gpus;
  const plan::Cluster cluster{r.Gpus, r.GpuMemory, r.InterconnectGbps};
  plan::ExecRequest request{v.Shard, std::nullopt, v.ActivationCheckpointing};
  // A written micro-batch is the runtime's: the largest part of it that divides the share.
  if (v.MicroBatchWritten)
    for (uint64_t m = std::min(share, v.MicroBatchSequences); m >= 1 && !request.MicroBatch; --m)
      if (share % m == 0)
        request.MicroBatch = m;
  if (std::optional<plan::ExecChoice> fits = plan::chooseExecution(base, share, cluster.usableMemory(), request))
    return v.MicroBatchWritten ? plan::ExecChoice{fits->Shard, v.MicroBatchSequences, fits->CheckpointEvery} : *fits;
  reportWontFit(stage, v, base, share, cluster, request);
  return written;
}

void Lowering::reportWontFit(const StageSpec &stage, const StageVariant &v, plan::MemoryConfig base, uint64_t share,
                             const plan::Cluster &cluster, const plan::ExecRequest &request) {
  // What it needs as written (open settings at their least: one sequence, full sharding
  // and checkpointing), and the first relaxation of the written settings that fits.
  base.Shard = request.Shard.value_or(plan::ShardMode::Full);
  base.MicroBatch = request.MicroBatch.value_or(1);
  base.CheckpointEvery = request.CheckpointEvery.value_or(1);
  Diagnostic &d = Diags.report(
      DiagCode::WontFit, stage.NameRange,
      llvm::formatv("stage '{0}' needs {1} per GPU (shard {2}, micro_batch {3}, activation_checkpointing {4}), more "
                    "than the {5} usable of {6} GPUs of {7}",
                    stage.Name, plan::formatBytes(plan::estimateMemory(base).total()), plan::enumName(base.Shard),
                    base.MicroBatch, plan::checkpointingName(base.CheckpointEvery),
                    plan::formatBytes(cluster.usableMemory()), cluster.Gpus, plan::formatBytes(cluster.GpuMemory))
          .str());
  std::vector<plan::ExecRequest> relaxed = {{std::nullopt, request.MicroBatch, request.CheckpointEvery},
                                            {request.Shard, request.MicroBatch, std::nullopt},
                                            {request.Shard, std::nullopt, request.CheckpointEvery},
                                            {request.Shard, std::nullopt, std::nullopt},
                                            {}};
  if (v.Grow)
    DiagnosticEngine::addNote(d, v.Grow->Range,
                              llvm::formatv("the model grown here has {0} parameters",
                                            plan::humanCount(static_cast<double>(plan::countParameters(base.Model).total())))
                                  .str());
  for (const plan::ExecRequest &r : relaxed)
    if (std::optional<plan::ExecChoice> fits = plan::chooseExecution(base, share, cluster.usableMemory(), r)) {
      DiagnosticEngine::addNote(d, stage.NameRange,
                                llvm::formatv("it fits with shard = \"{0}\", micro_batch = {1} and "
                                              "activation_checkpointing = \"{2}\"",
                                              plan::enumName(fits->Shard), fits->MicroBatch,
                                              plan::checkpointingName(fits->CheckpointEvery))
                                    .str());
      return;
    }
  // One sequence does not fit even fully sharded and checkpointed: more GPUs, if any count does.
  base.Shard = plan::ShardMode::Full;
  base.MicroBatch = 1;
  base.CheckpointEvery = 1;
  for (uint64_t gpus = cluster.Gpus * 2; gpus <= (uint64_t(1) << 20); gpus *= 2) {
    base.World = gpus;
    if (plan::estimateMemory(base).total() <= cluster.usableMemory()) {
      DiagnosticEngine::addNote(d, stage.NameRange,
                                llvm::formatv("one sequence fits with shard = \"full\" and activation_checkpointing "
                                              "= \"full\" on {0} GPUs",
                                              gpus)
                                    .str());
      return;
    }
  }
  DiagnosticEngine::addNote(d, stage.NameRange,
                            "one sequence does not fit on any number of these GPUs: its activations and logits alone "
                            "are too large; shorten seq_len");
}

void Lowering::setFlops(plan::Ledger &ledger, uint64_t seqLen, const plan::Architecture &model, double passes) const {
  ledger.Flops = passes * flopsPerToken(model, seqLen) * static_cast<double>(ledger.Tokens);
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
