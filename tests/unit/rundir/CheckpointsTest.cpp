//===- CheckpointsTest.cpp - a train node's checkpoints -------------------===//
#include "TempDir.h"
#include "mixtape/rundir/Checkpoints.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <xxhash.h>

using namespace mixtape;
using namespace mixtape::rundir;

namespace {

void writeText(const std::string &path, llvm::StringRef text) {
  std::error_code ec;
  llvm::raw_fd_ostream(path, ec) << text;
  ASSERT_FALSE(ec) << path;
}

/// A checkpoint at `step` as the runtime writes it: the weights, then state.json.
void save(const CheckpointStore &store, uint64_t step, uint64_t keep) {
  llvm::Expected<std::string> dir = store.begin(step);
  ASSERT_TRUE(bool(dir)) << llvm::toString(dir.takeError());
  writeText(*dir + "/model.safetensors", "weights of step " + std::to_string(step));
  writeText(*dir + "/optimizer.safetensors", "moments");
  ASSERT_FALSE(bool(store.commit({step, step * 10, "cpu", 1, 0, 2, 4, {}}, keep)));
}

/// The step of the newest valid checkpoint (nullopt: none), and the reasons it gave.
std::optional<uint64_t> latestStep(const CheckpointStore &store, std::vector<std::string> *passedOver = nullptr) {
  LatestCheckpoint latest = store.latest();
  if (passedOver)
    *passedOver = latest.PassedOver;
  return latest.Found ? std::optional<uint64_t>(latest.Found->State.Step) : std::nullopt;
}

std::string errorText(llvm::Error e) { return e ? llvm::toString(std::move(e)) : ""; }

} // namespace

TEST(Checkpoints, LatestIsTheNewestCompleteOne) {
  test::TempDir node;
  CheckpointStore store(node.Path);
  EXPECT_FALSE(latestStep(store));
  save(store, 8, 5);
  save(store, 16, 5);
  // A checkpoint killed before its state.json: it does not count, and no warning.
  ASSERT_TRUE(bool(store.begin(24)));
  LatestCheckpoint latest = store.latest();
  ASSERT_TRUE(latest.Found);
  EXPECT_TRUE(latest.PassedOver.empty());
  const CheckpointState &s = latest.Found->State;
  EXPECT_EQ(s.Step, 16u);
  EXPECT_EQ(s.MetricsBytes, 160u);
  EXPECT_EQ(s.Numerics, "cpu");
  EXPECT_EQ(s.SkippedSteps, 1u);
  EXPECT_EQ(s.WorldSize, 2u);
  EXPECT_EQ(s.MicroBatch, 4u);
  EXPECT_EQ(latest.Found->Dir, store.dirFor(16));
  // state.json lists every other file with its size and XXH3-64 (checked independently).
  ASSERT_EQ(s.Files.size(), 2u);
  EXPECT_EQ(s.Files[0].Name, "model.safetensors");
  EXPECT_EQ(s.Files[0].Bytes, 18u);
  EXPECT_EQ(s.Files[0].Xxh3, XXH3_64bits("weights of step 16", 18));
  EXPECT_EQ(s.Files[1].Name, "optimizer.safetensors");
  EXPECT_EQ(s.Files[1].Xxh3, XXH3_64bits("moments", 7));
  EXPECT_EQ(errorText(store.validate(16, CheckpointStore::Check::Contents)), "");
  EXPECT_NE(errorText(store.validate(24, CheckpointStore::Check::Contents)), "");
}

// A file cut or changed after its commit, or a damaged state.json, passes the checkpoint
// over with a reason naming the file; the newest intact one before it is the latest.
TEST(Checkpoints, ADamagedCheckpointIsPassedOverForTheOneBefore) {
  test::TempDir node;
  CheckpointStore store(node.Path);
  save(store, 8, 5);
  const std::string dir = store.dirFor(16), state = dir + "/state.json", model = dir + "/model.safetensors";
  struct Case {
    std::string File, Text, Why;
  };
  const Case cases[] = {
      {model, "weights of step", model + ": 15 bytes where state.json says 18: cut or changed after it was written"},
      {model, "weights of step 61", model + ": XXH3-64 "},
      {dir + "/optimizer.safetensors", "", dir + "/optimizer.safetensors: 0 bytes where state.json says 7"},
      {state, R"({"step": 1)", state + ": byte 10: invalid JSON: "},
      {state, std::string(100000, '['), state + ": byte 512: JSON nested deeper than 512 levels"},
      {state, "[16]", state + ": not a JSON object"},
      {state, R"({"step": 16, "numerics": "cpu"})", state + ": \"metrics_bytes\" is missing, not a count"},
      {state, R"({"step": -16})", state + ": \"step\" is something else, not a count"},
      {state,
       R"({"step": 16, "metrics_bytes": 160, "skipped_steps": 1, "consecutive_skips": 0, "world_size": 2, )"
       R"("micro_batch": "4", "numerics": "cpu", "files": []})",
       state + ": \"micro_batch\" is something else, not a count"},
      {state,
       R"({"step": 16, "metrics_bytes": 160, "skipped_steps": 1, "consecutive_skips": 0, "world_size": 2, )"
       R"("micro_batch": 4, "files": []})",
       state + ": \"numerics\" is missing or not a string"},
      {state,
       R"({"step": 16, "metrics_bytes": 160, "skipped_steps": 1, "consecutive_skips": 0, "world_size": 2, )"
       R"("micro_batch": 4, "numerics": "cpu", "files": []})",
       state + ": lists neither index.json nor model.safetensors"},
      {state,
       R"({"step": 16, "metrics_bytes": 160, "skipped_steps": 1, "consecutive_skips": 0, "world_size": 2, )"
       R"("micro_batch": 4, "numerics": "cpu", "files": [{"name": "../../model.safetensors", "bytes": 18, )"
       R"("xxh3_64": "0000000000000000"}]})",
       state + ": \"files\" names '../../model.safetensors', which is not a file of the checkpoint's folder"},
  };
  for (const Case &c : cases) {
    save(store, 16, 5);
    writeText(c.File, c.Text);
    std::vector<std::string> passedOver;
    EXPECT_EQ(latestStep(store, &passedOver), 8u) << c.Why;
    ASSERT_EQ(passedOver.size(), 1u) << c.Why;
    EXPECT_EQ(passedOver[0].find(c.Why), 0u) << passedOver[0];
    EXPECT_EQ(errorText(store.validate(16, CheckpointStore::Check::Contents)).find(c.Why), 0u);
  }
  // Sizes alone (plan --explain) see a cut file, not a changed byte.
  save(store, 16, 5);
  writeText(model, "weights of step 61");
  EXPECT_EQ(errorText(store.validate(16, CheckpointStore::Check::Sizes)), "");
  writeText(model, "weights");
  EXPECT_NE(errorText(store.validate(16, CheckpointStore::Check::Sizes)), "");
}

TEST(Checkpoints, StateTextReadsBack) {
  CheckpointState state;
  state.Step = 42;
  state.MetricsBytes = 1234;
  state.Numerics = "cpu";
  state.WorldSize = 2;
  state.MicroBatch = 4;
  state.Files.push_back({"model.safetensors", 18, 0x0123456789abcdefULL});
  const std::string text = checkpointStateText(state);
  llvm::Expected<CheckpointState> again = parseCheckpointState(text, "state.json");
  ASSERT_TRUE(bool(again)) << llvm::toString(again.takeError());
  EXPECT_EQ(again->Step, 42u);
  ASSERT_EQ(again->Files.size(), 1u);
  EXPECT_EQ(again->Files[0].Xxh3, 0x0123456789abcdefULL);
  EXPECT_EQ(checkpointStateText(*again), text);
}

TEST(Checkpoints, CommitKeepsTheNewest) {
  test::TempDir node;
  CheckpointStore store(node.Path);
  for (uint64_t step : {4, 8, 12, 16})
    save(store, step, 2);
  EXPECT_FALSE(llvm::sys::fs::exists(store.dirFor(4)));
  EXPECT_FALSE(llvm::sys::fs::exists(store.dirFor(8)));
  EXPECT_EQ(errorText(store.validate(12, CheckpointStore::Check::Contents)), "");
  EXPECT_EQ(errorText(store.validate(16, CheckpointStore::Check::Contents)), "");
  save(store, 20, 0); // keep 0 still keeps the one just written
  EXPECT_EQ(errorText(store.validate(20, CheckpointStore::Check::Contents)), "");
  EXPECT_FALSE(llvm::sys::fs::exists(store.dirFor(16)));
}
