//===- FullShardTest.cpp - prefetch, and the whole model written from shards ----===//
//
// Two ranks with `--shard full`: as a part runs, the all-gather of the next part's unit is
// already under way (and in backward, the previous part's), which changes no loss and no
// weight by a bit; the final model.safetensors and optimizer.safetensors written from the
// shards a unit at a time are byte for byte what one process writes. With bf16 compute
// the gathers carry bf16 parameters and the shards stay fp32.
//
//===----------------------------------------------------------------------===//
#include "TempDir.h"
#include "TinyModel.h"
#include "TwoRanks.h"

#include "mixtape/dist/FullShard.h"
#include "mixtape/model/Model.h"
#include "mixtape/model/TorchCompat.h"
#include "mixtape/train/AdamW.h"
#include "mixtape/train/Trainer.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <thread>
#include <utility>

using namespace mixtape;
using namespace mixtape::dist;

namespace {

/// Another rank's collectives, with its all-gathers written to `Log`: "started N" when one
/// of N elements starts in the background, "waited" when it is waited for, "blocking N" for
/// a blocking one. Without `Ahead`, nothing starts in the background (the base class's
/// startAllGather blocks): a FullShard that cannot prefetch.
class RecordingCollectives final : public Collectives {
public:
  RecordingCollectives(Collectives &inner, bool ahead) : Inner(inner), Ahead(ahead) {}

  std::vector<std::string> Log;
  std::vector<size_t> StartedBytes; ///< the output of each all-gather started in the background

  int rank() const override { return Inner.rank(); }
  int worldSize() const override { return Inner.worldSize(); }
  void allReduceSum(at::Tensor &tensor) override { Inner.allReduceSum(tensor); }
  void reduceScatterSum(const at::Tensor &input, at::Tensor &output) override { Inner.reduceScatterSum(input, output); }
  /// Rank 0 pauses this long after its next blocking all-gather (as if writing what it gathered).
  std::chrono::milliseconds RankZeroPause{0};

  void allGather(const at::Tensor &input, at::Tensor &output) override {
    Log.push_back("blocking " + std::to_string(output.numel()));
    Inner.allGather(input, output);
    if (rank() == 0)
      std::this_thread::sleep_for(std::exchange(RankZeroPause, std::chrono::milliseconds(0)));
  }
  std::unique_ptr<PendingCollective> startAllGather(const at::Tensor &input, at::Tensor &output) override {
    if (!Ahead)
      return Collectives::startAllGather(input, output);
    Log.push_back("started " + std::to_string(output.numel()));
    StartedBytes.push_back(output.nbytes());
    return std::make_unique<Logged>(Log, Inner.startAllGather(input, output));
  }
  void broadcast(at::Tensor &tensor, int root) override { Inner.broadcast(tensor, root); }
  void barrier() override { Inner.barrier(); }
  c10::DeviceType deviceType() const override { return Inner.deviceType(); }
  std::unique_ptr<RankZeroPace> paceByRankZero(const std::string &what) override { return Inner.paceByRankZero(what); }

private:
  class Logged final : public PendingCollective {
  public:
    Logged(std::vector<std::string> &log, std::unique_ptr<PendingCollective> work) : Log(log), Work(std::move(work)) {}
    void wait() override {
      Log.push_back("waited");
      Work->wait();
    }

  private:
    std::vector<std::string> &Log;
    std::unique_ptr<PendingCollective> Work;
  };

  Collectives &Inner;
  bool Ahead;
};

/// Writes "run P" and "body P" around each part to the collectives' log, and "grad P" once
/// the gradient of part P's output arrived and FullShard's hook on it ran.
class LoggingRunner final : public model::PartRunner {
public:
  LoggingRunner(model::PartRunner &inner, std::vector<std::string> &log) : Inner(inner), Log(log) {}
  at::Tensor run(size_t part, const at::Tensor &input,
                 llvm::function_ref<at::Tensor(const at::Tensor &)> body) override {
    Log.push_back("run " + std::to_string(part));
    at::Tensor out = Inner.run(part, input, [&](const at::Tensor &x) {
      Log.push_back("body " + std::to_string(part));
      return body(x);
    });
    if (out.requires_grad()) // after FullShard's own hook on it
      out.register_hook([this, part](const at::TensorBase &) { Log.push_back("grad " + std::to_string(part)); });
    return out;
  }

private:
  model::PartRunner &Inner;
  std::vector<std::string> &Log;
};

/// Elements of each part's all-gather at 2 ranks: its parameters laid end to end, padded
/// to an even number (the tiny model ties no head: a unit per part).
std::vector<int64_t> gatheredPerPart(const model::Model &m) {
  std::vector<int64_t> sizes;
  for (const std::vector<size_t> &part : m.partParameters()) {
    int64_t n = 0;
    for (size_t i : part)
      n += m.parameters()[i].Tensor.numel();
    sizes.push_back((n + 1) / 2 * 2);
  }
  return sizes;
}

/// Two rows of 8 tokens of the tiny model's 11, different for every seed.
train::MicroBatch microBatch(int64_t seed) {
  at::Tensor ids = (at::arange(18, at::kLong) * (2 * seed + 3) + seed).remainder(11).view({2, 9});
  return {ids.narrow(1, 0, 8).contiguous(), ids.narrow(1, 1, 8).contiguous(), {}, {}, {}};
}

/// Step `step`'s two micro-batches on rank `rank`: a forward pass follows a backward one.
std::vector<train::MicroBatch> stepBatch(uint64_t step, int rank) {
  return {microBatch(int64_t(100 * step) + 2 * rank), microBatch(int64_t(100 * step) + 2 * rank + 1)};
}

/// A trainer of the tiny model sharded by `full`: a constant learning rate of 1e-2, clipping at 1.
train::Trainer shardedTrainer(model::Model &m, train::AdamW &optimizer, FullShard &full) {
  train::TrainOptions options;
  options.Sync = &full;
  options.ClipNorm = 1;
  return train::Trainer(m, optimizer,
                        plan::LRSchedule{0, {plan::Phase{plan::PhaseShape::Constant, 0, std::nullopt, 1e-2, 1e-2, 1, 0}}},
                        options);
}

std::string fileBytes(const std::string &path) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  EXPECT_TRUE(bool(buffer)) << path;
  return buffer ? (*buffer)->getBuffer().str() : "";
}

/// One process's files of the tiny model and its state, the reference of the sharded
/// writes: one-model.safetensors and one-optimizer.safetensors in `dir`.
void writeOneProcessFiles(const test::TempDir &dir) {
  std::unique_ptr<model::Model> m = test::tinyModel(1);
  train::AdamW optimizer(m->parameters(), train::AdamWOptions{});
  test::giveState(optimizer, 5);
  ASSERT_FALSE(bool(m->saveWeights(dir / "one-model.safetensors")));
  ASSERT_FALSE(bool(optimizer.saveState(dir / "one-optimizer.safetensors")));
}

} // namespace

TEST(FullShard, TheNextUnitIsGatheredWhileAPartRuns) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  test::twoRanks([](Collectives &c) {
    std::unique_ptr<model::Model> m = test::tinyModel(1);
    train::AdamW optimizer(m->parameters(), train::AdamWOptions{});
    RecordingCollectives recording(c, /*ahead=*/true);
    llvm::Expected<std::unique_ptr<FullShard>> full = FullShard::create(recording, *m, optimizer);
    ASSERT_TRUE(bool(full)) << llvm::toString(full.takeError());
    LoggingRunner runner(**full, recording.Log);
    m->setPartRunner(&runner);
    const std::vector<int64_t> sizes = gatheredPerPart(*m);
    ASSERT_EQ(sizes.size(), 5u) << "the embeddings, 3 blocks, the final norm with the head";
    auto started = [&](size_t part) { return "started " + std::to_string(sizes[part]); };

    // Forward: part p's own gather (the first one's alone blocks: nothing ran before it),
    // then part p + 1's starts before p's body runs.
    recording.Log.clear();
    at::Tensor logits = m->forward(microBatch(7 + c.rank()).Inputs, at::Tensor());
    std::vector<std::string> forward;
    for (size_t p = 0; p < sizes.size(); ++p) {
      forward.push_back("run " + std::to_string(p));
      if (p == 0)
        forward.push_back(started(0));
      forward.push_back("waited");
      if (p + 1 < sizes.size())
        forward.push_back(started(p + 1));
      forward.push_back("body " + std::to_string(p));
    }
    EXPECT_EQ(recording.Log, forward);

    // Backward: as part p's gradient arrives, its unit (gathered ahead while part p + 1's
    // backward ran) is waited for and part p - 1's gather starts; the outer unit is still
    // there from forward.
    recording.Log.clear();
    logits.square().mean().backward();
    std::vector<std::string> backward;
    for (size_t p = sizes.size(); p-- > 0;) {
      if (p + 1 < sizes.size())
        backward.push_back("waited");
      if (p > 0)
        backward.push_back(started(p - 1));
      backward.push_back("grad " + std::to_string(p));
    }
    EXPECT_EQ(recording.Log, backward);
    m->setPartRunner(full->get());
  });
}

TEST(FullShard, PrefetchChangesNoLossAndNoWeight) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  test::twoRanks([](Collectives &c) {
    // The same 3 steps, with the next unit gathered ahead and without.
    auto train = [&](bool ahead, std::vector<double> &losses, std::vector<at::Tensor> &shards,
                     std::vector<std::string> &log) {
      std::unique_ptr<model::Model> m = test::tinyModel(1);
      train::AdamW optimizer(m->parameters(), train::AdamWOptions{});
      RecordingCollectives recording(c, ahead);
      llvm::Expected<std::unique_ptr<FullShard>> full = FullShard::create(recording, *m, optimizer);
      ASSERT_TRUE(bool(full)) << llvm::toString(full.takeError());
      train::Trainer trainer = shardedTrainer(*m, optimizer, **full);
      for (uint64_t step = 0; step < 3; ++step) {
        // Two micro-batches: a forward pass follows a backward one.
        llvm::Expected<train::StepResult> r = trainer.step(stepBatch(step, c.rank()));
        ASSERT_TRUE(bool(r)) << llvm::toString(r.takeError());
        losses.push_back(r->Loss);
      }
      for (const StateSlice &s : (*full)->checkpointSlices())
        shards.push_back(s.View.clone());
      log = recording.Log;
    };
    std::vector<double> aheadLosses, blockingLosses;
    std::vector<at::Tensor> aheadShards, blockingShards;
    std::vector<std::string> aheadLog, blockingLog;
    train(true, aheadLosses, aheadShards, aheadLog);
    train(false, blockingLosses, blockingShards, blockingLog);
    EXPECT_EQ(aheadLosses, blockingLosses);
    ASSERT_EQ(aheadShards.size(), blockingShards.size());
    for (size_t i = 0; i < aheadShards.size(); ++i)
      EXPECT_TRUE(at::equal(aheadShards[i], blockingShards[i])) << "slice " << i;
    EXPECT_EQ(llvm::count(aheadLog, "waited"), llvm::count_if(aheadLog, [](const std::string &e) {
                return llvm::StringRef(e).startswith("started");
              })) << "every gather started ahead is waited for";
    EXPECT_EQ(llvm::count_if(blockingLog, [](const std::string &e) { return llvm::StringRef(e).startswith("started"); }),
              0);
  });
}

TEST(FullShard, TheWholeModelIsWrittenFromTheShardsAsOneProcessWritesIt) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  test::TempDir dir;
  writeOneProcessFiles(dir);
  test::twoRanks([&](Collectives &c) {
    std::unique_ptr<model::Model> m = test::tinyModel(1);
    train::AdamW optimizer(m->parameters(), train::AdamWOptions{});
    test::giveState(optimizer, 5);
    RecordingCollectives recording(c, /*ahead=*/true);
    llvm::Expected<std::unique_ptr<FullShard>> full = FullShard::create(recording, *m, optimizer);
    ASSERT_TRUE(bool(full)) << llvm::toString(full.takeError());
    recording.Log.clear();
    llvm::Error e = (*full)->saveWhole(optimizer, "saving", dir / "full-model.safetensors",
                                       dir / "full-optimizer.safetensors");
    ASSERT_FALSE(bool(e)) << llvm::toString(std::move(e));
    // Each unit gathered once for the weights and twice (the moments) for the state: the
    // outer unit, whose head and final norm lie at the two ends of the weights' file, is
    // held across it rather than gathered twice.
    EXPECT_EQ(recording.Log.size(), 3 * gatheredPerPart(*m).size());
    EXPECT_TRUE(llvm::all_of(recording.Log, [](const std::string &e) { return llvm::StringRef(e).startswith("blocking"); }));
    EXPECT_FALSE(m->parameters()[0].Tensor.storage().nbytes()) << "the parameters stay freed";

    // Rank 0 cannot write: every rank fails, and no file is left under the name.
    e = (*full)->saveWhole(optimizer, "saving", dir / "missing/model.safetensors", dir / "optimizer.safetensors");
    const std::string message = e ? llvm::toString(std::move(e)) : "";
    EXPECT_TRUE(llvm::StringRef(message).contains("missing")) << message;
    if (c.rank() != 0) {
      EXPECT_TRUE(llvm::StringRef(message).startswith("rank 0 failed while saving: ")) << message;
    }
    c.barrier(); // rank 0, which serves the store, stays until every rank has read its outcome
  });
  EXPECT_EQ(fileBytes(dir / "full-model.safetensors"), fileBytes(dir / "one-model.safetensors"));
  EXPECT_EQ(fileBytes(dir / "full-optimizer.safetensors"), fileBytes(dir / "one-optimizer.safetensors"));
  EXPECT_FALSE(llvm::sys::fs::exists(dir / "optimizer.safetensors")) << "nothing written after the model failed";
}

// Rank 0 takes longer than the timeout over a unit (a large head written to a slow disk):
// the others wait for its next gather in the store while its heartbeat goes on, and the
// files are still those one process writes.
TEST(FullShard, RankZeroWritesAUnitForLongerThanTheTimeout) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  test::TempDir dir;
  writeOneProcessFiles(dir);
  const auto timeout = std::chrono::seconds(2);
  test::twoRanks(
      [&](Collectives &c) {
        std::unique_ptr<model::Model> m = test::tinyModel(1);
        train::AdamW optimizer(m->parameters(), train::AdamWOptions{});
        test::giveState(optimizer, 5);
        RecordingCollectives recording(c, /*ahead=*/false);
        llvm::Expected<std::unique_ptr<FullShard>> full = FullShard::create(recording, *m, optimizer);
        ASSERT_TRUE(bool(full)) << llvm::toString(full.takeError());
        recording.RankZeroPause = 2 * timeout + std::chrono::seconds(1);
        llvm::Error e = (*full)->saveWhole(optimizer, "saving", dir / "full-model.safetensors",
                                           dir / "full-optimizer.safetensors");
        EXPECT_FALSE(bool(e)) << "rank " << c.rank() << ": " << llvm::toString(std::move(e));
        c.barrier(); // rank 0, which serves the store, stays until every rank has read its outcome
      },
      timeout);
  EXPECT_EQ(fileBytes(dir / "full-model.safetensors"), fileBytes(dir / "one-model.safetensors"));
  EXPECT_EQ(fileBytes(dir / "full-optimizer.safetensors"), fileBytes(dir / "one-optimizer.safetensors"));
}

// FSDP's mixed precision on a CPU standing in for CUDA (autocast on, as Trainer turns it on
// there): 3 steps with bf16 parameters gathered from fp32 shards, the gradients reduced in
// fp32, against the same steps in fp32 without autocast, the unsharded CPU path.
TEST(FullShard, Bf16ComputeGathersHalfTheBytesFromFp32Shards) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  test::TempDir dir;
  test::twoRanks([&](Collectives &c) {
    struct Run {
      std::vector<double> Losses;
      std::vector<size_t> StartedBytes;
    };
    auto train = [&](FullShardOptions precision, Run &run, const std::string &modelFile) {
      std::unique_ptr<model::Model> m = test::tinyModel(1);
      train::AdamW optimizer(m->parameters(), train::AdamWOptions{});
      RecordingCollectives recording(c, /*ahead=*/true);
      llvm::Expected<std::unique_ptr<FullShard>> full = FullShard::create(recording, *m, optimizer, precision);
      ASSERT_TRUE(bool(full)) << llvm::toString(full.takeError());
      train::Trainer trainer = shardedTrainer(*m, optimizer, **full);
      std::optional<compat::CpuAutocast> autocast;
      if (precision.ComputeDtype)
        autocast.emplace();
      for (uint64_t step = 0; step < 3; ++step) {
        llvm::Expected<train::StepResult> r = trainer.step(stepBatch(step, c.rank()));
        ASSERT_TRUE(bool(r)) << llvm::toString(r.takeError());
        run.Losses.push_back(r->Loss);
      }
      autocast.reset();
      run.StartedBytes = recording.StartedBytes;
      if (!precision.ComputeDtype)
        return;

      // The shards and both moments stay fp32; gathered, each parameter is its shards' values
      // rounded to bf16, in a storage of 2 bytes an element.
      const std::vector<StateSlice> slices = (*full)->checkpointSlices();
      for (const StateSlice &s : slices)
        EXPECT_EQ(s.View.scalar_type(), at::kFloat) << s.Name;
      (*full)->gatherWhole();
      for (const model::NamedParameter &p : m->parameters()) {
        EXPECT_EQ(p.Tensor.scalar_type(), at::kBFloat16) << p.Name;
        EXPECT_EQ(p.Tensor.storage().nbytes(), size_t(p.Tensor.numel()) * 2) << p.Name;
        for (const StateSlice &s : slices)
          if (s.Name == p.Name) {
            EXPECT_TRUE(at::equal(p.Tensor.detach().reshape({-1}).narrow(0, s.Begin, s.View.numel()),
                                  s.View.to(at::kBFloat16)))
                << p.Name;
          }
      }
      (*full)->releaseWhole();

      // The whole model written from the shards is theirs, in fp32, not rounded.
      llvm::Error e = (*full)->saveWhole(optimizer, "saving", dir / modelFile, dir / ("optimizer-" + modelFile));
      ASSERT_FALSE(bool(e)) << llvm::toString(std::move(e));
      c.barrier(); // rank 0 wrote it
      std::unique_ptr<model::Model> written = test::tinyModel(2);
      ASSERT_FALSE(bool(written->loadWeights(dir / modelFile)));
      for (const model::NamedParameter &p : written->parameters()) {
        EXPECT_EQ(p.Tensor.scalar_type(), at::kFloat);
        for (const StateSlice &s : slices)
          if (s.Name == p.Name) {
            EXPECT_TRUE(at::equal(p.Tensor.detach().reshape({-1}).narrow(0, s.Begin, s.View.numel()), s.View))
                << p.Name;
          }
      }
      const std::string bytes = fileBytes(dir / modelFile);
      EXPECT_TRUE(llvm::StringRef(bytes).contains("\"F32\"") && !llvm::StringRef(bytes).contains("BF16"));
      const std::string state = fileBytes(dir / ("optimizer-" + modelFile));
      EXPECT_TRUE(llvm::StringRef(state).contains("\"F32\"") && !llvm::StringRef(state).contains("BF16"));
    };
    Run fp32, bf16;
    train({}, fp32, "fp32.safetensors");
    train({at::kBFloat16, std::nullopt}, bf16, "bf16.safetensors");
    ASSERT_EQ(bf16.Losses.size(), fp32.Losses.size());
    for (size_t step = 0; step < fp32.Losses.size(); ++step) {
      // bf16 keeps 8 bits of mantissa: a relative error of 2^-8 per rounding, a few of them deep.
      EXPECT_NEAR(bf16.Losses[step], fp32.Losses[step], 0.02 * fp32.Losses[step]) << "step " << step;
      EXPECT_NE(bf16.Losses[step], fp32.Losses[step]) << "step " << step << " computed in fp32";
    }
    // The same gathers, each of half the bytes.
    ASSERT_EQ(bf16.StartedBytes.size(), fp32.StartedBytes.size());
    for (size_t i = 0; i < fp32.StartedBytes.size(); ++i)
      EXPECT_EQ(2 * bf16.StartedBytes[i], fp32.StartedBytes[i]) << "gather " << i;

    // A bf16 reduction needs NCCL: Gloo sums no bf16.
    std::unique_ptr<model::Model> m = test::tinyModel(1);
    train::AdamW optimizer(m->parameters(), train::AdamWOptions{});
    llvm::Expected<std::unique_ptr<FullShard>> refused =
        FullShard::create(c, *m, optimizer, {at::kBFloat16, at::kBFloat16});
    const std::string message = refused ? "" : llvm::toString(refused.takeError());
    EXPECT_TRUE(llvm::StringRef(message).contains("Gloo")) << message;
    c.barrier(); // rank 0, which serves the store, stays until every rank is done
  });
}
