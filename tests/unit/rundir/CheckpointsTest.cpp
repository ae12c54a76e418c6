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

void writeText(const std::string &path, llvm::StringRef text) {
  std::error_code ec;
  llvm::raw_fd_ostream(path, ec) << text;
  ASSERT_FALSE(ec) << path;
}

/// The step of the newest complete checkpoint; nullopt if none (or an error).
std::optional<uint64_t> latestStep(const CheckpointStore &store) {
  llvm::Expected<std::optional<Checkpoint>> latest = store.latest();
  if (!latest) {
    ADD_FAILURE() << llvm::toString(latest.takeError());
    return std::nullopt;
  }
  return *latest ? std::optional<uint64_t>((*latest)->State.Step) : std::nullopt;
}

} // namespace

TEST(Checkpoints, LatestIsTheNewestCompleteOne) {
  test::TempDir node;
  CheckpointStore store(node.Path);
  EXPECT_FALSE(latestStep(store));
  save(store, 8, 5);
  save(store, 16, 5);
  // A checkpoint killed before its state.json: it does not count.
  ASSERT_TRUE(bool(store.begin(24)));
  llvm::Expected<std::optional<Checkpoint>> found = store.latest();
  ASSERT_TRUE(found && *found) << (found ? "none" : llvm::toString(found.takeError()));
  const Checkpoint *latest = &**found;
  EXPECT_EQ(latest->State.Step, 16u);
  EXPECT_EQ(latest->State.Numerics, "cpu");
  EXPECT_EQ(latest->State.SkippedSteps, 1u);
  EXPECT_EQ(latest->State.MetricsBytes, 160u);
  EXPECT_EQ(latest->State.WorldSize, 2u);
  EXPECT_EQ(latest->State.MicroBatch, 4u);
  EXPECT_EQ(latest->Dir, store.dirFor(16));
  EXPECT_TRUE(store.complete(16));
  EXPECT_FALSE(store.complete(24));
  EXPECT_EQ(latestStep(store), 16u);
}

// commit writes state.json whole, so a damaged one was changed afterwards: an error naming
// the file and what is wrong, never a state with guessed fields.
TEST(Checkpoints, ADamagedStateIsAnErrorNamingTheFile) {
  test::TempDir node;
  CheckpointStore store(node.Path);
  save(store, 8, 5);
  save(store, 16, 5);
  const std::string state = store.dirFor(16) + "/state.json";
  const std::string fix = "; remove " + store.dirFor(16) + " to resume from the checkpoint before it";
  const std::string whole = R"({"step": 16, "metrics_bytes": 160, "numerics": "cpu", "skipped_steps": 1, )"
                            R"("consecutive_skips": 0, "world_size": 2, "micro_batch": 4})";
  const std::pair<std::string, std::string> cases[] = {
      {R"({"step": 1)", "byte 10: invalid JSON: Expected , or } after object property"},
      {std::string(100000, '['), "byte 512: JSON nested deeper than 512 levels"},
      {"[16]", "not a JSON object"},
      {R"({"step": 16, "numerics": "cpu"})", "\"metrics_bytes\" is missing, not a count"},
      {R"({"step": -16})", "\"step\" is something else, not a count"},
      {R"({"step": 16, "metrics_bytes": 160, "skipped_steps": 1, "consecutive_skips": 0, "world_size": 2, )"
       R"("micro_batch": "4", "numerics": "cpu"})",
       "\"micro_batch\" is something else, not a count"},
      {R"({"step": 16, "metrics_bytes": 160, "skipped_steps": 1, "consecutive_skips": 0, "world_size": 2, )"
       R"("micro_batch": 4})",
       "\"numerics\" is missing or not a string"},
  };
  for (const auto &[text, why] : cases) {
    writeText(state, text);
    llvm::Expected<std::optional<Checkpoint>> latest = store.latest();
    ASSERT_FALSE(latest) << text;
    std::string error = llvm::toString(latest.takeError());
    EXPECT_NE(error.find(state + ": " + why), std::string::npos) << error;
    EXPECT_NE(error.find(fix), std::string::npos) << error;
    EXPECT_FALSE(store.complete(16)) << text; // its weights serve no eval either
  }
  writeText(state, whole);
  EXPECT_EQ(latestStep(store), 16u);
  EXPECT_TRUE(store.complete(16));
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
