//===- Trainer.h - one optimizer step over micro-batches -------*- C++ -*-===//
//
// A step reads top to bottom: the LR from the stage's schedule at the tokens seen so far,
// forward and backward over each micro-batch with the loss scaled so that the accumulated
// gradient is the gradient of the mean over all loss tokens of the batch, a non-finite loss
// check, gradient clipping, the AdamW update.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Schedule.h"
#include "mixtape/model/Model.h"
#include "mixtape/train/AdamW.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace mixtape::train {

/// One micro-batch: `Inputs` and `Targets` [B, T] int64; `LossMask` (optional, [B, T],
/// nonzero where the target counts); `DocumentStarts` (optional, see Model::forward);
/// `Streams` (optional, [B] int64): the mixture stream each sequence came from.
struct MicroBatch {
  at::Tensor Inputs, Targets, LossMask, DocumentStarts, Streams;
};

/// The micro-batch's tensors on `device` (where the model is); undefined ones stay so.
MicroBatch onDevice(const MicroBatch &mb, c10::Device device);

struct StepResult {
  /// The objective: mean cross-entropy over the batch's loss tokens, plus the regularizers'
  /// terms (LossLM + weight * LossDistill + LossL2).
  double Loss = 0;
  /// With regularizers: the objective's parts (LossDistill unweighted, per loss token).
  std::optional<double> LossLM, LossDistill, LossL2;
  int64_t LossTokens = 0; ///< positions that counted for the loss
  int64_t Tokens = 0;     ///< all input positions (what the schedule counts)
  double GradNorm = 0;    ///< global gradient norm before clipping
  double LR = 0;
  /// The loss or (with a finite loss) the gradient norm was not finite and
  /// TrainOptions::SkipNonFinite dropped the batch.
  bool Skipped = false;
  /// With stream ids: per stream, the summed loss of its counted positions and their
  /// number (the batch's loss is the token-weighted mean of these).
  std::vector<double> StreamLossSums;
  std::vector<int64_t> StreamLossTokens;
};

/// Clips the gradients of `optimizer`'s parameters to global norm `clipNorm` (0: no
/// clipping) and takes its step at `lr`; returns the norm before clipping. A non-finite
/// norm takes no step: the caller skips the batch or stops.
double clipAndStep(AdamW &optimizer, double clipNorm, double lr);

/// Data parallelism's part of a step (runtime/dist implements it over c10d): each rank
/// holds a share of the batch, and these calls make its step that of the whole batch.
class StepSync {
public:
  virtual ~StepSync() = default;
  /// Before the backward passes: counts summed over the ranks' shares, so that every rank
  /// divides its loss by the whole batch's loss tokens.
  virtual void sumCounts(int64_t &lossTokens, int64_t &tokens) = 0;
  /// Before the last micro-batch's backward pass: a sync may start summing gradients while
  /// that pass is still computing the others.
  virtual void beforeLastBackward(llvm::ArrayRef<model::NamedParameter> params) { (void)params; }
  /// After accumulation, before clipping: gradients summed wherever clipAndStep reads them,
  /// and `sums` (the loss, then any per-stream loss sums and counts) elementwise.
  virtual void sumGradients(llvm::ArrayRef<model::NamedParameter> params, llvm::MutableArrayRef<double> sums) = 0;
  /// After a finite loss: train::clipAndStep on the summed gradients (no step on a
  /// non-finite norm), unless the ranks share the update (ZeRO-1).
  virtual double clipAndStep(AdamW &optimizer, double clipNorm, double lr) {
    return train::clipAndStep(optimizer, clipNorm, lr);
  }
};

/// How a step's forward and backward passes trade time for memory; neither changes the
/// gradient beyond fp32 rounding (checkpointing on the CPU: not at all).
struct MemoryOptions {
  /// Blocks whose activations the backward pass computes again instead of keeping them.
  model::ActivationCheckpointing Checkpointing;
  /// Positions per chunk of the classifier and cross-entropy, which never hold the whole
  /// batch's logits (model::chunkedTokenLosses; 0: plan::lossChunkTokens).
  int64_t LossChunkTokens = 0;
};

/// Terms against forgetting beside the language-model loss (docs/language.md, "Regularizers
/// against forgetting"); none by default.
struct Regularizers {
  /// distill: a frozen teacher, and the weight of T² KL(teacher_T ‖ student_T) per loss token.
  const model::Model *Teacher = nullptr;
  double DistillWeight = 0, Temperature = 1;
  /// l2_to_init: lambda of (lambda / 2) Σ ||w − w_start||² and w_start, one tensor per trainable
  /// parameter in trainableParameters() order.
  double L2Coefficient = 0;
  std::vector<at::Tensor> Anchor;
  /// The share of the anchor's gradient each rank adds before the ranks sum theirs: 1 / ranks.
  double AnchorShare = 1;
};

/// Adds the gradient of (lambda / 2) Σ ||w − w_start||² (times `share`) to the trainable
/// parameters' .grad(); returns the term's value.
double addAnchorGradient(const model::Model &model, double lambda, llvm::ArrayRef<at::Tensor> anchor, double share);

/// One step of an exponential moving average: average ← decay · average + (1 − decay) · w
/// for every parameter `model` trains (the others are the same in both and stay so).
void updateAverage(model::Model &average, const model::Model &model, double decay);

/// Accumulates into the parameters' .grad() the gradient of the batch's mean token loss;
/// returns that loss and the token counts. Errors when no position counts for the loss.
/// Micro-batches may live on the CPU: each moves to the model's device in turn, and on CUDA
/// the forward pass runs under bf16 autocast.
/// With `sync`, `batch` is this rank's share and the result is the whole batch's.
/// With `streams` > 0, every micro-batch carries stream ids in [0, streams) and the result
/// has the loss per stream, from the same per-position losses (no second forward pass, same
/// gradient).
llvm::Expected<StepResult> accumulateGradients(const model::Model &model,
                                               llvm::ArrayRef<MicroBatch> batch,
                                               StepSync *sync = nullptr, size_t streams = 0,
                                               const MemoryOptions &memory = {},
                                               const Regularizers &regularizers = {});

struct TrainOptions {
  double ClipNorm = 0; ///< 0: no clipping (a recipe's default, grad_clip, reaches here through the plan)
  StepSync *Sync = nullptr; ///< data parallel: this rank trains on a share of each batch
  size_t Streams = 0;       ///< > 0: micro-batches carry stream ids; results have per-stream losses
  /// A non-finite loss drops the batch (the result says `skipped`) instead of failing.
  bool SkipNonFinite = false;
  MemoryOptions Memory;
  Regularizers Regularize;
  /// ema: the moving average updated after every applied update, and its decay.
  model::Model *Average = nullptr;
  double AverageDecay = 0;
};

class Trainer {
public:
  Trainer(model::Model &model, AdamW &optimizer, plan::LRSchedule schedule,
          TrainOptions options = {});

  /// One optimizer step. A non-finite loss or gradient norm leaves the weights and optimizer
  /// state as they were: an error naming the step, or with SkipNonFinite a result marked
  /// `Skipped` (the schedule still moves past the batch's tokens, as a resumed run counts
  /// them).
  llvm::Expected<StepResult> step(llvm::ArrayRef<MicroBatch> batch);

  /// Tokens of this stage consumed so far: where the schedule is evaluated next.
  double tokensSeen() const { return TokensSeen; }
  void setTokensSeen(double tokens) { TokensSeen = tokens; }

private:
  model::Model &Model;
  AdamW &Optimizer;
  plan::LRSchedule Schedule;
  TrainOptions Options;
  double TokensSeen = 0;
};

} // namespace mixtape::train
