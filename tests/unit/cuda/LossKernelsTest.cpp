//===- LossKernelsTest.cpp - the loss's CUDA row kernels against ATen's ops -===//
//
// chunkedTokenLosses on CUDA runs runtime/model/cuda's kernels where they are built; the
// reference is the same computation in ATen ops: the bf16 product, upcast to fp32, logsumexp
// minus the target's logit, autograd for the gradients. Skipped without the kernels (CPU
// builds, CI) or without a GPU.
//
//===----------------------------------------------------------------------===//
#include "mixtape/model/Model.h"
#include "mixtape/model/TorchCompat.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

using namespace mixtape::model;

namespace {

double relativeError(const at::Tensor &got, const at::Tensor &want) {
  at::Tensor g = got.detach().cpu().to(at::kDouble), w = want.detach().cpu().to(at::kDouble);
  return ((g - w).norm() / w.norm().clamp_min(1e-30)).item<double>();
}

struct LossAndGrads {
  at::Tensor Losses, GradHidden, GradHead;
};

/// Per-token losses (masked to 0) and the gradients of sum(losses * weights).
template <typename LossFn>
LossAndGrads run(const at::Tensor &hidden0, const at::Tensor &head0, const at::Tensor &weights, LossFn loss) {
  at::Tensor hidden = hidden0.detach().clone().requires_grad_(true), head = head0.detach().clone().requires_grad_(true);
  at::Tensor losses;
  {
    mixtape::compat::CudaAutocast autocast(hidden);
    losses = loss(hidden, head);
  }
  (losses * weights).sum().backward();
  return {losses.detach(), hidden.grad(), head.grad()};
}

} // namespace

TEST(LossKernels, MatchATenOpsOnBf16Logits) {
#if !MIXTAPE_CUDA_KERNELS
  GTEST_SKIP() << "built without the CUDA kernels (no CUDA compiler or a CPU LibTorch)";
#else
  if (!at::hasCUDA())
    GTEST_SKIP() << "no GPU";
  const c10::Device cuda(c10::kCUDA, 0);
  at::manual_seed(3);
  // An odd vocabulary and a chunk that does not divide the tokens: tails on both axes.
  const int64_t B = 3, T = 50, d = 64, V = 1001;
  auto f32 = at::TensorOptions(at::kFloat).device(cuda);
  at::Tensor hidden = at::randn({B, T, d}, f32), head = at::randn({V, d}, f32) * 0.2;
  at::Tensor targets = at::randint(V, {B, T}, at::TensorOptions(at::kLong).device(cuda));
  at::Tensor mask = at::rand({B, T}, f32).gt(0.2).to(at::kFloat); // some positions masked
  at::Tensor weights = at::rand({B, T}, f32);

  LossAndGrads fused = run(hidden, head, weights, [&](const at::Tensor &h, const at::Tensor &w) {
    return chunkedTokenLosses(h, w, targets, mask, /*chunkTokens=*/37);
  });
  LossAndGrads aten = run(hidden, head, weights, [&](const at::Tensor &h, const at::Tensor &w) {
    at::Tensor logits = at::matmul(h.to(at::kBFloat16), w.to(at::kBFloat16).t()).to(at::kFloat);
    at::Tensor losses = at::logsumexp(logits, -1) - logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1);
    return losses * mask;
  });
  // The same bf16 logits summed in fp32 in another order; gradients rounded to bf16 on both sides.
  EXPECT_LT(relativeError(fused.Losses, aten.Losses), 1e-5);
  EXPECT_TRUE(fused.Losses.masked_select(mask.eq(0)).eq(0).all().item<bool>());
  EXPECT_LT(relativeError(fused.GradHidden, aten.GradHidden), 1e-2);
  EXPECT_LT(relativeError(fused.GradHead, aten.GradHead), 1e-2);
#endif
}

// A micro-benchmark beside the test (bench/gpu/check.sh prints it): one chunked loss forward
// and backward at GPT-2 124M's shapes, kernels on, then ATen's ops (MIXTAPE_CUDA_KERNELS=0 is
// read once per process, so the comparison runs as two processes: see check.sh).
TEST(LossKernels, TimeAtGpt2Shapes) {
#if !MIXTAPE_CUDA_KERNELS
  GTEST_SKIP() << "built without the CUDA kernels";
#else
  if (!at::hasCUDA())
    GTEST_SKIP() << "no GPU";
  const c10::Device cuda(c10::kCUDA, 0);
  const int64_t B = 16, T = 1024, d = 768, V = 50304;
  auto f32 = at::TensorOptions(at::kFloat).device(cuda);
  at::Tensor hidden = at::randn({B, T, d}, f32).requires_grad_(true), head = (at::randn({V, d}, f32) * 0.02).requires_grad_(true);
  at::Tensor targets = at::randint(V, {B, T}, at::TensorOptions(at::kLong).device(cuda));
  at::Tensor mask = at::ones({B, T}, f32);
  auto sync = [&] { (void)head.sum().item<float>(); }; // a scalar read waits for the stream
  auto once = [&] {
    at::Tensor loss;
    {
      mixtape::compat::CudaAutocast autocast(hidden);
      loss = chunkedTokenLosses(hidden, head, targets, mask).sum();
    }
    loss.backward();
  };
  for (int i = 0; i < 3; ++i)
    once();
  sync();
  const int reps = 10;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i)
    once();
  sync();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / reps;
  const char *env = std::getenv("MIXTAPE_CUDA_KERNELS");
  std::cout << "{\"bench\": \"chunked-loss\", \"kernels\": " << (env && std::string(env) == "0" ? "false" : "true")
            << ", \"tokens\": " << B * T << ", \"vocab\": " << V << ", \"fwd_bwd_ms\": " << ms << "}\n";
#endif
}
