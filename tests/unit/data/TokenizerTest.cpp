//===- TokenizerTest.cpp --------------------------------------------------===//
#include "DataTestSupport.h"

#include "mixtape/data/Tokenizer.h"

using namespace mixtape::data;
using namespace mixtape::data::test;

TEST(TokenizerTest, BytesRoundTrip) {
  auto tokenizer = take(createTokenizer("bytes"));
  ASSERT_TRUE(tokenizer);
  EXPECT_EQ(tokenizer->id(), "bytes-v1");
  EXPECT_EQ(tokenizer->vocabSize(), 264u);
  EXPECT_EQ(tokenizer->eot(), 256u);
  std::string text = "caf\xc3\xa9 <|endoftext|>\n";
  std::vector<uint32_t> ids = tokenizer->encode(text);
  ASSERT_EQ(ids.size(), text.size()); // specials are never produced from text
  EXPECT_EQ(ids[3], 0xc3u);
  EXPECT_EQ(tokenizer->decode(ids), text);
}

TEST(TokenizerTest, SpecialIdsDecodeToNames) {
  ByteTokenizer tokenizer;
  EXPECT_EQ(tokenizer.decode({'a', ByteTokenizer::EndOfText, ByteTokenizer::Knot, ByteTokenizer::Pad, 259, 260, 261}),
            "a<|endoftext|><|knot|><|pad|><|good|><|bad|><|261|>");
}

TEST(TokenizerTest, UnknownName) {
  EXPECT_EQ(errorText(createTokenizer("gpt2")),
            "unknown tokenizer 'gpt2' (known: bytes, hf:PATH, or the path of a tokenizer.json or of a "
            "directory with tokenizer.json or vocab.json + merges.txt)");
}
