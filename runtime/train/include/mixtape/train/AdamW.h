//===- AdamW.h - AdamW with parameter groups -------------------*- C++ -*-===//
//
// Adam with decoupled weight decay (Loshchilov & Hutter 2019, Algorithm 2), written as
// PyTorch's single-tensor torch.optim.AdamW computes it, so that a step here and a step
// there agree to rounding. The learning rate is an argument of every step: the schedule
// belongs to the caller (plan/Schedule.h evaluates it).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/model/Model.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mixtape::train {

struct AdamWOptions {
  double Beta1 = 0.9;
  double Beta2 = 0.95;
  double Eps = 1e-8;
  double WeightDecay = 0.1;
  /// Decay norms, biases and embeddings too (by default only matrices decay).
  bool DecayAllParameters = false;
};

/// Parameters that share a weight decay and an LR scale; `members` index into the
/// optimizer's parameters.
struct ParamGroup {
  std::string Name; ///< "decay" or "no_decay", with " x<scale>" where the LR is scaled
  double WeightDecay = 0;
  std::vector<size_t> Members;
  double LRScale = 1;
};

class AdamW {
public:
  /// `lrScales` (one per parameter; empty: all 1) multiply the learning rate of each
  /// parameter's updates, weight decay's included (lr_scale: layer-wise slow learners).
  AdamW(llvm::ArrayRef<model::NamedParameter> params, AdamWOptions options, std::vector<double> lrScales = {});

  /// One update of every parameter that has a gradient, with learning rate `lr` (times the
  /// parameter's scale).
  void step(double lr);
  /// Drops the gradients (undefined, not zero-filled: the next backward allocates).
  void zeroGrad();
  /// Forgets moments and step count (a stage edge that resets the optimizer).
  void resetState();

  int64_t steps() const { return Steps; }
  const AdamWOptions &options() const { return Options; }
  llvm::ArrayRef<ParamGroup> groups() const { return Groups; }
  llvm::ArrayRef<model::NamedParameter> parameters() const { return Params; }
  /// First and second moments of parameter `i` (undefined before its first step).
  const at::Tensor &expAvg(size_t i) const { return ExpAvg[i]; }
  const at::Tensor &expAvgSq(size_t i) const { return ExpAvgSq[i]; }
  /// Replaces the moments of parameter `i` (undefined: none held here). ZeRO-1 keeps its
  /// shard of them elsewhere and hands the whole state back only to save it.
  void setMoments(size_t i, at::Tensor expAvg, at::Tensor expAvgSq);
  /// Weight decay of parameter `i`, from its group.
  double weightDecay(size_t i) const { return Decay[i]; }
  /// The multiplier of parameter `i`'s learning rate.
  double lrScale(size_t i) const { return LRScale[i]; }
  /// Counts a step whose updates were applied elsewhere (ZeRO-1 calls update() on its
  /// shard); returns the new step count.
  int64_t countStep() { return ++Steps; }
  /// The step count a checkpoint recorded (its moments are restored through setMoments or
  /// a sharding's own buffers).
  void setSteps(int64_t steps) { Steps = steps; }

  /// The update step() makes to one tensor (torch/optim/adamw.py, _single_tensor_adamw),
  /// on tensors the caller holds: `param` in place, at step number `step` (from 1).
  /// The tensors are handles: a view (a slice of a parameter) is updated where it points.
  static void update(at::Tensor param, const at::Tensor &grad, at::Tensor expAvg, at::Tensor expAvgSq,
                     double lr, double weightDecay, int64_t step, const AdamWOptions &options);

  /// Moments as "<param>.exp_avg" / "<param>.exp_avg_sq", step count and hyperparameters
  /// in the metadata; one safetensors file written atomically.
  llvm::Error saveState(llvm::StringRef path) const;
  /// saveState with parameter i's moments (exp_avg, exp_avg_sq) from `momentsOf(i)`, asked
  /// for once each, in order: moments that are never all in memory (fully sharded training's).
  /// They are of `momentDtype` where given, else of their parameter's dtype (fully sharded
  /// training keeps fp32 moments of bf16 parameters).
  llvm::Error saveState(llvm::StringRef path, llvm::function_ref<std::pair<at::Tensor, at::Tensor>(size_t)> momentsOf,
                        std::optional<c10::ScalarType> momentDtype = std::nullopt) const;
  /// Reads what saveState wrote; every parameter's moments must be there with its shape.
  llvm::Error loadState(llvm::StringRef path);

private:
  std::vector<model::NamedParameter> Params;
  AdamWOptions Options;
  std::vector<ParamGroup> Groups;
  std::vector<double> Decay; ///< per parameter, from its group
  std::vector<double> LRScale; ///< per parameter, from its group
  std::vector<at::Tensor> ExpAvg, ExpAvgSq;
  at::Tensor StepCounts; ///< the fused kernel's per-parameter step counts (CUDA only)
  int64_t Steps = 0;
};

/// The name of the first parameter, or "<param>.exp_avg" / "<param>.exp_avg_sq" moment,
/// holding a NaN or infinity: nothing that holds one is ever saved as a checkpoint.
std::optional<std::string> firstNonFinite(const AdamW &optimizer);

/// Scales all gradients so that their global L2 norm is at most `maxNorm` (as
/// torch.nn.utils.clip_grad_norm_, with its 1e-6 guard); returns the norm before clipping.
/// `maxNorm` <= 0 only measures.
double clipGradNorm(llvm::ArrayRef<model::NamedParameter> params, double maxNorm);
/// The factor clipGradNorm scales gradients of global norm `norm` by (1: no clipping).
double clipFactor(double norm, double maxNorm);

} // namespace mixtape::train
