//===- CollectivesTest.cpp - Gloo between two threads ---------------------===//
//
// Two ranks in one process, each in its own thread with its own process group, meeting at
// a TCPStore on loopback: the collectives' results, the bucketed gradient sum, and a
// missing peer failing within the timeout.
//
//===----------------------------------------------------------------------===//
#include "mixtape/dist/Collectives.h"
#include "mixtape/dist/DataParallel.h"
#include "mixtape/dist/LocalLauncher.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <functional>
#include <thread>

using namespace mixtape;
using namespace mixtape::dist;

namespace {

/// Runs `body(collectives)` on ranks 0 and 1 of a fresh two-rank world; failures inside
/// a rank are recorded as strings so that the test thread reports them.
void twoRanks(const std::function<void(Collectives &)> &body,
              std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  llvm::Expected<uint16_t> port = freeLocalPort();
  ASSERT_TRUE(bool(port)) << llvm::toString(port.takeError());
  std::string failures[2];
  auto rank = [&](int r) {
    World w;
    w.rank = r;
    w.size = 2;
    w.masterPort = *port;
    w.source = "test";
    try {
      llvm::Expected<std::unique_ptr<Collectives>> c = connect(w, Device::CPU, timeout);
      if (!c) {
        failures[r] = llvm::toString(c.takeError());
        return;
      }
      body(**c);
    } catch (const std::exception &e) {
      failures[r] = e.what();
    }
  };
  std::thread one(rank, 1);
  rank(0);
  one.join();
  EXPECT_EQ(failures[0], "");
  EXPECT_EQ(failures[1], "");
}

} // namespace

TEST(Collectives, WorldOfOneIsTheIdentity) {
  llvm::Expected<std::unique_ptr<Collectives>> c = connect(World{}, Device::CPU, std::chrono::seconds(1));
  ASSERT_TRUE(bool(c));
  at::Tensor t = at::arange(4, at::kFloat);
  (*c)->allReduceSum(t);
  EXPECT_TRUE(t.equal(at::arange(4, at::kFloat)));
  at::Tensor gathered = at::empty({4});
  (*c)->allGather(t, gathered);
  EXPECT_TRUE(gathered.equal(t));
  EXPECT_EQ((*c)->broadcastValue(7), 7);
  (*c)->barrier();
}

TEST(Collectives, GlooBetweenTwoRanks) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  twoRanks([](Collectives &c) {
    const int r = c.rank();
    ASSERT_EQ(c.worldSize(), 2);
    at::Tensor sum = at::full({3}, double(r + 1));
    c.allReduceSum(sum);
    EXPECT_TRUE(sum.equal(at::full({3}, 3.0))) << sum;

    // [0 1 2 3] on rank 0 and [10 11 12 13] on rank 1: rank 0 keeps [10 12], rank 1 [14 16].
    at::Tensor input = at::arange(4, at::kFloat) + 10 * r, slice = at::empty({2});
    c.reduceScatterSum(input, slice);
    EXPECT_TRUE(slice.equal(r == 0 ? at::tensor({10.f, 12.f}) : at::tensor({14.f, 16.f}))) << slice;

    at::Tensor gathered = at::empty({2, 2});
    c.allGather(at::full({2}, float(r)), gathered);
    EXPECT_TRUE(gathered.equal(at::tensor({0.f, 0.f, 1.f, 1.f}).view({2, 2}))) << gathered;

    at::Tensor b = at::full({2}, double(r + 5));
    c.broadcast(b, 1);
    EXPECT_TRUE(b.equal(at::full({2}, 6.0)));
    EXPECT_EQ(c.broadcastValue(r == 0 ? 42 : -1), 42);
    c.barrier();
  });
}

TEST(Collectives, GradientsAreSummedInBuckets) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  twoRanks([](Collectives &c) {
    const double r = c.rank();
    std::vector<model::NamedParameter> params;
    for (int64_t n : {5, 3, 7}) {
      at::Tensor p = at::zeros({n}).requires_grad_(true);
      p.mutable_grad() = at::full({n}, r + 1) * double(n);
      params.push_back({"p" + std::to_string(n), p, model::ParamKind::Bias});
    }
    // The last parameter has no gradient on rank 0 only: it takes part with zeros.
    if (c.rank() == 0)
      params[2].tensor.mutable_grad() = at::Tensor();
    DataParallel dp(c, /*bucketBytes=*/8 * sizeof(float)); // 5 + 3 floats fit, 7 more do not
    double sums[] = {0.25 * (r + 1), 2.0 * r, 3}; // the loss, then per-stream sums and counts
    dp.sumGradients(params, sums);
    EXPECT_EQ(dp.lastBuckets(), 2u);
    EXPECT_DOUBLE_EQ(sums[0], 0.75);
    EXPECT_DOUBLE_EQ(sums[1], 2.0);
    EXPECT_DOUBLE_EQ(sums[2], 6.0);
    EXPECT_TRUE(params[0].tensor.grad().equal(at::full({5}, 15.0)));
    EXPECT_TRUE(params[1].tensor.grad().equal(at::full({3}, 9.0)));
    EXPECT_TRUE(params[2].tensor.grad().equal(at::full({7}, 14.0)));
    int64_t lossTokens = 10 + c.rank(), tokens = 100;
    dp.sumCounts(lossTokens, tokens);
    EXPECT_EQ(lossTokens, 21);
    EXPECT_EQ(tokens, 200);
  });
}

TEST(Collectives, AMissingPeerFailsWithinTheTimeout) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  auto start = std::chrono::steady_clock::now();
  std::string message;
  twoRanks(
      [&](Collectives &c) {
        if (c.rank() == 1)
          return; // never joins the all-reduce
        at::Tensor t = at::ones({1});
        try {
          c.allReduceSum(t);
        } catch (const std::runtime_error &e) {
          message = e.what();
        }
      },
      std::chrono::seconds(2));
  EXPECT_TRUE(llvm::StringRef(message).startswith("all-reduce over 2 ranks: ")) << message;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 20);
}
