//===- SftTest.cpp - prompt/response examples: preparation and loss masks -===//
#include "mixtape/data/Prepare.h"
#include "mixtape/data/Sampler.h"
#include "mixtape/data/Stream.h"
#include "mixtape/data/Tokenizer.h"

#include "DataTestSupport.h"

#include "llvm/ADT/StringExtras.h"

#include <cmath>
#include <fstream>

using namespace mixtape;
using namespace mixtape::data;
using namespace mixtape::data::test;

namespace {

constexpr uint64_t Seed = 3;

class SftTest : public ::testing::Test {
protected:
  /// `lines` of JSONL prepared with the byte tokenizer (one token per character).
  std::string prepare(const std::vector<std::string> &lines) {
    std::string jsonl = Dir / "examples.jsonl", prefix = Dir / "examples";
    std::ofstream(jsonl) << llvm::join(lines, "\n") << "\n";
    ByteTokenizer tokenizer;
    std::unique_ptr<DatasetWriter> writer = take(DatasetWriter::create(prefix, ShardFormat::Megatron, tokenizer));
    if (writer) {
      take(prepareFiles({jsonl}, tokenizer, *writer, PrepareOptions(), [](uint64_t, uint64_t) {}));
      take(writer->finish());
    }
    return prefix;
  }
  NodeStream stream(const std::string &prefix) {
    NodeStream s;
    s.Name = "sft";
    s.Root = {"sft", {prefix}, 0};
    return s;
  }
  TrainNodeData node(const std::string &prefix, uint64_t seqLen, uint64_t samples) {
    TrainNodeData n;
    n.SeqLen = seqLen;
    n.Objective = plan::Objective::SFT;
    n.Mixture.Streams = {"sft"};
    n.Mixture.Positions = {0};
    n.Mixture.Weights = {{1.0}};
    n.End = samples;
    n.Streams = {stream(prefix)};
    return n;
  }
  DataSources sources() { return DataSources(Seed, Dir / "cache"); }

  TempDir Dir;
};

std::vector<uint32_t> bytes(llvm::StringRef text) { return ByteTokenizer().encode(text); }

} // namespace

TEST_F(SftTest, PrepareStoresPromptThenResponseAndThePromptLength) {
  std::string prefix = prepare({R"({"prompt": "Q:2+2?", "response": " 4", "topic": "sums"})",
                                R"({"text": "plain text"})"});
  std::unique_ptr<Dataset> dataset = take(Dataset::open(prefix));
  ASSERT_TRUE(dataset);
  EXPECT_EQ(dataset->tokens().document(0).toVector(), bytes("Q:2+2? 4"));
  EXPECT_EQ(dataset->tokens().document(1).toVector(), bytes("plain text"));
  const MetadataTable *meta = dataset->metadata();
  ASSERT_TRUE(meta);
  std::optional<size_t> prompt = meta->findColumn(plan::kPromptTokensColumn);
  ASSERT_TRUE(prompt);
  EXPECT_EQ(meta->number(*prompt, 0), 6.0f);
  EXPECT_TRUE(std::isnan(meta->number(*prompt, 1))); // plain text: no prompt
  EXPECT_FALSE(meta->findColumn("prompt") || meta->findColumn("response"));
  EXPECT_EQ(meta->string(*meta->findColumn("topic"), 0), "sums");
}

TEST_F(SftTest, PrepareNamesALineWithNeitherTextNorExample) {
  std::string jsonl = Dir / "bad.jsonl";
  std::ofstream(jsonl) << R"({"prompt": "only a prompt"})" << "\n";
  ByteTokenizer tokenizer;
  std::unique_ptr<DatasetWriter> writer = take(DatasetWriter::create(Dir / "bad", ShardFormat::Megatron, tokenizer));
  ASSERT_TRUE(writer);
  std::string err = errorText(prepareFiles({jsonl}, tokenizer, *writer, PrepareOptions(), [](uint64_t, uint64_t) {}));
  EXPECT_NE(err.find("line 1: no \"text\" string field (nor \"prompt\" and \"response\" strings)"), std::string::npos)
      << err;
}

// One example, prompt "ab" (2 tokens), response "xyz" (3): the stream's token sequence is
// a b x y z E a b x y z E ... (E: end-of-text). Windows of 8 targets, derived by hand.
TEST_F(SftTest, TheLossMaskKeepsResponsesOfExamplesThatStartInTheWindow) {
  std::string prefix = prepare({R"({"prompt": "ab", "response": "xyz"})"});
  DataSources src = sources();
  auto samples = take(TrainSamples::open(node(prefix, 8, 2), src));
  ASSERT_TRUE(samples);
  const uint32_t a = 'a', b = 'b', x = 'x', y = 'y', z = 'z', E = ByteTokenizer::EndOfText;

  // Window 0: a b x y z E a b x. Targets b x y z E a b x: the prompt's b, the next
  // example's first token a and its prompt b are masked; its response x counts.
  Sample first = samples->read(0);
  EXPECT_EQ(first.Tokens, (std::vector<uint32_t>{a, b, x, y, z, E, a, b, x}));
  EXPECT_EQ(first.LossMask, (std::vector<uint8_t>{0, 1, 1, 1, 1, 0, 0, 1}));
  EXPECT_EQ(first.DocumentStarts, (std::vector<uint32_t>{0, 6}));

  // Window 1 starts inside the second example (at x): its y z E are out of its prompt's
  // view and masked; the third example's b... as in window 0.
  Sample second = samples->read(1);
  EXPECT_EQ(second.Tokens, (std::vector<uint32_t>{x, y, z, E, a, b, x, y, z}));
  EXPECT_EQ(second.LossMask, (std::vector<uint8_t>{0, 0, 0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(second.DocumentStarts, (std::vector<uint32_t>{0, 4}));

  // The eval of the same stream scores the same targets, and padding past the split's
  // end: one pass is a b x y z E, then end-of-text padding, 5 targets of which 4 are
  // the response and its end-of-text.
  auto set = take(ValSet::open(stream(prefix), plan::SplitKind::Train, 8, 0, src));
  ASSERT_TRUE(set);
  ASSERT_EQ(set->size(), 1u);
  Sample val;
  set->sample(0, val);
  EXPECT_EQ(val.Tokens, (std::vector<uint32_t>{a, b, x, y, z, E, E, E, E}));
  EXPECT_EQ(val.LossMask, (std::vector<uint8_t>{0, 1, 1, 1, 1, 0, 0, 0}));
  EXPECT_EQ(set->targetTokens(), 4u);
}

// Packing keeps examples apart: in every window, a kept target belongs to an example that
// starts in the window (after a document start, never across one), and is a response
// token or its end-of-text. The reference labels the stream's whole token sequence.
TEST_F(SftTest, PackedWindowsScoreOnlyWholeExamplesResponses) {
  std::vector<std::string> lines;
  for (int i = 0; i < 9; ++i)
    lines.push_back("{\"prompt\": \"" + std::string(1 + i % 4, 'p') + "\", \"response\": \"" +
                    std::string(1 + (i * 5) % 7, 'r') + "\"}");
  std::string prefix = prepare(lines);
  DataSources src = sources();
  const uint64_t L = 16, n = 40;
  auto samples = take(TrainSamples::open(node(prefix, L, n), src));
  ASSERT_TRUE(samples);

  // Labels of the sequence over enough epochs: each token's document start and whether it
  // is scored as a target (response bytes 'r' and the end-of-text after them).
  const StreamView &view = samples->view(0);
  std::vector<uint32_t> tokens;
  std::vector<uint64_t> docStart;
  std::vector<bool> response;
  for (uint64_t e = 0; tokens.size() < (n + 1) * L; ++e)
    for (uint32_t d : view.epoch(e).Documents) {
      uint64_t start = tokens.size();
      view.root().tokens(d).appendTo(tokens);
      tokens.push_back(ByteTokenizer::EndOfText);
      for (uint64_t t = start; t < tokens.size(); ++t) {
        docStart.push_back(start);
        response.push_back(tokens[t] != 'p' && t > start);
      }
    }
  uint64_t kept = 0;
  for (uint64_t i = 0; i < n; ++i) {
    Sample s = samples->read(i);
    std::vector<uint32_t> expectedStarts{0};
    for (uint64_t t = 0; t < L; ++t) {
      uint64_t target = s.Cursor + t + 1;
      bool expected = response[target] && docStart[target] >= s.Cursor;
      EXPECT_EQ(s.LossMask[t], expected) << "sample " << i << " target " << t;
      kept += s.LossMask[t];
      if (docStart[s.Cursor + t + 1] == s.Cursor + t + 1)
        expectedStarts.push_back(static_cast<uint32_t>(t + 1));
    }
    EXPECT_EQ(s.DocumentStarts, expectedStarts) << "sample " << i;
  }
  EXPECT_GT(kept, n * L / 4); // responses are most of what is scored, not an empty mask
}

TEST_F(SftTest, AStreamWithoutPromptsIsAnErrorNamingIt) {
  DataSources src = sources();
  std::string err = errorText(TrainSamples::open(node(prepare({R"({"text": "plain"})"}), 8, 1), src));
  EXPECT_NE(err.find("stream 'sft': an sft node trains on responses, but its documents have no prompts (no "
                     "metadata column 'prompt_tokens')"),
            std::string::npos)
      << err;
}
