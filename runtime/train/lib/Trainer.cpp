//===- Trainer.cpp --------------------------------------------------------===//
#include "mixtape/train/Trainer.h"

#include "mixtape/model/TorchCompat.h"

#include <cmath>

using namespace mixtape::train;

MicroBatch mixtape::train::onDevice(const MicroBatch &mb, c10::Device device) {
  auto move = [&](const at::Tensor &t) { return t.defined() ? t.to(device) : t; };
  return {move(mb.inputs), move(mb.targets), move(mb.lossMask), move(mb.documentStarts)};
}

llvm::Expected<StepResult> mixtape::train::accumulateGradients(const model::Model &model,
                                                               llvm::ArrayRef<MicroBatch> batch,
                                                               StepSync *sync) {
  StepResult result;
  for (const MicroBatch &mb : batch) {
    result.lossTokens += model::countLossTokens(mb.targets, mb.lossMask);
    result.tokens += mb.inputs.numel();
  }
  if (sync)
    sync->sumCounts(result.lossTokens, result.tokens);
  if (result.lossTokens == 0)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "no position of the batch counts for the loss");
  // Each micro-batch's loss sum is divided by the whole batch's loss tokens, so the
  // accumulated gradient is that of the batch mean however the tokens fall across
  // micro-batches and masks.
  const double scale = 1.0 / double(result.lossTokens);
  const at::Tensor &anyParam = model.parameters().front().tensor;
  at::Tensor lossSum; // summed on the device: one synchronization per step, not per micro-batch
  for (const MicroBatch &cpuBatch : batch) {
    MicroBatch mb = onDevice(cpuBatch, anyParam.device());
    at::Tensor loss;
    {
      compat::CudaAutocast autocast(anyParam); // bf16 on CUDA; backward runs outside it
      at::Tensor logits = model.forward(mb.inputs, mb.documentStarts);
      loss = model::maskedTokenLossSum(logits, mb.targets, mb.lossMask) * scale;
    }
    loss.backward();
    at::Tensor value = loss.detach().to(at::kDouble); // summed as doubles, as on the host
    lossSum = lossSum.defined() ? lossSum + value : value;
  }
  result.loss = lossSum.item<double>();
  if (sync)
    sync->sumGradients(model.parameters(), result.loss);
  return result;
}

double mixtape::train::clipAndStep(AdamW &optimizer, double clipNorm, double lr) {
  double norm = clipGradNorm(optimizer.parameters(), clipNorm);
  optimizer.step(lr);
  return norm;
}

Trainer::Trainer(model::Model &model, AdamW &optimizer, schedule::Schedule schedule,
                 TrainOptions options)
    : Model(model), Optimizer(optimizer), Schedule(std::move(schedule)), Options(options) {}

llvm::Expected<StepResult> Trainer::step(llvm::ArrayRef<MicroBatch> batch) {
  const int64_t stepNumber = Optimizer.steps() + 1;
  auto stepError = [&](const llvm::Twine &what) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "step " + llvm::Twine(stepNumber) + ": " + what);
  };
  const double lr = Schedule.lr(TokensSeen);
  Optimizer.zeroGrad();
  llvm::Expected<StepResult> result = accumulateGradients(Model, batch, Options.sync);
  if (!result)
    return stepError(llvm::toString(result.takeError()));
  if (!std::isfinite(result->loss)) {
    Optimizer.zeroGrad();
    return stepError("loss is " + llvm::Twine(std::isnan(result->loss) ? "NaN" : "infinite") +
                     "; weights left as they were after step " + llvm::Twine(stepNumber - 1));
  }
  result->gradNorm = Options.sync ? Options.sync->clipAndStep(Optimizer, Options.clipNorm, lr)
                                  : clipAndStep(Optimizer, Options.clipNorm, lr);
  result->lr = lr;
  Optimizer.zeroGrad();
  TokensSeen += double(result->tokens);
  return result;
}
