//===- Models.cpp - the plan's model, and the nodes that only move weights ----===//
//
// Init, merge and export: they make or combine a model file and train nothing.
//
//===----------------------------------------------------------------------===//
#include "ExecContext.h"

#include "mixtape/data/ShardCatalog.h"
#include "mixtape/dist/ShardedCheckpoint.h"
#include "mixtape/merge/Merge.h"
#include "mixtape/model/Model.h"
#include "mixtape/model/VocabExtension.h"
#include "mixtape/plan/Environment.h"
#include "mixtape/rundir/RunDir.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/JSON.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

#include <limits>

using namespace mixtape;
using namespace mixtape::exec;

std::string ExecContext::nodeDir(const plan::Node &node) const { return rundir::nodeDir(RunDir, node); }

std::string ExecContext::inputWeights(const plan::Node &node, size_t i) const {
  const llvm::StringRef file = node.Inputs[i].Average ? llvm::StringRef(plan::kAverageFile) : "model.safetensors";
  return joinPath(nodeDir(input(node, i)), file);
}

llvm::Expected<data::NodeStream> ExecContext::stream(llvm::StringRef name, uint64_t cursor) const {
  llvm::Expected<std::optional<data::NodeStream>> s = data::nodeStream(*Plan, name, cursor);
  if (!s)
    return s.takeError();
  if (!*s)
    return makeError("stream '" + name + "': no data at '" + Plan->Streams.at(Plan->Streams.at(name.str()).Root).Shards +
                     "' (relative to " + Plan->RecipeDir + ")");
  return std::move(**s);
}

/// The model init node `init` makes, with a node's RoPE base: a Hugging Face checkpoint's
/// config as its node saved it, else the plan's architecture.
static llvm::Expected<model::ModelConfig> modelConfig(const ExecContext &ctx, const plan::Node &init,
                                                      std::optional<double> ropeTheta) {
  // RoPE has no position table to learn: its limit only sizes a cache, so it covers the
  // longest sequence any node trains on (a long-context stage), without touching any hash.
  auto coverSequences = [&](model::ModelConfig &c) {
    if (c.Family == model::Family::GPT2)
      return;
    for (const plan::Node &n : ctx.Plan->Nodes)
      if (const plan::TrainNode *t = n.train())
        c.MaxPositions = std::max<int64_t>(c.MaxPositions, static_cast<int64_t>(t->Settings.SeqLen));
  };
  // Each init its own: a merge may combine a checkpoint with a model of the recipe's.
  const plan::InitSettings &settings = init.init()->Settings;
  std::string config = joinPath(ctx.nodeDir(init), "config.json");
  if (llvm::StringRef(settings.Init).startswith("hf:") && llvm::sys::fs::exists(config)) {
    llvm::Expected<model::ModelConfig> c = model::readHFConfig(config);
    if (c && ropeTheta)
      c->RopeTheta = *ropeTheta;
    if (c)
      coverSequences(*c);
    return c;
  }
  const plan::Architecture &m = settings.Model;
  model::ModelConfig c = model::ModelConfig::defaults(m.Family, static_cast<int64_t>(m.Vocab),
                                                      static_cast<int64_t>(m.Layers), static_cast<int64_t>(m.DModel),
                                                      static_cast<int64_t>(m.Heads),
                                                      static_cast<int64_t>(m.MaxPositions));
  c.NumKVHeads = static_cast<int64_t>(m.KVHeads);
  c.FfnHidden = static_cast<int64_t>(m.Ffn);
  c.RotaryPct = m.RotaryPct;
  if (ropeTheta)
    c.RopeTheta = *ropeTheta;
  coverSequences(c);
  if (llvm::Error e = c.validate())
    return std::move(e);
  return c;
}

llvm::Expected<std::unique_ptr<model::Model>> ExecContext::randomModel(const plan::Node &init, uint64_t seed) const {
  llvm::Expected<model::ModelConfig> config = modelConfig(*this, init, std::nullopt);
  if (!config)
    return config.takeError();
  return model::Model::create(*config, seed);
}

llvm::Expected<model::ModelConfig> ExecContext::modelConfigOf(const plan::Node &of,
                                                              std::optional<double> ropeTheta) const {
  // The last growth on the way to the init decides the sizes; the init the rest.
  const plan::Grow *grow = nullptr;
  const plan::Node *init = &of;
  for (; !init->init(); init = &input(*init))
    if (const plan::TrainNode *t = init->train(); t && t->Settings.Grow && !grow)
      grow = &*t->Settings.Grow;
  llvm::Expected<model::ModelConfig> config = modelConfig(*this, *init, ropeTheta);
  if (!config)
    return config;
  // A vocabulary extension on the way from the init changed the rows (and nothing else).
  const plan::Architecture made = plan::modelArchitecture(*Plan, of);
  if (made.Vocab != init->init()->Settings.Model.Vocab)
    config->VocabSize = static_cast<int64_t>(made.Vocab);
  if (!grow)
    return config;
  const plan::Architecture &m = grow->Model;
  config->NumLayers = static_cast<int64_t>(m.Layers);
  config->DModel = static_cast<int64_t>(m.DModel);
  config->NumHeads = static_cast<int64_t>(m.Heads);
  config->NumKVHeads = static_cast<int64_t>(m.KVHeads);
  config->FfnHidden = static_cast<int64_t>(m.Ffn);
  config->TieEmbeddings = config->TieEmbeddings && m.TieEmbeddings;
  if (llvm::Error e = config->validate())
    return std::move(e);
  return config;
}

llvm::Expected<std::unique_ptr<model::Model>> ExecContext::loadModel(const plan::Node &of, llvm::StringRef weights,
                                                                     std::optional<double> ropeTheta) const {
  llvm::Expected<model::ModelConfig> config = modelConfigOf(of, ropeTheta);
  if (!config)
    return config.takeError();
  llvm::Expected<std::unique_ptr<model::Model>> m = model::Model::create(*config, Plan->Seed);
  if (!m)
    return m.takeError();
  llvm::Error loaded = llvm::sys::path::filename(weights) == dist::kCheckpointIndex
                           ? dist::loadShardedWeights(**m, weights)
                           : (*m)->loadWeights(weights);
  if (loaded)
    return std::move(loaded);
  return m;
}

llvm::Expected<std::unique_ptr<model::Model>> ExecContext::unallocatedModel(const plan::Node &of,
                                                                            std::optional<double> ropeTheta) const {
  llvm::Expected<model::ModelConfig> config = modelConfigOf(of, ropeTheta);
  if (!config)
    return config.takeError();
  return model::Model::createUnallocated(*config, Device);
}

llvm::Expected<std::unique_ptr<model::Model>> ExecContext::extendVocabulary(const model::Model &m,
                                                                             const plan::VocabExtension &e) const {
  model::VocabExtensionOptions options;
  options.Vocab = static_cast<int64_t>(e.Vocab);
  options.FirstNew = static_cast<int64_t>(e.OldTokens);
  options.EndNew = static_cast<int64_t>(e.Tokens);
  options.Init = e.InitNew;
  options.Seed = e.Seed;
  if (e.InitNew == plan::NewTokenInit::SubwordMean) {
    // A new token's text, as the new tokenizer decodes it, in the old tokenizer's pieces.
    auto before = data::createTokenizer(data::resolveTokenizerName(e.OldTokenizer, Plan->RecipeDir));
    if (!before)
      return before.takeError();
    auto after = data::createTokenizer(data::resolveTokenizerName(e.Tokenizer, Plan->RecipeDir));
    if (!after)
      return after.takeError();
    for (uint64_t id = e.OldTokens; id < e.Tokens; ++id) {
      std::vector<uint32_t> pieces = (*before)->encode((*after)->decode({static_cast<uint32_t>(id)}));
      options.Pieces.emplace_back(pieces.begin(), pieces.end());
    }
  }
  return model::extendVocabulary(m, options);
}

llvm::Error mixtape::exec::runInit(ExecContext &ctx, const plan::Node &node, const plan::InitNode &init) {
  llvm::StringRef source = init.Settings.Init;
  if (source.consume_front("hf:")) {
    const std::string folder = plan::resolvePath(ctx.Plan->RecipeDir, source);
    // As with data: what was planned is what trains.
    data::DataVerifier checksums(ctx.Verification, ctx.Progress ? &llvm::errs() : nullptr);
    llvm::Expected<std::optional<plan::CheckpointInfo>> now = data::inspectCheckpoint(folder, checksums);
    if (!now)
      return now.takeError();
    const std::string fingerprint = *now ? (*now)->Fingerprint : std::string();
    if (init.Settings.Checkpoint && fingerprint != *init.Settings.Checkpoint)
      return makeError(llvm::formatv("checkpoint '{0}' changed since the plan was made (plan fingerprint {1}, now "
                                     "{2}); plan again",
                                     init.Settings.Init, *init.Settings.Checkpoint,
                                     fingerprint.empty() ? "no weights" : fingerprint));
    auto loaded = model::Model::fromHuggingFace(folder);
    if (!loaded)
      return loaded.takeError();
    // With its config: the nodes after it build the checkpoint's architecture from it. One
    // model.safetensors whatever its size, the file the nodes after it read (inputWeights):
    // save_pretrained's 5 GB shards are for exports.
    model::HFSaveOptions whole;
    whole.MaxShardBytes = std::numeric_limits<uint64_t>::max();
    return (*loaded)->saveHuggingFace(ctx.nodeDir(node), whole);
  }
  if (source != "random" || !init.Settings.Seed)
    return makeError("init '" + source + "' is neither random (with a seed) nor hf:PATH");
  auto created = ctx.randomModel(node, *init.Settings.Seed);
  if (!created)
    return created.takeError();
  return (*created)->saveWeights(joinPath(ctx.nodeDir(node), "model.safetensors"));
}

llvm::Error mixtape::exec::runMerge(ExecContext &ctx, const plan::Node &node, const plan::MergeNode &merge) {
  const plan::MergeSettings &s = merge.Settings;
  merge::MergeOptions options;
  options.Method = s.Method;
  options.Weights = s.Weights;
  options.Normalize = s.Normalize;
  options.Density = s.Density.value_or(options.Density);
  options.T = s.T.value_or(options.T);
  options.Seed = s.Seed.value_or(0);
  // Every input node left its model (or moving average); base_input says which one is the base.
  std::vector<std::string> models;
  std::optional<std::string> base;
  for (size_t i = 0; i < node.Inputs.size(); ++i) {
    std::string path = ctx.inputWeights(node, i);
    if (s.BaseInput == i)
      base = path;
    else
      models.push_back(path);
  }
  return merge::mergeFiles(options, models, base, joinPath(ctx.nodeDir(node), "model.safetensors"));
}

/// The train node whose settings a model made by `node` runs with: the node itself, or for
/// a merge its base input's, else its first input's (docs/language.md); none for an init.
static const plan::TrainNode *trainedBy(const ExecContext &ctx, const plan::Node *node) {
  while (const plan::MergeNode *m = node->merge())
    node = &ctx.input(*node, m->Settings.BaseInput.value_or(0));
  return node->train();
}

/// The files of the model's tokenizer `tokenizerName` that a Hugging Face folder holds, copied into `dir`,
/// and its special tokens' ids into `save`. The byte tokenizer has no such files.
static llvm::Error exportTokenizer(const plan::Plan &plan, llvm::StringRef tokenizerName, llvm::StringRef dir,
                                   model::HFSaveOptions &save) {
  const std::string name = data::resolveTokenizerName(tokenizerName, plan.RecipeDir);
  llvm::Expected<std::unique_ptr<data::Tokenizer>> tokenizer = data::createTokenizer(name);
  if (!tokenizer)
    return tokenizer.takeError();
  save.EosTokenId = (*tokenizer)->eot();
  save.BosTokenId = (*tokenizer)->bos();
  llvm::StringRef path = name;
  if (!path.consume_front("hf:"))
    return llvm::Error::success();
  // A tokenizer.json named as a file, or the folder that holds the files.
  const bool file = !llvm::sys::fs::is_directory(path);
  const std::string folder = file ? llvm::sys::path::parent_path(path).str() : path.str();
  std::vector<std::pair<std::string, std::string>> copies; // from, to
  if (file)
    copies.push_back({path.str(), "tokenizer.json"});
  for (llvm::StringRef f : {"tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                            "special_tokens_map.json"})
    if (!(file && f == "tokenizer.json") && llvm::sys::fs::exists(joinPath(folder, f)))
      copies.push_back({joinPath(folder, f), f.str()});
  for (const auto &[from, to] : copies) {
    llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> bytes = mapFile(from);
    if (!bytes)
      return bytes.takeError();
    if (llvm::Error e = writeFileDurably(joinPath(dir, to), (*bytes)->getBuffer()))
      return e;
  }
  // A bare tokenizer.json: transformers' AutoTokenizer would pick the model type's own class,
  // which may add tokens of its own (LlamaTokenizerFast a "<s>"); the generic class takes the
  // file as it is, told its end-of-text.
  auto copied = [&](llvm::StringRef f) { return llvm::any_of(copies, [&](const auto &c) { return c.second == f; }); };
  if (!copied("tokenizer.json") || copied("tokenizer_config.json"))
    return llvm::Error::success();
  const uint32_t eot = (*tokenizer)->eot();
  llvm::json::Object config{{"tokenizer_class", "PreTrainedTokenizerFast"},
                            {"eos_token", (*tokenizer)->decode(llvm::ArrayRef<uint32_t>(eot))}};
  return writeFileDurably(joinPath(dir, "tokenizer_config.json"), formatJSON(std::move(config)));
}

llvm::Error mixtape::exec::exportModel(ExecContext &ctx, const plan::Node &node, llvm::StringRef weights,
                                       llvm::StringRef outDir, const ExportOptions &options) {
  if (node.eval())
    return makeError("node '" + node.Name + "' is an eval: it makes no model to export");
  if (llvm::sys::fs::exists(outDir))
    return fileError(outDir, "exists; export writes a new folder and replaces nothing");
  const plan::TrainNode *trained = trainedBy(ctx, &node);
  auto m = ctx.loadModel(node, weights,
                         trained ? std::optional<double>(trained->Settings.RopeTheta) : std::nullopt);
  if (!m)
    return m.takeError();
  // Built beside its destination and renamed into place: a reader never sees half a folder.
  llvm::SmallString<256> temp;
  std::string parent = llvm::sys::path::parent_path(outDir).str();
  std::string stem = joinPath(parent.empty() ? "." : parent, "." + llvm::sys::path::filename(outDir).str() + ".tmp");
  if (std::error_code ec = llvm::sys::fs::createUniqueDirectory(stem, temp))
    return fileError(outDir, "cannot create a folder beside it: " + ec.message());
  auto fail = [&](llvm::Error e) {
    llvm::sys::fs::remove_directories(temp);
    return e;
  };
  model::HFSaveOptions save;
  if (options.Bf16)
    save.Dtype = at::kBFloat16;
  save.MaxShardBytes = options.MaxShardBytes;
  if (llvm::Error e = exportTokenizer(*ctx.Plan, plan::modelArchitecture(*ctx.Plan, node).Tokenizer, temp, save))
    return fail(std::move(e));
  if (llvm::Error e = (*m)->saveHuggingFace(temp, save))
    return fail(std::move(e));
  if (llvm::Error e = syncPath(temp))
    return fail(std::move(e));
  if (std::error_code ec = llvm::sys::fs::rename(temp, outDir))
    return fail(fileError(outDir, "cannot move the exported model into place: " + ec.message()));
  return syncPath(parent.empty() ? "." : parent);
}
