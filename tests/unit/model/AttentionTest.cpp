//===- AttentionTest.cpp - groupedAttention against the plain composition -===//
#include "mixtape/model/Attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

using namespace mixtape::model;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Inputs {
  at::Tensor Q, K, V, Mask;
  double Scale;
  bool Causal = true;
};

/// N pairs of G query heads over T positions of width D, seeded; the mask is causal and
/// shared, or per pair causal within two documents split at `split`.
Inputs makeInputs(int64_t N, int64_t G, int64_t T, int64_t D, at::ScalarType dtype, int64_t split = 0) {
  at::Generator gen = at::detail::createCPUGenerator(17);
  at::TensorOptions opts = at::TensorOptions().dtype(dtype);
  Inputs in;
  in.Q = at::randn({N, G * T, D}, gen, opts).requires_grad_();
  in.K = at::randn({N, T, D}, gen, opts).requires_grad_();
  in.V = at::randn({N, T, D}, gen, opts).requires_grad_();
  at::Tensor causal = at::full({T, T}, -kInf, opts).triu(1);
  if (split) {
    causal.narrow(0, split, T - split).narrow(1, 0, split).fill_(-kInf);
    in.Mask = causal.repeat({G, 1}).expand({N, G * T, T}).contiguous();
  } else {
    in.Mask = causal.repeat({G, 1});
  }
  in.Scale = 1.0 / std::sqrt(double(D));
  return in;
}

at::Tensor plainAttention(const Inputs &in) {
  at::Tensor scores = at::matmul(in.Q, in.K.transpose(1, 2)) * in.Scale + in.Mask;
  return at::matmul(at::softmax(scores, -1), in.V);
}

struct Result {
  at::Tensor Out, Dq, Dk, Dv;
};

/// The output and the gradients of sum(out * w) for a fixed w.
template <typename Fn> Result run(const Inputs &in, Fn attention) {
  for (const at::Tensor &t : {in.Q, in.K, in.V})
    if (t.grad().defined())
      t.mutable_grad().reset();
  at::Tensor out = attention(in);
  at::Generator gen = at::detail::createCPUGenerator(5);
  (out * at::randn(out.sizes(), gen, out.options())).sum().backward();
  return {out.detach(), in.Q.grad(), in.K.grad(), in.V.grad()};
}

Result grouped(const Inputs &in) {
  return run(in, [](const Inputs &i) { return groupedAttention(i.Q, i.K, i.V, i.Mask, i.Scale, i.Causal); });
}

void expectClose(const Result &got, const Result &want, double tolerance) {
  EXPECT_TRUE(at::allclose(got.Out, want.Out, tolerance, tolerance)) << "output";
  EXPECT_TRUE(at::allclose(got.Dq, want.Dq, tolerance, tolerance)) << "dq";
  EXPECT_TRUE(at::allclose(got.Dk, want.Dk, tolerance, tolerance)) << "dk";
  EXPECT_TRUE(at::allclose(got.Dv, want.Dv, tolerance, tolerance)) << "dv";
}

/// Runs `fn` with ATen's thread count set to `threads`, then restores it.
template <typename Fn> auto withThreads(int threads, Fn fn) {
  int saved = at::get_num_threads();
  at::set_num_threads(threads);
  auto result = fn();
  at::set_num_threads(saved);
  return result;
}

/// The threads that ran ATen operators while a global RecordFunction observer listened: it
/// sees the operators of every thread, OpenMP's workers included.
std::mutex OperatorThreadsMutex;
std::set<std::thread::id> OperatorThreads;

std::unique_ptr<at::ObserverContext> recordOperatorThread(const at::RecordFunction &) {
  std::lock_guard<std::mutex> lock(OperatorThreadsMutex);
  OperatorThreads.insert(std::this_thread::get_id());
  return nullptr;
}

/// How many threads ran operators while `fn` ran.
template <typename Fn> size_t threadsRunningOperators(Fn fn) {
  OperatorThreads.clear();
  at::CallbackHandle handle = at::addGlobalCallback(at::RecordFunctionCallback(recordOperatorThread));
  fn();
  at::removeCallback(handle);
  std::lock_guard<std::mutex> lock(OperatorThreadsMutex);
  return OperatorThreads.size();
}

} // namespace

// Small products (ATen's naive bmm) and BLAS-sized ones, causal and within documents, an odd
// number of pairs so the threads' slices differ in size. From 32 positions on, causal
// attention is computed in two blocks of queries that skip the hidden keys.
TEST(GroupedAttention, MatchesThePlainCompositionInFloat64) {
  struct Case {
    int64_t N, G, T, D, Split;
  };
  for (Case c : {Case{5, 2, 7, 4, 0}, Case{5, 2, 7, 4, 3}, Case{3, 1, 64, 16, 0}, Case{7, 4, 48, 8, 20}}) {
    SCOPED_TRACE(testing::Message() << "N " << c.N << " G " << c.G << " T " << c.T << " D " << c.D
                                    << " split " << c.Split);
    Inputs in = makeInputs(c.N, c.G, c.T, c.D, at::kDouble, c.Split);
    expectClose(grouped(in), run(in, plainAttention), 1e-12);
  }
}

// A mask that lets queries see later keys (both ways within two documents) is not
// causal: every key is computed.
TEST(GroupedAttention, NonCausalMaskAttendsLaterKeys) {
  const int64_t N = 3, G = 2, T = 48, split = 20;
  Inputs in = makeInputs(N, G, T, 8, at::kDouble);
  at::Tensor mask = at::zeros({T, T}, at::kDouble);
  mask.narrow(0, 0, split).narrow(1, split, T - split).fill_(-kInf);
  mask.narrow(0, split, T - split).narrow(1, 0, split).fill_(-kInf);
  in.Mask = mask.repeat({G, 1});
  in.Causal = false;
  expectClose(grouped(in), run(in, plainAttention), 1e-12);
}

// Each pair is computed whole by one thread, so the bits do not depend on how the pairs are
// split over threads (a run resumed with the same fingerprint is bit-exact either way).
TEST(GroupedAttention, SameBitsOnOneThreadAndOnTwo) {
  Inputs in = makeInputs(9, 2, 40, 16, at::kFloat, 13);
  Result one = withThreads(1, [&] { return grouped(in); });
  Result two = withThreads(2, [&] { return grouped(in); });
  EXPECT_TRUE(at::equal(one.Out, two.Out));
  EXPECT_TRUE(at::equal(one.Dq, two.Dq));
  EXPECT_TRUE(at::equal(one.Dk, two.Dk));
  EXPECT_TRUE(at::equal(one.Dv, two.Dv));
}

// The pairs are really split: with two threads, the slices' operators run on two threads, in
// the forward and in the backward pass. SameBitsOnOneThreadAndOnTwo alone would pass where
// ATen runs parallel_for on one thread (built without OpenMP, OMP_THREAD_LIMIT=1), comparing
// one thread with itself.
TEST(GroupedAttention, SplitsThePairsOverThreads) {
  if (std::thread::hardware_concurrency() < 2)
    GTEST_SKIP() << "one core: two threads could not run at once";
  Inputs in = makeInputs(9, 2, 40, 16, at::kFloat, 13);
  auto threads = [&](int n) {
    return withThreads(n, [&] {
      EXPECT_EQ(at::get_num_threads(), n) << at::get_parallel_info();
      at::Tensor out;
      size_t forward =
          threadsRunningOperators([&] { out = groupedAttention(in.Q, in.K, in.V, in.Mask, in.Scale, true); });
      size_t backward = threadsRunningOperators([&] { out.sum().backward(); });
      return std::pair{forward, backward};
    });
  };
  EXPECT_EQ(threads(1), (std::pair<size_t, size_t>{1, 1})) << "the observer sees the caller's thread";
  EXPECT_EQ(threads(2), (std::pair<size_t, size_t>{2, 2})) << at::get_parallel_info();
}

// Fewer pairs than threads: one call over all pairs, the same values.
TEST(GroupedAttention, FewerPairsThanThreads) {
  Inputs in = makeInputs(1, 2, 33, 8, at::kDouble, 10);
  withThreads(2, [&] {
    expectClose(grouped(in), run(in, plainAttention), 1e-12);
    return 0;
  });
}

// The hand-written backward is not differentiable again: asking for it fails, never a
// silently wrong second derivative.
TEST(GroupedAttention, RefusesDoubleBackward) {
  Inputs in = makeInputs(2, 2, 5, 4, at::kDouble);
  at::Tensor out = groupedAttention(in.Q, in.K, in.V, in.Mask, in.Scale, true);
  EXPECT_THROW(out.sum().backward({}, /*retain_graph=*/true, /*create_graph=*/true), c10::Error);
}

TEST(GroupedAttention, RefusesMismatchedShapes) {
  Inputs in = makeInputs(2, 2, 5, 4, at::kFloat);
  EXPECT_THROW(groupedAttention(in.Q, in.K.narrow(1, 0, 4), in.V, in.Mask, in.Scale, true), c10::Error);
  EXPECT_THROW(groupedAttention(in.Q.narrow(1, 0, 9), in.K, in.V, in.Mask, in.Scale, true), c10::Error);
}
