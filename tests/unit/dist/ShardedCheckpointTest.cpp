//===- ShardedCheckpointTest.cpp - shards, their index, resharding --------===//
//
// A checkpoint written by 2 ranks with `full` (FSDP) is read back by a world of 1 and by
// every rank of 2 and 4 under each shard mode: every weight and moment element is the one
// written, bit for bit. Its weights loaded whole equal the model saved whole; a missing or
// cut shard, or an index that leaves elements out, is an error naming the file.
//
//===----------------------------------------------------------------------===//
#include "TempDir.h"
#include "TinyModel.h"
#include "TwoRanks.h"

#include "mixtape/dist/FullShard.h"
#include "mixtape/dist/ShardedAdamW.h"
#include "mixtape/dist/ShardedCheckpoint.h"
#include "mixtape/model/Model.h"
#include "mixtape/support/Files.h"
#include "mixtape/train/AdamW.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>

using namespace mixtape;
using namespace mixtape::dist;

namespace {

constexpr int64_t kSteps = 7;

/// What the reference holds under a checkpoint tensor's name, flattened.
at::Tensor referenceOf(const train::AdamW &reference, const std::string &name) {
  llvm::ArrayRef<model::NamedParameter> params = reference.parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    if (name == params[i].Name)
      return params[i].Tensor.detach().reshape({-1});
    if (name == expAvgName(params[i].Name))
      return reference.expAvg(i).reshape({-1});
    if (name == expAvgSqName(params[i].Name))
      return reference.expAvgSq(i).reshape({-1});
  }
  ADD_FAILURE() << "no tensor " << name;
  return {};
}

/// Every slice holds, bit for bit, the reference's elements; returns how many it checked.
int64_t expectSlicesEqual(llvm::ArrayRef<StateSlice> slices, const train::AdamW &reference) {
  int64_t checked = 0;
  for (const StateSlice &s : slices) {
    at::Tensor want = referenceOf(reference, s.Name).narrow(0, s.Begin, s.View.numel());
    EXPECT_TRUE(at::equal(s.View, want)) << s.Name << " from element " << s.Begin;
    checked += s.View.numel();
  }
  return checked;
}

class ShardedCheckpoint : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    if (!hasBackend(Device::CPU))
      return;
    Dir = new test::TempDir();
    // Two ranks with `full`: each writes the slices of its units' shards.
    test::twoRanks([](Collectives &c) {
      std::unique_ptr<model::Model> m = test::tinyModel(1);
      train::AdamW optimizer(m->parameters(), train::AdamWOptions{});
      test::giveState(optimizer, kSteps);
      llvm::Expected<std::unique_ptr<FullShard>> full = FullShard::create(c, *m, optimizer);
      ASSERT_TRUE(bool(full)) << llvm::toString(full.takeError());
      ASSERT_EQ(errorText(writeShard(Dir->Path, c.rank(), 2, (*full)->checkpointSlices())), "");
      c.barrier();
      if (c.rank() == 0)
        ASSERT_EQ(errorText(writeShardIndex(Dir->Path, 2, "full", optimizer.steps())), "");
    });
    Reference = test::tinyModel(1).release();
    ReferenceState = new train::AdamW(Reference->parameters(), train::AdamWOptions{});
    test::giveState(*ReferenceState, kSteps);
  }
  static void TearDownTestSuite() {
    delete ReferenceState;
    delete Reference;
    delete Dir;
  }
  void SetUp() override {
    if (!hasBackend(Device::CPU))
      GTEST_SKIP() << "this build has no Gloo";
  }

  static std::string errorText(llvm::Error e) { return e ? llvm::toString(std::move(e)) : ""; }
  static std::string index() { return *Dir / kCheckpointIndex; }
  static int64_t stateElements() {
    int64_t n = 0;
    for (const model::NamedParameter &p : Reference->parameters())
      n += 3 * p.Tensor.numel();
    return n;
  }

  static test::TempDir *Dir;
  static model::Model *Reference;
  static train::AdamW *ReferenceState;
};

test::TempDir *ShardedCheckpoint::Dir = nullptr;
model::Model *ShardedCheckpoint::Reference = nullptr;
train::AdamW *ShardedCheckpoint::ReferenceState = nullptr;

TEST_F(ShardedCheckpoint, TheIndexPlacesEveryTensorOnTheShards) {
  llvm::Expected<CheckpointIndex> idx = CheckpointIndex::open(index());
  ASSERT_TRUE(bool(idx)) << llvm::toString(idx.takeError());
  EXPECT_EQ(idx->worldSize(), 2);
  EXPECT_EQ(idx->shardMode(), "full");
  EXPECT_EQ(idx->optimizerSteps(), kSteps);
  for (const model::NamedParameter &p : Reference->parameters())
    for (const std::string &name : {p.Name, expAvgName(p.Name), expAvgSqName(p.Name)})
      EXPECT_TRUE(idx->has(name)) << name;
  EXPECT_TRUE(llvm::sys::fs::exists(*Dir / "shard-00000-of-00002.safetensors"));
  EXPECT_TRUE(llvm::sys::fs::exists(*Dir / "shard-00001-of-00002.safetensors"));
}

TEST_F(ShardedCheckpoint, AWorldOfOneReadsTheWholeState) {
  std::unique_ptr<model::Model> m = test::tinyModel(2); // other weights, all overwritten
  train::AdamW optimizer(m->parameters(), train::AdamWOptions{});
  llvm::Expected<CheckpointIndex> idx = CheckpointIndex::open(index());
  ASSERT_TRUE(bool(idx)) << llvm::toString(idx.takeError());
  std::vector<StateSlice> slices = replicatedSlices(optimizer, 0, 1, SlicePurpose::Load);
  ASSERT_EQ(errorText(idx->read(slices)), "");
  EXPECT_EQ(expectSlicesEqual(slices, *ReferenceState), stateElements());
}

// The even split of replicated state on 4 ranks: its slices cross the 2 writers' borders.
TEST_F(ShardedCheckpoint, FourRanksWithoutShardingReadTheirSharesAcrossTheWritersBorders) {
  llvm::Expected<CheckpointIndex> idx = CheckpointIndex::open(index());
  ASSERT_TRUE(bool(idx)) << llvm::toString(idx.takeError());
  int64_t checked = 0;
  for (int rank = 0; rank < 4; ++rank) {
    std::unique_ptr<model::Model> m = test::tinyModel(2);
    train::AdamW optimizer(m->parameters(), train::AdamWOptions{});
    std::vector<StateSlice> slices = replicatedSlices(optimizer, rank, 4, SlicePurpose::Save);
    ASSERT_EQ(errorText(idx->read(slices)), "");
    checked += expectSlicesEqual(slices, *ReferenceState);
  }
  EXPECT_EQ(checked, stateElements());
}

TEST_F(ShardedCheckpoint, FourRanksWithFullShardingReadTheirShards) {
  std::atomic<int64_t> checked{0};
  test::ranks(4, [&](Collectives &c) {
    std::unique_ptr<model::Model> m = test::tinyModel(2);
    train::AdamW optimizer(m->parameters(), train::AdamWOptions{});
    llvm::Expected<std::unique_ptr<FullShard>> full = FullShard::create(c, *m, optimizer);
    ASSERT_TRUE(bool(full)) << llvm::toString(full.takeError());
    llvm::Expected<CheckpointIndex> idx = CheckpointIndex::open(index());
    ASSERT_TRUE(bool(idx)) << llvm::toString(idx.takeError());
    std::vector<StateSlice> slices = (*full)->checkpointSlices();
    ASSERT_EQ(errorText(idx->read(slices)), "");
    checked += expectSlicesEqual(slices, *ReferenceState);
    // Gathered, the whole weights are the written ones.
    (*full)->gatherWhole();
    for (const model::NamedParameter &p : m->parameters())
      EXPECT_TRUE(at::equal(p.Tensor, referenceOf(*ReferenceState, p.Name).view(p.Tensor.sizes()))) << p.Name;
    (*full)->releaseWhole();
  });
  EXPECT_EQ(checked.load(), stateElements());
}

TEST_F(ShardedCheckpoint, TwoRanksWithShardedOptimizerStateReadTheWeightsAndTheirMoments) {
  std::atomic<int64_t> saved{0};
  test::twoRanks([&](Collectives &c) {
    std::unique_ptr<model::Model> m = test::tinyModel(2);
    train::AdamW optimizer(m->parameters(), train::AdamWOptions{});
    llvm::Expected<std::unique_ptr<ShardedAdamW>> zero1 = ShardedAdamW::create(c, optimizer);
    ASSERT_TRUE(bool(zero1)) << llvm::toString(zero1.takeError());
    llvm::Expected<CheckpointIndex> idx = CheckpointIndex::open(index());
    ASSERT_TRUE(bool(idx)) << llvm::toString(idx.takeError());
    ASSERT_EQ(errorText(idx->read((*zero1)->checkpointSlices(optimizer, SlicePurpose::Load))), "");
    // Every rank holds the whole weights; its own share of the moments is the one written.
    for (const model::NamedParameter &p : m->parameters())
      EXPECT_TRUE(at::equal(p.Tensor, referenceOf(*ReferenceState, p.Name).view(p.Tensor.sizes()))) << p.Name;
    // What it would write: its share of the weights and moments, bit for bit.
    saved += expectSlicesEqual((*zero1)->checkpointSlices(optimizer, SlicePurpose::Save), *ReferenceState);
  });
  EXPECT_EQ(saved.load(), stateElements());
}

// What an export reads: the model, tensor by tensor, equal to the model saved whole.
TEST_F(ShardedCheckpoint, WholeWeightsEqualTheConsolidatedFile) {
  test::TempDir whole;
  ASSERT_EQ(errorText(Reference->saveWeights(whole / "model.safetensors")), "");
  std::unique_ptr<model::Model> fromShards = test::tinyModel(3), fromFile = test::tinyModel(3);
  ASSERT_EQ(errorText(loadShardedWeights(*fromShards, index())), "");
  ASSERT_EQ(errorText(fromFile->loadWeights(whole / "model.safetensors")), "");
  for (size_t i = 0; i < fromFile->parameters().size(); ++i)
    EXPECT_TRUE(at::equal(fromShards->parameters()[i].Tensor, fromFile->parameters()[i].Tensor))
        << fromFile->parameters()[i].Name;
}

TEST_F(ShardedCheckpoint, AMissingOrCutShardIsAnErrorNamingIt) {
  const std::string shard = *Dir / "shard-00001-of-00002.safetensors";
  llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> bytes = mapFile(shard);
  ASSERT_TRUE(bool(bytes));
  const std::string original = (*bytes)->getBuffer().str();
  bytes->reset();
  auto restore = [&] { std::ofstream(shard, std::ios::binary) << original; };

  std::unique_ptr<model::Model> m = test::tinyModel(2);
  ASSERT_FALSE(llvm::sys::fs::remove(shard));
  std::string error = errorText(loadShardedWeights(*m, index()));
  restore();
  EXPECT_EQ(error.find(shard), 0u) << error;

  std::ofstream(shard, std::ios::binary) << original.substr(0, original.size() - 40);
  error = errorText(loadShardedWeights(*m, index()));
  restore();
  EXPECT_EQ(error.find(shard), 0u) << error;
  EXPECT_EQ(errorText(loadShardedWeights(*m, index())), "");
}

TEST_F(ShardedCheckpoint, AnIndexThatLeavesElementsOutIsRefused) {
  llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> bytes = mapFile(index());
  ASSERT_TRUE(bool(bytes));
  std::string text = (*bytes)->getBuffer().str();
  // A slice that started at element 0 starts at 1: element 0 is in no slice.
  const size_t first = text.find("\"begin\": 0,");
  ASSERT_NE(first, std::string::npos) << text;
  text[first + 9] = '1';
  test::TempDir other;
  std::ofstream(other / "index.json") << text;
  llvm::Expected<CheckpointIndex> idx = CheckpointIndex::open(other / "index.json");
  ASSERT_FALSE(bool(idx));
  const std::string error = llvm::toString(idx.takeError());
  EXPECT_EQ(error.find(other / "index.json" + ": tensor '"), 0u) << error;
  EXPECT_NE(error.find("exactly once"), std::string::npos) << error;
}

} // namespace
