//===- Model.cpp - parameters, forward pass and weights I/O ---------------===//
//
// The forward pass follows Hugging Face's modeling_gpt2.py, modeling_llama.py and
// modeling_gpt_neox.py op for op, so that logits agree to float rounding.
//
//===----------------------------------------------------------------------===//
#include "mixtape/model/Model.h"
#include "LoraAdapters.h"
#include "mixtape/model/ShardIndex.h"
#include "mixtape/model/TensorTypes.h"
#include "mixtape/model/TorchCompat.h"
#include "mixtape/safetensors/SafeTensors.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/JSON.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <numeric>

using namespace mixtape::model;
using mixtape::fileError;
using mixtape::joinPath;
using mixtape::makeError;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
namespace st = mixtape::safetensors;

std::optional<c10::ScalarType> mixtape::model::scalarType(st::DType type) {
  switch (type) {
  case st::DType::F64:
    return at::kDouble;
  case st::DType::F32:
    return at::kFloat;
  case st::DType::F16:
    return at::kHalf;
  case st::DType::BF16:
    return at::kBFloat16;
  default:
    return std::nullopt; // integer tensors are never parameters
  }
}

std::optional<st::DType> mixtape::model::safetensorsType(c10::ScalarType type) {
  switch (type) {
  case at::kDouble:
    return st::DType::F64;
  case at::kFloat:
    return st::DType::F32;
  case at::kHalf:
    return st::DType::F16;
  case at::kBFloat16:
    return st::DType::BF16;
  default:
    return std::nullopt;
  }
}

llvm::StringRef mixtape::model::paramKindName(ParamKind kind) {
  switch (kind) {
  case ParamKind::Matrix:
    return "matrix";
  case ParamKind::Embedding:
    return "embedding";
  case ParamKind::Norm:
    return "norm";
  case ParamKind::Bias:
    return "bias";
  }
  llvm_unreachable("unknown parameter kind");
}

namespace {

/// The tensors of one block; which are defined depends on the family.
struct Block {
  int64_t Index = 0;
  std::string Prefix; // "model.layers.3."
  at::Tensor Ln1Weight, Ln1Bias, Ln2Weight, Ln2Bias;
  at::Tensor QkvWeight, QkvBias;             // GPT-2 (Conv1D [d, 3d]), GPT-NeoX ([3d, d])
  at::Tensor QWeight, KWeight, VWeight;      // Llama
  at::Tensor QBias, KBias, VBias;            // Llama with attention_bias
  at::Tensor OutWeight, OutBias;             // attention output projection
  at::Tensor UpWeight, UpBias, GateWeight;   // MLP in (gate: Llama)
  at::Tensor DownWeight, DownBias;           // MLP out
};

/// Buffers, not parameters, that older checkpoints of these families carry.
bool isKnownBuffer(llvm::StringRef name) {
  return name.endswith(".attn.bias") || name.endswith(".attn.masked_bias") ||
         name.endswith(".attention.bias") || name.endswith(".attention.masked_bias") ||
         name.endswith(".rotary_emb.inv_freq");
}

} // namespace

/// A contiguous tensor of `shape` over an empty storage (no bytes allocated) that can
/// later be given its bytes: what at::empty makes, less the allocation.
static at::Tensor unallocated(at::IntArrayRef shape, c10::ScalarType dtype, c10::Device device) {
  c10::Storage storage(c10::Storage::use_byte_size_t(), 0, c10::GetAllocator(device.type()), /*resizable=*/true);
  at::Tensor t = at::detail::make_tensor<c10::TensorImpl>(
      std::move(storage), c10::DispatchKeySet(c10::computeDispatchKey(dtype, at::kStrided, device)),
      c10::scalarTypeToTypeMeta(dtype));
  t.unsafeGetTensorImpl()->set_sizes_contiguous(shape);
  return t;
}

struct Model::Impl {
  ModelConfig Config;
  c10::ScalarType Dtype = at::kFloat;
  /// Set: build() makes parameters without storage on this device (createUnallocated).
  std::optional<c10::Device> UnallocatedOn;
  std::vector<NamedParameter> Params;
  llvm::StringMap<size_t> ByName;
  /// Initialization std of each parameter (0: constant — 1 for norm weights, 0 for biases).
  std::vector<double> InitStd;

  at::Tensor Embed, Positions, FinalNormWeight, FinalNormBias, Head;
  std::vector<Block> Blocks;
  /// While LoRA is on: the adapters, whose factors are Params from BaseParams on.
  std::unique_ptr<lora::Adapters> Lora;
  size_t BaseParams = 0;
  /// Where each part's parameters begin in Params (PartRunner's parts; added in order).
  std::vector<size_t> PartBegin;
  PartRunner *Runner = nullptr;

  at::Tensor runPart(size_t part, const at::Tensor &input,
                     llvm::function_ref<at::Tensor(const at::Tensor &)> body) const {
    return Runner ? Runner->run(part, input, body) : body(input);
  }

  at::Tensor add(const std::string &name, at::IntArrayRef shape, ParamKind kind, double std) {
    at::Tensor t =
        UnallocatedOn ? unallocated(shape, Dtype, *UnallocatedOn) : at::empty(shape, at::TensorOptions().dtype(Dtype));
    ByName[name] = Params.size();
    Params.push_back({name, t, kind});
    InitStd.push_back(std);
    return t;
  }

  /// A model's parameters, requiring grad: uninitialized, or without storage on `unallocatedOn`.
  static llvm::Expected<std::unique_ptr<Impl>> make(const ModelConfig &config, c10::ScalarType dtype,
                                                    std::optional<c10::Device> unallocatedOn);
  void build();

  at::Tensor norm(const at::Tensor &x, const at::Tensor &weight, const at::Tensor &bias) const;
  at::Tensor attention(const Block &b, const at::Tensor &h, const at::Tensor &cos,
                       const at::Tensor &sin, const compat::AttentionMask &mask) const;
  at::Tensor mlp(const Block &b, const at::Tensor &h) const;
  /// The residual stream after block `b`, given the stream `x` before it.
  at::Tensor block(const Block &b, const at::Tensor &x, const at::Tensor &cos, const at::Tensor &sin,
                   const compat::AttentionMask &mask) const;
  /// The output `y` of projection `p` for input `x`, with LoRA's update where it adapts it.
  at::Tensor adapted(const Block &b, lora::Projection p, const at::Tensor &x, at::Tensor y) const {
    return Lora ? Lora->adapt(b.Index, p, x, std::move(y)) : y;
  }
  /// The last block's output [B, T, d] with `positions` [B|1, T] and `allowed` [B, 1, T, T]
  /// (undefined: causal).
  at::Tensor hidden(const at::Tensor &tokens, const at::Tensor &positions, const at::Tensor &allowed,
                    const ActivationCheckpointing &checkpointing = {}) const;
  /// The last part: `head` (the head's matmul, or nothing) on the final norm of `x`. The head
  /// runs inside the part, where a sharded model holds its weight.
  at::Tensor logits(const at::Tensor &x, llvm::function_ref<at::Tensor(const at::Tensor &)> head) const {
    return runPart(Blocks.size() + 1, x, [&](const at::Tensor &h) { return head(norm(h, FinalNormWeight, FinalNormBias)); });
  }
  /// `logits` of `tokens` [B, T] whose documents start where `documentStarts` says (see
  /// Model::forward).
  at::Tensor documentsForward(const at::Tensor &tokens, const at::Tensor &documentStarts,
                              const ActivationCheckpointing &checkpointing,
                              llvm::function_ref<at::Tensor(const at::Tensor &)> head) const;
};

void Model::Impl::build() {
  const ModelConfig &c = Config;
  const int64_t d = c.DModel, hd = c.effectiveHeadDim(), ffn = c.FfnHidden;
  const int64_t qDim = c.NumHeads * hd, kvDim = c.NumKVHeads * hd;
  const double std = 0.02, residualStd = 0.02 / std::sqrt(2.0 * double(c.NumLayers));
  const std::string layer = c.Family == Family::GPT2      ? "transformer.h."
                            : c.Family == Family::Llama   ? "model.layers."
                                                          : "gpt_neox.layers.";
  PartBegin.push_back(Params.size());
  switch (c.Family) {
  case Family::GPT2:
    Embed = add("transformer.wte.weight", {c.VocabSize, d}, ParamKind::Embedding, std);
    Positions = add("transformer.wpe.weight", {c.MaxPositions, d}, ParamKind::Embedding, std);
    break;
  case Family::Llama:
    Embed = add("model.embed_tokens.weight", {c.VocabSize, d}, ParamKind::Embedding, std);
    break;
  case Family::GPTNeoX:
    Embed = add("gpt_neox.embed_in.weight", {c.VocabSize, d}, ParamKind::Embedding, std);
    break;
  }
  for (int64_t i = 0; i < c.NumLayers; ++i) {
    std::string p = layer + std::to_string(i) + ".";
    PartBegin.push_back(Params.size());
    Block b;
    b.Index = i;
    b.Prefix = p;
    auto weight = [&](const std::string &n, at::IntArrayRef shape, double s = 0.02) {
      return add(p + n, shape, ParamKind::Matrix, s);
    };
    auto bias = [&](const std::string &n, int64_t size) {
      return add(p + n, {size}, ParamKind::Bias, 0);
    };
    auto normWeight = [&](const std::string &n) { return add(p + n, {d}, ParamKind::Norm, 0); };
    switch (c.Family) {
    case Family::GPT2:
      // Conv1D stores [in, out] (modeling_gpt2.py, class Conv1D).
      b.Ln1Weight = normWeight("ln_1.weight");
      b.Ln1Bias = bias("ln_1.bias", d);
      b.QkvWeight = weight("attn.c_attn.weight", {d, 3 * d});
      b.QkvBias = bias("attn.c_attn.bias", 3 * d);
      b.OutWeight = weight("attn.c_proj.weight", {d, d}, residualStd);
      b.OutBias = bias("attn.c_proj.bias", d);
      b.Ln2Weight = normWeight("ln_2.weight");
      b.Ln2Bias = bias("ln_2.bias", d);
      b.UpWeight = weight("mlp.c_fc.weight", {d, ffn});
      b.UpBias = bias("mlp.c_fc.bias", ffn);
      b.DownWeight = weight("mlp.c_proj.weight", {ffn, d}, residualStd);
      b.DownBias = bias("mlp.c_proj.bias", d);
      break;
    case Family::Llama:
      b.Ln1Weight = normWeight("input_layernorm.weight");
      b.QWeight = weight("self_attn.q_proj.weight", {qDim, d});
      b.KWeight = weight("self_attn.k_proj.weight", {kvDim, d});
      b.VWeight = weight("self_attn.v_proj.weight", {kvDim, d});
      if (c.AttentionBias) {
        b.QBias = bias("self_attn.q_proj.bias", qDim);
        b.KBias = bias("self_attn.k_proj.bias", kvDim);
        b.VBias = bias("self_attn.v_proj.bias", kvDim);
      }
      b.OutWeight = weight("self_attn.o_proj.weight", {d, qDim}, residualStd);
      b.Ln2Weight = normWeight("post_attention_layernorm.weight");
      b.GateWeight = weight("mlp.gate_proj.weight", {ffn, d});
      b.UpWeight = weight("mlp.up_proj.weight", {ffn, d});
      b.DownWeight = weight("mlp.down_proj.weight", {d, ffn}, residualStd);
      break;
    case Family::GPTNeoX:
      b.Ln1Weight = normWeight("input_layernorm.weight");
      b.Ln1Bias = bias("input_layernorm.bias", d);
      b.Ln2Weight = normWeight("post_attention_layernorm.weight");
      b.Ln2Bias = bias("post_attention_layernorm.bias", d);
      b.QkvWeight = weight("attention.query_key_value.weight", {3 * qDim, d});
      b.QkvBias = bias("attention.query_key_value.bias", 3 * qDim);
      b.OutWeight = weight("attention.dense.weight", {d, qDim}, residualStd);
      b.OutBias = bias("attention.dense.bias", d);
      b.UpWeight = weight("mlp.dense_h_to_4h.weight", {ffn, d});
      b.UpBias = bias("mlp.dense_h_to_4h.bias", ffn);
      b.DownWeight = weight("mlp.dense_4h_to_h.weight", {d, ffn}, residualStd);
      b.DownBias = bias("mlp.dense_4h_to_h.bias", d);
      break;
    }
    Blocks.push_back(std::move(b));
  }
  PartBegin.push_back(Params.size());
  switch (c.Family) {
  case Family::GPT2:
    FinalNormWeight = add("transformer.ln_f.weight", {d}, ParamKind::Norm, 0);
    FinalNormBias = add("transformer.ln_f.bias", {d}, ParamKind::Bias, 0);
    break;
  case Family::Llama:
    FinalNormWeight = add("model.norm.weight", {d}, ParamKind::Norm, 0);
    break;
  case Family::GPTNeoX:
    FinalNormWeight = add("gpt_neox.final_layer_norm.weight", {d}, ParamKind::Norm, 0);
    FinalNormBias = add("gpt_neox.final_layer_norm.bias", {d}, ParamKind::Bias, 0);
    break;
  }
  if (c.TieEmbeddings)
    Head = Embed;
  else
    Head = add(c.Family == Family::GPTNeoX ? "embed_out.weight" : "lm_head.weight",
               {c.VocabSize, d}, ParamKind::Matrix, std);
}

Model::Initializer::Initializer(const Model &model, uint64_t seed)
    : Of(model), Generator(std::make_unique<at::Generator>(at::detail::createCPUGenerator(seed))) {}
Model::Initializer::~Initializer() = default;

llvm::Error Model::Initializer::fill(size_t index) {
  const Impl &m = *Of.PImpl;
  const NamedParameter &p = m.Params[index];
  const double std = m.InitStd[index];
  if (std > 0) {
    if (LastDrawn && *LastDrawn >= index)
      return makeError("model initialization: parameter '" + p.Name + "' drawn after '" + m.Params[*LastDrawn].Name +
                       "'; the draws must come in parameter order to give Model::create's values");
    LastDrawn = index;
  }
  at::NoGradGuard noGrad;
  // Drawn on the CPU, as create draws them, whatever the parameter's device.
  at::Tensor values = p.Tensor.is_cpu() ? p.Tensor : at::empty(p.Tensor.sizes(), p.Tensor.options().device(at::kCPU));
  if (std > 0)
    values.normal_(0.0, std, *Generator);
  else
    values.fill_(p.Kind == ParamKind::Norm ? 1.0 : 0.0);
  if (!p.Tensor.is_cpu())
    p.Tensor.copy_(values);
  return llvm::Error::success();
}

llvm::Error Model::Initializer::fill(llvm::ArrayRef<size_t> indices) {
  for (size_t i : indices)
    if (llvm::Error e = fill(i))
      return e;
  return llvm::Error::success();
}

Model::Model(std::unique_ptr<Impl> impl) : PImpl(std::move(impl)) {}
Model::~Model() = default;

const ModelConfig &Model::config() const { return PImpl->Config; }
c10::ScalarType Model::dtype() const { return PImpl->Dtype; }
c10::Device Model::device() const {
  return PImpl->Params.empty() ? c10::Device(c10::kCPU) : PImpl->Params.front().Tensor.device();
}

void Model::to(c10::Device device) {
  at::NoGradGuard noGrad;
  // set_data swaps the storage under each tensor: every holder of the tensor (the blocks'
  // fields, a tied head, an optimizer) sees the moved one.
  for (NamedParameter &p : PImpl->Params)
    if (p.Tensor.device() != device)
      p.Tensor.set_data(p.Tensor.to(device));
}
llvm::ArrayRef<NamedParameter> Model::parameters() const { return PImpl->Params; }

std::vector<std::vector<size_t>> Model::partParameters() const {
  const Impl &m = *PImpl;
  std::vector<std::vector<size_t>> parts;
  for (size_t k = 0; k < m.PartBegin.size(); ++k) {
    const size_t end = k + 1 < m.PartBegin.size() ? m.PartBegin[k + 1] : m.Params.size();
    parts.emplace_back();
    for (size_t i = m.PartBegin[k]; i < end; ++i)
      parts.back().push_back(i);
  }
  if (m.Config.TieEmbeddings)
    parts.back().push_back(0); // the embedding, added first
  return parts;
}

void Model::setPartRunner(PartRunner *runner) { PImpl->Runner = runner; }

const NamedParameter *Model::findParameter(llvm::StringRef name) const {
  auto it = PImpl->ByName.find(name);
  return it == PImpl->ByName.end() ? nullptr : &PImpl->Params[it->second];
}

std::vector<NamedParameter> Model::trainableParameters() const {
  std::vector<NamedParameter> trainable;
  for (const NamedParameter &p : PImpl->Params)
    if (p.Tensor.requires_grad())
      trainable.push_back(p);
  return trainable;
}

llvm::Error Model::addLora(const LoraOptions &options) {
  Impl &m = *PImpl;
  if (m.Lora)
    return makeError("LoRA: the model has adapters already");
  const bool fused = m.Config.Family != Family::Llama;
  std::vector<lora::BlockWeights> weights;
  for (const Block &b : m.Blocks)
    weights.push_back({b.Prefix, fused ? b.QkvWeight : at::Tensor(), b.QWeight, b.KWeight, b.VWeight, b.OutWeight,
                       b.GateWeight, b.UpWeight, b.DownWeight});
  std::vector<NamedParameter> factors;
  llvm::Expected<std::unique_ptr<lora::Adapters>> adapters =
      lora::Adapters::create(options, m.Config, std::move(weights), m.Dtype, factors);
  if (!adapters)
    return adapters.takeError();
  for (NamedParameter &p : m.Params)
    p.Tensor.set_requires_grad(false);
  m.BaseParams = m.Params.size();
  for (NamedParameter &f : factors) {
    f.Tensor.set_data(f.Tensor.to(device()));
    m.ByName[f.Name] = m.Params.size();
    m.Params.push_back(std::move(f));
  }
  m.Lora = std::move(*adapters);
  return llvm::Error::success();
}

bool Model::hasLora() const { return PImpl->Lora != nullptr; }

void Model::mergeLora() {
  Impl &m = *PImpl;
  if (!m.Lora)
    return;
  m.Lora->merge();
  for (size_t i = m.BaseParams; i < m.Params.size(); ++i)
    m.ByName.erase(m.Params[i].Name);
  m.Params.resize(m.BaseParams);
  m.Lora.reset();
  for (NamedParameter &p : m.Params)
    p.Tensor.set_requires_grad(true);
}

void Model::reseedLoraDropout(uint64_t step) {
  if (PImpl->Lora)
    PImpl->Lora->reseedDropout(step);
}

llvm::Expected<std::unique_ptr<Model::Impl>> Model::Impl::make(const ModelConfig &config, c10::ScalarType dtype,
                                                               std::optional<c10::Device> unallocatedOn) {
  if (llvm::Error err = config.validate())
    return err;
  if (!safetensorsType(dtype))
    return makeError("model dtype must be a floating-point type");
  auto impl = std::make_unique<Impl>();
  impl->Config = config;
  impl->Dtype = dtype;
  impl->UnallocatedOn = unallocatedOn;
  impl->build();
  for (NamedParameter &p : impl->Params)
    p.Tensor.set_requires_grad(true);
  return impl;
}

llvm::Expected<std::unique_ptr<Model>> Model::create(const ModelConfig &config, uint64_t seed,
                                                     c10::ScalarType dtype) {
  llvm::Expected<std::unique_ptr<Impl>> impl = Impl::make(config, dtype, std::nullopt);
  if (!impl)
    return impl.takeError();
  std::unique_ptr<Model> model(new Model(std::move(*impl)));
  std::vector<size_t> all(model->PImpl->Params.size());
  std::iota(all.begin(), all.end(), 0);
  if (llvm::Error e = Initializer(*model, seed).fill(all))
    return e;
  return model;
}

llvm::Expected<std::unique_ptr<Model>> Model::createUnallocated(const ModelConfig &config, c10::Device device,
                                                                c10::ScalarType dtype) {
  llvm::Expected<std::unique_ptr<Impl>> impl = Impl::make(config, dtype, device);
  if (!impl)
    return impl.takeError();
  return std::unique_ptr<Model>(new Model(std::move(*impl)));
}

llvm::Expected<std::unique_ptr<Model>> Model::fromHuggingFace(llvm::StringRef dir,
                                                              c10::ScalarType dtype) {
  llvm::Expected<ModelConfig> config = readHFConfig(joinPath(dir, "config.json"));
  if (!config)
    return config.takeError();
  llvm::Expected<std::unique_ptr<Model>> model = create(*config, /*seed=*/0, dtype);
  if (!model)
    return model.takeError();
  if (llvm::Error err = (*model)->loadHuggingFaceWeights(dir))
    return err;
  return model;
}

//===----------------------------------------------------------------------===//
// Forward
//===----------------------------------------------------------------------===//

at::Tensor Model::Impl::norm(const at::Tensor &x, const at::Tensor &weight,
                             const at::Tensor &bias) const {
  if (Config.Family != Family::Llama)
    return at::layer_norm(x, {Config.DModel}, weight, bias, Config.NormEps);
  // RMSNorm (Zhang & Sennrich 2019), in fp32 at least, as LlamaRMSNorm does.
  at::ScalarType compute = Dtype == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor xf = x.to(compute);
  at::Tensor normed = xf * at::rsqrt(xf.pow(2).mean({-1}, /*keepdim=*/true) + Config.NormEps);
  return weight * normed.to(Dtype);
}

/// RoPE (Su et al. 2021) on the first `cos.size(-1)` dimensions of each head, rotating
/// halves (GPT-NeoX's layout, which HF's Llama weights are permuted to).
static at::Tensor applyRotary(const at::Tensor &x, const at::Tensor &cos, const at::Tensor &sin) {
  int64_t rot = cos.size(-1), dim = x.size(-1);
  at::Tensor xr = rot == dim ? x : x.narrow(-1, 0, rot);
  at::Tensor x1 = xr.narrow(-1, 0, rot / 2), x2 = xr.narrow(-1, rot / 2, rot / 2);
  at::Tensor out = xr * cos.to(x.scalar_type()) + at::cat({-x2, x1}, -1) * sin.to(x.scalar_type());
  return rot == dim ? out : at::cat({out, x.narrow(-1, rot, dim - rot)}, -1);
}

at::Tensor Model::Impl::attention(const Block &b, const at::Tensor &h, const at::Tensor &cos,
                                  const at::Tensor &sin, const compat::AttentionMask &mask) const {
  const int64_t B = h.size(0), T = h.size(1), H = Config.NumHeads, KV = Config.NumKVHeads;
  const int64_t D = Config.effectiveHeadDim();
  at::Tensor q, k, v;
  switch (Config.Family) {
  case Family::GPT2: {
    at::Tensor flat = h.reshape({B * T, Config.DModel});
    at::Tensor qkv = adapted(b, lora::Projection::QKV, flat, at::addmm(b.QkvBias, flat, b.QkvWeight));
    std::vector<at::Tensor> parts = qkv.view({B, T, 3 * H * D}).split(H * D, -1);
    q = parts[0].view({B, T, H, D}).transpose(1, 2);
    k = parts[1].view({B, T, H, D}).transpose(1, 2);
    v = parts[2].view({B, T, H, D}).transpose(1, 2);
    break;
  }
  case Family::Llama:
    q = adapted(b, lora::Projection::Q, h, at::linear(h, b.QWeight, b.QBias)).view({B, T, H, D}).transpose(1, 2);
    k = adapted(b, lora::Projection::K, h, at::linear(h, b.KWeight, b.KBias)).view({B, T, KV, D}).transpose(1, 2);
    v = adapted(b, lora::Projection::V, h, at::linear(h, b.VWeight, b.VBias)).view({B, T, KV, D}).transpose(1, 2);
    break;
  case Family::GPTNeoX: {
    // query_key_value interleaves per head: [q_h, k_h, v_h] for each head h.
    at::Tensor qkv = adapted(b, lora::Projection::QKV, h, at::linear(h, b.QkvWeight, b.QkvBias))
                         .view({B, T, H, 3 * D})
                         .transpose(1, 2);
    std::vector<at::Tensor> parts = qkv.chunk(3, -1);
    q = parts[0], k = parts[1], v = parts[2];
    break;
  }
  }
  if (cos.defined()) {
    q = applyRotary(q, cos, sin);
    k = applyRotary(k, cos, sin);
  }
  at::Tensor out = compat::attention(q, k, v, mask).transpose(1, 2).reshape({B, T, H * D});
  if (Config.Family == Family::GPT2) {
    at::Tensor flat = out.view({B * T, H * D});
    return adapted(b, lora::Projection::O, flat, at::addmm(b.OutBias, flat, b.OutWeight)).view({B, T, Config.DModel});
  }
  return adapted(b, lora::Projection::O, out, at::linear(out, b.OutWeight, b.OutBias));
}

at::Tensor Model::Impl::mlp(const Block &b, const at::Tensor &h) const {
  switch (Config.Family) {
  case Family::GPT2: {
    const int64_t B = h.size(0), T = h.size(1);
    at::Tensor flat = h.reshape({B * T, Config.DModel});
    at::Tensor up = at::gelu(adapted(b, lora::Projection::Up, flat, at::addmm(b.UpBias, flat, b.UpWeight)), "tanh");
    return adapted(b, lora::Projection::Down, up, at::addmm(b.DownBias, up, b.DownWeight)).view({B, T, Config.DModel});
  }
  case Family::Llama: { // SwiGLU (Shazeer 2020)
    at::Tensor gate = adapted(b, lora::Projection::Gate, h, at::linear(h, b.GateWeight));
    at::Tensor inner = at::silu(gate) * adapted(b, lora::Projection::Up, h, at::linear(h, b.UpWeight));
    return adapted(b, lora::Projection::Down, inner, at::linear(inner, b.DownWeight));
  }
  case Family::GPTNeoX: {
    at::Tensor up = adapted(b, lora::Projection::Up, h, at::linear(h, b.UpWeight, b.UpBias));
    up = Config.Activation == Activation::GELUTanh ? at::gelu(up, "tanh") : at::gelu(up);
    return adapted(b, lora::Projection::Down, up, at::linear(up, b.DownWeight, b.DownBias));
  }
  }
  llvm_unreachable("unknown family");
}

at::Tensor Model::Impl::block(const Block &b, const at::Tensor &x, const at::Tensor &cos, const at::Tensor &sin,
                              const compat::AttentionMask &mask) const {
  if (Config.ParallelResidual) {
    at::Tensor attn = attention(b, norm(x, b.Ln1Weight, b.Ln1Bias), cos, sin, mask);
    return mlp(b, norm(x, b.Ln2Weight, b.Ln2Bias)) + attn + x;
  }
  at::Tensor y = x + attention(b, norm(x, b.Ln1Weight, b.Ln1Bias), cos, sin, mask);
  return y + mlp(b, norm(y, b.Ln2Weight, b.Ln2Bias));
}

namespace {

/// A block's forward pass with what it reads besides its input (RoPE tables, the mask),
/// kept alive until the backward pass runs it again.
struct BlockRun : torch::CustomClassHolder {
  std::function<at::Tensor(const at::Tensor &)> Run;
  explicit BlockRun(std::function<at::Tensor(const at::Tensor &)> run) : Run(std::move(run)) {}
};

/// Activation checkpointing of one block, torch.utils.checkpoint's reentrant scheme: the
/// forward pass runs without a graph and saves only the block's input; the backward pass runs
/// the block again with grad mode on and back-propagates through that graph, which
/// accumulates the parameters' gradients (they are leaves) and returns the input's. The
/// same ops on the same input give the same activations, so the gradients are those of the
/// plain pass.
struct RecomputedBlock : torch::autograd::Function<RecomputedBlock> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &x, const c10::intrusive_ptr<BlockRun> &run) {
    ctx->save_for_backward({x});
    ctx->saved_data["run"] = c10::IValue::make_capsule(run);
    // The backward pass runs where autocast is off: it recomputes in the forward pass's precision.
    ctx->saved_data["autocast"] = mixtape::compat::cudaAutocastType(x).has_value();
    return run->Run(x);
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    at::Tensor x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    auto run = c10::static_intrusive_pointer_cast<BlockRun>(ctx->saved_data["run"].toCapsule());
    at::Tensor y;
    {
      at::AutoGradMode enableGrad(true);
      std::optional<mixtape::compat::CudaAutocast> autocast;
      if (ctx->saved_data["autocast"].toBool())
        autocast.emplace(x);
      y = run->Run(x);
    }
    torch::autograd::backward({y}, {grads[0]});
    return {x.grad(), at::Tensor()};
  }
};

} // namespace

at::Tensor Model::Impl::hidden(const at::Tensor &tokens, const at::Tensor &positions, const at::Tensor &allowed,
                               const ActivationCheckpointing &checkpointing) const {
  const ModelConfig &c = Config;
  const int64_t B = tokens.size(0), T = tokens.size(1);
  at::Tensor x = runPart(0, tokens, [&](const at::Tensor &ids) {
    at::Tensor e = at::embedding(Embed, ids);
    return c.Family == Family::GPT2 ? e + at::embedding(Positions, positions.expand({B, T})) : e;
  });

  at::Tensor cos, sin;
  if (c.Family != Family::GPT2) {
    // HF's default RoPE: inv_freq = 1 / theta^(2i / dim) in fp32, angles = position * inv_freq.
    const int64_t rot = c.rotaryDim();
    at::ScalarType compute = Dtype == at::kDouble ? at::kDouble : at::kFloat;
    at::Tensor invFreq =
        1.0 / at::pow(c.RopeTheta, at::arange(0, rot, 2, positions.options()).to(compute) / double(rot));
    at::Tensor angles = positions.to(compute).unsqueeze(-1) * invFreq; // [B|1, T, rot/2]
    at::Tensor emb = at::cat({angles, angles}, -1).unsqueeze(1);       // [B|1, 1, T, rot]
    cos = emb.cos().to(Dtype);
    sin = emb.sin().to(Dtype);
  }

  const compat::AttentionMask mask =
      compat::attentionMask(allowed, c.NumKVHeads, c.NumHeads / c.NumKVHeads, T, x.options().dtype(Dtype));
  for (size_t i = 0; i < Blocks.size(); ++i)
    x = runPart(i + 1, x, [&](const at::Tensor &in) {
      const Block &b = Blocks[i];
      // Without a gradient to compute there is nothing to save memory for.
      if (checkpointing.checkpoints(static_cast<int64_t>(i)) && at::GradMode::is_enabled() && in.requires_grad())
        return RecomputedBlock::apply(in, c10::make_intrusive<BlockRun>([this, &b, cos, sin, mask](const at::Tensor &y) {
                                        return block(b, y, cos, sin, mask);
                                      }));
      return block(b, in, cos, sin, mask);
    });
  return x;
}

at::Tensor Model::forward(const at::Tensor &tokens, const at::Tensor &documentStarts) const {
  const Impl &m = *PImpl;
  return m.documentsForward(tokens, documentStarts, {}, [&](const at::Tensor &h) { return at::linear(h, m.Head); });
}

const at::Tensor &Model::headWeight() const { return PImpl->Head; }

at::Tensor Model::hiddenStates(const at::Tensor &tokens, const at::Tensor &documentStarts,
                               const ActivationCheckpointing &checkpointing) const {
  return PImpl->documentsForward(tokens, documentStarts, checkpointing, [](const at::Tensor &h) { return h; });
}

at::Tensor Model::Impl::documentsForward(const at::Tensor &tokens, const at::Tensor &documentStarts,
                                         const ActivationCheckpointing &checkpointing,
                                         llvm::function_ref<at::Tensor(const at::Tensor &)> head) const {
  TORCH_CHECK(tokens.dim() == 2 && tokens.scalar_type() == at::kLong,
              "Model::forward: tokens must be int64 [batch, time], got ", tokens.sizes());
  const int64_t T = tokens.size(1);
  TORCH_CHECK(T <= Config.MaxPositions, "Model::forward: sequence of ", T,
              " tokens is longer than the model's ", Config.MaxPositions, " positions");

  // Positions and the attention mask: plain causal, or causal within each document.
  at::TensorOptions longs = tokens.options().dtype(at::kLong);
  at::Tensor positions = at::arange(T, longs).unsqueeze(0); // [1, T]
  at::Tensor allowed;
  if (documentStarts.defined()) {
    TORCH_CHECK(documentStarts.sizes() == tokens.sizes(),
                "Model::forward: documentStarts must have the tokens' shape");
    at::Tensor starts = documentStarts.to(at::kBool).clone();
    starts.select(1, 0).fill_(true);
    at::Tensor documentIds = starts.to(at::kLong).cumsum(1);              // [B, T]
    at::Tensor startIndex = std::get<0>((positions * starts).cummax(1)); // [B, T]
    positions = positions - startIndex;
    at::Tensor sameDocument = documentIds.unsqueeze(2) == documentIds.unsqueeze(1);
    at::Tensor causal = at::ones({T, T}, longs.dtype(at::kBool)).tril();
    allowed = (sameDocument & causal).unsqueeze(1); // [B, 1, T, T]
  }
  return logits(hidden(tokens, positions, allowed, checkpointing), head);
}

at::Tensor Model::forwardAt(const at::Tensor &tokens, const at::Tensor &positions, const at::Tensor &allowed,
                            const at::Tensor &rows) const {
  const Impl &m = *PImpl;
  TORCH_CHECK(tokens.dim() == 2 && tokens.scalar_type() == at::kLong && positions.sizes() == tokens.sizes() &&
                  positions.scalar_type() == at::kLong,
              "Model::forwardAt: tokens and positions must be int64 [batch, time], got ", tokens.sizes(), " and ",
              positions.sizes());
  const int64_t B = tokens.size(0), T = tokens.size(1);
  TORCH_CHECK(!allowed.defined() || (allowed.scalar_type() == at::kBool && allowed.sizes() == at::IntArrayRef({B, T, T})),
              "Model::forwardAt: allowed must be bool [batch, time, time], got ", allowed.sizes());
  TORCH_CHECK(rows.dim() == 1 && rows.scalar_type() == at::kLong, "Model::forwardAt: rows must be int64 [N]");
  TORCH_CHECK(positions.numel() == 0 || positions.max().item<int64_t>() < m.Config.MaxPositions,
              "Model::forwardAt: a position is past the model's ", m.Config.MaxPositions, " positions");
  at::Tensor x = m.hidden(tokens, positions, allowed.defined() ? allowed.unsqueeze(1) : allowed);
  return m.logits(x, [&](const at::Tensor &h) {
    return at::linear(h.reshape({B * T, m.Config.DModel}).index_select(0, rows), m.Head);
  });
}

/// Masked targets may be anything (padding, -1): nll_loss's ignore_index drops their terms
/// from the value and the gradient, with no per-token losses materialized.
static constexpr int64_t kIgnoredTarget = -100;

static at::Tensor keptTargets(const at::Tensor &targets, const at::Tensor &lossMask) {
  at::Tensor flat = targets.reshape({-1});
  return lossMask.defined() ? flat.masked_fill(lossMask.reshape({-1}).logical_not(), kIgnoredTarget) : flat;
}

/// bf16 or fp16 logits (CUDA autocast), which are reduced in fp32.
static bool isReduced(const at::Tensor &logits) {
  return logits.scalar_type() == at::kBFloat16 || logits.scalar_type() == at::kHalf;
}

/// Log-probabilities in fp32, as autocast's cross_entropy computes them: the upcast is one copy
/// of the [tokens, vocab] logits (LibTorch fuses it into log-softmax for fp16 only); the
/// gradient comes back in the logits' dtype.
static at::Tensor fp32LogProbs(const at::Tensor &flatLogits) { return at::log_softmax(flatLogits, 1, at::kFloat); }

at::Tensor mixtape::model::maskedTokenLossSum(const at::Tensor &logits, const at::Tensor &targets,
                                              const at::Tensor &lossMask) {
  const int64_t V = logits.size(-1);
  at::Tensor flatLogits = logits.reshape({-1, V});
  if (isReduced(logits))
    return at::nll_loss(fp32LogProbs(flatLogits), keptTargets(targets, lossMask), {}, at::Reduction::Sum,
                        kIgnoredTarget);
  if (!lossMask.defined())
    return at::cross_entropy_loss(flatLogits, targets.reshape({-1}), {}, at::Reduction::Sum);
  return at::cross_entropy_loss(flatLogits, keptTargets(targets, lossMask), {}, at::Reduction::Sum, kIgnoredTarget);
}

int64_t mixtape::model::countLossTokens(const at::Tensor &targets, const at::Tensor &lossMask) {
  if (!lossMask.defined())
    return targets.numel();
  return lossMask.to(at::kBool).sum().item<int64_t>();
}

//===----------------------------------------------------------------------===//
// Weights I/O
//===----------------------------------------------------------------------===//

namespace {

/// The tensors of a checkpoint, one file or several shards, by name.
struct Checkpoint {
  std::string Name; ///< the file, or the index of the shards, for messages
  std::vector<st::File> Files;
  struct Entry {
    const st::TensorInfo *Info;
    std::string File;
  };
  std::vector<std::pair<std::string, Entry>> InOrder; ///< shard by shard, in data order
  llvm::StringMap<Entry> ByName;

  /// Adds the tensors of the file just opened; fails on a name another file holds.
  llvm::Error addFile(st::File file) {
    Files.push_back(std::move(file));
    const st::File &f = Files.back();
    for (const st::TensorInfo &t : f.tensors()) {
      auto [it, fresh] = ByName.try_emplace(t.Name, Entry{&t, f.path().str()});
      if (!fresh)
        return fileError(Name, llvm::Twine("tensor '") + t.Name + "' is in both " + it->second.File + " and " +
                                   f.path());
      InOrder.push_back({t.Name, it->second});
    }
    return llvm::Error::success();
  }
};

/// The shards an index maps tensors to, opened and checked against it.
llvm::Expected<Checkpoint> openShards(llvm::StringRef dir, llvm::StringRef indexPath) {
  Checkpoint ckpt;
  ckpt.Name = indexPath.str();
  auto bad = [&](const llvm::Twine &what) { return fileError(indexPath, what); };
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer = llvm::MemoryBuffer::getFile(indexPath);
  if (!buffer)
    return bad("cannot open: " + buffer.getError().message());
  llvm::Expected<ShardIndex> index = parseShardIndex((*buffer)->getBuffer(), indexPath);
  if (!index)
    return index.takeError();
  for (const auto &[shard, tensors] : index->TensorsOfShard) {
    std::string path = joinPath(dir, shard);
    if (!llvm::sys::fs::exists(path))
      return bad("shard '" + shard + "' (of tensor '" + tensors.front() + "') does not exist");
    llvm::Expected<st::File> file = st::File::open(path);
    if (!file)
      return file.takeError();
    if (llvm::Error e = ckpt.addFile(std::move(*file)))
      return e;
    for (const std::string &tensor : tensors)
      if (!ckpt.Files.back().find(tensor))
        return bad("shard '" + shard + "' has no tensor '" + tensor + "'");
  }
  for (const auto &[tensor, entry] : ckpt.InOrder) {
    auto shard = index->ShardOfTensor.find(tensor);
    if (shard == index->ShardOfTensor.end() || llvm::sys::path::filename(entry.File) != shard->second)
      return bad("tensor '" + tensor + "' is in " + entry.File + ", which weight_map does not give it");
  }
  return ckpt;
}

} // namespace

/// Checks everything before copying anything: a failed load leaves the model as it was.
/// Copies the parameters `only` (all when unset).
static llvm::Error loadCheckpoint(std::vector<NamedParameter> &params,
                                  const llvm::StringMap<size_t> &byName, const ModelConfig &config,
                                  const Checkpoint &ckpt, std::optional<llvm::ArrayRef<size_t>> only = std::nullopt) {
  for (const auto &[name, entry] : ckpt.InOrder) {
    if (byName.count(name) || isKnownBuffer(name))
      continue;
    if (config.TieEmbeddings && (name == "lm_head.weight" || name == "embed_out.weight"))
      continue; // a tied head saved anyway; the embedding is what counts
    return fileError(entry.File, llvm::Twine("tensor '") + name + "' is not a parameter of this " +
                                     mixtape::plan::enumName(config.Family) + " model");
  }
  for (NamedParameter &p : params) {
    auto it = ckpt.ByName.find(p.Name);
    if (it == ckpt.ByName.end())
      return fileError(ckpt.Name, "missing tensor '" + p.Name + "'");
    const st::TensorInfo &t = *it->second.Info;
    if (llvm::ArrayRef<int64_t>(t.Shape) != llvm::ArrayRef<int64_t>(p.Tensor.sizes().vec()))
      return fileError(it->second.File, llvm::Twine("tensor '") + p.Name + "' has shape " + st::shapeText(t.Shape) +
                                            ", the model needs " + st::shapeText(p.Tensor.sizes().vec()));
    if (!scalarType(t.Dtype))
      return fileError(it->second.File, llvm::Twine("tensor '") + p.Name + "' has dtype " + st::dtypeName(t.Dtype) +
                                            "; parameters must be F32, F16, BF16 or F64");
  }
  at::NoGradGuard noGrad;
  auto copy = [&](NamedParameter &p) {
    const st::TensorInfo &t = *ckpt.ByName.find(p.Name)->second.Info;
    // Copy out of the mapping first: tensor data in a file need not be aligned.
    at::Tensor staging = at::empty(t.Shape, at::TensorOptions().dtype(*scalarType(t.Dtype)));
    std::memcpy(staging.data_ptr(), t.Bytes.data(), t.Bytes.size());
    p.Tensor.copy_(staging);
  };
  if (!only)
    llvm::for_each(params, copy);
  else
    for (size_t i : *only)
      copy(params[i]);
  return llvm::Error::success();
}

/// The tensors of one safetensors file.
static llvm::Expected<Checkpoint> openFile(llvm::StringRef path) {
  llvm::Expected<st::File> file = st::File::open(path);
  if (!file)
    return file.takeError();
  Checkpoint ckpt;
  ckpt.Name = path.str();
  if (llvm::Error e = ckpt.addFile(std::move(*file)))
    return std::move(e);
  return ckpt;
}

llvm::Error Model::loadWeights(llvm::StringRef path) {
  llvm::Expected<Checkpoint> ckpt = openFile(path);
  if (!ckpt)
    return ckpt.takeError();
  return loadCheckpoint(PImpl->Params, PImpl->ByName, PImpl->Config, *ckpt);
}

llvm::Error Model::loadWeights(llvm::StringRef path, llvm::ArrayRef<size_t> only) {
  llvm::Expected<Checkpoint> ckpt = openFile(path);
  if (!ckpt)
    return ckpt.takeError();
  return loadCheckpoint(PImpl->Params, PImpl->ByName, PImpl->Config, *ckpt, only);
}

llvm::Error Model::loadHuggingFaceWeights(llvm::StringRef dir) {
  std::string single = joinPath(dir, "model.safetensors"), index = joinPath(dir, "model.safetensors.index.json");
  if (llvm::sys::fs::exists(single) || !llvm::sys::fs::exists(index))
    return loadWeights(single);
  llvm::Expected<Checkpoint> ckpt = openShards(dir, index);
  if (!ckpt)
    return ckpt.takeError();
  return loadCheckpoint(PImpl->Params, PImpl->ByName, PImpl->Config, *ckpt);
}

/// Parameters in name order, as save_pretrained writes them.
static std::vector<const NamedParameter *> sortedByName(llvm::ArrayRef<NamedParameter> params) {
  std::vector<const NamedParameter *> order;
  for (const NamedParameter &p : params)
    order.push_back(&p);
  llvm::sort(order, [](const NamedParameter *a, const NamedParameter *b) { return a->Name < b->Name; });
  return order;
}

/// One safetensors file of `params` as `dtype`, converted one tensor at a time; each
/// parameter's values from `valueOf`, asked for in order.
static llvm::Error writeTensors(llvm::StringRef path, llvm::ArrayRef<const NamedParameter *> params,
                                c10::ScalarType dtype,
                                llvm::function_ref<at::Tensor(const NamedParameter &)> valueOf) {
  std::vector<st::TensorLayout> layouts;
  for (const NamedParameter *p : params)
    layouts.push_back({p->Name, *safetensorsType(dtype), p->Tensor.sizes().vec()});
  llvm::Expected<st::Writer> writer = st::Writer::create(path, layouts, {{"format", "pt"}});
  if (!writer)
    return writer.takeError();
  at::NoGradGuard noGrad;
  for (const NamedParameter *p : params) {
    at::Tensor t = valueOf(*p).detach().to(at::kCPU, dtype).contiguous();
    if (llvm::Error e = writer->add(p->Name, {static_cast<const uint8_t *>(t.data_ptr()), t.nbytes()}))
      return e;
  }
  return writer->commit();
}

/// A parameter's own values.
static at::Tensor ownValues(const NamedParameter &p) { return p.Tensor; }

llvm::Error Model::saveWeights(llvm::StringRef path) const {
  return writeTensors(path, sortedByName(PImpl->Params), PImpl->Dtype, ownValues);
}

llvm::Error Model::saveWeights(llvm::StringRef path, llvm::function_ref<at::Tensor(size_t)> valueOf) const {
  const NamedParameter *first = PImpl->Params.data();
  return writeTensors(path, sortedByName(PImpl->Params), PImpl->Dtype,
                      [&](const NamedParameter &p) { return valueOf(static_cast<size_t>(&p - first)); });
}

std::vector<size_t> Model::weightOrder() const {
  std::vector<size_t> order;
  for (const NamedParameter *p : sortedByName(PImpl->Params))
    order.push_back(static_cast<size_t>(p - PImpl->Params.data()));
  return order;
}

llvm::Error Model::saveHuggingFace(llvm::StringRef dir, const HFSaveOptions &options) const {
  const c10::ScalarType dtype = options.Dtype.value_or(PImpl->Dtype);
  if (!safetensorsType(dtype))
    return makeError("a model is saved in a floating-point dtype");
  if (std::error_code ec = llvm::sys::fs::create_directories(dir))
    return fileError(dir, "cannot create: " + ec.message());
  llvm::StringRef torchDtype = dtype == at::kBFloat16 ? "bfloat16"
                               : dtype == at::kHalf   ? "float16"
                               : dtype == at::kDouble ? "float64"
                                                      : "float32";
  // generation_config.json is what transformers derives from the config (GenerationConfig.
  // from_model_config): the special tokens' ids.
  llvm::json::Object config = formatHFConfig(PImpl->Config, torchDtype), generation{{"_from_model_config", true}};
  for (auto [key, id] : {std::pair{"bos_token_id", options.BosTokenId}, std::pair{"eos_token_id", options.EosTokenId},
                         std::pair{"pad_token_id", options.PadTokenId}})
    if (id)
      config[key] = generation[key] = *id;
  if (llvm::Error e = mixtape::writeFileDurably(joinPath(dir, "config.json"), mixtape::formatJSON(std::move(config))))
    return e;
  if (llvm::Error e = mixtape::writeFileDurably(joinPath(dir, "generation_config.json"),
                                                mixtape::formatJSON(std::move(generation))))
    return e;

  std::vector<std::vector<const NamedParameter *>> shards(1);
  uint64_t shardBytes = 0, totalBytes = 0;
  for (const NamedParameter *p : sortedByName(PImpl->Params)) {
    const uint64_t bytes = static_cast<uint64_t>(p->Tensor.numel()) * c10::elementSize(dtype);
    if (!shards.back().empty() && shardBytes + bytes > options.MaxShardBytes) {
      shards.emplace_back();
      shardBytes = 0;
    }
    shards.back().push_back(p);
    shardBytes += bytes;
    totalBytes += bytes;
  }
  if (shards.size() == 1)
    return writeTensors(joinPath(dir, "model.safetensors"), shards.front(), dtype, ownValues);
  llvm::json::Object weightMap;
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string name = llvm::formatv("model-{0}-of-{1}.safetensors", llvm::format("%05zu", i + 1),
                                           llvm::format("%05zu", shards.size()))
                                 .str();
    if (llvm::Error e = writeTensors(joinPath(dir, name), shards[i], dtype, ownValues))
      return e;
    for (const NamedParameter *p : shards[i])
      weightMap[p->Name] = name;
  }
  llvm::json::Object index{{"metadata", llvm::json::Object{{"total_size", totalBytes}}},
                           {"weight_map", std::move(weightMap)}};
  return mixtape::writeFileDurably(joinPath(dir, "model.safetensors.index.json"), mixtape::formatJSON(std::move(index)));
}
