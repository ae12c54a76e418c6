//===- CollectivesTest.cpp - Gloo between two threads ---------------------===//
//
// Two ranks in one process, each in its own thread with its own process group, meeting at
// a TCPStore on loopback: the collectives' results, the bucketed gradient sum, ZeRO-1's
// sharded update against plain AdamW, a missing peer failing within the timeout, and
// rank 0's work alone outlasting it.
//
//===----------------------------------------------------------------------===//
#include "TempDir.h"
#include "TwoRanks.h"

#include "mixtape/dist/Collectives.h"
#include "mixtape/dist/DataParallel.h"
#include "mixtape/dist/LocalLauncher.h"
#include "mixtape/dist/ShardedAdamW.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <functional>
#include <thread>

using namespace mixtape;
using namespace mixtape::dist;

using mixtape::test::twoRanks;

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
      params[2].Tensor.mutable_grad() = at::Tensor();
    DataParallel dp(c, /*bucketBytes=*/8 * sizeof(float)); // 5 + 3 floats fit, 7 more do not
    double sums[] = {0.25 * (r + 1), 2.0 * r, 3}; // the loss, then per-stream sums and counts
    dp.sumGradients(params, sums);
    EXPECT_EQ(dp.lastBuckets(), 2u);
    EXPECT_DOUBLE_EQ(sums[0], 0.75);
    EXPECT_DOUBLE_EQ(sums[1], 2.0);
    EXPECT_DOUBLE_EQ(sums[2], 6.0);
    EXPECT_TRUE(params[0].Tensor.grad().equal(at::full({5}, 15.0)));
    EXPECT_TRUE(params[1].Tensor.grad().equal(at::full({3}, 9.0)));
    EXPECT_TRUE(params[2].Tensor.grad().equal(at::full({7}, 14.0)));
    int64_t lossTokens = 10 + c.rank(), tokens = 100;
    dp.sumCounts(lossTokens, tokens);
    EXPECT_EQ(lossTokens, 21);
    EXPECT_EQ(tokens, 200);
  });
}

// A chain x w0 w1 w2: backward finishes w2's gradient first, then w1's, then w0's, and
// each (its own bucket here) starts its all-reduce as soon as it is final, in the last of
// two micro-batches. The sums are those of one process over both ranks' micro-batches, and
// the hooks leave with the DataParallel (a later backward runs without it).
TEST(Collectives, BucketsStartDuringBackwardAsGradientsBecomeFinal) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  auto makeParams = [] {
    std::vector<model::NamedParameter> params;
    for (int i = 0; i < 3; ++i)
      params.push_back({"w" + std::to_string(i), (at::eye(4) + 0.1 * (i + 1)).requires_grad_(true),
                        model::ParamKind::Matrix});
    return params;
  };
  auto backward = [](const std::vector<model::NamedParameter> &params, double rank, int micro) {
    at::Tensor x = at::arange(8, at::kFloat).view({2, 4}) * (rank + 1) + micro;
    x.matmul(params[0].Tensor).matmul(params[1].Tensor).matmul(params[2].Tensor).square().sum().backward();
  };
  std::vector<model::NamedParameter> expected = makeParams();
  for (int r = 0; r < 2; ++r)
    for (int micro = 0; micro < 2; ++micro)
      backward(expected, r, micro);
  twoRanks([&](Collectives &c) {
    std::vector<model::NamedParameter> params = makeParams();
    {
      DataParallel dp(c, /*bucketBytes=*/16 * sizeof(float));
      backward(params, c.rank(), 0);
      dp.beforeLastBackward(params);
      backward(params, c.rank(), 1);
      double loss = 1;
      dp.sumGradients(params, llvm::MutableArrayRef<double>(loss));
      EXPECT_EQ(dp.lastBuckets(), 3u);
      EXPECT_EQ(dp.lastStartedDuringBackward(), 3u);
      EXPECT_EQ(loss, 2);
      for (size_t i = 0; i < params.size(); ++i)
        EXPECT_TRUE(at::allclose(params[i].Tensor.grad(), expected[i].Tensor.grad(), 1e-6, 0))
            << params[i].Name << "\n" << params[i].Tensor.grad() << "\n" << expected[i].Tensor.grad();
    }
    backward(params, c.rank(), 2);
  });
}

TEST(Collectives, ShardedAdamWStepsAsPlainAdamW) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  test::TempDir dir;
  twoRanks([&](Collectives &c) {
    // 15 + 7 + 1 + 8 = 31 elements: two shards of 16, the first cut inside the second
    // parameter, the second padded by one; a decayed matrix and undecayed vectors.
    auto make = [] {
      std::vector<model::NamedParameter> params;
      for (auto [shape, kind] : {std::pair{std::vector<int64_t>{3, 5}, model::ParamKind::Matrix},
                                 {{7}, model::ParamKind::Norm}, {{1}, model::ParamKind::Bias},
                                 {{4, 2}, model::ParamKind::Matrix}}) {
        int64_t n = 1;
        for (int64_t d : shape)
          n *= d;
        at::Tensor t = at::linspace(-1, 1, n).view(shape).requires_grad_(true);
        params.push_back({"p" + std::to_string(params.size()), t, kind});
      }
      return params;
    };
    // Rank r's gradient at step k; plain AdamW gets the sum over both ranks.
    auto gradient = [](const at::Tensor &p, int k, int r) {
      return at::sin(at::arange(p.numel(), at::kFloat) * (k + 1) + r).view(p.sizes()) * (r + 1);
    };
    std::vector<model::NamedParameter> plainParams = make(), shardedParams = make();
    train::AdamWOptions options;
    options.WeightDecay = 0.1;
    train::AdamW plain(plainParams, options), sharded(shardedParams, options);
    // Resume from a state with moments: every rank takes its shard of them.
    for (auto *opt : {&plain, &sharded})
      for (size_t i = 0; i < plainParams.size(); ++i)
        opt->setMoments(i, at::full(plainParams[i].Tensor.sizes(), 0.01f * float(i)),
                        at::full(plainParams[i].Tensor.sizes(), 0.001f * float(i + 1)));
    llvm::Expected<std::unique_ptr<ShardedAdamW>> zero = ShardedAdamW::create(c, sharded);
    ASSERT_TRUE(bool(zero)) << llvm::toString(zero.takeError());
    EXPECT_EQ((*zero)->shardSize(), 16);
    EXPECT_FALSE(sharded.expAvg(0).defined()) << "the whole state stays on the optimizer";
    for (int k = 0; k < 3; ++k) {
      for (size_t i = 0; i < plainParams.size(); ++i) {
        plainParams[i].Tensor.mutable_grad() = gradient(plainParams[i].Tensor, k, 0) + gradient(plainParams[i].Tensor, k, 1);
        shardedParams[i].Tensor.mutable_grad() = gradient(shardedParams[i].Tensor, k, c.rank());
      }
      double loss = 1.0 + c.rank();
      (*zero)->sumGradients(shardedParams, llvm::MutableArrayRef<double>(loss));
      EXPECT_DOUBLE_EQ(loss, 3.0);
      const double clip = k == 1 ? 0.5 : 0; // clipped by the global norm at step 2 only
      double plainNorm = train::clipAndStep(plain, clip, 1e-2);
      double shardedNorm = (*zero)->clipAndStep(sharded, clip, 1e-2);
      EXPECT_NEAR(shardedNorm, plainNorm, 1e-5 * plainNorm) << "step " << k + 1;
      for (size_t i = 0; i < plainParams.size(); ++i)
        EXPECT_TRUE(at::allclose(shardedParams[i].Tensor, plainParams[i].Tensor, 1e-6, 1e-7))
            << "step " << k + 1 << ", " << plainParams[i].Name << ":\n"
            << shardedParams[i].Tensor << "\nvs\n" << plainParams[i].Tensor;
    }
    EXPECT_EQ(sharded.steps(), 3);
    bool savedWeights = false;
    llvm::Error e = (*zero)->saveWhole(
        sharded, "saving",
        [&] {
          savedWeights = true;
          return llvm::Error::success();
        },
        dir / "optimizer.safetensors");
    EXPECT_FALSE(bool(e)) << llvm::toString(std::move(e));
    EXPECT_EQ(savedWeights, c.rank() == 0) << "rank 0 alone saves";
    EXPECT_FALSE(sharded.expAvg(0).defined()) << "the optimizer keeps no whole state";
    c.barrier(); // rank 0, which serves the store, stays until every rank has read its outcome
    // Every rank got rank 0's outcome once the file was complete.
    train::AdamW loaded(make(), options);
    ASSERT_FALSE(bool(loaded.loadState(dir / "optimizer.safetensors")));
    EXPECT_EQ(loaded.steps(), 3);
    for (size_t i = 0; i < plainParams.size(); ++i) {
      EXPECT_TRUE(at::allclose(loaded.expAvg(i), plain.expAvg(i), 1e-6, 1e-9)) << plainParams[i].Name;
      EXPECT_TRUE(at::allclose(loaded.expAvgSq(i), plain.expAvgSq(i), 1e-6, 1e-12)) << plainParams[i].Name;
    }
  });
}

namespace {
std::string fileBytes(const std::string &path) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  EXPECT_TRUE(bool(buffer)) << path;
  return buffer ? (*buffer)->getBuffer().str() : "";
}
} // namespace

// 3 + 20 + 2 = 25 elements on 4 ranks: shards of 7, the second parameter in all four (its
// pieces 4, 7, 7 and 2 long), the last shard padded by 3.
TEST(Collectives, ShardedAdamWWritesTheWholeStateAsOneProcessWritesIt) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  test::TempDir dir;
  auto make = [] {
    std::vector<model::NamedParameter> params;
    for (std::vector<int64_t> shape : {std::vector<int64_t>{3}, {4, 5}, {2}})
      params.push_back({"p" + std::to_string(params.size()), at::zeros(shape).requires_grad_(true),
                        model::ParamKind::Bias});
    return params;
  };
  auto giveState = [](train::AdamW &optimizer) {
    int64_t first = 0; // every element of either moment differs
    for (size_t i = 0; i < optimizer.parameters().size(); ++i) {
      const at::Tensor &p = optimizer.parameters()[i].Tensor;
      at::Tensor values = at::arange(first, first + p.numel(), at::kFloat).view(p.sizes());
      optimizer.setMoments(i, values + 0.5, values * values + 0.25);
      first += p.numel();
    }
    optimizer.setSteps(9);
  };
  {
    std::vector<model::NamedParameter> params = make();
    train::AdamW one(params, train::AdamWOptions{});
    giveState(one);
    ASSERT_FALSE(bool(one.saveState(dir / "one.safetensors")));
  }
  test::ranks(4, [&](Collectives &c) {
    std::vector<model::NamedParameter> params = make();
    train::AdamW optimizer(params, train::AdamWOptions{});
    giveState(optimizer);
    llvm::Expected<std::unique_ptr<ShardedAdamW>> zero = ShardedAdamW::create(c, optimizer);
    ASSERT_TRUE(bool(zero)) << llvm::toString(zero.takeError());
    ASSERT_EQ((*zero)->shardSize(), 7);
    auto none = [] { return llvm::Error::success(); };
    llvm::Error e = (*zero)->saveWhole(optimizer, "saving", none, dir / "zero1.safetensors");
    EXPECT_FALSE(bool(e)) << llvm::toString(std::move(e));

    // Rank 0 cannot write: every rank fails with its error, and no file is left.
    e = (*zero)->saveWhole(optimizer, "saving", none, dir / "missing/zero1.safetensors");
    const std::string message = e ? llvm::toString(std::move(e)) : "";
    EXPECT_TRUE(llvm::StringRef(message).contains("missing")) << message;
    if (c.rank() != 0) {
      EXPECT_TRUE(llvm::StringRef(message).startswith("rank 0 failed while saving: ")) << message;
    }
    // Nor does a failing weights' write leave an optimizer state.
    e = (*zero)->saveWhole(
        optimizer, "saving", [] { return llvm::createStringError(llvm::inconvertibleErrorCode(), "disk full"); },
        dir / "after-failure.safetensors");
    EXPECT_EQ(llvm::toString(std::move(e)), c.rank() == 0 ? "disk full" : "rank 0 failed while saving: disk full");
    c.barrier(); // rank 0, which serves the store, stays until every rank has read its outcome
  });
  EXPECT_EQ(fileBytes(dir / "zero1.safetensors"), fileBytes(dir / "one.safetensors"));
  EXPECT_FALSE(llvm::sys::fs::exists(dir / "after-failure.safetensors"));
}

TEST(Collectives, AMissingPeerFailsWithinTheTimeout) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  const auto timeout = std::chrono::seconds(2); // 1 s makes the rendezvous itself flaky under load
  std::string message;
  std::chrono::steady_clock::duration took{};
  twoRanks(
      [&](Collectives &c) {
        if (c.rank() == 1) { // alive, its connections open, but never joins the all-reduce
          std::this_thread::sleep_for(3 * timeout);
          return;
        }
        at::Tensor t = at::ones({1});
        auto start = std::chrono::steady_clock::now();
        try {
          c.allReduceSum(t);
        } catch (const std::runtime_error &e) {
          message = e.what();
        }
        took = std::chrono::steady_clock::now() - start;
      },
      timeout);
  EXPECT_TRUE(llvm::StringRef(message).startswith("all-reduce over 2 ranks: ")) << message;
  EXPECT_GE(took, timeout) << "failed before the timeout: not for want of the peer";
  EXPECT_LT(took, 3 * timeout);
}

namespace {
/// After a wait that failed on some rank: the ranks' collectives meet again.
void expectInStep(Collectives &c) {
  at::Tensor t = at::ones({1});
  c.allReduceSum(t);
  EXPECT_EQ(t.item<float>(), 2) << "the ranks are in step again";
}
} // namespace

TEST(Collectives, RankZeroAloneOutlastsTheTimeout) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  const auto timeout = std::chrono::seconds(2), slow = 2 * timeout + std::chrono::seconds(1);
  twoRanks(
      [&](Collectives &c) {
        auto start = std::chrono::steady_clock::now();
        bool ran = false;
        llvm::Error e = c.rankZeroAlone("writing a large checkpoint", [&] {
          ran = true;
          std::this_thread::sleep_for(slow);
          return llvm::Error::success();
        });
        EXPECT_FALSE(bool(e)) << "rank " << c.rank() << ": " << llvm::toString(std::move(e));
        EXPECT_EQ(ran, c.rank() == 0);
        EXPECT_GE(std::chrono::steady_clock::now() - start, slow) << "rank " << c.rank();

        e = c.rankZeroAlone("merging", [] {
          return llvm::createStringError(llvm::inconvertibleErrorCode(), "disk full");
        });
        EXPECT_EQ(llvm::toString(std::move(e)), c.rank() == 0 ? "disk full" : "rank 0 failed while merging: disk full");

        expectInStep(c);
      },
      timeout);
}

// Rank 0 neither works alone nor paces a streamed save: the others give up on each within
// the timeout, the save's error naming where rank 0's writer was.
TEST(Collectives, RankZeroAloneFailsWhenRankZeroIsSilent) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  const auto timeout = std::chrono::seconds(2);
  twoRanks(
      [&](Collectives &c) {
        std::vector<model::NamedParameter> params{{"w", at::zeros({5}).requires_grad_(true), model::ParamKind::Matrix}};
        train::AdamW optimizer(params, train::AdamWOptions{});
        llvm::Expected<std::unique_ptr<ShardedAdamW>> zero = ShardedAdamW::create(c, optimizer);
        ASSERT_TRUE(bool(zero)) << llvm::toString(zero.takeError());
        if (c.rank() == 0) { // alive (it serves the store) but never starts the work
          std::this_thread::sleep_for(4 * timeout);
          return;
        }
        auto start = std::chrono::steady_clock::now();
        llvm::Error e = c.rankZeroAlone("saving", [] { return llvm::Error::success(); });
        auto took = std::chrono::steady_clock::now() - start;
        EXPECT_EQ(llvm::toString(std::move(e)), "rank 0 gave no sign of life for 2 s while saving");
        EXPECT_GE(took, timeout);
        EXPECT_LT(took, 2 * timeout);

        start = std::chrono::steady_clock::now();
        e = (*zero)->saveWhole(optimizer, "saving the trained model", [] { return llvm::Error::success(); },
                               "run/optimizer.safetensors");
        took = std::chrono::steady_clock::now() - start;
        EXPECT_EQ(llvm::toString(std::move(e)),
                  "rank 0 gave no sign of life for 2 s while saving the trained model (writing the weights)");
        EXPECT_GE(took, timeout);
        EXPECT_LT(took, 2 * timeout);
      },
      timeout);
}

// Rank 0 works longer than the timeout between two collectives and after the last one (a
// streamed save writing a large tensor): the others wait for it in the store, not inside
// the collective. Then rank 0 stops halfway through a second run (an exception): the
// others learn it at their next collective.
TEST(Collectives, RankZeroPacedCollectivesOutlastTheTimeout) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  const auto timeout = std::chrono::seconds(2), slow = 2 * timeout + std::chrono::seconds(1);
  twoRanks(
      [&](Collectives &c) {
        auto start = std::chrono::steady_clock::now();
        std::unique_ptr<RankZeroPace> pace = c.paceByRankZero("saving");
        for (int k = 0; k < 3; ++k) {
          if (c.rank() == 0 && k == 1)
            std::this_thread::sleep_for(slow);
          pace->next("writing tensor " + std::to_string(k));
          at::Tensor gathered = at::empty({2});
          c.allGather(at::full({1}, float(10 * k + c.rank())), gathered);
          EXPECT_TRUE(gathered.equal(at::tensor({10.f * k, 10.f * k + 1}))) << gathered;
        }
        if (c.rank() == 0)
          std::this_thread::sleep_for(slow);
        llvm::Error e = pace->finish(llvm::Error::success());
        EXPECT_FALSE(bool(e)) << "rank " << c.rank() << ": " << llvm::toString(std::move(e));
        EXPECT_GE(std::chrono::steady_clock::now() - start, 2 * slow) << "rank " << c.rank();

        pace = c.paceByRankZero("merging");
        pace->next("writing tensor 0");
        at::Tensor gathered = at::empty({2});
        c.allGather(at::ones({1}), gathered);
        if (c.rank() == 0) {
          pace.reset(); // as an exception unwinds it
        } else {
          start = std::chrono::steady_clock::now();
          try {
            pace->next("writing tensor 1");
            ADD_FAILURE() << "rank 1 went on after rank 0 stopped";
          } catch (const std::runtime_error &e) {
            EXPECT_EQ(std::string(e.what()), "rank 0 failed while merging: rank 0 stopped");
          }
          EXPECT_LT(std::chrono::steady_clock::now() - start, timeout) << "told, not timed out";
        }
        expectInStep(c);
      },
      timeout);
}

TEST(Collectives, AParameterWithoutGradientOnAnyRankIsLeftAsOneProcessLeavesIt) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  test::TempDir dir;
  twoRanks([&](Collectives &c) {
    for (bool sharded : {false, true}) {
      // p1 (decayed) gets no gradient on either rank, p0 on both: one process would
      // neither decay p1 nor touch its moments.
      std::vector<model::NamedParameter> params;
      for (int i = 0; i < 2; ++i)
        params.push_back({"p" + std::to_string(i), at::linspace(1, 2, 6).view({2, 3}).requires_grad_(true),
                          model::ParamKind::Matrix});
      train::AdamWOptions options;
      options.WeightDecay = 0.1;
      train::AdamW optimizer(params, options);
      const at::Tensor before = params[1].Tensor.detach().clone(), expAvg = at::full({2, 3}, 0.5f),
                       expAvgSq = at::full({2, 3}, 0.25f);
      optimizer.setMoments(1, expAvg, expAvgSq);
      std::unique_ptr<ShardedAdamW> zero;
      DataParallel plain(c);
      if (sharded) {
        llvm::Expected<std::unique_ptr<ShardedAdamW>> z = ShardedAdamW::create(c, optimizer);
        ASSERT_TRUE(bool(z)) << llvm::toString(z.takeError());
        zero = std::move(*z);
      }
      train::StepSync &sync = zero ? static_cast<train::StepSync &>(*zero) : plain;
      params[0].Tensor.mutable_grad() = at::ones({2, 3});
      double loss = 1;
      sync.sumGradients(params, llvm::MutableArrayRef<double>(loss));
      EXPECT_FALSE(params[1].Tensor.grad().defined()) << "sharded " << sharded;
      sync.clipAndStep(optimizer, 0, 1e-2);
      EXPECT_FALSE(params[0].Tensor.equal(before)) << "p0 was updated";
      EXPECT_TRUE(params[1].Tensor.equal(before)) << "sharded " << sharded << ": p1 decayed\n" << params[1].Tensor;
      if (zero) { // as the saved state has them
        const std::string path = dir / "optimizer.safetensors";
        EXPECT_FALSE(bool(zero->saveWhole(optimizer, "saving", [] { return llvm::Error::success(); }, path)));
        c.barrier(); // rank 0, which serves the store, stays until every rank has read its outcome
        ASSERT_FALSE(bool(optimizer.loadState(path)));
      }
      EXPECT_TRUE(optimizer.expAvg(1).equal(expAvg)) << "sharded " << sharded << "\n" << optimizer.expAvg(1);
      EXPECT_TRUE(optimizer.expAvgSq(1).equal(expAvgSq)) << "sharded " << sharded;
    }
  });
}

TEST(DataParallel, AShareTakesTheLargestMicroBatchThatDividesIt) {
  EXPECT_EQ(shareMicroBatch(9, 12), 9u);  // B = 36, micro 12, 4 ranks (gcd would give 3)
  EXPECT_EQ(shareMicroBatch(18, 12), 9u); // 2 ranks
  EXPECT_EQ(shareMicroBatch(36, 12), 12u);
  EXPECT_EQ(shareMicroBatch(8, 3), 2u);
  EXPECT_EQ(shareMicroBatch(7, 4), 1u);
  EXPECT_EQ(shareMicroBatch(1, 1), 1u);
}
