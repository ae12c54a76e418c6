//===- CheckpointsTest.cpp - a train node's checkpoints -------------------===//
#include "TempDir.h"
#include "mixtape/rundir/Checkpoints.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

using namespace mixtape;
using namespace mixtape::rundir;

namespace {

/// A checkpoint at `step` as the runtime writes it: the weights, then state.json.
void save(const CheckpointStore &store, uint64_t step, uint64_t keep) {
  llvm::Expected<std::string> dir = store.begin(step);
  ASSERT_TRUE(bool(dir)) << llvm::toString(dir.takeError());
  std::error_code ec;
  llvm::raw_fd_ostream(*dir + "/model.safetensors", ec) << "weights";
  ASSERT_FALSE(ec);
  ASSERT_FALSE(bool(store.commit({step, step * 10, "cpu", 1, 0, 2, 4}, keep)));
}

} // namespace

TEST(Checkpoints, LatestIsTheNewestCompleteOne) {
  test::TempDir node;
  CheckpointStore store(node.Path);
  EXPECT_FALSE(store.latest());
  save(store, 8, 5);
  save(store, 16, 5);
  // A checkpoint killed before its state.json: it does not count.
  ASSERT_TRUE(bool(store.begin(24)));
  std::optional<Checkpoint> latest = store.latest();
  ASSERT_TRUE(latest);
  EXPECT_EQ(latest->State.Step, 16u);
  EXPECT_EQ(latest->State.MetricsBytes, 160u);
  EXPECT_EQ(latest->State.WorldSize, 2u);
  EXPECT_EQ(latest->State.MicroBatch, 4u);
  EXPECT_EQ(latest->Dir, store.dirFor(16));
  EXPECT_TRUE(store.complete(16));
  EXPECT_FALSE(store.complete(24));
  // A state.json cut short: not complete either.
  std::error_code ec;
  llvm::raw_fd_ostream(store.dirFor(16) + "/state.json", ec) << "{\"step\": 1";
  EXPECT_EQ(store.latest()->State.Step, 8u);
}

TEST(Checkpoints, CommitKeepsTheNewest) {
  test::TempDir node;
  CheckpointStore store(node.Path);
  for (uint64_t step : {4, 8, 12, 16})
    save(store, step, 2);
  EXPECT_FALSE(llvm::sys::fs::exists(store.dirFor(4)));
  EXPECT_FALSE(llvm::sys::fs::exists(store.dirFor(8)));
  EXPECT_TRUE(store.complete(12));
  EXPECT_TRUE(store.complete(16));
  save(store, 20, 0); // keep 0 still keeps the one just written
  EXPECT_TRUE(store.complete(20));
  EXPECT_FALSE(llvm::sys::fs::exists(store.dirFor(16)));
}
