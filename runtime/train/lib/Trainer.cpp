//===- Trainer.cpp --------------------------------------------------------===//
#include "mixtape/train/Trainer.h"

#include "mixtape/model/TorchCompat.h"
#include "mixtape/support/Error.h"

#include "llvm/Support/FormatVariadic.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

using namespace mixtape::train;
using mixtape::makeError;
using mixtape::prefixError;

MicroBatch mixtape::train::onDevice(const MicroBatch &mb, c10::Device device) {
  auto move = [&](const at::Tensor &t) { return t.defined() ? t.to(device) : t; };
  return {move(mb.Inputs), move(mb.Targets), move(mb.LossMask), move(mb.DocumentStarts), move(mb.Streams)};
}

double mixtape::train::addAnchorGradient(const model::Model &model, double lambda, llvm::ArrayRef<at::Tensor> anchor,
                                         double share) {
  at::NoGradGuard noGrad;
  const std::vector<model::NamedParameter> trainable = model.trainableParameters();
  TORCH_CHECK(trainable.size() == anchor.size(), "l2_to_init: ", anchor.size(), " anchor tensors for ",
              trainable.size(), " trained parameters");
  double squares = 0;
  for (size_t i = 0; i < trainable.size(); ++i) {
    at::Tensor w = trainable[i].Tensor;
    at::Tensor distance = w - anchor[i];
    squares += distance.to(at::kDouble).square().sum().item<double>();
    at::Tensor gradient = distance.mul_(lambda * share);
    if (w.grad().defined())
      w.mutable_grad().add_(gradient);
    else
      w.mutable_grad() = gradient;
  }
  return lambda / 2 * squares;
}

void mixtape::train::updateAverage(model::Model &average, const model::Model &model, double decay) {
  at::NoGradGuard noGrad;
  llvm::ArrayRef<model::NamedParameter> into = average.parameters(), from = model.parameters();
  TORCH_CHECK(into.size() == from.size(), "ema: the average has ", into.size(), " parameters, the model ",
              from.size());
  for (size_t i = 0; i < from.size(); ++i)
    if (from[i].Tensor.requires_grad())
      into[i].Tensor.mul_(decay).add_(from[i].Tensor, 1 - decay);
}

llvm::Expected<StepResult> mixtape::train::accumulateGradients(const model::Model &model,
                                                               llvm::ArrayRef<MicroBatch> batch,
                                                               StepSync *sync, size_t streams,
                                                               const MemoryOptions &memory,
                                                               const Regularizers &regularizers) {
  StepResult result;
  for (const MicroBatch &mb : batch) {
    result.LossTokens += model::countLossTokens(mb.Targets, mb.LossMask);
    result.Tokens += mb.Inputs.numel();
    if (streams && !mb.Streams.defined())
      return makeError("a micro-batch lacks the stream of its sequences");
  }
  if (sync)
    sync->sumCounts(result.LossTokens, result.Tokens);
  if (result.LossTokens == 0)
    return makeError("no position of the batch counts for the loss");
  // Each micro-batch's loss sum is divided by the whole batch's loss tokens, so the
  // accumulated gradient is that of the batch mean however the tokens fall across
  // micro-batches and masks.
  const double scale = 1.0 / double(result.LossTokens);
  const at::Tensor &anyParam = model.parameters().front().Tensor;
  // What the ranks sum: the trained parameters (frozen ones and LoRA's base have no gradient).
  const std::vector<model::NamedParameter> trainable =
      sync ? model.trainableParameters() : std::vector<model::NamedParameter>();
  const int64_t S = static_cast<int64_t>(streams);
  // Before any backward pass: data parallelism may start summing gradients during the last.
  std::optional<double> anchorTerm;
  if (regularizers.L2Coefficient > 0)
    anchorTerm = addAnchorGradient(model, regularizers.L2Coefficient, regularizers.Anchor, regularizers.AnchorShare);
  const model::Model *teacher = regularizers.Teacher;
  // Summed on the device: one synchronization per step, not per micro-batch.
  at::Tensor lossSum, distillSum;
  at::Tensor streamSums = at::zeros({2 * S}, anyParam.options().dtype(at::kDouble)); // sums, then counts
  for (const MicroBatch &cpuBatch : batch) {
    MicroBatch mb = onDevice(cpuBatch, anyParam.device());
    at::Tensor losses;  // [B, T] fp32, 0 where the mask is
    at::Tensor distill; // the same for T^2 KL(teacher || student)
    {
      compat::CudaAutocast autocast(anyParam); // bf16 products on CUDA; backward runs outside it
      at::Tensor hidden = model.hiddenStates(mb.Inputs, mb.DocumentStarts, memory.Checkpointing);
      losses = model::chunkedTokenLosses(hidden, model.headWeight(), mb.Targets, mb.LossMask, memory.LossChunkTokens);
      if (teacher) {
        at::Tensor teacherHidden;
        {
          at::NoGradGuard frozen;
          teacherHidden = teacher->hiddenStates(mb.Inputs, mb.DocumentStarts);
        }
        distill = model::chunkedDistillation(hidden, model.headWeight(), teacherHidden, teacher->headWeight(),
                                             regularizers.Temperature, mb.LossMask, memory.LossChunkTokens);
      }
    }
    if (S) {
      // From the same losses, outside the graph: the gradient's loss stays as it is.
      at::NoGradGuard noGrad;
      at::Tensor counted = mb.LossMask.defined()
                               ? mb.LossMask.ne(0).sum(-1)
                               : at::full({mb.Targets.size(0)}, mb.Targets.size(1), mb.Streams.options());
      streamSums.narrow(0, 0, S).index_add_(0, mb.Streams, losses.detach().to(at::kDouble).sum(-1));
      streamSums.narrow(0, S, S).index_add_(0, mb.Streams, counted.to(at::kDouble));
    }
    at::Tensor loss = losses.sum() * scale;
    at::Tensor distillLoss = distill.defined() ? distill.sum() * scale : at::zeros_like(loss);
    at::Tensor objective = distill.defined() ? loss + distillLoss * regularizers.DistillWeight : loss;
    if (sync && &cpuBatch == &batch.back())
      sync->beforeLastBackward(trainable);
    objective.backward();
    at::Tensor value = loss.detach().to(at::kDouble); // summed as doubles, as on the host
    lossSum = lossSum.defined() ? lossSum + value : value;
    value = distillLoss.detach().to(at::kDouble);
    distillSum = distillSum.defined() ? distillSum + value : value;
  }
  at::Tensor stats = at::cat({lossSum.reshape({1}), distillSum.reshape({1}), streamSums}).cpu();
  std::vector<double> sums(stats.data_ptr<double>(), stats.data_ptr<double>() + stats.numel());
  if (sync)
    sync->sumGradients(trainable, sums);
  result.Loss = sums[0];
  for (int64_t s = 0; s < S; ++s) {
    result.StreamLossSums.push_back(sums[2 + s]);
    result.StreamLossTokens.push_back(static_cast<int64_t>(sums[2 + S + s]));
  }
  if (teacher || anchorTerm) {
    result.LossLM = sums[0];
    if (teacher) {
      result.LossDistill = sums[1];
      result.Loss += regularizers.DistillWeight * sums[1];
    }
    if (anchorTerm) {
      result.LossL2 = *anchorTerm;
      result.Loss += *anchorTerm;
    }
  }
  return result;
}

double mixtape::train::clipAndStep(AdamW &optimizer, double clipNorm, double lr) {
  double norm = clipGradNorm(optimizer.parameters(), clipNorm);
  if (std::isfinite(norm))
    optimizer.step(lr);
  return norm;
}

Trainer::Trainer(model::Model &model, AdamW &optimizer, plan::LRSchedule schedule,
                 TrainOptions options)
    : Model(model), Optimizer(optimizer), Schedule(std::move(schedule)), Options(options) {}

llvm::Expected<StepResult> Trainer::step(llvm::ArrayRef<MicroBatch> batch) {
  const int64_t stepNumber = Optimizer.steps() + 1;
  const std::string where = "step " + std::to_string(stepNumber);
  const double lr = plan::learningRate(Schedule, TokensSeen);
  Optimizer.zeroGrad();
  llvm::Expected<StepResult> result =
      accumulateGradients(Model, batch, Options.Sync, Options.Streams, Options.Memory, Options.Regularize);
  if (!result)
    return prefixError(where, result.takeError());
  if (!std::isfinite(result->Loss)) {
    Optimizer.zeroGrad();
    if (Options.SkipNonFinite) {
      result->Skipped = true;
      result->LR = lr;
      TokensSeen += double(result->Tokens);
      return result;
    }
    return makeError(where + ": loss is " + (std::isnan(result->Loss) ? "NaN" : "infinite") +
                     "; weights left as they were after step " + llvm::Twine(stepNumber - 1));
  }
  result->GradNorm = Options.Sync ? Options.Sync->clipAndStep(Optimizer, Options.ClipNorm, lr)
                                  : clipAndStep(Optimizer, Options.ClipNorm, lr);
  result->LR = lr;
  Optimizer.zeroGrad();
  if (!std::isfinite(result->GradNorm)) {
    // A finite loss can still overflow in the backward pass; the update was not applied.
    if (!Options.SkipNonFinite)
      return makeError(llvm::formatv("{0}: the gradient norm is {1} (the loss was {2}); weights left as they "
                                     "were after step {3}",
                                     where, std::isnan(result->GradNorm) ? "NaN" : "infinite", result->Loss,
                                     stepNumber - 1));
    result->Skipped = true;
  } else if (Options.Average) { // the average follows the applied updates only
    updateAverage(*Options.Average, Model, Options.AverageDecay);
  }
  TokensSeen += double(result->Tokens);
  return result;
}
