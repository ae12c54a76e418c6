//===- ModelConfig.cpp ----------------------------------------------------===//
#include "mixtape/model/ModelConfig.h"

#include "mixtape/support/Error.h"
#include "mixtape/support/JSON.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>

using namespace mixtape::model;
using mixtape::fileError;
using mixtape::makeError;
using mixtape::prefixError;

std::optional<Family> mixtape::model::familyFromModelType(llvm::StringRef name) {
  if (name == "gpt2")
    return Family::GPT2;
  if (name == "llama" || name == "mistral" || name == "qwen2")
    return Family::Llama;
  if (name == "gpt_neox")
    return Family::GPTNeoX;
  return std::nullopt;
}

llvm::StringRef ModelConfig::modelType() const {
  return ModelType.empty() ? mixtape::plan::enumName(Family) : llvm::StringRef(ModelType);
}

ModelConfig ModelConfig::defaults(model::Family family, int64_t vocabSize, int64_t numLayers,
                                  int64_t dModel, int64_t numHeads, int64_t maxPositions) {
  ModelConfig c;
  c.Family = family;
  c.VocabSize = vocabSize;
  c.NumLayers = numLayers;
  c.DModel = dModel;
  c.NumHeads = numHeads;
  c.NumKVHeads = numHeads;
  c.MaxPositions = maxPositions;
  c.FfnHidden = 4 * dModel;
  switch (family) {
  case Family::GPT2:
    c.TieEmbeddings = true;
    c.Activation = Activation::GELUTanh;
    break;
  case Family::Llama:
    // LLaMA (Touvron et al. 2023, sec. 2.2): 2/3 of 4d for the gated MLP, rounded up to 64.
    c.FfnHidden = (8 * dModel / 3 + 63) / 64 * 64;
    c.NormEps = 1e-6;
    c.Activation = Activation::SiLU;
    break;
  case Family::GPTNeoX:
    c.RotaryPct = 0.25;
    c.ParallelResidual = true;
    c.Activation = Activation::GELU;
    break;
  }
  return c;
}

llvm::Error ModelConfig::validate() const {
  auto bad = [](const llvm::Twine &what) { return makeError("model config: " + what); };
  if (VocabSize <= 0 || NumLayers <= 0 || DModel <= 0 || NumHeads <= 0 || NumKVHeads <= 0 ||
      FfnHidden <= 0 || MaxPositions <= 0 || HeadDim < 0)
    return bad("vocab, layers, d_model, heads, kv_heads, ffn and max_positions must be "
               "positive");
  if (!HeadDim && DModel % NumHeads != 0)
    return bad("d_model " + llvm::Twine(DModel) + " is not divisible by " +
               llvm::Twine(NumHeads) + " heads");
  if (NumHeads % NumKVHeads != 0)
    return bad(llvm::Twine(NumHeads) + " heads are not divisible by " +
               llvm::Twine(NumKVHeads) + " kv_heads");
  if (Family != Family::Llama && NumKVHeads != NumHeads)
    return bad("grouped-query attention is a Llama-family feature");
  if (AttentionBias && modelType() != "qwen2")
    return bad("q/k/v biases without an o_proj bias are Qwen2's: the model_type must be qwen2");
  if (!(RotaryPct > 0 && RotaryPct <= 1) || rotaryDim() % 2 != 0)
    return bad("rotary_pct must give an even number of rotated dimensions in (0, head_dim]");
  // JSON numbers like 1e999 read as infinity; an infinite eps makes every norm NaN.
  if (!(RopeTheta > 0) || !(NormEps > 0) || !std::isfinite(RopeTheta) || !std::isfinite(NormEps))
    return bad("rope_theta and norm eps must be positive and finite");
  return llvm::Error::success();
}

namespace {

/// Reads keys of a config.json object, remembering the first problem.
class ConfigReader {
public:
  ConfigReader(const llvm::json::Object &obj, llvm::StringRef file) : Obj(obj), File(file) {}

  int64_t integer(llvm::StringRef key, std::optional<int64_t> fallback = std::nullopt) {
    const llvm::json::Value *v = Obj.get(key);
    if (!v || v->kind() == llvm::json::Value::Null) {
      if (!fallback)
        fail("missing integer '" + key + "'");
      return fallback.value_or(0);
    }
    if (auto i = v->getAsInteger())
      return *i;
    fail("'" + key + "' is not an integer");
    return 0;
  }
  double number(llvm::StringRef key, double fallback) {
    const llvm::json::Value *v = Obj.get(key);
    if (!v || v->kind() == llvm::json::Value::Null)
      return fallback;
    if (auto d = v->getAsNumber())
      return *d;
    fail("'" + key + "' is not a number");
    return fallback;
  }
  bool boolean(llvm::StringRef key, bool fallback) {
    const llvm::json::Value *v = Obj.get(key);
    if (!v)
      return fallback;
    if (auto b = v->getAsBoolean())
      return *b;
    fail("'" + key + "' is not a boolean");
    return fallback;
  }
  std::optional<llvm::StringRef> string(llvm::StringRef key) {
    if (auto s = Obj.getString(key))
      return *s;
    return std::nullopt;
  }
  /// rope_theta and partial_rotary_factor moved into "rope_parameters" in transformers 5.
  double rope(llvm::StringRef key, llvm::StringRef legacyKey, double fallback) {
    if (const llvm::json::Object *params = Obj.getObject("rope_parameters"))
      if (auto d = params->getNumber(key))
        return *d;
    return number(legacyKey, fallback);
  }
  void fail(const llvm::Twine &what) {
    if (!Error)
      Error = (File + ": " + what).str();
  }

  std::optional<std::string> Error;

private:
  const llvm::json::Object &Obj;
  llvm::StringRef File;
};

Activation activationFromName(llvm::StringRef name, ConfigReader &r) {
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast")
    return Activation::GELUTanh;
  if (name == "gelu")
    return Activation::GELU;
  if (name == "silu" || name == "swish")
    return Activation::SiLU;
  r.fail("unsupported activation '" + name + "'");
  return Activation::GELU;
}

} // namespace

llvm::Expected<ModelConfig> mixtape::model::parseHFConfig(llvm::StringRef json,
                                                           llvm::StringRef fileName) {
  llvm::Expected<llvm::json::Value> value = parseJSON(json, fileName);
  if (!value)
    return value.takeError();
  const llvm::json::Object *obj = value->getAsObject();
  if (!obj)
    return fileError(fileName, "not a JSON object");
  ConfigReader r(*obj, fileName);
  std::optional<llvm::StringRef> modelType = r.string("model_type");
  std::optional<Family> family = modelType ? familyFromModelType(*modelType) : std::nullopt;
  if (!family)
    return fileError(fileName, "model_type '" + modelType.value_or("") +
                                   "' is not one of gpt2, llama, mistral, qwen2, gpt_neox");

  ModelConfig c;
  c.Family = *family;
  c.ModelType = modelType->str();
  c.VocabSize = r.integer("vocab_size");
  switch (*family) {
  case Family::GPT2:
    c.NumLayers = r.integer("n_layer");
    c.DModel = r.integer("n_embd");
    c.NumHeads = r.integer("n_head");
    c.NumKVHeads = c.NumHeads;
    c.FfnHidden = r.integer("n_inner", 4 * c.DModel);
    c.MaxPositions = r.integer("n_positions");
    c.NormEps = r.number("layer_norm_epsilon", 1e-5);
    c.TieEmbeddings = r.boolean("tie_word_embeddings", true);
    c.Activation = activationFromName(r.string("activation_function").value_or("gelu_new"), r);
    if (r.boolean("scale_attn_by_inverse_layer_idx", false) ||
        r.boolean("reorder_and_upcast_attn", false) || !r.boolean("scale_attn_weights", true))
      r.fail("GPT-2 attention variants (scale_attn_by_inverse_layer_idx, "
             "reorder_and_upcast_attn, unscaled) are not supported");
    break;
  case Family::Llama:
    c.NumLayers = r.integer("num_hidden_layers");
    c.DModel = r.integer("hidden_size");
    c.NumHeads = r.integer("num_attention_heads");
    c.NumKVHeads = r.integer("num_key_value_heads", c.NumHeads);
    c.HeadDim = r.integer("head_dim", 0);
    if (c.NumHeads && c.HeadDim == c.DModel / c.NumHeads)
      c.HeadDim = 0;
    c.FfnHidden = r.integer("intermediate_size");
    c.MaxPositions = r.integer("max_position_embeddings");
    c.RopeTheta = r.rope("rope_theta", "rope_theta", 10000.0);
    c.NormEps = r.number("rms_norm_eps", 1e-6);
    c.TieEmbeddings = r.boolean("tie_word_embeddings", false);
    // As transformers builds them: Qwen2 biases q/k/v and Mistral nothing, whatever the
    // config says; Llama's attention_bias biases o_proj as well, which this model has not.
    c.AttentionBias = *modelType == "qwen2";
    if (*modelType == "llama" && r.boolean("attention_bias", false))
      r.fail("attention_bias on a llama model (q/k/v and o_proj biases) is not supported");
    c.Activation = activationFromName(r.string("hidden_act").value_or("silu"), r);
    if (c.Activation != Activation::SiLU)
      r.fail("a Llama-family MLP must use silu");
    if (r.boolean("mlp_bias", false))
      r.fail("mlp_bias is not supported");
    if (const llvm::json::Object *params = obj->getObject("rope_parameters"))
      if (params->getString("rope_type").getValueOr("default") != "default")
        r.fail("only the default rope_type is supported");
    if (const llvm::json::Value *scaling = obj->get("rope_scaling"))
      if (scaling->kind() != llvm::json::Value::Null)
        r.fail("rope_scaling is not supported");
    break;
  case Family::GPTNeoX:
    c.NumLayers = r.integer("num_hidden_layers");
    c.DModel = r.integer("hidden_size");
    c.NumHeads = r.integer("num_attention_heads");
    c.NumKVHeads = c.NumHeads;
    c.FfnHidden = r.integer("intermediate_size");
    c.MaxPositions = r.integer("max_position_embeddings");
    c.RopeTheta = r.rope("rope_theta", "rotary_emb_base", 10000.0);
    c.RotaryPct = r.rope("partial_rotary_factor", "rotary_pct", 0.25);
    c.NormEps = r.number("layer_norm_eps", 1e-5);
    c.TieEmbeddings = r.boolean("tie_word_embeddings", false);
    c.ParallelResidual = r.boolean("use_parallel_residual", true);
    c.Activation = activationFromName(r.string("hidden_act").value_or("gelu"), r);
    if (!r.boolean("attention_bias", true))
      r.fail("GPT-NeoX without attention biases is not supported");
    break;
  }
  if (r.Error)
    return makeError(*r.Error);
  if (llvm::Error err = c.validate())
    return prefixError(fileName, std::move(err));
  return c;
}

llvm::Expected<ModelConfig> mixtape::model::readHFConfig(llvm::StringRef path) {
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return fileError(path, "cannot open: " + buffer.getError().message());
  return parseHFConfig((*buffer)->getBuffer(), path);
}

static llvm::StringRef hfActivationName(Activation activation) {
  switch (activation) {
  case Activation::GELUTanh:
    return "gelu_new";
  case Activation::GELU:
    return "gelu";
  case Activation::SiLU:
    return "silu";
  }
  llvm_unreachable("unknown activation");
}

llvm::json::Object mixtape::model::formatHFConfig(const ModelConfig &c, llvm::StringRef torchDtype) {
  llvm::json::Object o{{"model_type", c.modelType()},
                       {"vocab_size", c.VocabSize},
                       {"tie_word_embeddings", c.TieEmbeddings},
                       {"dtype", torchDtype},
                       {"torch_dtype", torchDtype}};
  switch (c.Family) {
  case Family::GPT2:
    o["architectures"] = llvm::json::Array{"GPT2LMHeadModel"};
    o["n_layer"] = c.NumLayers;
    o["n_embd"] = c.DModel;
    o["n_head"] = c.NumHeads;
    // transformers writes null for the default 4 * n_embd.
    o["n_inner"] = c.FfnHidden == 4 * c.DModel ? llvm::json::Value(nullptr) : llvm::json::Value(c.FfnHidden);
    o["n_positions"] = c.MaxPositions;
    o["layer_norm_epsilon"] = c.NormEps;
    o["activation_function"] = hfActivationName(c.Activation);
    o["scale_attn_weights"] = true;
    o["scale_attn_by_inverse_layer_idx"] = false;
    o["reorder_and_upcast_attn"] = false;
    break;
  case Family::Llama:
    o["num_hidden_layers"] = c.NumLayers;
    o["hidden_size"] = c.DModel;
    o["num_attention_heads"] = c.NumHeads;
    o["num_key_value_heads"] = c.NumKVHeads;
    o["head_dim"] = c.effectiveHeadDim();
    o["intermediate_size"] = c.FfnHidden;
    o["max_position_embeddings"] = c.MaxPositions;
    o["rms_norm_eps"] = c.NormEps;
    o["hidden_act"] = hfActivationName(c.Activation);
    o["rope_parameters"] = llvm::json::Object{{"rope_theta", c.RopeTheta}, {"rope_type", "default"}};
    o["rope_theta"] = c.RopeTheta;
    // Each type's own keys; the attention biases follow from the type (parseHFConfig).
    if (c.modelType() == "qwen2") {
      o["architectures"] = llvm::json::Array{"Qwen2ForCausalLM"};
      o["use_sliding_window"] = false;
    } else if (c.modelType() == "mistral") {
      o["architectures"] = llvm::json::Array{"MistralForCausalLM"};
      o["sliding_window"] = nullptr; // this model attends to every earlier position
    } else {
      o["architectures"] = llvm::json::Array{"LlamaForCausalLM"};
      o["attention_bias"] = false;
      o["mlp_bias"] = false;
      o["pretraining_tp"] = 1;
    }
    break;
  case Family::GPTNeoX:
    o["architectures"] = llvm::json::Array{"GPTNeoXForCausalLM"};
    o["num_hidden_layers"] = c.NumLayers;
    o["hidden_size"] = c.DModel;
    o["num_attention_heads"] = c.NumHeads;
    o["intermediate_size"] = c.FfnHidden;
    o["max_position_embeddings"] = c.MaxPositions;
    o["layer_norm_eps"] = c.NormEps;
    o["hidden_act"] = hfActivationName(c.Activation);
    o["attention_bias"] = true;
    o["use_parallel_residual"] = c.ParallelResidual;
    o["rope_parameters"] = llvm::json::Object{
        {"rope_theta", c.RopeTheta}, {"partial_rotary_factor", c.RotaryPct}, {"rope_type", "default"}};
    o["rotary_emb_base"] = c.RopeTheta;
    o["rotary_pct"] = c.RotaryPct;
    break;
  }
  return o;
}
