//===- MetricsTest.cpp - metrics.jsonl written and read back --------------===//
#include "TempDir.h"
#include "mixtape/rundir/Metrics.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace mixtape;
using namespace mixtape::rundir;

namespace {

template <typename T> T take(llvm::Expected<T> value) {
  if (!value) {
    ADD_FAILURE() << llvm::toString(value.takeError());
    return T();
  }
  return std::move(*value);
}

template <typename T> std::string errorText(llvm::Expected<T> value) {
  return value ? std::string("(no error)") : llvm::toString(value.takeError());
}

std::string fileText(const std::string &path) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  return buffer ? (*buffer)->getBuffer().str() : "";
}

TrainRecord trainRecord(uint64_t step) {
  return TrainRecord{"adapt", "adapt", step, step * 64, 1000 + step * 64, 2.5, 3e-4, 0.75, {{"code", 2.25}},
                     {{"code", 63}}, std::nullopt};
}

} // namespace

TEST(Metrics, RecordsRoundTrip) {
  TrainRecord t = trainRecord(3);
  t.SkippedSteps = 1;
  t.Time = 1796146235.125;
  t.ElapsedS = 12.5;
  t.TokensPerS = 41000.5;
  t.Mfu = 0.4125;
  t.PeakMemoryBytes = 123456789;
  SkipRecord skip{"adapt", "adapt", 4, 256, 1256, "NaN", "", 0, 2};
  SkipRecord gradSkip{"adapt", "adapt", 5, 320, 1320, "", "inf", 7.25, 3};
  EvalRecord e{"init", "ppl", true, std::nullopt, 0, 0, "prose", plan::SplitKind::Train, 1.5, std::exp(1.5), 4096,
               false};
  std::string text = recordLine(t) + "\n" + recordLine(skip) + "\n" + recordLine(gradSkip) + "\n" + recordLine(e) + "\n";
  // Compact JSON, the type first: what readers that grep lines rely on.
  EXPECT_EQ(recordLine(skip), R"({"type":"skip","node":"adapt","stage":"adapt","step":4,"stage_tokens":256,)"
                              R"("chain_tokens":1256,"nonfinite_loss":"NaN","skipped_steps":2})");
  EXPECT_EQ(recordLine(gradSkip), R"({"type":"skip","node":"adapt","stage":"adapt","step":5,"stage_tokens":320,)"
                                  R"("chain_tokens":1320,"loss":7.25,"nonfinite_grad_norm":"inf","skipped_steps":3})");
  // The wall clock after the rest, numbers in their shortest form.
  EXPECT_NE(recordLine(t).find(R"("skipped_steps":1,"time":1796146235.125,"elapsed_s":12.5,"tokens_per_s":41000.5,)"
                               R"("mfu":0.4125,"peak_memory_bytes":123456789})"),
            std::string::npos)
      << recordLine(t);
  Metrics m = take(parseMetrics(text, "m.jsonl"));
  ASSERT_EQ(m.Train.size(), 1u);
  EXPECT_EQ(m.Train[0].Time, 1796146235.125);
  EXPECT_EQ(m.Train[0].ElapsedS, 12.5);
  EXPECT_EQ(m.Train[0].TokensPerS, 41000.5);
  EXPECT_EQ(m.Train[0].Mfu, 0.4125);
  EXPECT_EQ(m.Train[0].PeakMemoryBytes, 123456789u);
  EXPECT_EQ(m.Train[0].Step, 3u);
  EXPECT_EQ(m.Train[0].LR, 3e-4);
  EXPECT_EQ(m.Train[0].LossByStream.at("code"), 2.25);
  EXPECT_EQ(m.Train[0].LossTokensByStream.at("code"), 63u);
  EXPECT_EQ(m.Train[0].SkippedSteps, 1u);
  ASSERT_EQ(m.Skips.size(), 2u);
  EXPECT_EQ(m.Skips[0].NonFiniteLoss, "NaN");
  EXPECT_EQ(m.Skips[1].NonFiniteLoss, "");
  EXPECT_EQ(m.Skips[1].NonFiniteGradNorm, "inf");
  EXPECT_EQ(m.Skips[1].Loss, 7.25);
  ASSERT_EQ(m.Evals.size(), 1u);
  EXPECT_TRUE(m.Evals[0].Final);
  EXPECT_FALSE(m.Evals[0].Stage);
  EXPECT_EQ(m.Evals[0].Split, plan::SplitKind::Train);
  EXPECT_EQ(m.Evals[0].Ppl, std::exp(1.5));
}

// JSON has no NaN: a non-finite number is written as the string "NaN", "inf" or "-inf"
// (valid JSON, never C's "-nan"), and reads back as that number.
TEST(Metrics, NonFiniteNumbersAreStrings) {
  EvalRecord e{"n", "ppl", true, std::nullopt, 0, 0, "prose", plan::SplitKind::Val, std::nan(""), INFINITY,
               std::nullopt, false};
  TrainRecord t = trainRecord(1);
  t.GradNorm = -INFINITY;
  std::string text = recordLine(t) + "\n" + recordLine(e) + "\n";
  EXPECT_NE(text.find(R"("grad_norm":"-inf")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("loss":"NaN","ppl":"inf")"), std::string::npos) << text;
  for (const std::string &line : {recordLine(t), recordLine(e)}) {
    llvm::Expected<llvm::json::Value> json = llvm::json::parse(line);
    EXPECT_TRUE(bool(json)) << line << ": " << (json ? "" : llvm::toString(json.takeError()));
  }
  Metrics m = take(parseMetrics(text, "m.jsonl"));
  ASSERT_EQ(m.Train.size(), 1u);
  EXPECT_EQ(m.Train[0].GradNorm, -INFINITY);
  ASSERT_EQ(m.Evals.size(), 1u);
  EXPECT_TRUE(std::isnan(m.Evals[0].Loss));
  EXPECT_EQ(m.Evals[0].Ppl, INFINITY);
  // Any other string is not a number.
  std::string other = text.substr(0, text.find('\n'));
  other.replace(other.find("\"-inf\""), 6, "\"-Inf\"");
  EXPECT_NE(errorText(parseMetrics(other + "\n", "m.jsonl")).find("grad_norm"), std::string::npos);
}

TEST(Metrics, SkipsATruncatedLastLineOnly) {
  llvm::StringRef text =
      R"({"type":"train","node":"a","stage":"s","step":1,"stage_tokens":8,"chain_tokens":8,"loss":3,"lr":0.1}
{"type":"checkpoint","node":"a"}
{"type":"train","node":"a","stage":"s","step":2,"stage_tok)";
  Metrics m = take(parseMetrics(text, "m.jsonl"));
  ASSERT_EQ(m.Train.size(), 1u);
  EXPECT_EQ(m.Train[0].Step, 1u);
  ASSERT_EQ(m.Warnings.size(), 1u);
  EXPECT_EQ(m.Warnings[0], "m.jsonl:3: byte 58: invalid JSON: Unterminated string (a truncated last line: skipped)");
}

// Records are appended whole, one per line, and a resumed node cuts its metrics back to its
// checkpoint first: a blank line or a repeated step was put there by something else.
TEST(Metrics, BlankLinesAndRepeatedStepsAreErrors) {
  const std::string one = R"({"type":"train","node":"a","stage":"s","step":1,"stage_tokens":8,"chain_tokens":8,"loss":3,"lr":0.1})";
  const std::string two = R"({"type":"train","node":"a","stage":"s","step":2,"stage_tokens":16,"chain_tokens":16,"loss":3,"lr":0.1})";
  EXPECT_EQ(errorText(parseMetrics(one + "\n\n" + two + "\n", "m.jsonl")),
            "m.jsonl:2: a blank line; each line of metrics.jsonl is one record");
  EXPECT_EQ(errorText(parseMetrics(one + "\n \t\n\n", "m.jsonl")),
            "m.jsonl:2: a blank line; each line of metrics.jsonl is one record");
  EXPECT_EQ(errorText(parseMetrics(one + "\n" + two + "\n" + one + "\n", "m.jsonl")),
            "m.jsonl:3: a second train record of node 'a' step 1 (the first is on line 1)");
  // A blank last line is not a line between records; another node may log the same step.
  EXPECT_EQ(take(parseMetrics(one + "\n" + two + "\n\n", "m.jsonl")).Train.size(), 2u);
  std::string other = one;
  other.replace(other.find("\"node\":\"a\""), 10, "\"node\":\"b\"");
  EXPECT_EQ(take(parseMetrics(one + "\n" + other + "\n", "m.jsonl")).Train.size(), 2u);
}

TEST(Metrics, ErrorsNameFileAndLine) {
  EXPECT_EQ(errorText(parseMetrics("{\"type\":\"train\"\n{}\n", "m.jsonl")),
            "m.jsonl:1: byte 15: invalid JSON: Expected , or } after object property");
  // A hundred thousand levels once overflowed the parser's stack.
  EXPECT_EQ(errorText(parseMetrics(std::string(100000, '[') + "\n{}\n", "m.jsonl")),
            "m.jsonl:1: byte 512: JSON nested deeper than 512 levels");
  std::string missing = errorText(parseMetrics(
      R"({"type":"eval","node":"a","eval":"ppl","point":"final","stage":null,"stage_tokens":0,"chain_tokens":0,"stream":"p","split":"val","ppl":3}
)",
      "m.jsonl"));
  EXPECT_EQ(missing, "m.jsonl:1: \"loss\" must be a number (or \"NaN\", \"inf\", \"-inf\")");
  std::string point = errorText(parseMetrics(
      R"({"type":"eval","node":"a","eval":"ppl","point":"after","stage":null,"stage_tokens":0,"chain_tokens":0,"stream":"p","split":"val","loss":1,"ppl":3}
)",
      "m.jsonl"));
  EXPECT_EQ(point, "m.jsonl:1: \"point\" must be \"during\" or \"final\"");
  EXPECT_EQ(errorText(parseMetrics(
                R"({"type":"train","node":"a","stage":"s","step":1,"stage_tokens":8,"chain_tokens":8,"loss":3,"lr":0.1,"loss_by_stream":{"web":"x"}}
)",
                "m.jsonl")),
            "m.jsonl:1: \"loss_by_stream\" must be an object of numbers");
}

// A resumed node cuts the log to its checkpoint's bytes (and a partial last line), then
// appends; bytes() counts what the file holds.
TEST(Metrics, ResumingCutsToTheCheckpointThenAppends) {
  test::TempDir dir;
  std::string path = dir / "metrics.jsonl";
  uint64_t afterTwo = 0;
  {
    MetricsLog log;
    ASSERT_FALSE(bool(log.open(path)));
    for (uint64_t step = 1; step <= 3; ++step) {
      ASSERT_FALSE(bool(log.write(trainRecord(step))));
      if (step == 2)
        afterTwo = log.size();
    }
  }
  {
    MetricsLog resumed;
    ASSERT_FALSE(bool(resumed.open(path, afterTwo))); // line 3 goes
    EXPECT_EQ(resumed.size(), afterTwo);
    ASSERT_FALSE(bool(resumed.write(trainRecord(30))));
  }
  Metrics m = take(readMetrics(path));
  ASSERT_EQ(m.Train.size(), 3u);
  EXPECT_EQ(m.Train[2].Step, 30u);
  EXPECT_TRUE(m.Warnings.empty());
  EXPECT_EQ(fileText(path).size(), afterTwo + recordLine(trainRecord(30)).size() + 1);
}

// The size a checkpoint recorded must be there and end a line: a shorter or changed file
// lost records after the checkpoint was written, and resuming would leave a gap.
TEST(Metrics, ResumingFromAShorterFileIsAnError) {
  test::TempDir dir;
  std::string path = dir / "metrics.jsonl";
  uint64_t afterTwo = 0;
  {
    MetricsLog log;
    ASSERT_FALSE(bool(log.open(path)));
    ASSERT_FALSE(bool(log.write(trainRecord(1))));
    ASSERT_FALSE(bool(log.write(trainRecord(2))));
    afterTwo = log.size();
  }
  const std::string text = fileText(path);
  for (uint64_t keep : {afterTwo + 1, afterTwo - 3}) {
    MetricsLog resumed;
    llvm::Error e = resumed.open(path, keep);
    ASSERT_TRUE(bool(e)) << keep;
    std::string error = llvm::toString(std::move(e));
    EXPECT_EQ(error.find(path + ": the checkpoint resumed from recorded " + std::to_string(keep) +
                         " bytes of records, but the file " +
                         (keep > afterTwo ? "holds " + std::to_string(afterTwo) + ": records were lost"
                                          : std::string("has no line end there: it was changed"))),
              0u)
        << error;
    EXPECT_EQ(fileText(path), text); // nothing cut
  }
}

// A full disk fails the write, naming the file, instead of losing records silently.
TEST(Metrics, AFailedWriteIsAnError) {
  MetricsLog log;
  ASSERT_FALSE(bool(log.open("/dev/full")));
  llvm::Error e = log.write(trainRecord(1));
  ASSERT_TRUE(bool(e));
  EXPECT_NE(llvm::toString(std::move(e)).find("/dev/full: cannot append a record: "), std::string::npos);
}

TEST(Metrics, ANeverOpenedLogDropsRecords) {
  MetricsLog log; // a data-parallel rank other than 0
  EXPECT_FALSE(bool(log.write(trainRecord(1))));
  EXPECT_EQ(log.size(), 0u);
}
