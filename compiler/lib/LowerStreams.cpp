//===- LowerStreams.cpp - the plan's streams, its model and init nodes ----===//
//
// What the data and checkpoints are comes from the environment: stream stats from the
// data layer, a Hugging Face checkpoint's config and fingerprint from the runtime's
// readers. A stream without data, or a checkpoint without weights, makes the plan
// provisional; a checkpoint that contradicts the recipe is an error.
//
//===----------------------------------------------------------------------===//
#include "Lowering.h"

#include "mixtape/support/Format.h"

#include <functional>

#include "llvm/Support/FormatVariadic.h"

using namespace mixtape;
using namespace mixtape::lower;

void Lowering::lowerStreams() {
  // Every stream's definition first: the environment reads a derived stream through its
  // root and ancestors.
  for (const StreamSpec &s : recipe.streams) {
    const StreamSpec &root = *recipe.stream(s.root);
    plan::Stream o;
    o.Root = s.root;
    if (!s.parent.empty())
      o.From = s.parent;
    o.Shards = root.shards;
    o.Format = s.format;
    if (!s.tokenizer.empty())
      o.Tokenizer = s.tokenizer;
    o.Eod = s.eod;
    o.Val = s.val;
    o.Where = s.where;
    if (s.transform)
      o.Transform = plan::StreamTransform{*s.transform};
    result.Streams[s.name] = std::move(o);
  }
  for (const StreamSpec &s : recipe.streams) {
    plan::Stream &o = result.Streams[s.name];
    llvm::Expected<std::optional<plan::StreamStats>> st = env.streamStats(result, s.name);
    if (!st) {
      // The data layer names the stream where it knows it; else say which one.
      std::string message = llvm::toString(st.takeError()), self = "stream '" + s.name + "'";
      error(DiagCode::DataError, llvm::StringRef(message).startswith(self) ? message : self + ": " + message);
      continue;
    }
    stats[s.name] = *st;
    if (*st) {
      const plan::StreamStats &x = **st;
      fingerprints[s.name] = x.Fingerprint;
      o.Fingerprint = x.Fingerprint;
      o.TrainTokens = x.TrainTokens;
      o.TrainDocuments = x.TrainDocuments;
      o.ValTokens = x.ValTokens;
      o.ValDocuments = x.ValDocuments;
      if (s.where && x.TrainDocuments == 0)
        diags.report(DiagCode::EmptyFilter, s.whereRange,
                     "stream '" + s.name + "': the filter '" + s.where->canonical() + "' keeps no training document");
    } else {
      fingerprints[s.name] = "provisional:" + o.Shards;
      provisional("stream '" + s.name + "': no data at '" + o.Shards + "'");
    }
  }
  // A derived stream is its parent's documents narrowed: its identity builds on the
  // parent's, so filters anywhere up the chain count.
  std::function<std::string(const std::string &)> identityOf = [&](const std::string &name) {
    if (auto it = identities.find(name); it != identities.end())
      return it->second;
    const plan::Stream &o = result.Streams.at(name);
    std::string parent = o.From ? identityOf(*o.From) : "";
    return identities[name] = plan::streamIdentity(o, fingerprints[name], parent);
  };
  for (const StreamSpec &s : recipe.streams)
    if (fingerprints.count(s.name))
      identityOf(s.name);
}

/// The checkpoint's value of what the recipe's [model] says beside an hf: init: the
/// runtime builds the checkpoint's architecture, so a different one would be a lie.
static std::optional<double> checkpointValue(const plan::CheckpointInfo &c, llvm::StringRef key) {
  if (key == "layers")
    return c.Layers;
  if (key == "d_model")
    return c.DModel;
  if (key == "heads")
    return c.Heads;
  if (key == "kv_heads")
    return c.KVHeads;
  if (key == "ffn")
    return c.Ffn;
  if (key == "vocab")
    return c.Vocab;
  if (key == "max_positions")
    return c.MaxPositions;
  if (key == "rotary_pct")
    return c.RotaryPct;
  return std::nullopt;
}

static double recipeValue(const ModelSpec &m, llvm::StringRef key) {
  return key == "layers"          ? m.layers
         : key == "d_model"       ? m.dModel
         : key == "heads"         ? m.heads
         : key == "kv_heads"      ? m.kvHeads
         : key == "ffn"           ? m.ffn
         : key == "vocab"         ? m.vocab
         : key == "max_positions" ? m.maxPositions
                                  : m.rotaryPct;
}

const std::optional<plan::CheckpointInfo> *Lowering::checkpoint(const std::string &ref) {
  if (unreadableCheckpoints.count(ref))
    return nullptr;
  auto cached = checkpoints.find(ref);
  if (cached != checkpoints.end())
    return &cached->second;
  llvm::Expected<std::optional<plan::CheckpointInfo>> info = env.checkpoint(recipePath(llvm::StringRef(ref).drop_front(3)));
  if (!info) {
    error(DiagCode::DataError, "checkpoint '" + ref + "': " + llvm::toString(info.takeError()));
    unreadableCheckpoints.insert(ref);
    return nullptr;
  }
  return &(checkpoints[ref] = std::move(*info));
}

void Lowering::lowerModel() {
  ModelSpec m = recipe.model;
  if (llvm::StringRef(m.init).startswith("hf:")) {
    std::string folder = recipePath(llvm::StringRef(m.init).drop_front(3));
    const std::optional<plan::CheckpointInfo> *info = checkpoint(m.init);
    if (info && !*info) {
      provisional("model: no config.json in '" + m.init + "'");
    } else if (info) {
      const plan::CheckpointInfo &c = **info;
      if (c.Family != m.family) {
        llvm::StringRef want = c.Family ? plan::enumName(*c.Family) : llvm::StringRef("?");
        error(DiagCode::DataError, c.ConfigPath + ": the checkpoint's model_type '" + c.ModelType +
                                       "' is not the recipe's model family '" + plan::enumName(m.family).str() +
                                       "' (set family = \"" + want.str() + "\" in [model])");
      } else {
        for (const auto &[key, range] : m.writtenSizes)
          if (std::optional<double> theirs = checkpointValue(c, key); theirs && *theirs != recipeValue(m, key))
            diags.report(DiagCode::DataError, range,
                         llvm::formatv("{0} = {1}, but the checkpoint '{2}' has {3} ({4}); the runtime builds the "
                                       "checkpoint's model: remove '{0}' or make it equal",
                                       key, formatNumber(recipeValue(m, key)), m.init, formatNumber(*theirs),
                                       c.ConfigPath)
                             .str());
        m.layers = c.Layers;
        m.dModel = c.DModel;
        m.heads = c.Heads;
        m.kvHeads = c.KVHeads;
        m.ffn = c.Ffn;
        m.vocab = c.Vocab;
        if (!m.ropeThetaWritten)
          m.ropeTheta = c.RopeTheta;
        m.rotaryPct = c.RotaryPct;
        if (m.family == Family::GPT2)
          m.maxPositions = c.MaxPositions;
        checkTokenizerFits(c.Vocab, folder);
      }
    }
  }
  modelRopeTheta = m.ropeTheta;
  if (!m.vocab) {
    for (const auto &[name, st] : stats)
      if (st && st->VocabSize)
        m.vocab = st->VocabSize;
    if (!m.vocab && m.tokenizer == "bytes")
      m.vocab = kBytesVocab;
  }
  uint64_t headDim = m.heads ? m.dModel / m.heads : 0;
  double attention = static_cast<double>(m.dModel) * (m.dModel + 2 * m.kvHeads * headDim) + double(m.dModel) * m.dModel;
  double mlp = (m.family == Family::Llama ? 3.0 : 2.0) * m.dModel * m.ffn;
  // 6 N per token counts the output projection too (the input embedding is a lookup).
  nonEmbeddingParams = m.layers * (attention + mlp) + double(m.vocab) * m.dModel;
  result.Model = plan::Architecture{m.family, m.vocab,        m.layers,    m.dModel,
                                    m.heads,  m.kvHeads,      m.ffn,       m.maxPositions,
                                    m.rotaryPct, m.tokenizer, m.family == Family::GPT2};
}

void Lowering::checkTokenizerFits(uint64_t checkpointVocab, llvm::StringRef folder) {
  // Every token id the data holds must have a row in the checkpoint's embedding: the
  // tokenizer's vocabulary from the streams' manifests, else the byte tokenizer's, else a
  // tokenizer = "hf:..." file's.
  uint64_t vocab = 0;
  std::string source;
  for (const auto &[name, st] : stats)
    if (st && st->VocabSize > vocab) {
      vocab = st->VocabSize;
      source = "stream '" + name + "'" + (st->Tokenizer.empty() ? "" : ", tokenizer '" + st->Tokenizer + "'");
    }
  if (!vocab && recipe.model.tokenizer == "bytes") {
    vocab = kBytesVocab;
    source = "the byte tokenizer";
  } else if (!vocab) {
    std::string path = recipePath(llvm::StringRef(recipe.model.tokenizer).drop_front(3));
    llvm::Expected<std::optional<uint64_t>> fromFile = env.tokenizerVocabulary(path);
    if (!fromFile) {
      error(DiagCode::DataError, llvm::toString(fromFile.takeError()));
      return;
    }
    vocab = fromFile->value_or(0);
    source = path;
  }
  if (vocab > checkpointVocab)
    error(DiagCode::DataError, llvm::formatv("the tokenizer's vocabulary of {0} tokens ({1}) exceeds the checkpoint's "
                                             "vocab_size {2} ({3}/config.json)",
                                             vocab, source, checkpointVocab, folder)
                                   .str());
}

size_t Lowering::addInit(const std::string &name, const std::string &init) {
  plan::InitNode n;
  n.Settings.Model = result.Model;
  n.Settings.Init = init;
  if (init == "random")
    n.Settings.Seed = recipe.seed;
  bool absent = false;
  if (llvm::StringRef(init).startswith("hf:")) {
    // The checkpoint's identity: its content, not its path or its files' times.
    if (const std::optional<plan::CheckpointInfo> *info = checkpoint(init)) {
      if (*info && !(*info)->Fingerprint.empty())
        n.Settings.Checkpoint = (*info)->Fingerprint;
      else
        absent = true;
    }
  }
  plan::Node node = plan::makeNode(name, std::move(n));
  if (absent) {
    node.Provisional = true;
    provisional("checkpoint '" + init + "': no model.safetensors");
  }
  return addNode(std::move(node), {});
}
