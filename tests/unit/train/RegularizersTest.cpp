//===- RegularizersTest.cpp - distill, l2_to_init and ema in a step ---------===//
//
// The objective accumulateGradients differentiates with every regularizer on, against
// central finite differences of the objective it reports (double precision, a float64 model,
// a teacher and an anchor that differ from it); its parts against independent computations;
// the EMA update against hand-derived values; and a Trainer step that applies the update
// and then averages.
//
//===----------------------------------------------------------------------===//
#include "../model/ModelTestSupport.h"

#include "mixtape/train/Trainer.h"

using namespace mixtape::model;
using namespace mixtape::model::test;
using namespace mixtape::train;
namespace plan = mixtape::plan;

namespace {

MicroBatch packed(int64_t time, int64_t vocab, uint64_t seed) {
  PackedBatch b = packedBatch(time, vocab, seed);
  return MicroBatch{b.Inputs, b.Targets, b.LossMask, b.DocumentStarts, {}};
}

/// The objective as accumulateGradients reports it, gradients cleared before and after.
double objective(const Model &model, llvm::ArrayRef<MicroBatch> batch, const Regularizers &r) {
  for (const NamedParameter &p : model.parameters())
    p.Tensor.mutable_grad() = at::Tensor();
  llvm::Expected<StepResult> result = accumulateGradients(model, batch, nullptr, 0, {}, r);
  EXPECT_TRUE(bool(result)) << llvm::toString(result.takeError());
  return result ? result->Loss : 0;
}

/// A model's parameters, each as a detached copy.
std::vector<at::Tensor> copies(const Model &model) {
  std::vector<at::Tensor> out;
  for (const NamedParameter &p : model.parameters())
    out.push_back(p.Tensor.detach().clone());
  return out;
}

} // namespace

// d(lm + w * distill + (lambda / 2) ||theta - theta0||^2) / d theta, as backward and the anchor
// term accumulate it over two micro-batches, against central differences of the objective
// in entries of every parameter.
TEST(Regularizers, GradientOfTheObjectiveMatchesFiniteDifferences) {
  const ModelConfig config = tinyConfig(Family::Llama);
  std::unique_ptr<Model> student = makeModel(config, 1, at::kDouble), teacher = makeModel(config, 2, at::kDouble),
                         anchor = makeModel(config, 3, at::kDouble);
  const int64_t V = config.VocabSize;
  std::vector<MicroBatch> batch = {packed(6, V, 21), packed(6, V, 31)};
  Regularizers r;
  r.Teacher = teacher.get();
  r.DistillWeight = 0.7;
  r.Temperature = 1.5;
  r.L2Coefficient = 0.3;
  for (const NamedParameter &p : anchor->parameters())
    r.Anchor.push_back(p.Tensor.detach());

  objective(*student, batch, r);
  std::vector<at::Tensor> analytic;
  for (const NamedParameter &p : student->parameters())
    analytic.push_back(p.Tensor.grad().clone());
  const double step = 1e-6;
  for (size_t i = 0; i < student->parameters().size(); ++i) {
    at::Tensor flat = student->parameters()[i].Tensor.detach().view({-1}); // the weights' storage, outside autograd
    for (int64_t k : {int64_t(0), flat.numel() / 2, flat.numel() - 1}) {
      const double keep = flat[k].item<double>();
      flat[k] = keep + step;
      const double up = objective(*student, batch, r);
      flat[k] = keep - step;
      const double down = objective(*student, batch, r);
      flat[k] = keep;
      const double want = (up - down) / (2 * step), got = analytic[i].view({-1})[k].item<double>();
      EXPECT_NEAR(got, want, 1e-7 * std::max(1.0, std::abs(want)))
          << student->parameters()[i].Name << "[" << k << "]";
    }
  }
}

// The reported parts: loss_lm is the plain step's loss, loss_distill the token mean of
// chunkedDistillation over the same masks, loss_l2 (lambda / 2) ||theta - theta0||^2 summed in
// double; the objective adds them with the weight.
TEST(Regularizers, ThePartsOfTheObjective) {
  const ModelConfig config = tinyConfig(Family::GPT2);
  std::unique_ptr<Model> student = makeModel(config, 4, at::kDouble), teacher = makeModel(config, 5, at::kDouble);
  const int64_t V = config.VocabSize;
  MicroBatch mb = packed(7, V, 41);
  llvm::Expected<StepResult> plain = accumulateGradients(*student, {mb});
  ASSERT_TRUE(bool(plain)) << llvm::toString(plain.takeError());
  EXPECT_FALSE(plain->LossLM || plain->LossDistill || plain->LossL2);

  Regularizers r;
  r.Teacher = teacher.get();
  r.DistillWeight = 0.5;
  r.Temperature = 2;
  r.L2Coefficient = 1e-2;
  double squares = 0;
  for (const NamedParameter &p : student->parameters()) {
    // Every parameter 0.25 from its anchor: the term is (lambda / 2) * 0.0625 * count.
    r.Anchor.push_back(p.Tensor.detach() - 0.25);
    squares += 0.0625 * static_cast<double>(p.Tensor.numel());
  }
  llvm::Expected<StepResult> got = accumulateGradients(*student, {mb}, nullptr, 0, {}, r);
  ASSERT_TRUE(bool(got)) << llvm::toString(got.takeError());
  at::NoGradGuard noGrad;
  at::Tensor terms = chunkedDistillation(student->hiddenStates(mb.Inputs, mb.DocumentStarts), student->headWeight(),
                                         teacher->hiddenStates(mb.Inputs, mb.DocumentStarts), teacher->headWeight(),
                                         2.0, mb.LossMask);
  const double distill = terms.sum().item<double>() / static_cast<double>(countLossTokens(mb.Targets, mb.LossMask));
  EXPECT_DOUBLE_EQ(*got->LossLM, plain->Loss);
  EXPECT_NEAR(*got->LossDistill, distill, 1e-12);
  EXPECT_NEAR(*got->LossL2, 0.5 * 1e-2 * squares, 1e-12);
  EXPECT_DOUBLE_EQ(got->Loss, *got->LossLM + 0.5 * *got->LossDistill + *got->LossL2);
  EXPECT_GT(*got->LossDistill, 0.0);
}

// average <- decay * average + (1 - decay) * w, for trained parameters only: 0.9 * 1 + 0.1 * 3
// = 1.2; a frozen parameter keeps its bits.
TEST(Regularizers, MovingAverageHandDerived) {
  const ModelConfig config = tinyConfig(Family::Llama);
  std::unique_ptr<Model> model = makeModel(config, 6), average = makeModel(config, 7);
  at::NoGradGuard noGrad;
  for (const NamedParameter &p : model->parameters())
    p.Tensor.fill_(3.0);
  for (const NamedParameter &p : average->parameters())
    p.Tensor.fill_(1.0);
  model->parameters().front().Tensor.requires_grad_(false);
  updateAverage(*average, *model, 0.9);
  EXPECT_EQ(average->parameters().front().Tensor.max().item<float>(), 1.0f);
  for (size_t i = 1; i < model->parameters().size(); ++i) {
    at::Tensor a = average->parameters()[i].Tensor;
    EXPECT_FLOAT_EQ(a.min().item<float>(), 1.2f) << model->parameters()[i].Name;
    EXPECT_FLOAT_EQ(a.max().item<float>(), 1.2f) << model->parameters()[i].Name;
  }
}

// A Trainer step updates the weights, then the average from them: after one step from
// theta0 (average = theta0), average = decay * theta0 + (1 - decay) * theta1.
TEST(Regularizers, TrainerAveragesAfterTheUpdate) {
  const ModelConfig config = tinyConfig(Family::GPTNeoX);
  std::unique_ptr<Model> model = makeModel(config, 8), average = makeModel(config, 8);
  const std::vector<at::Tensor> start = copies(*model);
  AdamW optimizer(model->trainableParameters(), AdamWOptions{});
  TrainOptions options;
  options.Average = average.get();
  options.AverageDecay = 0.75;
  Trainer trainer(*model, optimizer,
                  plan::LRSchedule{0, {plan::Phase{plan::PhaseShape::Constant, 0, std::nullopt, 1e-2, 1e-2, 1, 0}}},
                  options);
  llvm::Expected<StepResult> r = trainer.step({packed(6, config.VocabSize, 51)});
  ASSERT_TRUE(bool(r)) << llvm::toString(r.takeError());
  float moved = 0;
  for (size_t i = 0; i < start.size(); ++i) {
    at::Tensor now = model->parameters()[i].Tensor.detach();
    moved = std::max(moved, (now - start[i]).abs().max().item<float>());
    at::Tensor want = start[i] * 0.75 + now * 0.25;
    EXPECT_LT((average->parameters()[i].Tensor - want).abs().max().item<float>(), 1e-6f)
        << model->parameters()[i].Name;
  }
  EXPECT_GT(moved, 1e-3f) << "the step moved nothing";
}
