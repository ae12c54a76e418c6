//===- FlatShardTest.cpp - nanoGPT-style flat .bin ------------------------===//
#include "DataTestSupport.h"

#include "mixtape/data/FlatShard.h"

using namespace mixtape;
using namespace mixtape::data;
using namespace mixtape::data::test;

namespace {

constexpr uint32_t kEot = 50256;

TEST(FlatShardTest, RoundTrip) {
  TempDir dir;
  std::string path = dir / "web.bin";
  std::vector<std::vector<uint32_t>> docs = {{1, 2, 3}, {65535}, {0, 0, 9}};
  auto writer = take(FlatShardWriter::create(path, kEot));
  ASSERT_TRUE(writer);
  for (const auto &doc : docs)
    ASSERT_FALSE(writer->addDocument(doc));
  FileDigest digest = take(writer->finish());
  EXPECT_EQ(digest.Bytes, 2u * (7 + 3));

  // Documents followed by the separator, as nanoGPT's prepare.py writes them.
  std::vector<uint8_t> expected;
  for (const auto &doc : docs) {
    for (uint32_t token : doc)
      put(expected, token, 2);
    put(expected, kEot, 2);
  }
  EXPECT_EQ(readBytes(path), expected);

  auto shard = take(FlatShard::open(path, kEot));
  ASSERT_TRUE(shard);
  ASSERT_EQ(shard->numDocuments(), docs.size());
  EXPECT_EQ(shard->numTokens(), 7u);
  for (size_t d = 0; d < docs.size(); ++d)
    EXPECT_EQ(shard->document(d).toVector(), docs[d]);
  EXPECT_EQ(shard->document(2).byteOffset(), 12u);
}

TEST(FlatShardTest, SeparatorBeforeEachDocument) {
  // llm.c's fineweb.py puts the end-of-text token in front of each document.
  TempDir dir;
  std::vector<uint8_t> bytes;
  for (uint32_t token : {kEot, 5u, 6u, kEot, kEot, 7u})
    put(bytes, token, 2);
  writeBytes(dir / "a.bin", bytes);
  auto shard = take(FlatShard::open(dir / "a.bin", kEot));
  ASSERT_TRUE(shard);
  ASSERT_EQ(shard->numDocuments(), 2u);
  EXPECT_EQ(shard->document(0).toVector(), (std::vector<uint32_t>{5, 6}));
  EXPECT_EQ(shard->document(1).toVector(), (std::vector<uint32_t>{7}));
}

TEST(FlatShardTest, OddSizeIsTruncation) {
  TempDir dir;
  writeBytes(dir / "a.bin", {1, 0, 2});
  EXPECT_EQ(errorText(FlatShard::open(dir / "a.bin", kEot)),
            dir / "a.bin" + ": byte 2: file size 3 is odd; a flat .bin holds 2-byte tokens "
                            "(truncated?)");
}

TEST(FlatShardTest, WriterRejectsWhatTheFormatCannotHold) {
  TempDir dir;
  auto writer = take(FlatShardWriter::create(dir / "a.bin", 256));
  ASSERT_TRUE(writer);
  EXPECT_EQ(errorText(writer->addDocument({})),
            dir / "a.bin" + ": byte 0: document 0 is empty; a flat .bin cannot represent empty "
                            "documents");
  EXPECT_EQ(errorText(writer->addDocument({1, 256})),
            dir / "a.bin" + ": byte 2: document 0 contains the end-of-text id 256, which would "
                            "split it in a flat .bin");
  EXPECT_EQ(errorText(writer->addDocument({70000})),
            dir / "a.bin" + ": byte 0: token id 70000 of document 0 does not fit uint16");
  EXPECT_FALSE(FlatShardWriter::create(dir / "b.bin", 70000));
}

} // namespace
