//===- ChunkedLossTest.cpp - classifier and cross-entropy chunk by chunk ---===//
//
// chunkedTokenLosses against the full logits that Model::forward gives and maskedTokenLossSum
// reduces: the same loss, per-sequence sums and parameter gradients to fp32 rounding, for the
// Hugging Face fixtures and random models, with loss masks and chunks that do not divide the
// positions.
//
//===----------------------------------------------------------------------===//
#include "ModelTestSupport.h"

using namespace mixtape::model;
using namespace mixtape::model::test;

namespace {

/// The loss and every parameter's gradient, one backward pass from zeroed gradients.
struct LossAndGrads {
  at::Tensor Loss, SequenceSums;
  std::vector<at::Tensor> Grads;
};

LossAndGrads run(const Model &model, const std::function<std::pair<at::Tensor, at::Tensor>()> &lossAndSums) {
  for (const NamedParameter &p : model.parameters())
    p.Tensor.mutable_grad() = at::Tensor();
  auto [loss, sums] = lossAndSums();
  loss.backward();
  LossAndGrads out{loss.detach(), sums.detach(), {}};
  for (const NamedParameter &p : model.parameters())
    out.Grads.push_back(p.Tensor.grad().clone());
  return out;
}

/// The plain path: all logits, cross_entropy; per sequence, a plain recomputation.
LossAndGrads fullLogits(const Model &model, const at::Tensor &inputs, const at::Tensor &targets,
                        const at::Tensor &mask) {
  return run(model, [&] {
    at::Tensor logits = model.forward(inputs);
    at::Tensor perToken = at::cross_entropy_loss(logits.detach().reshape({-1, logits.size(-1)}),
                                                 targets.masked_fill(mask.eq(0), 0).reshape({-1}), {}, at::Reduction::None)
                              .view(targets.sizes());
    return std::pair{maskedTokenLossSum(logits, targets, mask), (perToken * mask).to(at::kDouble).sum(-1)};
  });
}

LossAndGrads chunked(const Model &model, const at::Tensor &inputs, const at::Tensor &targets,
                     const at::Tensor &mask, int64_t chunk) {
  return run(model, [&] {
    at::Tensor losses = chunkedTokenLosses(model.hiddenStates(inputs), model.headWeight(), targets, mask, chunk);
    return std::pair{losses.sum(), losses.to(at::kDouble).sum(-1)};
  });
}

/// Largest difference relative to the largest magnitude of `want`.
double relativeError(const at::Tensor &got, const at::Tensor &want) {
  return (got - want).abs().max().item<double>() / std::max(want.abs().max().item<double>(), 1e-30);
}

/// Checks every chunk size against the full logits on 3 x 7 positions (21: no size below
/// divides it but 1 and 7), with two masked positions whose targets are not even classes.
void expectChunksMatchFullLogits(const Model &model) {
  const int64_t V = model.config().VocabSize;
  at::Tensor inputs = tokens(3, 7, V, 41), targets = tokens(3, 7, V, 42);
  at::Tensor mask = at::ones({3, 7}, at::kFloat);
  mask[0][3] = 0;
  mask[2][6] = 0;
  targets[0][3] = -1; // padding
  targets[2][6] = V + 5;
  LossAndGrads want = fullLogits(model, inputs, targets, mask);
  for (int64_t chunk : {1, 4, 5, 7, 21, 64, 0}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    LossAndGrads got = chunked(model, inputs, targets, mask, chunk);
    EXPECT_LT(relativeError(got.Loss, want.Loss), 1e-5) << got.Loss.item<double>() << " vs " << want.Loss.item<double>();
    EXPECT_LT(relativeError(got.SequenceSums, want.SequenceSums), 1e-5);
    for (size_t i = 0; i < want.Grads.size(); ++i)
      EXPECT_LT(relativeError(got.Grads[i], want.Grads[i]), 1e-5) << model.parameters()[i].Name;
  }
}

class ChunkedLossFamily : public testing::TestWithParam<Family> {};

} // namespace

TEST_P(ChunkedLossFamily, RandomModelMatchesFullLogits) {
  ModelConfig config = tinyConfig(GetParam());
  config.VocabSize = 97;
  std::unique_ptr<Model> model = makeModel(config, 5);
  ASSERT_TRUE(model);
  expectChunksMatchFullLogits(*model);
}

// A float64 model's loss is reduced in float64, not rounded to fp32 on the way.
TEST_P(ChunkedLossFamily, Float64ModelStaysFloat64) {
  std::unique_ptr<Model> model = makeModel(tinyConfig(GetParam()), 8, at::kDouble);
  ASSERT_TRUE(model);
  const int64_t V = model->config().VocabSize;
  at::Tensor inputs = tokens(2, 5, V, 61), targets = tokens(2, 5, V, 62);
  at::NoGradGuard noGrad;
  at::Tensor losses = chunkedTokenLosses(model->hiddenStates(inputs), model->headWeight(), targets, {}, 3);
  EXPECT_EQ(losses.scalar_type(), at::kDouble);
  EXPECT_NEAR(losses.sum().item<double>(), maskedTokenLossSum(model->forward(inputs), targets).item<double>(), 1e-12);
}

TEST_P(ChunkedLossFamily, HuggingFaceFixtureMatchesFullLogits) {
  const std::string dir = fixturesDir() + "/hf-tiny-" + mixtape::plan::enumName(GetParam()).str();
  MIXTAPE_REQUIRE_FIXTURES(dir);
  llvm::Expected<std::unique_ptr<Model>> model = Model::fromHuggingFace(dir);
  ASSERT_TRUE(!!model) << llvm::toString(model.takeError());
  expectChunksMatchFullLogits(**model);
}

INSTANTIATE_TEST_SUITE_P(Families, ChunkedLossFamily, testing::ValuesIn(AllFamilies), familyLabel);

// The values by hand: logits of one position are h . w_v; its loss is logsumexp - the target's.
// Masked positions give exactly 0 and exactly no gradient, whatever their targets.
TEST(ChunkedLoss, HandComputedValuesAndMaskedPositions) {
  at::Tensor head = at::tensor({1.0f, 0.0f, 0.0f, 1.0f, 1.0f, 1.0f}).view({3, 2});
  at::Tensor hidden = at::tensor({2.0f, 0.0f, 0.0f, -1.0f, 0.5f, 0.5f}).view({1, 3, 2}).requires_grad_();
  at::Tensor targets = at::tensor({0L, 2L, 7L}).view({1, 3});
  at::Tensor mask = at::tensor({1.0f, 1.0f, 0.0f}).view({1, 3});
  at::Tensor losses = chunkedTokenLosses(hidden, head, targets, mask, 2);
  // Row 0: logits (2, 0, 2); row 1: logits (0, -1, -1).
  const double lse0 = std::log(2 * std::exp(2.0) + 1), lse1 = std::log(1 + 2 * std::exp(-1.0));
  EXPECT_NEAR(losses[0][0].item<double>(), lse0 - 2, 1e-6);
  EXPECT_NEAR(losses[0][1].item<double>(), lse1 + 1, 1e-6);
  EXPECT_EQ(losses[0][2].item<float>(), 0.0f);
  losses.sum().backward();
  // d/dh of row 0 = sum_v (softmax_v - onehot_v) w_v; row 2 is masked.
  const double p0 = std::exp(2 - lse0), p1 = std::exp(0 - lse0);
  EXPECT_NEAR(hidden.grad()[0][0][0].item<double>(), p0 + p0 - 1, 1e-6);
  EXPECT_NEAR(hidden.grad()[0][0][1].item<double>(), p1 + p0, 1e-6);
  EXPECT_TRUE(at::equal(hidden.grad()[0][2], at::zeros({2})));
}

TEST(ChunkedLoss, RefusesBadShapes) {
  at::Tensor head = at::zeros({5, 4});
  EXPECT_THROW(chunkedTokenLosses(at::zeros({2, 3, 3}), head, at::zeros({2, 3}, at::kLong)), c10::Error);
  EXPECT_THROW(chunkedTokenLosses(at::zeros({2, 3, 4}), head, at::zeros({2, 2}, at::kLong)), c10::Error);
  EXPECT_THROW(chunkedTokenLosses(at::zeros({2, 3, 4}), head, at::zeros({2, 3}, at::kLong), at::ones({3, 2})),
               c10::Error);
}
