//===- DuringEvalsTest.cpp - in-loop points a done train node lacks -------===//
#include "TempDir.h"
#include "mixtape/rundir/Checkpoints.h"
#include "mixtape/rundir/DuringEvals.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

using namespace mixtape;
using namespace mixtape::rundir;

namespace {

void writeFile(const std::string &path, llvm::StringRef text) {
  std::error_code ec;
  llvm::raw_fd_ostream out(path, ec);
  ASSERT_FALSE(ec) << path;
  out << text;
}

} // namespace

TEST(DuringEvals, StepAndCheckpointFolder) {
  EXPECT_EQ(duringEvalStep(0, 512), 0u);
  EXPECT_EQ(duringEvalStep(512, 512), 1u);
  EXPECT_EQ(duringEvalStep(513, 512), 2u); // the first step boundary at or past the point
  EXPECT_EQ(CheckpointStore("n").dirFor(80), "n/checkpoints/step-00000080");
}

// Steps [4, 10) of 100 tokens; points at steps 4 (the input's model), 6 (a checkpoint), 7 (a
// checkpoint without state.json: incomplete), 8 (logged for prose only) and 10 (the final
// model).
TEST(DuringEvals, MissingPointsAndWhatServesThem) {
  mixtape::test::TempDir run;
  std::string node = run / "node", input = run / "input";
  for (const std::string &dir : {node + "/checkpoints/step-00000006", node + "/checkpoints/step-00000007", input})
    ASSERT_FALSE(llvm::sys::fs::create_directories(dir));
  writeFile(input + "/model.safetensors", "");
  writeFile(node + "/model.safetensors", "");
  writeFile(node + "/checkpoints/step-00000006/model.safetensors", "");
  ASSERT_FALSE(bool(CheckpointStore(node).commit({6, 0, "cpu", 0, 0, 1, 1}, 5)));
  writeFile(node + "/checkpoints/step-00000007/model.safetensors", "");
  writeFile(node + "/metrics.jsonl",
            R"({"type":"eval","node":"n","eval":"ppl","point":"during","stage":"s","stage_tokens":800,"chain_tokens":800,"stream":"prose","split":"val","loss":2,"ppl":7.4}
{"type":"eval","node":"n","eval":"ppl","point":"during","stage":"s","stage_tokens":800,"chain_tokens":800,"stream":"code","spl)");
  plan::TrainNode train;
  train.Settings.Steps = {4, 10};
  train.Settings.BatchSequences = 2;
  train.Settings.SeqLen = 50;
  train.Exec.EvalDuring["ppl"] = plan::DuringEval{
      {{"prose", plan::SplitKind::Val}, {"code", plan::SplitKind::Val}}, 0, std::nullopt, {400, 550, 700, 800, 999}};
  llvm::Expected<std::vector<MissingDuringEval>> missing = missingDuringEvals(train, node, input, CheckpointStore::Check::Contents);
  ASSERT_TRUE(bool(missing)) << llvm::toString(missing.takeError());
  ASSERT_EQ(missing->size(), 5u);
  const std::vector<MissingDuringEval> &m = *missing;
  EXPECT_EQ(m[0].From, MissingDuringEval::InputModel);
  EXPECT_EQ(m[0].Weights, input + "/model.safetensors");
  EXPECT_EQ(m[1].Step, 6u);
  EXPECT_EQ(m[1].StageTokens, 600u);
  EXPECT_EQ(m[1].From, MissingDuringEval::Checkpoint);
  EXPECT_EQ(m[1].Weights, node + "/checkpoints/step-00000006/model.safetensors");
  EXPECT_EQ(m[2].From, MissingDuringEval::Unavailable);
  EXPECT_EQ(describeSource(m[2]), "needs retraining: no checkpoint was retained at step 7");
  ASSERT_EQ(m[3].Splits.size(), 1u); // the truncated code record does not count
  EXPECT_EQ(m[3].Splits[0].Stream, "code");
  EXPECT_EQ(m[4].From, MissingDuringEval::FinalModel);
  EXPECT_EQ(describeSource(m[4]), "from the node's final model");
}
