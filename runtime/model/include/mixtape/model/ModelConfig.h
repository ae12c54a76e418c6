//===- ModelConfig.h - the shape of a decoder-only language model -*- C++ -*-===//
//
// One struct describes the three families the runtime builds. Field names are ours;
// readHFConfig maps each family's Hugging Face config.json onto them. No LibTorch here.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Plan.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <optional>

namespace mixtape::model {

/// The plan's families: GPT2 (learned positions, LayerNorm, GELU (tanh), tied embeddings,
/// Conv1D [in, out]), Llama (RoPE, RMSNorm, SwiGLU, grouped-query attention, untied head),
/// GPTNeoX (partial RoPE, LayerNorm, GELU, fused per-head QKV, parallel residual).
using Family = plan::ModelFamily;

/// Hugging Face's model_type: "gpt2", "llama", "gpt_neox", and "mistral", "qwen2" as Llama.
std::optional<Family> familyFromModelType(llvm::StringRef modelType);

enum class Activation {
  GELUTanh, ///< HF "gelu_new" / "gelu_pytorch_tanh"
  GELU,     ///< exact erf GELU, HF "gelu"
  SiLU,     ///< gated in the Llama MLP (SwiGLU)
};

struct ModelConfig {
  model::Family Family = model::Family::GPT2;
  /// Hugging Face's model_type the config was read as ("qwen2", "mistral", ...); empty for
  /// a model built from a recipe, which is of its family's own type.
  std::string ModelType;
  int64_t VocabSize = 0;
  int64_t NumLayers = 0;
  int64_t DModel = 0;
  int64_t NumHeads = 0;
  int64_t NumKVHeads = 0; ///< < NumHeads: grouped-query attention (Llama only)
  int64_t HeadDim = 0;    ///< 0: DModel / NumHeads
  int64_t FfnHidden = 0;
  int64_t MaxPositions = 0;
  double RopeTheta = 10000.0;
  double RotaryPct = 1.0; ///< fraction of each head's dimensions that RoPE rotates
  double NormEps = 1e-5;
  bool TieEmbeddings = false;
  bool ParallelResidual = false; ///< x + attn(ln1 x) + mlp(ln2 x) (GPT-NeoX)
  bool AttentionBias = false;    ///< q/k/v biases (Qwen2's; never o_proj)
  model::Activation Activation = model::Activation::GELUTanh;

  int64_t effectiveHeadDim() const { return HeadDim ? HeadDim : DModel / NumHeads; }
  /// ModelType, or the family's name when it is empty.
  llvm::StringRef modelType() const;
  /// Dimensions of each head that RoPE rotates (GPT-NeoX: int(HeadDim * RotaryPct)).
  int64_t rotaryDim() const { return static_cast<int64_t>(effectiveHeadDim() * RotaryPct); }

  /// Defaults of each family at the given size (heads = KV heads, ffn = 4d or the Llama
  /// 8/3 d rounded to 64), for building models that do not come from a checkpoint.
  static ModelConfig defaults(model::Family family, int64_t vocabSize, int64_t numLayers,
                              int64_t dModel, int64_t numHeads, int64_t maxPositions);

  /// Consistency: positive sizes, heads divide the width, KV heads divide heads, ...
  llvm::Error validate() const;
};

/// Which transformer blocks run their forward pass twice to save memory: such a block keeps
/// only its input during the forward pass and recomputes its activations in the backward pass
/// (activation checkpointing). The plan's number: 0 none, 1 every block ("full"), N blocks
/// 0, N, 2N, ... ("every N").
/// A training setting, not the architecture's: it changes memory and time, never the result.
struct ActivationCheckpointing {
  uint64_t Every = 0;

  bool checkpoints(int64_t block) const { return Every && block % static_cast<int64_t>(Every) == 0; }
};

/// Reads a Hugging Face config.json of the gpt2, llama (mistral, qwen2) or gpt_neox
/// families, with each type's own attention biases: Qwen2 always biases q/k/v, Mistral
/// never; a Llama with attention_bias (which biases o_proj too) is refused. Accepts both the 4.x spelling (rope_theta, rotary_pct) and the 5.x
/// rope_parameters object. Errors name the file and the key.
llvm::Expected<ModelConfig> readHFConfig(llvm::StringRef path);
llvm::Expected<ModelConfig> parseHFConfig(llvm::StringRef json, llvm::StringRef fileName);

/// The config.json `save_pretrained` writes for this architecture: model_type (the type it
/// was read as: a Qwen2 stays qwen2, with Qwen2ForCausalLM and its own keys), architectures,
/// sizes, activation, norm eps, RoPE (transformers 5's rope_parameters and the 4.x keys
/// beside it, with equal values, so either version reads it), tied head, parallel residual
/// and `torchDtype` ("float32", "bfloat16", ...) as "dtype" and "torch_dtype". readHFConfig
/// reads it back to `config`.
llvm::json::Object formatHFConfig(const ModelConfig &config, llvm::StringRef torchDtype);

} // namespace mixtape::model
