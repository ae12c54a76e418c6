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
  for (const StreamSpec &s : Recipe.Streams) {
    const StreamSpec &root = *Recipe.stream(s.Root);
    plan::Stream o;
    o.Root = s.Root;
    if (!s.Parent.empty())
      o.From = s.Parent;
    o.Shards = root.Shards;
    o.Format = s.Format;
    if (!s.Tokenizer.empty())
      o.Tokenizer = s.Tokenizer;
    o.Eod = s.Eod;
    o.Val = s.Val;
    o.Where = s.Where;
    o.Transform = s.Transform;
    if (o.Transform && o.Transform->ControlTokens)
      findControlTokens(s, *o.Transform->ControlTokens);
    Result.Streams[s.Name] = std::move(o);
  }
  for (const StreamSpec &s : Recipe.Streams) {
    plan::Stream &o = Result.Streams[s.Name];
    llvm::Expected<std::optional<plan::StreamStats>> st = Env.streamStats(Result, s.Name);
    if (!st) {
      // The data layer names the stream where it knows it; else say which one.
      std::string message = llvm::toString(st.takeError()), self = "stream '" + s.Name + "'";
      error(DiagCode::DataError, llvm::StringRef(message).startswith(self) ? message : self + ": " + message);
      continue;
    }
    Stats[s.Name] = *st;
    if (*st) {
      const plan::StreamStats &x = **st;
      Fingerprints[s.Name] = x.Fingerprint;
      o.Fingerprint = x.Fingerprint;
      o.TrainTokens = x.TrainTokens;
      o.TrainDocuments = x.TrainDocuments;
      o.ValTokens = x.ValTokens;
      o.ValDocuments = x.ValDocuments;
      if (s.Where && x.TrainDocuments == 0)
        Diags.report(DiagCode::EmptyFilter, s.WhereRange,
                     "stream '" + s.Name + "': the filter '" + s.Where->canonical() + "' keeps no training document");
    } else {
      Fingerprints[s.Name] = "provisional:" + o.Shards;
      provisional("stream '" + s.Name + "': no data at '" + o.Shards + "'");
    }
  }
  // A derived stream is its parent's documents narrowed: its identity builds on the
  // parent's, so filters anywhere up the chain count.
  std::function<std::string(const std::string &)> identityOf = [&](const std::string &name) {
    if (auto it = Identities.find(name); it != Identities.end())
      return it->second;
    const plan::Stream &o = Result.Streams.at(name);
    std::string parent = o.From ? identityOf(*o.From) : "";
    return Identities[name] = plan::streamIdentity(o, Fingerprints[name], parent);
  };
  for (const StreamSpec &s : Recipe.Streams)
    if (Fingerprints.count(s.Name))
      identityOf(s.Name);
}

void Lowering::findControlTokens(const StreamSpec &s, plan::ControlTokens &t) {
  const std::string &tokenizer = Recipe.tokenizerOf(s.Name);
  if (!llvm::StringRef(tokenizer).startswith("hf:"))
    return; // Sema found the byte tokenizer's
  for (auto [token, range] : {std::pair(&t.Good, s.GoodRange), std::pair(&t.Bad, s.BadRange)}) {
    if (!*token)
      continue;
    const std::optional<std::vector<std::string>> &tokens = tokenizerTokens(tokenizer, range);
    if (!tokens)
      return;
    auto id = llvm::find(*tokens, (*token)->Text);
    if (id != tokens->end()) {
      (*token)->Id = static_cast<uint64_t>(id - tokens->begin());
      continue;
    }
    // Control tokens are the file's added tokens: a text that is none of its tokens would
    // encode to several ids.
    Diagnostic &d = Diags.report(DiagCode::TokenizerMismatch, range,
                                 "'" + (*token)->Text + "' is not a token of '" + tokenizer +
                                     "': add it to the tokenizer.json's added_tokens");
    std::vector<std::string> special;
    for (const std::string &text : *tokens)
      if (llvm::StringRef(text).startswith("<") && llvm::StringRef(text).endswith(">"))
        special.push_back(text);
    DiagnosticEngine::suggest(d, (*token)->Text, special, range);
  }
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

const std::optional<plan::CheckpointInfo> *Lowering::checkpoint(const std::string &ref) {
  if (UnreadableCheckpoints.count(ref))
    return nullptr;
  auto cached = Checkpoints.find(ref);
  if (cached != Checkpoints.end())
    return &cached->second;
  llvm::Expected<std::optional<plan::CheckpointInfo>> info = Env.checkpoint(recipePath(llvm::StringRef(ref).drop_front(3)));
  if (!info) {
    error(DiagCode::DataError, "checkpoint '" + ref + "': " + llvm::toString(info.takeError()));
    UnreadableCheckpoints.insert(ref);
    return nullptr;
  }
  return &(Checkpoints[ref] = std::move(*info));
}

void Lowering::lowerModel() {
  ModelSpec m = Recipe.Model;
  if (llvm::StringRef(m.Init).startswith("hf:")) {
    std::string folder = recipePath(llvm::StringRef(m.Init).drop_front(3));
    const std::optional<plan::CheckpointInfo> *info = checkpoint(m.Init);
    if (info && !*info) {
      provisional("model: no config.json in '" + m.Init + "'");
    } else if (info) {
      const plan::CheckpointInfo &c = **info;
      if (c.Family != m.Family) {
        llvm::StringRef want = c.Family ? plan::enumName(*c.Family) : llvm::StringRef("?");
        error(DiagCode::DataError, c.ConfigPath + ": the checkpoint's model_type '" + c.ModelType +
                                       "' is not the recipe's model family '" + plan::enumName(m.Family).str() +
                                       "' (set family = \"" + want.str() + "\" in [model])");
      } else {
        for (const auto &[key, range] : m.WrittenSizes)
          if (std::optional<double> theirs = checkpointValue(c, key); theirs && *theirs != m.size(key))
            Diags.report(DiagCode::DataError, range,
                         llvm::formatv("{0} = {1}, but the checkpoint '{2}' has {3} ({4}); the runtime builds the "
                                       "checkpoint's model: remove '{0}' or make it equal",
                                       key, formatNumber(m.size(key)), m.Init, formatNumber(*theirs),
                                       c.ConfigPath)
                             .str());
        m.Layers = c.Layers;
        m.DModel = c.DModel;
        m.Heads = c.Heads;
        m.KVHeads = c.KVHeads;
        m.Ffn = c.Ffn;
        m.Vocab = c.Vocab;
        if (!m.RopeThetaWritten)
          m.RopeTheta = c.RopeTheta;
        m.RotaryPct = c.RotaryPct;
        if (m.Family == Family::GPT2)
          m.MaxPositions = c.MaxPositions;
        checkTokenizerFits(c.Vocab, folder);
      }
    }
  }
  ModelRopeTheta = m.RopeTheta;
  if (!m.Vocab) {
    for (const auto &[name, st] : Stats)
      if (st && st->VocabSize && Recipe.inModelTokenizer(name))
        m.Vocab = st->VocabSize;
    if (!m.Vocab && m.Tokenizer == "bytes")
      m.Vocab = kBytesVocab;
  }
  // Sema checked the sizes the recipe writes; a checkpoint's and the tokenizer's come in here.
  if (std::string problem = m.sizeProblem(); !problem.empty())
    error(DiagCode::BadValue, problem);
  Result.Model = plan::Architecture{m.Family, m.Vocab,        m.Layers,    m.DModel,
                                    m.Heads,  m.KVHeads,      m.Ffn,       m.MaxPositions,
                                    m.RotaryPct, m.Tokenizer, m.Family == Family::GPT2};
  // With size axes the plan's model is the first size's; each init node holds its own.
  if (!Recipe.Sizes.empty())
    Result.Model = sizeArchitecture(0);
}

plan::Architecture Lowering::checkpointArchitecture(const plan::CheckpointInfo &c) const {
  const bool gpt2 = c.Family == Family::GPT2;
  return plan::Architecture{*c.Family, c.Vocab,     c.Layers,   c.DModel,
                            c.Heads,   c.KVHeads,   c.Ffn,      gpt2 ? c.MaxPositions : Result.Model.MaxPositions,
                            c.RotaryPct, Result.Model.Tokenizer, gpt2};
}

plan::Architecture Lowering::sizeArchitecture(size_t i) const {
  return Recipe.Sizes[i].Model.withSizes(Result.Model);
}

void Lowering::checkTokenizerFits(uint64_t checkpointVocab, llvm::StringRef folder) {
  // Every token id the data holds must have a row in the checkpoint's embedding: the
  // tokenizer's vocabulary from the streams' manifests, else the byte tokenizer's, else a
  // tokenizer = "hf:..." file's.
  uint64_t vocab = 0;
  std::string source;
  for (const auto &[name, st] : Stats)
    if (st && st->VocabSize > vocab && Recipe.inModelTokenizer(name)) {
      vocab = st->VocabSize;
      source = "stream '" + name + "'" + (st->Tokenizer.empty() ? "" : ", tokenizer '" + st->Tokenizer + "'");
    }
  if (!vocab && Recipe.Model.Tokenizer == "bytes") {
    vocab = kBytesVocab;
    source = "the byte tokenizer";
  } else if (!vocab) {
    std::string path = recipePath(llvm::StringRef(Recipe.Model.Tokenizer).drop_front(3));
    llvm::Expected<std::optional<uint64_t>> fromFile = Env.tokenizerVocabulary(path);
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

size_t Lowering::addInit(const std::string &name, const std::string &init, const plan::Architecture &model) {
  plan::InitNode n;
  n.Settings.Model = model;
  n.Settings.Init = init;
  if (init == "random")
    n.Settings.Seed = Recipe.Seed;
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
