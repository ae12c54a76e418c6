//===- Lora.cpp - LoRA's factors, forward hook and merge ------------------===//
//
// Hu et al. 2021, sec. 4.1: h = W0 x + (alpha / r) B A x, B = 0 at the start. The layouts of
// the adapted weights are Model.cpp's (Hugging Face's): Llama's and GPT-NeoX's [out, in],
// GPT-2's Conv1D [in, out]; GPT-2 fuses q/k/v as column blocks [q | k | v] of c_attn, GPT-NeoX
// as rows interleaved per head ([q_h; k_h; v_h] for each head h).
//
//===----------------------------------------------------------------------===//
#include "LoraAdapters.h"

#include "mixtape/plan/ParamGroups.h"
#include "mixtape/support/Error.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

using namespace mixtape::model;
using namespace mixtape::model::lora;

Adapters::Adapters(const LoraOptions &options, const ModelConfig &config, std::vector<BlockWeights> blocks)
    : Options(options), Config(config), Scale(options.Alpha / double(options.Rank)), Blocks(std::move(blocks)),
      PerBlock(Blocks.size()), Dropout(at::detail::createCPUGenerator(options.Seed)) {}

llvm::Expected<std::unique_ptr<Adapters>> Adapters::create(const LoraOptions &options, const ModelConfig &config,
                                                           std::vector<BlockWeights> blocks, c10::ScalarType dtype,
                                                           std::vector<NamedParameter> &params) {
  llvm::ArrayRef<llvm::StringRef> known = plan::loraTargets(config.Family);
  if (options.Rank <= 0)
    return makeError("LoRA: the rank must be positive");
  for (const std::string &t : options.Targets)
    if (!llvm::is_contained(known, t))
      return makeError("LoRA: " + plan::enumName(config.Family).str() + " has no projection '" + t + "' (it has " +
                       llvm::join(known, ", ") + ")");
  std::unique_ptr<Adapters> a(new Adapters(options, config, std::move(blocks)));
  const bool fused = config.Family != Family::Llama;
  const int64_t d = config.DModel, head = config.effectiveHeadDim(), ffn = config.FfnHidden;
  const int64_t q = config.NumHeads * head, kv = config.NumKVHeads * head;
  // Per target: its index in loraTargets' full list, input and output widths, module.
  struct Spec {
    llvm::StringRef Name;
    Target T;
    int64_t In, Out;
    llvm::StringRef Gpt2, Llama, NeoX;
  };
  const Spec specs[] = {
      {"q", Q, d, q, "attn.c_attn", "self_attn.q_proj", "attention.query_key_value"},
      {"k", K, d, kv, "attn.c_attn", "self_attn.k_proj", "attention.query_key_value"},
      {"v", V, d, kv, "attn.c_attn", "self_attn.v_proj", "attention.query_key_value"},
      {"o", O, q, d, "attn.c_proj", "self_attn.o_proj", "attention.dense"},
      {"gate", Gate, d, ffn, "", "mlp.gate_proj", ""},
      {"up", Up, d, ffn, "mlp.c_fc", "mlp.up_proj", "mlp.dense_h_to_4h"},
      {"down", Down, ffn, d, "mlp.c_proj", "mlp.down_proj", "mlp.dense_4h_to_h"},
  };
  at::NoGradGuard noGrad;
  at::Generator gen = at::detail::createCPUGenerator(options.Seed);
  for (size_t layer = 0; layer < a->Blocks.size(); ++layer)
    for (const Spec &s : specs) {
      if (!llvm::is_contained(options.Targets, s.Name))
        continue;
      llvm::StringRef module = config.Family == Family::GPT2 ? s.Gpt2 : config.Family == Family::Llama ? s.Llama : s.NeoX;
      const bool inFused = fused && s.T <= V;
      auto name = [&](llvm::StringRef factor) {
        return a->Blocks[layer].Prefix + module.str() + ".lora_" + factor.str() + (inFused ? "." + s.Name.str() : "") +
               ".weight";
      };
      // kaiming_uniform_(a = sqrt(5)) on [r, in]: gain sqrt(2 / 6), bound gain * sqrt(3 / in) = 1 / sqrt(in).
      const double bound = 1.0 / std::sqrt(double(s.In));
      Factors &f = a->PerBlock[layer][s.T];
      f.A = at::empty({options.Rank, s.In}, at::TensorOptions().dtype(dtype)).uniform_(-bound, bound, gen);
      f.B = at::zeros({s.Out, options.Rank}, at::TensorOptions().dtype(dtype));
      f.A.set_requires_grad(true);
      f.B.set_requires_grad(true);
      params.push_back({name("A"), f.A, ParamKind::Matrix});
      params.push_back({name("B"), f.B, ParamKind::Matrix});
    }
  return a;
}

void Adapters::reseedDropout(uint64_t step) {
  // Distinct streams per step: the seed and the step mixed by a 64-bit odd multiplier.
  Dropout = at::detail::createCPUGenerator(Options.Seed ^ (step * 0x9E3779B97F4A7C15ull));
}

at::Tensor Adapters::delta(int64_t layer, Target t, const at::Tensor &x) const {
  const Factors &f = PerBlock[size_t(layer)][t];
  if (!f.A.defined())
    return {};
  at::Tensor input = x;
  if (Options.Dropout > 0 && at::GradMode::is_enabled()) {
    // Masks drawn on the CPU, so that they depend on the seed alone (inverted dropout).
    const double keep = 1 - Options.Dropout;
    at::Tensor mask = at::empty(x.sizes(), at::TensorOptions().dtype(at::kFloat)).bernoulli_(keep, Dropout);
    input = x * mask.div_(keep).to(x.options());
  }
  return at::linear(at::linear(input, f.A), f.B) * Scale;
}

at::Tensor Adapters::adapt(int64_t layer, Projection p, const at::Tensor &x, at::Tensor y) const {
  if (p != Projection::QKV) {
    static constexpr Target kTarget[] = {Q, Q, K, V, O, Gate, Up, Down}; // by Projection; QKV is handled below
    at::Tensor d = delta(layer, kTarget[int(p)], x);
    return d.defined() ? y + d : y;
  }
  std::array<at::Tensor, 3> parts = {delta(layer, Q, x), delta(layer, K, x), delta(layer, V, x)};
  if (llvm::none_of(parts, [](const at::Tensor &t) { return t.defined(); }))
    return y;
  const int64_t width = Config.NumHeads * Config.effectiveHeadDim();
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = width;
  for (at::Tensor &t : parts)
    if (!t.defined())
      t = at::zeros(shape, y.options());
  if (Config.Family == Family::GPT2)
    return y + at::cat({parts[0], parts[1], parts[2]}, -1);
  // GPT-NeoX: [..., H, 3, D], each head's q, k and v rows side by side.
  std::vector<int64_t> heads(shape.begin(), shape.end() - 1);
  heads.push_back(Config.NumHeads);
  heads.push_back(Config.effectiveHeadDim());
  at::Tensor stacked = at::stack({parts[0].view(heads), parts[1].view(heads), parts[2].view(heads)}, -2);
  return y + stacked.reshape(y.sizes());
}

void Adapters::merge() {
  at::NoGradGuard noGrad;
  const int64_t H = Config.NumHeads, D = Config.effectiveHeadDim(), d = Config.DModel;
  for (size_t layer = 0; layer < Blocks.size(); ++layer) {
    const BlockWeights &w = Blocks[layer];
    for (int t = 0; t < NumTargets; ++t) {
      const Factors &f = PerBlock[layer][t];
      if (!f.A.defined())
        continue;
      at::Tensor update = at::matmul(f.B, f.A) * Scale; // [out, in]
      const at::Tensor *unfused[] = {&w.Q, &w.K, &w.V, &w.O, &w.Gate, &w.Up, &w.Down};
      if (Config.Family == Family::Llama) {
        unfused[t]->add_(update);
      } else if (Config.Family == Family::GPT2) { // Conv1D [in, out]
        at::Tensor target = t <= V ? w.QKV.narrow(1, t * d, d) : *unfused[t];
        target.add_(update.t());
      } else if (t <= V) { // GPT-NeoX's rows [H, 3, D, in]
        w.QKV.view({H, 3, D, d}).select(1, t).add_(update.view({H, D, d}));
      } else {
        unfused[t]->add_(update);
      }
    }
  }
}
