//===- LoraAdapters.h - the adapters Model.cpp hooks into its projections -===//
//
// Private to runtime/model: Model::Impl holds one Adapters while LoRA is on, calls adapt()
// on each projection's output and merge() before dropping them.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/model/Lora.h"
#include "mixtape/model/Model.h"

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <array>

namespace mixtape::model::lora {

/// A projection's output; QKV is GPT-2's and GPT-NeoX's fused one.
enum class Projection { QKV, Q, K, V, O, Gate, Up, Down };

/// One block's base weights, as the model holds them (a fused family: QKV, not Q/K/V).
struct BlockWeights {
  std::string Prefix; ///< "model.layers.3."
  at::Tensor QKV, Q, K, V, O, Gate, Up, Down;
};

class Adapters {
public:
  /// Factors for every target of every block, A drawn from `options.Seed`; fails on a target
  /// the family lacks. The new parameters are appended to `params` in block, target order.
  static llvm::Expected<std::unique_ptr<Adapters>> create(const LoraOptions &options, const ModelConfig &config,
                                                           std::vector<BlockWeights> blocks,
                                                           c10::ScalarType dtype,
                                                           std::vector<NamedParameter> &params);

  /// `y`, the output of projection `p` of block `layer` for input `x` [..., in], plus the
  /// adapters' (alpha / r) B A dropout(x) on the rows they adapt.
  at::Tensor adapt(int64_t layer, Projection p, const at::Tensor &x, at::Tensor y) const;
  /// W += (alpha / r) B A on every adapted weight, in the weight's own layout.
  void merge();
  /// The dropout masks of training step `step` are drawn from (seed, step) alone.
  void reseedDropout(uint64_t step);

private:
  /// The targets, in loraTargets order: q, k, v, o, gate, up, down.
  enum Target { Q, K, V, O, Gate, Up, Down, NumTargets };
  struct Factors {
    at::Tensor A, B; ///< [r, in], [out, r]; undefined: not adapted
  };

  Adapters(const LoraOptions &options, const ModelConfig &config, std::vector<BlockWeights> blocks);
  at::Tensor delta(int64_t layer, Target t, const at::Tensor &x) const;

  LoraOptions Options;
  ModelConfig Config;
  double Scale;
  std::vector<BlockWeights> Blocks;
  std::vector<std::array<Factors, NumTargets>> PerBlock;
  mutable at::Generator Dropout;
};

} // namespace mixtape::model::lora
