//===- Merge.h - model merging, tensor by tensor ---------------*- C++ -*-===//
//
// The merge methods of a recipe's [[merge]] (and of ablation combinations), with MergeKit's
// semantics (github.com/arcee-ai/mergekit, mergekit/merge_methods/): users who know MergeKit
// get what they expect. Every method works on one tensor at a time, so a merge of
// safetensors files streams: for each tensor name, read it from every (mapped) input, merge,
// write — memory is about one tensor x inputs, never whole models.
//
//   linear           sum_i w_i x_i, divided by sum_i w_i when normalize (the default)
//   slerp            two models, spherical interpolation by t from the first (t = 0) to
//                    the second (t = 1); lerp when their directions are nearly colinear
//   task_arithmetic  base + sum_i w_i (x_i - base)                 (Ilharco et al. 2023)
//   ties             task vectors trimmed to their top density fraction by magnitude, a sign
//                    elected per entry by the sum, summed over the agreeing entries
//                    (Yadav et al. 2023)
//   dare_linear      task vectors with entries dropped at random (kept with probability
//   dare_ties        density) and rescaled by 1/density (Yu et al. 2024); dare_ties then
//                    elects signs like ties
//
// normalize divides the sum of weighted task vectors by the sum of the weights (ties and
// dare_ties: of the weights of the agreeing entries); MergeKit's defaults are on for linear
// and ties, off for task_arithmetic and dare_*.
//
// Arithmetic is in double whatever the stored dtype, and results are rounded once to the
// inputs' dtype, so a linear merge of identical models returns their bytes.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Plan.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mixtape::merge {

/// The plan's merge methods, spelled as recipes and plans do (plan::enumName): "linear",
/// "slerp", "task_arithmetic", "ties", "dare_linear", "dare_ties".
using Method = plan::MergeMethod;
/// task_arithmetic, ties and dare_*: they merge differences from a base model.
bool takesTaskVectors(Method method);

struct MergeOptions {
  merge::Method Method = merge::Method::Linear;
  /// One per model (the base excluded); empty: 1 each.
  std::vector<double> Weights;
  /// Divide by the sum of the weights (every method but slerp, which has none). Unset: the
  /// method's default, MergeKit's (plan::normalizesByDefault: linear and ties only).
  std::optional<bool> Normalize;
  /// ties and dare_*: the fraction of each task vector kept, in (0, 1].
  double Density = 1.0;
  /// slerp.
  double T = 0.5;
  /// dare_*: with the tensor's name, the seed of its drop masks (see dropSeed).
  uint64_t Seed = 0;

  bool normalizes() const { return Normalize.value_or(plan::normalizesByDefault(Method)); }

  /// Checks the options for `models` inputs (the base excluded), with or without a base:
  /// slerp takes exactly two models and no base, task vectors need a base, linear takes
  /// none, weights are one per model, density in (0, 1], t in [0, 1].
  llvm::Error validate(size_t models, bool hasBase) const;
};

/// The seed of dare's drop masks for the tensor `name`: the merge's seed mixed with the
/// name's FNV-1a hash, so a tensor's mask depends on neither the order tensors are merged
/// in nor the other tensors.
uint64_t dropSeed(uint64_t seed, llvm::StringRef name);

/// Merges one tensor. `models` and `base` (undefined when the method takes no base) have
/// one shape and a floating dtype; the result has that shape and dtype. `name` seeds dare.
/// Options must have passed validate().
at::Tensor mergeTensors(const MergeOptions &options, llvm::ArrayRef<at::Tensor> models,
                        const at::Tensor &base, llvm::StringRef name);

/// Merges safetensors files tensor by tensor into `out` (written through
/// safetensors::Writer, atomically). Every input must have the same tensor names, and for
/// each name the same shape and dtype: a mismatch is an error naming the tensor and the two
/// files. A value that is not finite (NaN, inf) in a floating tensor of any input is an
/// error naming the file and the tensor: it would spread through every merge method. The output keeps the names, their order (the first model's) and dtypes. Floating
/// tensors are merged; integer and bool tensors must be identical in every input and are
/// copied. The merged file's metadata is the base's, else the first model's — the same
/// rule as its config (docs/language.md, "Merges").
llvm::Error mergeFiles(const MergeOptions &options, llvm::ArrayRef<std::string> models,
                       const std::optional<std::string> &base, llvm::StringRef out);

} // namespace mixtape::merge
