//===- DuringEvalsTest.cpp - in-loop points a done train node lacks -------===//
#include "TempDir.h"
#include "mixtape/compiler/DuringEvals.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

using namespace mixtape;
using llvm::json::Array;
using llvm::json::Object;

namespace {

void writeFile(const std::string &path, llvm::StringRef text) {
  std::error_code ec;
  llvm::raw_fd_ostream out(path, ec);
  ASSERT_FALSE(ec) << path;
  out << text;
}

} // namespace

TEST(DuringEvals, StepAndCheckpointFolder) {
  EXPECT_EQ(duringEvalStep(0, 512), 0);
  EXPECT_EQ(duringEvalStep(512, 512), 1);
  EXPECT_EQ(duringEvalStep(513, 512), 2); // the first step boundary at or past the point
  EXPECT_EQ(checkpointDir("n", 80), "n/checkpoints/step-00000080");
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
  writeFile(node + "/checkpoints/step-00000006/state.json", "{}");
  writeFile(node + "/checkpoints/step-00000007/model.safetensors", "");
  writeFile(node + "/metrics.jsonl",
            R"({"type":"eval","point":"during","eval":"ppl","stage_tokens":800,"stream":"prose","split":"val"}
{"type":"eval","point":"during","eval":"ppl","stage_tokens":800,"stream":"code","spl)");
  Object settings{{"steps", Array{4, 10}}, {"batch_sequences", 2}, {"seq_len", 50}};
  Object exec{{"eval_during",
               Object{{"ppl", Object{{"splits", Array{Array{"prose", "val"}, Array{"code", "val"}}},
                                     {"stage_tokens", Array{400, 550, 700, 800, 999}}}}}}};
  std::vector<MissingDuringEval> missing = missingDuringEvals(settings, exec, node, input);
  ASSERT_EQ(missing.size(), 5u);
  EXPECT_EQ(missing[0].source, MissingDuringEval::InputModel);
  EXPECT_EQ(missing[0].weights, input + "/model.safetensors");
  EXPECT_EQ(missing[1].step, 6);
  EXPECT_EQ(missing[1].stageTokens, 600);
  EXPECT_EQ(missing[1].source, MissingDuringEval::Checkpoint);
  EXPECT_EQ(missing[1].weights, node + "/checkpoints/step-00000006/model.safetensors");
  EXPECT_EQ(missing[2].source, MissingDuringEval::Unavailable);
  EXPECT_EQ(describeSource(missing[2]), "needs retraining: no checkpoint was retained at step 7");
  ASSERT_EQ(missing[3].splits.size(), 1u); // the truncated code record does not count
  EXPECT_EQ(missing[3].splits[0].first, "code");
  EXPECT_EQ(missing[4].source, MissingDuringEval::FinalModel);
  EXPECT_EQ(describeSource(missing[4]), "from the node's final model");
}
