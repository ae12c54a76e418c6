//===- Model.h - decoder-only language models in three families -*- C++ -*-===//
//
// GPT-2, Llama and GPT-NeoX as one class whose parameters carry Hugging Face's names, so
// a `save_pretrained` checkpoint loads as it is and a saved model loads in `transformers`.
// The model is a list of leaf tensors and a forward function written with ATen ops
// (autograd records them); how it is parallelized or optimized lives elsewhere.
//
// This header includes only <ATen/core/Tensor.h>; the ops live in Model.cpp.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/model/Lora.h"
#include "mixtape/model/ModelConfig.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mixtape::model {

/// What a parameter is; the optimizer decides weight decay by it.
enum class ParamKind { Matrix, Embedding, Norm, Bias };
llvm::StringRef paramKindName(ParamKind kind);

struct NamedParameter {
  std::string Name; ///< Hugging Face's name, e.g. "model.layers.0.self_attn.q_proj.weight"
  at::Tensor Tensor; ///< a leaf that requires grad
  ParamKind Kind = ParamKind::Matrix;
};

/// How Model::saveHuggingFace writes a folder.
struct HFSaveOptions {
  /// The tensors' dtype (and the config's); the model's own when unset.
  std::optional<c10::ScalarType> Dtype;
  /// Tensors of more bytes than this are written as save_pretrained shards them (its
  /// max_shard_size, 5 GB by default): model-0000N-of-0000M.safetensors, each filled in
  /// name order until the next tensor would not fit, and model.safetensors.index.json.
  uint64_t MaxShardBytes = 5'000'000'000;
  /// The special tokens' ids, written to config.json and generation_config.json; a
  /// missing one is not written (as transformers leaves out a None).
  std::optional<int64_t> BosTokenId, EosTokenId, PadTokenId;
};

/// Runs the parts of the forward pass that own parameters, in order: the embeddings (part
/// 0), block i (part i + 1), the final norm and head (part layers + 1). A caller may wrap
/// each (fully sharded training gathers a part's parameters just before it runs and frees
/// them after); Model::setPartRunner installs one.
class PartRunner {
public:
  virtual ~PartRunner() = default;
  /// Must return body(input) (the embeddings' input is the tokens).
  virtual at::Tensor run(size_t part, const at::Tensor &input,
                         llvm::function_ref<at::Tensor(const at::Tensor &)> body) = 0;
};

class Model {
public:
  /// A freshly initialized model: GPT-2's scheme (Radford et al. 2019, sec. 2.3) for every
  /// family — weights normal(0, 0.02), the projections into the residual stream scaled by
  /// 1/sqrt(2 * layers), norms 1, biases 0 — drawn from a CPU generator seeded with `seed`
  /// in parameter order, so the same seed gives the same bits.
  static llvm::Expected<std::unique_ptr<Model>>
  create(const ModelConfig &config, uint64_t seed, c10::ScalarType dtype = c10::ScalarType::Float);
  /// The model's parameters with their shapes on `device` but without storage (zero bytes,
  /// nothing allocated): what fully sharded training builds and fills one unit at a time
  /// (Initializer, loadWeights with `only`), never holding every parameter at once. Nothing
  /// may read a parameter until it is given storage.
  static llvm::Expected<std::unique_ptr<Model>> createUnallocated(const ModelConfig &config, c10::Device device,
                                                                  c10::ScalarType dtype = c10::ScalarType::Float);

  /// create's initial values, one parameter at a time: filling every parameter in
  /// parameters() order gives create's bits for the same seed. The random draws must come in
  /// that order; constant ones (norms, biases) may come at any point.
  class Initializer {
  public:
    Initializer(const Model &model, uint64_t seed);
    ~Initializer();
    /// Fills parameter `index`, which must hold storage, on any device.
    llvm::Error fill(size_t index);
    /// fill of each of `indices` in turn (a unit of a sharded build).
    llvm::Error fill(llvm::ArrayRef<size_t> indices);

  private:
    const Model &Of;
    std::unique_ptr<at::Generator> Generator; ///< a CPU generator (ATen/core/Generator.h stays out)
    std::optional<size_t> LastDrawn;          ///< the last parameter drawn from Generator
  };
  /// A Hugging Face model folder: config.json and model.safetensors, or the shards that
  /// model.safetensors.index.json names. Tensors of any float dtype become `dtype` (the
  /// training dtype), whatever the config's "dtype" says.
  static llvm::Expected<std::unique_ptr<Model>>
  fromHuggingFace(llvm::StringRef dir, c10::ScalarType dtype = c10::ScalarType::Float);

  ~Model();
  Model(const Model &) = delete;
  Model &operator=(const Model &) = delete;

  const ModelConfig &config() const;
  c10::ScalarType dtype() const;
  /// Where the parameters live (the CPU until `to`).
  c10::Device device() const;
  /// Moves every parameter to `device` in place: the tensors keep their identity, so an
  /// optimizer holding them follows. Weights are created and saved on the CPU either way.
  void to(c10::Device device);
  /// Every trainable tensor once (a tied head is the embedding), in a fixed order.
  llvm::ArrayRef<NamedParameter> parameters() const;
  const NamedParameter *findParameter(llvm::StringRef name) const;
  /// The parameters that require grad (what an optimizer trains), in parameters() order.
  std::vector<NamedParameter> trainableParameters() const;

  /// LoRA adapters (Lora.h) on the projections `options` targets: their factors join
  /// parameters() after the model's own, and every other parameter stops requiring grad.
  llvm::Error addLora(const LoraOptions &options);
  bool hasLora() const;
  /// Folds the adapters into the weights they adapt and removes them: a plain model again,
  /// every parameter requiring grad.
  void mergeLora();
  /// LoRA dropout: the masks of training step `step`, the same however the run was resumed.
  void reseedLoraDropout(uint64_t step);
  /// Per part (see PartRunner): the indices into parameters() of the parameters it reads;
  /// a tied head's embedding is in the first part and the last.
  std::vector<std::vector<size_t>> partParameters() const;
  /// Every forward pass from now on runs its parts through `runner` (nullptr: directly).
  /// The runner must outlive its use.
  void setPartRunner(PartRunner *runner);

  /// Logits [B, T, vocab] for `tokens` [B, T] (int64).
  ///
  /// `documentStarts` (optional, [B, T], bool or integer, nonzero where a document begins)
  /// makes a packed sample behave like its documents run separately: attention is causal
  /// within each document only (a block-diagonal causal mask) and positions restart at 0 at
  /// every document start. Position 0 always starts a document.
  at::Tensor forward(const at::Tensor &tokens, const at::Tensor &documentStarts = {}) const;

  /// The final norm's output [B, T, d], of which `forward`'s logits are the product with
  /// headWeight(): what chunkedTokenLosses reads. `checkpointing` picks the blocks that keep
  /// only their input and run again in the backward pass (with grad mode on; the gradients
  /// are the same, bit for bit on the CPU).
  at::Tensor hiddenStates(const at::Tensor &tokens, const at::Tensor &documentStarts = {},
                          const ActivationCheckpointing &checkpointing = {}) const;
  /// The classifier [vocab, d]; no family has a bias. A tied head (GPT-2) is the embedding
  /// itself, so a gradient through it reaches the embedding.
  const at::Tensor &headWeight() const;

  /// Logits [N, vocab] at `rows` only (N flat indices into the [B * T] positions) for
  /// `tokens` [B, T] laid out by the caller: `positions` [B, T] (int64) and `allowed`
  /// [B, T, T] (bool: query i may read key j; only j <= i, and every query reads itself;
  /// undefined: causal, one mask shared by the batch). A
  /// row can then hold several sequences that share a prefix — the prefix once, each suffix
  /// reading the prefix and itself — and the head runs only where logits are read.
  at::Tensor forwardAt(const at::Tensor &tokens, const at::Tensor &positions, const at::Tensor &allowed,
                       const at::Tensor &rows) const;

  /// Copies weights from a safetensors file (F32, F16, BF16 or F64, converted to the model's
  /// dtype). Every parameter must be there with its shape; other tensors are an error,
  /// except buffers older checkpoints carry (attention masks, rotary inv_freq) and a tied
  /// head's copy.
  llvm::Error loadWeights(llvm::StringRef path);
  /// loadWeights that checks the whole file as it does but copies only the parameters
  /// `only` (indices into parameters()): the others may hold no storage.
  llvm::Error loadWeights(llvm::StringRef path, llvm::ArrayRef<size_t> only);
  /// Copies weights from a model folder: its model.safetensors if there is one, else the
  /// shards its model.safetensors.index.json maps tensors to. The index is checked first —
  /// shard names must be plain files in `dir`, every shard must exist, hold the tensors the
  /// index gives it and no tensor of another shard, and no tensor may be listed twice — with
  /// errors naming the index, the shard and the tensor.
  llvm::Error loadHuggingFaceWeights(llvm::StringRef dir);
  /// Writes the parameters in the model's dtype, sorted by name, metadata {"format": "pt"}
  /// — the layout `save_pretrained(safe_serialization=True)` produces.
  llvm::Error saveWeights(llvm::StringRef path) const;
  /// saveWeights with parameter i's values from `valueOf(i)`, asked for once each, in
  /// weightOrder(): weights that are never all in memory (fully sharded training's).
  llvm::Error saveWeights(llvm::StringRef path, llvm::function_ref<at::Tensor(size_t)> valueOf) const;
  /// The indices into parameters() in the order saveWeights writes them.
  std::vector<size_t> weightOrder() const;
  /// Writes a Hugging Face model folder (created if missing) that `from_pretrained` loads
  /// as it is: config.json (formatHFConfig, with the token ids), generation_config.json,
  /// and model.safetensors or its shards and index. Tensors are converted and written one
  /// at a time, so the model is never held twice.
  llvm::Error saveHuggingFace(llvm::StringRef dir, const HFSaveOptions &options = {}) const;

private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> PImpl;
};

/// Sum over positions where `lossMask` is nonzero (all, if undefined) of the cross-entropy
/// of `logits` [B, T, V] against `targets` [B, T]. Masked positions contribute exactly
/// nothing, to the value or the gradient, whatever their targets are.
/// bf16 or fp16 logits are reduced in fp32 (their gradient keeps their dtype), so it may be
/// called outside autocast.
at::Tensor maskedTokenLossSum(const at::Tensor &logits, const at::Tensor &targets,
                              const at::Tensor &lossMask = {});

/// Per-position cross-entropy [B, T] (fp32; fp64 for a float64 model) of the logits
/// `hidden` [B, T, d] · `head`ᵀ ([vocab, d]) against `targets` [B, T], computed `chunkTokens`
/// positions at a time, forward and backward, so that no more than one chunk's logits exist
/// at once (no family has a head bias): the forward pass
/// keeps only each position's logsumexp, the backward pass computes each chunk's logits
/// again. Positions where `lossMask` is zero give exactly 0 and no gradient, whatever their
/// targets. bf16 or fp16 products (CUDA autocast) are reduced in fp32. The same values and
/// gradients as maskedTokenLossSum of `forward`'s logits, to fp32 rounding; summed over T,
/// each sequence's loss. `chunkTokens` 0: plan::lossChunkTokens.
at::Tensor chunkedTokenLosses(const at::Tensor &hidden, const at::Tensor &head, const at::Tensor &targets,
                              const at::Tensor &lossMask = {}, int64_t chunkTokens = 0);

/// Per-position distillation term [B, T] (fp32; fp64 for a float64 model): with
/// p = softmax(`teacherHidden` · `teacherHead`ᵀ / T) and q = softmax(`hidden` · `head`ᵀ / T),
/// T² · KL(p ‖ q) = T² Σ_v p_v (log p_v − log q_v) (Hinton et al. 2015: the T² keeps the
/// gradient's scale as T changes), computed chunk by chunk as chunkedTokenLosses is, 0 and
/// no gradient where `lossMask` is zero. Gradients flow to `hidden` and `head` only (the
/// teacher is frozen): d/d student logits = T (q − p).
at::Tensor chunkedDistillation(const at::Tensor &hidden, const at::Tensor &head, const at::Tensor &teacherHidden,
                               const at::Tensor &teacherHead, double temperature, const at::Tensor &lossMask = {},
                               int64_t chunkTokens = 0);

/// Number of positions that count for the loss (all of `targets` if the mask is undefined).
int64_t countLossTokens(const at::Tensor &targets, const at::Tensor &lossMask = {});

} // namespace mixtape::model
