//===- PlanLowering.cpp - checked recipe -> execution graph ---------------===//
//
// Each stage variant becomes a chain of train nodes. Variants of a stage that share their
// start (input node and data cursors) and every setting but their length train one chain,
// cut wherever one of them ends or a child stage branches off; so branches share the run
// up to their points and a variant trained through a shared prefix sees the same data as
// alone. Data cursors (token offsets into each stream's global order) flow from node to
// node. Every node is hashed over its settings, its inputs' hashes, the data fingerprints
// and the format and semantics versions — never over names.
//
//===----------------------------------------------------------------------===//
#include "mixtape/compiler/Plan.h"

#include "mixtape/compiler/Blend.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SHA256.h"

#include <cmath>
#include <set>

using namespace mixtape;
using llvm::json::Array;
using llvm::json::Object;

llvm::StringRef mixtape::nodeKindName(NodeKind kind) {
  switch (kind) {
  case NodeKind::Init: return "init";
  case NodeKind::Train: return "train";
  case NodeKind::Eval: return "eval";
  case NodeKind::Merge: return "merge";
  }
  return "node";
}

std::string PlanNode::dirName() const {
  std::string safe;
  for (char c : name)
    safe += llvm::isAlnum(c) || c == '-' || c == '_' || c == '=' ? c : '.';
  return safe + "-" + hash.substr(0, 12);
}

int Plan::findNode(llvm::StringRef name) const {
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].name == name)
      return static_cast<int>(i);
  return -1;
}

namespace {

using Cursors = std::map<std::string, uint64_t>;

Object cursorsJSON(const Cursors &c) {
  Object o;
  for (const auto &[stream, offset] : c)
    o[stream] = static_cast<int64_t>(offset);
  return o;
}

std::string canonical(const llvm::json::Value &v) {
  // llvm::json prints object keys sorted and doubles in shortest round-trip form: equal
  // values (3e-4, 0.0003) print equally, key order never matters.
  std::string out;
  llvm::raw_string_ostream os(out);
  os << v;
  return out;
}

std::string sha256Hex(llvm::StringRef text) {
  llvm::SHA256 sha;
  sha.update(text);
  return llvm::toHex(sha.final(), /*LowerCase=*/true);
}

llvm::StringRef familyName(Family f) {
  return f == Family::GPT2 ? "gpt2" : f == Family::Llama ? "llama" : "gpt_neox";
}

/// A safetensors file's 8-byte length and header, without its tensor data.
llvm::Expected<std::string> safetensorsHeader(llvm::StringRef path, uint64_t fileSize) {
  auto fail = [&](const llvm::Twine &what) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(), path + ": " + what);
  };
  auto head = llvm::MemoryBuffer::getFileSlice(path, 8, 0);
  if (fileSize < 8 || !head)
    return fail("too short for a safetensors header");
  uint64_t length = llvm::support::endian::read64le((*head)->getBufferStart());
  if (length > (100u << 20) || length > fileSize - 8)
    return fail(llvm::formatv("safetensors header length {0} is beyond the file's {1} bytes or the 100 MiB limit",
                              length, fileSize));
  auto header = llvm::MemoryBuffer::getFileSlice(path, length, 8);
  if (!header)
    return fail("cannot read: " + header.getError().message());
  return (*head)->getBuffer().str() + (*header)->getBuffer().str();
}

/// The identity of a Hugging Face checkpoint folder, cheap enough for every plan: SHA-256
/// over config.json and, for each weights file (model.safetensors, or the index and the
/// shards it names), its name, size and safetensors header. The header fixes every
/// tensor's name, dtype, shape and offsets; the weights themselves are never read, and
/// touching the files changes nothing. nullopt: the folder has no weights.
llvm::Expected<std::optional<std::string>> checkpointFingerprint(llvm::StringRef dir) {
  llvm::SHA256 sha;
  auto join = [&](llvm::StringRef name) {
    llvm::SmallString<256> p(dir);
    llvm::sys::path::append(p, name);
    return std::string(p);
  };
  auto addFile = [&](llvm::StringRef name, llvm::StringRef bytes) {
    sha.update(llvm::formatv("{0}\n{1}\n", name, bytes.size()).str());
    sha.update(bytes);
  };
  auto addWeights = [&](llvm::StringRef name) -> llvm::Error {
    uint64_t size = 0;
    if (std::error_code ec = llvm::sys::fs::file_size(join(name), size))
      return llvm::createStringError(ec, join(name) + ": " + ec.message());
    llvm::Expected<std::string> header = safetensorsHeader(join(name), size);
    if (!header)
      return header.takeError();
    sha.update(llvm::formatv("{0}\n{1}\n", name, size).str());
    sha.update(*header);
    return llvm::Error::success();
  };
  if (auto config = llvm::MemoryBuffer::getFile(join("config.json")))
    addFile("config.json", (*config)->getBuffer());
  if (llvm::sys::fs::exists(join("model.safetensors"))) {
    if (llvm::Error e = addWeights("model.safetensors"))
      return e;
  } else if (auto index = llvm::MemoryBuffer::getFile(join("model.safetensors.index.json"))) {
    addFile("model.safetensors.index.json", (*index)->getBuffer());
    llvm::Expected<llvm::json::Value> json = llvm::json::parse((*index)->getBuffer());
    if (!json)
      return llvm::createStringError(llvm::inconvertibleErrorCode(), join("model.safetensors.index.json") + ": " +
                                                                         llvm::toString(json.takeError()));
    const Object *o = json->getAsObject();
    const Object *weightMap = o ? o->getObject("weight_map") : nullptr;
    if (!weightMap)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     join("model.safetensors.index.json") + ": no \"weight_map\" object");
    std::set<std::string> shards;
    for (const auto &kv : *weightMap) {
      llvm::StringRef shard = kv.second.getAsString().getValueOr("");
      if (shard.empty() || shard == "." || shard == ".." || shard.find_first_of("/\\") != llvm::StringRef::npos)
        return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                       join("model.safetensors.index.json") + ": shard '" + shard +
                                           "' is not a file in the checkpoint's folder");
      shards.insert(shard.str());
    }
    for (const std::string &shard : shards)
      if (llvm::Error e = addWeights(shard))
        return e;
  } else {
    return std::optional<std::string>();
  }
  return std::optional<std::string>("sha256:" + llvm::toHex(sha.final(), /*LowerCase=*/true));
}

/// A stage variant, lowered.
struct LoweredVariant {
  size_t startNode = 0;
  Cursors startCursors;
  size_t group = 0;
  std::vector<size_t> nodes;      ///< its chain of train nodes, in order
  std::set<std::string> trainedOn; ///< roots of data seen by the end of this variant
};

/// Variants of one stage that train one shared chain.
struct Group {
  size_t firstVariant = 0;
  std::vector<uint64_t> cuts;                       ///< step boundaries, ascending, > 0
  std::map<uint64_t, std::vector<uint64_t>> counts; ///< step -> samples per mixture stream
  std::map<uint64_t, size_t> nodeEndingAt;          ///< step -> node index
};

class Lowering {
public:
  Lowering(const CheckedRecipe &recipe, DataCatalog &catalog, const CostModel &cost, DiagnosticEngine &diags,
           llvm::StringRef file)
      : recipe(recipe), catalog(catalog), diags(diags), file(file.str()) {
    plan.recipe = recipe.name;
    llvm::SmallString<256> dir(recipe.baseDir.empty() ? "." : recipe.baseDir);
    llvm::sys::fs::make_absolute(dir);
    llvm::sys::path::remove_dots(dir, /*remove_dot_dot=*/true);
    plan.recipeDir = std::string(dir);
    plan.seed = recipe.seed;
    plan.cost = cost;
  }

  std::optional<Plan> run() {
    lowerStreams();
    if (diags.errorCount())
      return std::nullopt;
    lowerModel();
    initNode = addInit("init", recipe.model.init);
    for (size_t s = 0; s < recipe.stages.size(); ++s)
      lowerStage(s);
    lowerMerges();
    lowerAblations();
    lowerEvals();
    ledgerLints();
    for (const PlanNode &n : plan.nodes)
      if (n.kind == NodeKind::Train)
        plannedTokens += n.tokens;
    plan.sharedTokens = plan.variantTokens > plannedTokens ? plan.variantTokens - plannedTokens : 0;
    if (diags.errorCount())
      return std::nullopt;
    return std::move(plan);
  }

private:
  const CheckedRecipe &recipe;
  DataCatalog &catalog;
  DiagnosticEngine &diags;
  std::string file;
  Plan plan;
  std::map<std::string, std::optional<StreamStats>> stats;
  std::map<std::string, std::string> fingerprints;
  /// What a stream is, without its name: data fingerprint, split, filter, unit, transform.
  std::map<std::string, std::string> identities;
  size_t initNode = 0;
  std::map<std::string, size_t> hfInits;
  std::vector<std::vector<LoweredVariant>> variants; // per stage
  std::vector<size_t> mergeNodes;
  std::vector<std::vector<size_t>> ablationNodes;      // per ablation: the combination merges
  std::map<std::string, size_t> byHash;
  uint64_t plannedTokens = 0;
  double nonEmbeddingParams = 0;

  void error(DiagCode code, const std::string &message) { diags.reportFile(code, file, message); }

  //===--------------------------------------------------------------------===//
  // Streams and model
  //===--------------------------------------------------------------------===//

  void lowerStreams() {
    for (const StreamSpec &s : recipe.streams) {
      llvm::Expected<std::optional<StreamStats>> st = catalog.stats(s, recipe);
      if (!st) {
        // The data layer names the stream where it knows it; else say which one.
        std::string message = llvm::toString(st.takeError()), self = "stream '" + s.name + "'";
        error(DiagCode::DataError, llvm::StringRef(message).startswith(self) ? message : self + ": " + message);
        continue;
      }
      stats[s.name] = *st;
      Object o{{"root", s.root}, {"val", s.val}, {"format", s.format}};
      if (!s.parent.empty())
        o["from"] = s.parent;
      o["shards"] = recipe.stream(s.root)->shards;
      if (!s.tokenizer.empty())
        o["tokenizer"] = s.tokenizer;
      if (s.eod != "auto")
        o["eod"] = s.eod;
      if (s.where)
        o["where"] = s.where->canonical();
      if (s.transform) {
        Object chunks;
        for (auto [count, p] : s.transform->chunkProbabilities)
          chunks[std::to_string(count)] = p;
        o["transform"] = Object{{"untie_knots", Object{{"chunks", std::move(chunks)}, {"keep_order", s.transform->keepOrder}}}};
      }
      if (*st) {
        const StreamStats &x = **st;
        fingerprints[s.name] = x.fingerprint;
        o["fingerprint"] = x.fingerprint;
        o["train_tokens"] = static_cast<int64_t>(x.trainTokens);
        o["train_documents"] = static_cast<int64_t>(x.trainDocuments);
        o["val_tokens"] = static_cast<int64_t>(x.valTokens);
        o["val_documents"] = static_cast<int64_t>(x.valDocuments);
        if (s.where && x.trainDocuments == 0)
          error(DiagCode::EmptyFilter, "stream '" + s.name + "': the filter '" + s.where->canonical() +
                                           "' keeps no training document");
      } else {
        fingerprints[s.name] = "provisional:" + recipe.stream(s.root)->shards;
        o["fingerprint"] = nullptr;
        plan.provisional = true;
        plan.provisionalReasons.push_back("stream '" + s.name + "': no data at '" + recipe.stream(s.root)->shards + "'");
      }
      Object identity{{"fingerprint", fingerprints[s.name]}, {"val", s.val}};
      for (const char *k : {"where", "transform"})
        if (const llvm::json::Value *v = o.get(k))
          identity[k] = *v;
      identities[s.name] = "stream:" + sha256Hex(canonical(llvm::json::Value(std::move(identity))));
      plan.streams[s.name] = std::move(o);
    }
  }

  /// Settings as hashed: stream names replaced by the streams' identities, so renaming a
  /// stream (or a stage: names are never in settings) changes no hash.
  llvm::json::Value anonymized(const Object &settings) {
    Object out = settings;
    auto rename = [&](const std::string &name) { return identities.count(name) ? identities[name] : name; };
    auto renameKeys = [&](Object *o) {
      if (!o)
        return;
      Object renamed;
      for (const auto &kv : *o)
        renamed[rename(kv.first.str())] = kv.second;
      *o = std::move(renamed);
    };
    if (Object *mix = out.getObject("mixture"))
      if (llvm::json::Array *streams = mix->getArray("streams"))
        for (llvm::json::Value &v : *streams)
          v = rename(v.getAsString()->str());
    if (Object *data = out.getObject("data")) {
      renameKeys(data->getObject("cursors"));
      renameKeys(data->getObject("samples"));
    }
    if (llvm::json::Array *splits = out.getArray("splits"))
      for (llvm::json::Value &split : *splits)
        if (llvm::json::Array *pair = split.getAsArray(); pair && !pair->empty())
          (*pair)[0] = rename((*pair)[0].getAsString()->str());
    return out;
  }

  /// The folder an `hf:PATH` reference names (relative to the recipe).
  std::string hfFolder(llvm::StringRef ref) {
    llvm::SmallString<256> dir(recipe.baseDir);
    llvm::sys::path::append(dir, ref.drop_front(3));
    return std::string(dir);
  }

  /// Sizes of a Hugging Face checkpoint from its config.json, when it is there, and the
  /// checkpoint's family, which must be the recipe's. Returns its vocab_size (0: unknown).
  uint64_t readHfConfig(ModelSpec &m) {
    llvm::SmallString<256> path(hfFolder(m.init));
    llvm::sys::path::append(path, "config.json");
    auto buffer = llvm::MemoryBuffer::getFile(path);
    if (!buffer) {
      plan.provisional = true;
      plan.provisionalReasons.push_back("model: no config.json in '" + m.init + "'");
      return 0;
    }
    llvm::Expected<llvm::json::Value> json = llvm::json::parse((*buffer)->getBuffer());
    const Object *o = json ? json->getAsObject() : nullptr;
    if (!o) {
      if (!json)
        llvm::consumeError(json.takeError());
      error(DiagCode::DataError, std::string(path) + ": not a JSON object");
      return 0;
    }
    // transformers' model_type; Mistral and Qwen2 are Llama-family architectures.
    llvm::StringRef type = o->getString("model_type").getValueOr("");
    llvm::StringRef family = type == "mistral" || type == "qwen2" ? "llama" : type;
    if (family != familyName(m.family)) {
      error(DiagCode::DataError, std::string(path) + ": the checkpoint's model_type '" + type.str() +
                                     "' is not the recipe's model family '" + familyName(m.family).str() +
                                     "' (set family = \"" + (family.empty() ? "?" : family.str()) +
                                     "\" in [model])");
      return 0;
    }
    auto get = [&](std::initializer_list<const char *> keys) -> uint64_t {
      for (const char *k : keys)
        if (auto v = o->getInteger(k))
          return static_cast<uint64_t>(*v);
      return 0;
    };
    // transformers 5 moved the RoPE settings into "rope_parameters".
    auto rope = [&](const char *key, const char *legacyKey) -> llvm::Optional<double> {
      if (const Object *params = o->getObject("rope_parameters"))
        if (auto v = params->getNumber(key))
          return v;
      return o->getNumber(legacyKey);
    };
    m.layers = m.layers ? m.layers : get({"num_hidden_layers", "n_layer"});
    m.dModel = m.dModel ? m.dModel : get({"hidden_size", "n_embd"});
    m.heads = m.heads ? m.heads : get({"num_attention_heads", "n_head"});
    m.kvHeads = get({"num_key_value_heads"});
    if (!m.kvHeads)
      m.kvHeads = m.heads;
    m.ffn = get({"intermediate_size", "n_inner"});
    if (!m.ffn)
      m.ffn = 4 * m.dModel;
    uint64_t checkpointVocab = get({"vocab_size"});
    m.vocab = m.vocab ? m.vocab : checkpointVocab;
    if (auto theta = rope("rope_theta", m.family == Family::GPTNeoX ? "rotary_emb_base" : "rope_theta"))
      m.ropeTheta = *theta;
    if (m.family == Family::GPTNeoX)
      m.rotaryPct = rope("partial_rotary_factor", "rotary_pct").getValueOr(0.25);
    if (uint64_t positions = get({"n_positions"}); m.family == Family::GPT2 && positions)
      m.maxPositions = positions;
    return checkpointVocab;
  }

  /// The tokenizer's vocabulary: from the streams' manifests, else the embedded byte
  /// tokenizer's, else a `tokenizer = "hf:..."` tokenizer.json's (its largest id + 1).
  /// 0 when unknown; `source` says where it came from.
  uint64_t tokenizerVocab(const ModelSpec &m, std::string &source) {
    uint64_t fromData = 0;
    for (const auto &[name, st] : stats)
      if (st && st->vocabSize > fromData) {
        fromData = st->vocabSize;
        source = "stream '" + name + "'" + (st->tokenizer.empty() ? "" : ", tokenizer '" + st->tokenizer + "'");
      }
    if (fromData)
      return fromData;
    if (m.tokenizer == "bytes") {
      source = "the byte tokenizer";
      return kBytesVocab;
    }
    std::string path = hfFolder(m.tokenizer);
    auto buffer = llvm::MemoryBuffer::getFile(path);
    if (!buffer)
      return 0;
    llvm::Expected<llvm::json::Value> json = llvm::json::parse((*buffer)->getBuffer());
    if (!json) {
      llvm::consumeError(json.takeError());
      return 0;
    }
    const Object *o = json->getAsObject();
    int64_t largest = -1;
    if (const Object *model = o ? o->getObject("model") : nullptr)
      if (const Object *vocab = model->getObject("vocab"))
        for (const auto &kv : *vocab)
          largest = std::max(largest, kv.second.getAsInteger().getValueOr(-1));
    if (const llvm::json::Array *added = o ? o->getArray("added_tokens") : nullptr)
      for (const llvm::json::Value &t : *added)
        if (const Object *token = t.getAsObject())
          largest = std::max(largest, token->getInteger("id").getValueOr(-1));
    source = path;
    return static_cast<uint64_t>(largest + 1);
  }

  double modelRopeTheta = 10000;

  void lowerModel() {
    ModelSpec m = recipe.model;
    if (llvm::StringRef(m.init).startswith("hf:")) {
      // Every token id the data holds must have a row in the checkpoint's embedding.
      std::string source;
      uint64_t checkpointVocab = readHfConfig(m), vocab = tokenizerVocab(m, source);
      if (checkpointVocab && vocab > checkpointVocab)
        error(DiagCode::DataError,
              llvm::formatv("the tokenizer's vocabulary of {0} tokens ({1}) exceeds the checkpoint's vocab_size "
                            "{2} ({3}/config.json)",
                            vocab, source, checkpointVocab, hfFolder(m.init))
                  .str());
    }
    modelRopeTheta = m.ropeTheta;
    if (!m.vocab) {
      for (const auto &[name, st] : stats)
        if (st && st->vocabSize)
          m.vocab = st->vocabSize;
      if (!m.vocab && m.tokenizer == "bytes")
        m.vocab = kBytesVocab;
    }
    uint64_t headDim = m.heads ? m.dModel / m.heads : 0;
    double attention = static_cast<double>(m.dModel) * (m.dModel + 2 * m.kvHeads * headDim) + double(m.dModel) * m.dModel;
    double mlp = (m.family == Family::Llama ? 3.0 : 2.0) * m.dModel * m.ffn;
    // 6 N per token counts the output projection too (the input embedding is a lookup).
    nonEmbeddingParams = m.layers * (attention + mlp) + double(m.vocab) * m.dModel;
    plan.model = Object{{"family", familyName(m.family)},
                        {"vocab", static_cast<int64_t>(m.vocab)},
                        {"layers", static_cast<int64_t>(m.layers)},
                        {"d_model", static_cast<int64_t>(m.dModel)},
                        {"heads", static_cast<int64_t>(m.heads)},
                        {"kv_heads", static_cast<int64_t>(m.kvHeads)},
                        {"ffn", static_cast<int64_t>(m.ffn)},
                        {"max_positions", static_cast<int64_t>(m.maxPositions)},
                        {"rotary_pct", m.rotaryPct},
                        {"tokenizer", m.tokenizer},
                        {"tie_embeddings", m.family == Family::GPT2}};
  }

  //===--------------------------------------------------------------------===//
  // Nodes
  //===--------------------------------------------------------------------===//

  /// Hash and add a node, or return the existing node with the same hash.
  size_t addNode(PlanNode node, const std::vector<std::string> &streamsUsed) {
    Array inputs;
    for (size_t i : node.inputs) {
      inputs.push_back(plan.nodes[i].hash);
      node.provisional |= plan.nodes[i].provisional;
    }
    Array data;
    for (const std::string &s : streamsUsed) {
      data.push_back(identities.count(s) ? identities[s] : s);
      node.provisional |= llvm::StringRef(fingerprints[s]).startswith("provisional:");
    }
    int64_t semantics = node.kind == NodeKind::Init    ? SemanticsVersions::Init
                        : node.kind == NodeKind::Train ? SemanticsVersions::Train
                        : node.kind == NodeKind::Eval  ? SemanticsVersions::Eval
                                                       : SemanticsVersions::Merge;
    Object covered{{"format_version", kPlanFormatVersion}, {"kind", nodeKindName(node.kind)},
                   {"semantics_version", semantics},    {"settings", anonymized(node.settings)},
                   {"inputs", std::move(inputs)},      {"data", std::move(data)}};
    node.hash = sha256Hex(canonical(llvm::json::Value(std::move(covered))));
    auto [it, fresh] = byHash.emplace(node.hash, plan.nodes.size());
    if (!fresh) {
      PlanNode &existing = plan.nodes[it->second];
      for (const std::string &v : node.variants)
        if (!llvm::is_contained(existing.variants, v))
          existing.variants.push_back(v);
      return it->second;
    }
    plan.nodes.push_back(std::move(node));
    return plan.nodes.size() - 1;
  }

  size_t addInit(const std::string &name, const std::string &init) {
    PlanNode n;
    n.kind = NodeKind::Init;
    n.name = name;
    n.settings = Object{{"model", Object(plan.model)}, {"init", init}};
    if (init == "random")
      n.settings["seed"] = static_cast<int64_t>(recipe.seed);
    if (llvm::StringRef(init).startswith("hf:")) {
      // The checkpoint's identity: its content, not its path or its files' times.
      llvm::Expected<std::optional<std::string>> fingerprint = checkpointFingerprint(hfFolder(init));
      if (!fingerprint) {
        error(DiagCode::DataError, "checkpoint '" + init + "': " + llvm::toString(fingerprint.takeError()));
        n.settings["checkpoint"] = nullptr;
      } else if (!*fingerprint) {
        n.provisional = true;
        n.settings["checkpoint"] = nullptr;
        plan.provisional = true;
        plan.provisionalReasons.push_back("checkpoint '" + init + "': no model.safetensors");
      } else {
        n.settings["checkpoint"] = **fingerprint;
      }
    }
    return addNode(std::move(n), {});
  }

  //===--------------------------------------------------------------------===//
  // Stages
  //===--------------------------------------------------------------------===//

  /// Settings a stage variant's chain shares (everything but its length).
  Object chainSettings(const StageVariant &v) {
    const OptimizerSpec &o = v.optimizer;
    Object settings{{"seq_len", static_cast<int64_t>(v.seqLen)},
                    {"batch_sequences", static_cast<int64_t>(v.batchSequences)},
                    // A base the recipe never wrote is the checkpoint's (hf: init), not 10000.
                    {"rope_theta", v.ropeThetaWritten ? v.ropeTheta : modelRopeTheta},
                    {"attention", v.attention == Attention::WithinDocument ? "within_document" : "causal"},
                    {"lr", scheduleJSON(v.lr, v.horizon)},
                    {"mixture", mixtureJSON(v.mixture)},
                    {"optimizer", Object{{"kind", "adamw"},
                                         {"beta1", o.beta1},
                                         {"beta2", o.beta2},
                                         {"eps", o.eps},
                                         {"weight_decay", o.weightDecay},
                                         {"decay_embeddings", o.decayEmbeddings}}},
                    {"grad_clip", v.gradClip}};
    // Only when set: the default leaves the hashes of existing plans as they were.
    if (v.skipNonFinite)
      settings["on_nonfinite"] = "skip";
    return settings;
  }

  void lowerStage(size_t s) {
    const StageSpec &stage = recipe.stages[s];
    variants.emplace_back();
    std::vector<LoweredVariant> &lowered = variants.back();
    int parent = stage.parent.empty() ? -1 : recipe.stageIndex(stage.parent);
    // Where each variant starts, and the chain it belongs to.
    std::vector<Group> groups;
    std::map<std::string, size_t> groupByKey;
    std::vector<Object> settings; // per variant: its chain settings, computed once
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
        const LoweredVariant &plv = variants[parent][v.parentVariant];
        uint64_t step = v.branchTokens / pv.batchTokens();
        lv.startNode = nodeAtStep(parent, v.parentVariant, step);
        lv.startCursors = cursorsAt(parent, v.parentVariant, step);
        lv.trainedOn = plv.trainedOn;
      }
      settings.push_back(chainSettings(v));
      std::string k = canonical(llvm::json::Value(Object(settings.back()))) + "|" + plan.nodes[lv.startNode].hash +
                      "|" + canonical(llvm::json::Value(cursorsJSON(lv.startCursors))) +
                      (v.keepOptimizer ? "|keep" : "|reset");
      auto [it, fresh] = groupByKey.emplace(k, groups.size());
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
    for (Group &g : groups)
      buildChain(s, g, std::move(settings[g.firstVariant]));
    for (size_t i = 0; i < stage.variants.size(); ++i) {
      const StageVariant &v = stage.variants[i];
      LoweredVariant &lv = lowered[i];
      Group &g = groups[lv.group];
      for (const auto &[end, node] : g.nodeEndingAt)
        if (end <= v.steps) {
          lv.nodes.push_back(node);
          PlanNode &n = plan.nodes[node];
          if (!llvm::is_contained(n.variants, v.displayName))
            n.variants.push_back(v.displayName);
        }
      // The variant also runs through its ancestry's nodes up to its branch point.
      for (size_t up = lv.startNode; plan.nodes[up].kind == NodeKind::Train; up = plan.nodes[up].inputs.front())
        if (!llvm::is_contained(plan.nodes[up].variants, v.displayName))
          plan.nodes[up].variants.push_back(v.displayName);
      for (const std::string &st : v.mixture.streams)
        lv.trainedOn.insert(recipe.stream(st)->root);
      plan.variantTokens += chainTokens(s, i);
    }
    stageGroups.push_back(std::move(groups));
  }

  std::vector<std::vector<Group>> stageGroups;

  /// Samples per stream after `samples` samples of a stage with this mixture. Variants
  /// often share a mixture, so one blender per mixture moves forward and is reused.
  struct CachedBlend {
    Mixture mixture;
    std::optional<Blender> blender;
  };
  std::map<std::string, std::unique_ptr<CachedBlend>> blenders;
  std::vector<uint64_t> blendCounts(const Mixture &m, uint64_t seqLen, uint64_t samples) {
    std::string key = canonical(llvm::json::Value(mixtureJSON(m))) + "|" + std::to_string(seqLen);
    std::unique_ptr<CachedBlend> &slot = blenders[key];
    if (!slot)
      slot = std::make_unique<CachedBlend>(CachedBlend{m, std::nullopt});
    if (!slot->blender || slot->blender->samplesDone() > samples)
      slot->blender.emplace(slot->mixture, seqLen);
    slot->blender->skipTo(samples);
    return slot->blender->counts();
  }

  /// Tokens a variant would train if nothing were shared: its ancestry up to its branch, and itself.
  uint64_t chainTokens(size_t s, size_t i) {
    const StageSpec &stage = recipe.stages[s];
    const StageVariant &v = stage.variants[i];
    uint64_t own = v.tokens;
    if (stage.parent.empty())
      return own;
    int p = recipe.stageIndex(stage.parent);
    return own + chainTokensUpTo(p, v.parentVariant, v.branchTokens);
  }
  uint64_t chainTokensUpTo(int s, size_t i, uint64_t tokens) {
    const StageSpec &stage = recipe.stages[s];
    const StageVariant &v = stage.variants[i];
    if (stage.parent.empty())
      return tokens;
    return tokens + chainTokensUpTo(recipe.stageIndex(stage.parent), v.parentVariant, v.branchTokens);
  }

  void buildChain(size_t s, Group &g, Object shared) {
    const StageSpec &stage = recipe.stages[s];
    const StageVariant &v = stage.variants[g.firstVariant];
    const LoweredVariant &lv = variants[s][g.firstVariant];
    llvm::sort(g.cuts);
    g.cuts.erase(std::unique(g.cuts.begin(), g.cuts.end()), g.cuts.end());
    g.cuts.erase(std::remove(g.cuts.begin(), g.cuts.end(), 0u), g.cuts.end());
    // Samples per stream at every cut.
    g.counts[0] = std::vector<uint64_t>(v.mixture.streams.size(), 0);
    for (uint64_t cut : g.cuts)
      g.counts[cut] = blendCounts(v.mixture, v.seqLen, cut * v.batchSequences);
    size_t input = lv.startNode;
    uint64_t begin = 0;
    for (uint64_t end : g.cuts) {
      PlanNode n;
      n.kind = NodeKind::Train;
      n.name = stage.name + displayLabels(v, stage) + (g.cuts.size() > 1 ? llvm::formatv("@{0}-{1}", begin, end).str() : "");
      n.inputs = {input};
      n.settings = end == g.cuts.back() ? std::move(shared) : shared;
      n.settings["steps"] = Array{static_cast<int64_t>(begin), static_cast<int64_t>(end)};
      // A segment after the first continues the same run.
      n.settings["optimizer_state"] = begin == 0 ? (v.keepOptimizer ? "keep" : "reset") : "keep";
      Cursors at = lv.startCursors;
      Object cursors, samples;
      for (size_t k = 0; k < v.mixture.streams.size(); ++k) {
        const std::string &st = v.mixture.streams[k];
        uint64_t before = g.counts[begin][k], after = g.counts[end][k];
        cursors[st] = static_cast<int64_t>(at[st] + before * v.seqLen);
        samples[st] = static_cast<int64_t>(after - before);
        n.tokensByStream[st] = (after - before) * v.seqLen;
        n.tokens += (after - before) * v.seqLen;
        uint64_t endCursor = at[st] + after * v.seqLen;
        if (stats[st] && stats[st]->trainTokens)
          n.epochsAtEnd[st] = static_cast<double>(endCursor) / static_cast<double>(stats[st]->trainTokens);
      }
      n.settings["data"] = Object{{"cursors", std::move(cursors)}, {"samples", std::move(samples)}};
      double replayed = 0;
      for (const auto &[st, t] : n.tokensByStream)
        if (lv.trainedOn.count(recipe.stream(st)->root))
          replayed += static_cast<double>(t);
      n.replayFraction = n.tokens ? replayed / static_cast<double>(n.tokens) : 0;
      n.flops = flopsPerToken(v.seqLen) * static_cast<double>(n.tokens);
      n.exec = Object{{"micro_batch", static_cast<int64_t>(v.microBatchSequences)},
                      {"checkpoint_every", static_cast<int64_t>(v.checkpointEvery)},
                      {"checkpoint_keep", static_cast<int64_t>(v.checkpointKeep)},
                      {"stage", stage.name}};
      n.exec["chain_tokens"] = static_cast<int64_t>(tokensThrough(input));
      if (begin == 0)
        n.exec["stage_start"] = true;
      if (v.zero1)
        n.exec["zero1"] = true;
      if (end == v.steps && g.cuts.size() == 1)
        n.exec["requested_tokens"] = static_cast<int64_t>(v.requestedTokens);
      size_t node = addNode(std::move(n), v.mixture.streams);
      g.nodeEndingAt[end] = node;
      input = node;
      begin = end;
    }
  }

  /// The labels that distinguish this stage's variants, e.g. "[replay=r5]".
  std::string displayLabels(const StageVariant &v, const StageSpec &) {
    llvm::StringRef name = v.displayName;
    size_t open = name.find('[');
    return open == llvm::StringRef::npos ? "" : name.substr(open).str();
  }

  /// Tokens trained from the init through the end of `node` (a merge: its deepest input):
  /// the x axis of a variant's curves across stages.
  uint64_t tokensThrough(size_t node) const {
    const PlanNode &n = plan.nodes[node];
    if (n.kind == NodeKind::Train)
      return static_cast<uint64_t>(n.exec.getInteger("chain_tokens").getValueOr(0)) + n.tokens;
    uint64_t deepest = 0;
    for (size_t in : n.inputs)
      deepest = std::max(deepest, tokensThrough(in));
    return deepest;
  }

  double flopsPerToken(uint64_t seqLen) const {
    const Object &m = plan.model;
    double layers = static_cast<double>(*m.getInteger("layers")), d = static_cast<double>(*m.getInteger("d_model"));
    // PaLM (Chowdhery et al. 2022, appendix B): 6N + 12 L d T per token, forward and backward.
    return 6 * nonEmbeddingParams + 12 * layers * d * static_cast<double>(seqLen);
  }

  size_t nodeAtStep(int s, size_t variant, uint64_t step) {
    const LoweredVariant &lv = variants[s][variant];
    const Group &g = stageGroups[s][lv.group];
    if (step == 0)
      return lv.startNode;
    return g.nodeEndingAt.at(step);
  }

  Cursors cursorsAt(int s, size_t variant, uint64_t step) {
    const StageVariant &v = recipe.stages[s].variants[variant];
    const LoweredVariant &lv = variants[s][variant];
    const Group &g = stageGroups[s][lv.group];
    Cursors c = lv.startCursors;
    const std::vector<uint64_t> &counts = g.counts.at(step);
    for (size_t k = 0; k < v.mixture.streams.size(); ++k)
      c[v.mixture.streams[k]] += counts[k] * v.seqLen;
    return c;
  }

  size_t finalNode(const ModelRef &ref) {
    switch (ref.kind) {
    case ModelRef::Init:
      if (ref.hfPath.empty())
        return initNode;
      if (!hfInits.count(ref.hfPath))
        hfInits[ref.hfPath] = addInit("hf:" + ref.hfPath, "hf:" + ref.hfPath);
      return hfInits[ref.hfPath];
    case ModelRef::Stage: {
      const LoweredVariant &lv = variants[ref.index][ref.variant];
      return lv.nodes.empty() ? lv.startNode : lv.nodes.back();
    }
    case ModelRef::Merge: return mergeNodes[ref.index];
    case ModelRef::Ablation: return ablationNodes[ref.index].empty() ? initNode : ablationNodes[ref.index].front();
    }
    return initNode;
  }

  //===--------------------------------------------------------------------===//
  // Merges, ablations, evals
  //===--------------------------------------------------------------------===//

  void lowerMerges() {
    mergeNodes.assign(recipe.merges.size(), SIZE_MAX);
    // Merges may use merges: place them once their inputs are placed (sema ruled out cycles).
    bool progress = true;
    while (progress) {
      progress = false;
      for (size_t i = 0; i < recipe.merges.size(); ++i) {
        if (mergeNodes[i] != SIZE_MAX)
          continue;
        const MergeSpec &m = recipe.merges[i];
        bool ready = llvm::all_of(m.models, [&](const ModelRef &r) {
          return r.kind != ModelRef::Merge || mergeNodes[r.index] != SIZE_MAX;
        });
        if (!ready)
          continue;
        PlanNode n;
        n.kind = NodeKind::Merge;
        n.name = m.name;
        for (const ModelRef &r : m.models)
          n.inputs.push_back(finalNode(r));
        Array weights;
        for (double w : m.weights)
          weights.push_back(w);
        n.settings = Object{{"method", m.method}, {"normalize", m.normalize}, {"weights", std::move(weights)}};
        if (m.method == "ties" || llvm::StringRef(m.method).startswith("dare_"))
          n.settings["density"] = m.density;
        if (m.method == "slerp")
          n.settings["t"] = m.t;
        if (llvm::StringRef(m.method).startswith("dare_"))
          n.settings["seed"] = static_cast<int64_t>(m.seed);
        if (m.base) {
          n.inputs.push_back(finalNode(*m.base));
          n.settings["base_input"] = static_cast<int64_t>(n.inputs.size() - 1);
        }
        mergeNodes[i] = addNode(std::move(n), {});
        progress = true;
      }
    }
  }

  /// One unit of an ablation, lowered to a stream of its own.
  struct LoweredUnit {
    std::string stream; ///< "code%unit0of4", "code%source=filter"
    std::string node;   ///< its train node: "<ablation>/unit0", "<ablation>/source=filter"
    std::string label;  ///< in combination names and `combine` lists: "0", "filter"
  };

  void lowerAblations() {
    for (const AblationSpec &a : recipe.ablations) {
      ablationNodes.emplace_back();
      std::vector<LoweredUnit> units = a.by.empty() ? splitUnits(a) : columnUnits(a);
      if (units.empty())
        continue;
      size_t from = finalNode(a.from);
      Cursors start;
      for (const StreamSpec &st : recipe.streams)
        start[st.name] = 0;
      if (a.from.kind == ModelRef::Stage) {
        const StageVariant &v = recipe.stages[a.from.index].variants[a.from.variant];
        start = cursorsAt(static_cast<int>(a.from.index), a.from.variant, v.steps);
      }
      std::vector<size_t> unitNodes;
      for (const LoweredUnit &unit : units) {
        Mixture mix = a.mixture;
        for (std::string &s : mix.streams)
          if (s == "unit")
            s = unit.stream;
        PlanNode n;
        n.kind = NodeKind::Train;
        n.name = unit.node;
        n.inputs = {from};
        uint64_t steps = a.batchSequences ? a.tokens / (a.batchSequences * a.seqLen) : 0;
        n.settings = Object{{"seq_len", static_cast<int64_t>(a.seqLen)},
                            {"batch_sequences", static_cast<int64_t>(a.batchSequences)},
                            {"lr", scheduleJSON(a.lr, a.tokens)},
                            {"mixture", mixtureJSON(mix)},
                            {"optimizer", Object{{"kind", "adamw"}}},
                            {"optimizer_state", "reset"},
                            {"steps", Array{0, static_cast<int64_t>(steps)}}};
        Blender blender(mix, a.seqLen);
        blender.skipTo(steps * a.batchSequences);
        Object cursors, samples;
        for (size_t i = 0; i < mix.streams.size(); ++i) {
          const std::string &st = mix.streams[i];
          uint64_t cursor = start.count(st) ? start[st] : 0, tokens = blender.counts()[i] * a.seqLen;
          cursors[st] = static_cast<int64_t>(cursor);
          samples[st] = static_cast<int64_t>(blender.counts()[i]);
          n.tokensByStream[st] = tokens;
          n.tokens += tokens;
          if (stats[st] && stats[st]->trainTokens)
            n.epochsAtEnd[st] = static_cast<double>(cursor + tokens) / static_cast<double>(stats[st]->trainTokens);
        }
        n.settings["data"] = Object{{"cursors", std::move(cursors)}, {"samples", std::move(samples)}};
        n.flops = flopsPerToken(a.seqLen) * static_cast<double>(n.tokens);
        n.exec = Object{{"micro_batch", static_cast<int64_t>(a.batchSequences)},
                        {"stage", a.name},
                        {"stage_start", true},
                        {"chain_tokens", static_cast<int64_t>(tokensThrough(from))}};
        unitNodes.push_back(addNode(std::move(n), mix.streams));
      }
      // Cost grows with K, not with the number of mixtures evaluated (Na et al. 2024).
      AblationLedger ledger{a.name, 0, 0, 0};
      for (size_t node : unitNodes)
        ledger.unitTokens += plan.nodes[node].tokens;
      for (const std::vector<size_t> &combo : combinations(a, units)) {
        for (size_t k : combo)
          ledger.directTokens += plan.nodes[unitNodes[k]].tokens;
        ablationNodes.back().push_back(addCombination(a, units, unitNodes, combo));
        ++ledger.combinations;
      }
      plan.ablations.push_back(std::move(ledger));
    }
  }

  /// `split = K`: K equal random units, seeded by the recipe.
  std::vector<LoweredUnit> splitUnits(const AblationSpec &a) {
    std::vector<LoweredUnit> units;
    for (uint64_t k = 0; k < a.split; ++k) {
      LoweredUnit u{llvm::formatv("{0}%unit{1}of{2}", a.stream, k, a.split).str(),
                    llvm::formatv("{0}/unit{1}", a.name, k).str(), std::to_string(k)};
      Object o(*plan.streams.getObject(a.stream));
      o["unit"] = Object{{"of", a.stream}, {"count", static_cast<int64_t>(a.split)},
                         {"index", static_cast<int64_t>(k)}, {"seed", static_cast<int64_t>(recipe.seed)}};
      plan.streams[u.stream] = std::move(o);
      fingerprints[u.stream] = fingerprints[a.stream];
      identities[u.stream] = identities[a.stream] + llvm::formatv("#unit{0}of{1}seed{2}", k, a.split, recipe.seed).str();
      stats[u.stream] = std::nullopt;
      units.push_back(std::move(u));
    }
    return units;
  }

  /// Most units a `by` column may make: each trains a model, and subsets multiply.
  static constexpr size_t kMaxColumnUnits = 64;

  /// `by = column`: one unit per value of the column among the stream's training documents
  /// (documents without one are a unit of their own). Needs the data: without it the plan
  /// is provisional and the ablation has no nodes yet.
  std::vector<LoweredUnit> columnUnits(const AblationSpec &a) {
    llvm::Expected<std::optional<ColumnGroups>> grouped = catalog.groupBy(*recipe.stream(a.stream), a.by, recipe);
    if (!grouped) {
      error(DiagCode::DataError, "ablation '" + a.name + "': " + llvm::toString(grouped.takeError()));
      return {};
    }
    if (!*grouped) {
      plan.provisional = true;
      plan.provisionalReasons.push_back("ablation '" + a.name + "': its units are the values of '" + a.by +
                                        "' in stream '" + a.stream + "', whose data is absent");
      return {};
    }
    const std::vector<ColumnGroup> &groups = (*grouped)->groups;
    if (groups.empty()) {
      Diagnostic &d = diags.report(DiagCode::UnknownColumn, a.byRange,
                                   "stream '" + a.stream + "' has no metadata column '" + a.by + "'");
      if (!(*grouped)->columns.empty())
        DiagnosticEngine::suggest(d, a.by, (*grouped)->columns, a.byRange);
      return {};
    }
    if (groups.size() > kMaxColumnUnits) {
      diags.report(DiagCode::UnitCount, a.byRange,
                   llvm::formatv("'{0}' has {1} distinct values in stream '{2}': more than {3} units to train; "
                                 "use split = K for K random units",
                                 a.by, groups.size(), a.stream, kMaxColumnUnits)
                       .str());
      return {};
    }
    if (groups.size() == 1) {
      diags.report(DiagCode::UnitCount, a.byRange,
                   "every training document of stream '" + a.stream + "' has " + a.by + " = '" +
                       groups[0].value.label() + "': one unit leaves nothing to ablate");
      return {};
    }
    std::vector<LoweredUnit> units;
    for (const ColumnGroup &g : groups) {
      std::string label = g.value.label();
      LoweredUnit u{a.stream + "%" + a.by + "=" + label, a.name + "/" + a.by + "=" + label, label};
      llvm::json::Value value = g.value.kind == MetadataValue::Kind::Number   ? llvm::json::Value(g.value.number)
                                : g.value.kind == MetadataValue::Kind::String ? llvm::json::Value(g.value.string)
                                                                                : llvm::json::Value(nullptr);
      Object o(*plan.streams.getObject(a.stream));
      o["unit"] = Object{{"of", a.stream}, {"by", a.by}, {"value", value}};
      o["train_tokens"] = static_cast<int64_t>(g.trainTokens);
      o["train_documents"] = static_cast<int64_t>(g.trainDocuments);
      o["val_tokens"] = static_cast<int64_t>(g.valTokens);
      o["val_documents"] = static_cast<int64_t>(g.valDocuments);
      plan.streams[u.stream] = std::move(o);
      fingerprints[u.stream] = fingerprints[a.stream];
      // Content-addressed: the parent's identity, the column and the value; no name, no seed.
      identities[u.stream] = identities[a.stream] + "#by:" + canonical(Object{{"by", a.by}, {"value", std::move(value)}});
      StreamStats st = stats[a.stream].value_or(StreamStats());
      st.trainDocuments = g.trainDocuments;
      st.trainTokens = g.trainTokens;
      st.valDocuments = g.valDocuments;
      st.valTokens = g.valTokens;
      stats[u.stream] = st;
      units.push_back(std::move(u));
    }
    return units;
  }

  /// The combinations to evaluate, as indices into `units`.
  std::vector<std::vector<size_t>> combinations(const AblationSpec &a, const std::vector<LoweredUnit> &units) {
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
          error(DiagCode::DataError, "ablation '" + a.name + "': unit '" + u + "' is not one of " +
                                         (a.by.empty() ? "0.." + std::to_string(k - 1) : llvm::join(labels, ", ")));
          continue;
        }
        pick.push_back(static_cast<size_t>(at - labels.begin()));
      }
      out.push_back(pick);
    }
    return out;
  }

  size_t addCombination(const AblationSpec &a, const std::vector<LoweredUnit> &units,
                        const std::vector<size_t> &unitNodes, const std::vector<size_t> &combo) {
    PlanNode n;
    n.kind = NodeKind::Merge;
    std::vector<std::string> parts;
    for (size_t k : combo) {
      n.inputs.push_back(unitNodes[k]);
      parts.push_back(units[k].label);
    }
    n.name = a.name + "{" + llvm::join(parts, ",") + "}";
    n.settings = Object{{"method", "linear"}, {"normalize", true}, {"weights", Array{}}};
    return addNode(std::move(n), {});
  }

  void lowerEvals() {
    for (const EvalSpec &e : recipe.evals) {
      Array splits;
      std::vector<std::string> used;
      for (const auto &[stream, split] : e.splits) {
        splits.push_back(Array{stream, split});
        used.push_back(stream);
      }
      std::vector<size_t> models;
      for (const ModelRef &r : e.on) {
        if (r.kind == ModelRef::Ablation)
          llvm::append_range(models, ablationNodes[r.index]);
        else
          models.push_back(finalNode(r));
      }
      for (size_t model : models) {
        PlanNode n;
        n.kind = NodeKind::Eval;
        n.name = e.name + "@" + plan.nodes[model].name;
        n.inputs = {model};
        n.settings = Object{{"splits", Array(splits)}, {"max_tokens", static_cast<int64_t>(e.maxTokens)}};
        n.exec = Object{{"chain_tokens", static_cast<int64_t>(tokensThrough(model))}};
        addNode(std::move(n), used);
      }
      if (!e.duringEvery)
        continue;
      // In-loop points: step 0 of each stage, then every N tokens; execution-only.
      for (PlanNode &n : plan.nodes) {
        if (n.kind != NodeKind::Train)
          continue;
        const Array *steps = n.settings.getArray("steps");
        int64_t begin = *(*steps)[0].getAsInteger(), end = *(*steps)[1].getAsInteger();
        int64_t perStep = *n.settings.getInteger("batch_sequences") * *n.settings.getInteger("seq_len");
        Array points;
        for (int64_t t = 0; t < end * perStep; t += static_cast<int64_t>(e.duringEvery))
          if (t >= begin * perStep && (t > 0 || n.exec.getBoolean("stage_start").getValueOr(false)))
            points.push_back(t);
        Object *during = n.exec.getObject("eval_during");
        if (!during) {
          n.exec["eval_during"] = Object();
          during = n.exec.getObject("eval_during");
        }
        (*during)[e.name] = Object{{"splits", Array(splits)},
                                   {"max_tokens", static_cast<int64_t>(e.maxTokens)},
                                   {"stage_tokens", std::move(points)}};
      }
    }
  }

  /// Epochs past 4 (Muennighoff et al. 2023), and eval splits that share documents with training.
  void ledgerLints() {
    std::map<std::string, std::pair<double, std::string>> worst;
    for (const PlanNode &n : plan.nodes)
      for (const auto &[stream, epochs] : n.epochsAtEnd)
        if (epochs > worst[stream].first)
          worst[stream] = {epochs, n.name};
    for (const auto &[stream, w] : worst)
      if (w.first > 4)
        diags.reportFile(DiagCode::RepeatedData, file,
                         llvm::formatv("stream '{0}' is repeated {1:f1} epochs by the end of '{2}'; returns diminish "
                                       "past about 4 epochs (Muennighoff et al. 2023, Scaling Data-Constrained LMs)",
                                       stream, w.first, w.second)
                             .str());
    std::set<std::string> trained;
    for (const StageSpec &s : recipe.stages)
      for (const StageVariant &v : s.variants)
        trained.insert(v.mixture.streams.begin(), v.mixture.streams.end());
    for (const EvalSpec &e : recipe.evals)
      for (const auto &[stream, split] : e.splits) {
        if (split != "val")
          continue;
        for (const std::string &t : trained) {
          if (recipe.stream(t)->root == recipe.stream(stream)->root)
            continue; // one root's split never overlaps itself
          auto leaked = catalog.leakedDocuments(*recipe.stream(stream), *recipe.stream(t), recipe);
          if (!leaked) {
            error(DiagCode::DataError, llvm::toString(leaked.takeError()));
            continue;
          }
          if (*leaked && **leaked)
            diags.reportFile(DiagCode::Leakage, file,
                             llvm::formatv("eval '{0}': {1} documents of '{2}.val' are also in the training data of "
                                           "'{3}'; its loss overstates generalization",
                                           e.name, **leaked, stream, t)
                                 .str());
        }
      }
  }
};

} // namespace

std::optional<Plan> mixtape::lowerToPlan(const CheckedRecipe &recipe, DataCatalog &catalog, const CostModel &cost,
                                         DiagnosticEngine &diags) {
  return Lowering(recipe, catalog, cost, diags, recipe.file.empty() ? recipe.name : recipe.file).run();
}
