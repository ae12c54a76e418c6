//===- DistillationTest.cpp - T^2 KL(teacher || student), chunk by chunk -----===//
//
// chunkedDistillation against values derived by hand (uniform student, a teacher of known
// probabilities, with and without temperature), its gradients against central finite
// differences in double precision for chunks that do not divide the positions, masked
// positions (exactly 0, no gradient) and a frozen teacher.
//
//===----------------------------------------------------------------------===//
#include "ModelTestSupport.h"

#include <cmath>

using namespace mixtape::model;

namespace {

at::TensorOptions f64() { return at::TensorOptions().dtype(at::kDouble); }

/// The identity head: logits are the hidden states themselves.
at::Tensor identityHead(int64_t vocab) { return at::eye(vocab, f64()); }

/// Central differences of `f` in every entry of `x` (changed in place, then restored).
at::Tensor finiteDifferences(at::Tensor x, const std::function<double()> &f, double step = 1e-6) {
  at::Tensor grad = at::zeros_like(x);
  at::Tensor flat = x.view({-1}), out = grad.view({-1});
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const double keep = flat[i].item<double>();
    flat[i] = keep + step;
    const double up = f();
    flat[i] = keep - step;
    const double down = f();
    flat[i] = keep;
    out[i] = (up - down) / (2 * step);
  }
  return grad;
}

} // namespace

// Student logits 0 (q uniform over 3), teacher logits [0, ln 2, 0] (p = [1/4, 1/2, 1/4]):
// KL(p || q) = 2 (1/4) ln(3/4) + (1/2) ln(3/2) = (1/2) ln(9/8).
TEST(Distillation, HandDerivedKullbackLeibler) {
  at::Tensor head = identityHead(3);
  at::Tensor student = at::zeros({1, 2, 3}, f64());
  at::Tensor teacher = at::tensor({0.0, std::log(2.0), 0.0, 0.0, std::log(2.0), 0.0}, f64()).view({1, 2, 3});
  at::Tensor mask = at::tensor({1.0, 0.0}, f64()).view({1, 2});
  at::Tensor terms = chunkedDistillation(student, head, teacher, head, 1.0, mask, 1);
  EXPECT_NEAR(terms[0][0].item<double>(), 0.5 * std::log(9.0 / 8.0), 1e-15);
  EXPECT_EQ(terms[0][1].item<double>(), 0.0); // masked: exactly 0
  // T = 2: p = softmax([0, ln 2 / 2, 0]) = [1, sqrt 2, 1] / (2 + sqrt 2), q uniform, and the
  // term is T^2 sum_v p_v ln(3 p_v).
  const double z = 2 + std::sqrt(2.0), p0 = 1 / z, p1 = std::sqrt(2.0) / z;
  const double want = 4 * (2 * p0 * std::log(3 * p0) + p1 * std::log(3 * p1));
  at::Tensor hot = chunkedDistillation(student, head, teacher, head, 2.0, {}, 0);
  EXPECT_NEAR(hot[0][0].item<double>(), want, 1e-15);
  EXPECT_NEAR(hot[0][1].item<double>(), want, 1e-15);
  // The same distributions give 0.
  EXPECT_NEAR(chunkedDistillation(teacher, head, teacher, head, 1.5).abs().max().item<double>(), 0.0, 1e-15);
}

// The gradient of sum_i c_i term_i (c: arbitrary upstream weights) against central
// differences, in double precision: hidden and head of the student, with a masked position
// and chunks of 4 over 6 positions.
TEST(Distillation, GradientMatchesFiniteDifferences) {
  at::manual_seed(11);
  const double temperature = 1.7;
  at::Tensor hidden = at::randn({2, 3, 4}, f64()), head = at::randn({5, 4}, f64());
  at::Tensor teacherHidden = at::randn({2, 3, 4}, f64()), teacherHead = at::randn({5, 4}, f64());
  at::Tensor mask = at::ones({2, 3}, f64());
  mask[1][0] = 0;
  at::Tensor upstream = at::rand({2, 3}, f64()) + 0.5;
  auto objective = [&] {
    at::NoGradGuard noGrad;
    return (chunkedDistillation(hidden, head, teacherHidden, teacherHead, temperature, mask, 4) * upstream)
        .sum()
        .item<double>();
  };
  at::Tensor wantHidden = finiteDifferences(hidden, objective), wantHead = finiteDifferences(head, objective);

  hidden.requires_grad_(true);
  head.requires_grad_(true);
  teacherHead.requires_grad_(true); // frozen all the same: no gradient reaches it
  (chunkedDistillation(hidden, head, teacherHidden, teacherHead, temperature, mask, 4) * upstream).sum().backward();
  EXPECT_LT((hidden.grad() - wantHidden).abs().max().item<double>(), 1e-8);
  EXPECT_LT((head.grad() - wantHead).abs().max().item<double>(), 1e-8);
  EXPECT_EQ(hidden.grad()[1][0].abs().max().item<double>(), 0.0); // the masked position
  EXPECT_FALSE(teacherHead.grad().defined());
  EXPECT_GT(wantHead.abs().max().item<double>(), 1e-3); // the check is not of zeros
}

// Every chunk size gives the same terms and gradients.
TEST(Distillation, ChunksAgree) {
  at::manual_seed(12);
  at::Tensor teacherHidden = at::randn({3, 7, 4}, f64()), teacherHead = at::randn({9, 4}, f64());
  at::Tensor base = at::randn({3, 7, 4}, f64()), baseHead = at::randn({9, 4}, f64());
  std::optional<at::Tensor> terms0, grad0;
  for (int64_t chunk : {1, 4, 7, 21, 64}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    at::Tensor hidden = base.clone().requires_grad_(true);
    at::Tensor terms = chunkedDistillation(hidden, baseHead, teacherHidden, teacherHead, 0.7, {}, chunk);
    terms.sum().backward();
    if (!terms0) {
      terms0 = terms.detach();
      grad0 = hidden.grad();
      continue;
    }
    EXPECT_LT((terms.detach() - *terms0).abs().max().item<double>(), 1e-12);
    EXPECT_LT((hidden.grad() - *grad0).abs().max().item<double>(), 1e-12);
  }
}

TEST(Distillation, RefusesBadShapesAndTemperatures) {
  at::Tensor head = at::zeros({5, 4}), hidden = at::zeros({2, 3, 4});
  EXPECT_THROW(chunkedDistillation(hidden, head, at::zeros({2, 2, 4}), head, 1.0), c10::Error);
  EXPECT_THROW(chunkedDistillation(hidden, head, hidden, at::zeros({6, 4}), 1.0), c10::Error);
  EXPECT_THROW(chunkedDistillation(hidden, head, hidden, head, 0.0), c10::Error);
  EXPECT_THROW(chunkedDistillation(hidden, head, hidden, head, 1.0, at::ones({3, 2})), c10::Error);
}
