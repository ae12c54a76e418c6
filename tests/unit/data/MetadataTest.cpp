//===- MetadataTest.cpp - the .meta sidecar -------------------------------===//
#include "DataTestSupport.h"

#include "mixtape/data/Metadata.h"

#include <cmath>

using namespace mixtape;
using namespace mixtape::data;
using namespace mixtape::data::test;

namespace {

class MetadataTest : public ::testing::Test {
protected:
  std::string path() const { return Dir / "web.meta"; }
  /// Three rows: quality 5, (missing), 2.5; domain "med", "web", (missing).
  void writeSample() {
    MetadataBuilder builder;
    builder.addRow(11);
    ASSERT_FALSE(builder.setNumber("quality", 5));
    ASSERT_FALSE(builder.setString("domain", "med"));
    builder.addRow(22);
    ASSERT_FALSE(builder.setString("domain", "web"));
    builder.addRow(33);
    ASSERT_FALSE(builder.setNumber("quality", 2.5));
    FileDigest digest = take(builder.write(path()));
    EXPECT_EQ(digest.Name, "web.meta");
    EXPECT_EQ(digest.Bytes, readBytes(path()).size());
  }
  std::string openError() const { return errorText(MetadataTable::open(path())); }
  TempDir Dir;
};

TEST_F(MetadataTest, RoundTripWithMissingValues) {
  writeSample();
  auto table = take(MetadataTable::open(path()));
  ASSERT_TRUE(table);
  ASSERT_EQ(table->numRows(), 3u);
  EXPECT_EQ(table->documentHash(2), 33u);
  ASSERT_EQ(table->numColumns(), 2u);
  size_t quality = *table->findColumn("quality"), domain = *table->findColumn("domain");
  EXPECT_EQ(table->columnKind(quality), ColumnKind::Number);
  EXPECT_EQ(table->number(quality, 0), 5.0f);
  EXPECT_TRUE(std::isnan(table->number(quality, 1)));
  EXPECT_EQ(table->number(quality, 2), 2.5f);
  EXPECT_EQ(table->columnKind(domain), ColumnKind::String);
  EXPECT_EQ(table->string(domain, 0), "med");
  EXPECT_EQ(table->string(domain, 1), "web");
  EXPECT_EQ(table->string(domain, 2), "");
  EXPECT_EQ(table->dictionary(domain).size(), 3u);
  EXPECT_FALSE(table->findColumn("nope"));
}

TEST_F(MetadataTest, ManyDistinctStringsUseWideCodes) {
  MetadataBuilder builder;
  for (int i = 0; i < 70000; ++i) {
    builder.addRow(i);
    ASSERT_FALSE(builder.setString("id", "doc" + std::to_string(i)));
  }
  take(builder.write(path()));
  auto table = take(MetadataTable::open(path()));
  ASSERT_TRUE(table);
  EXPECT_EQ(table->string(0, 69999), "doc69999");
  EXPECT_EQ(table->stringCode(0, 69999), 69999u);
}

TEST_F(MetadataTest, ColumnKindIsFixedByTheFirstValue) {
  MetadataBuilder builder;
  EXPECT_EQ(errorText(builder.setNumber("q", 1)),
            "metadata value for column 'q' before the first row");
  builder.addRow(0);
  ASSERT_FALSE(builder.setNumber("q", 1));
  EXPECT_EQ(errorText(builder.setString("q", "high")),
            "metadata column 'q' holds numbers, not strings");
}

TEST_F(MetadataTest, Truncated) {
  writeSample();
  std::vector<uint8_t> bytes = readBytes(path());
  // Header 24 bytes, three hashes 24, column 'quality' 32; 'domain' starts at byte 80 and
  // its dictionary header at 96.
  bytes.resize(100);
  writeBytes(path(), bytes);
  EXPECT_EQ(openError(), path() + ": byte 96: file ends inside the dictionary header of column "
                                  "'domain' (8 bytes needed, 4 left)");
  bytes.resize(60);
  writeBytes(path(), bytes);
  EXPECT_EQ(openError(), path() + ": byte 12: column count 2 but the file holds room for at "
                                  "most 1");
  bytes.resize(10);
  writeBytes(path(), bytes);
  EXPECT_EQ(openError(), path() + ": byte 10: file ends inside the 24-byte header of a metadata "
                                  "sidecar (10 bytes)");
}

TEST_F(MetadataTest, HostileFields) {
  writeSample();
  const std::vector<uint8_t> good = readBytes(path());
  auto expectError = [&](size_t at, uint8_t value, const std::string &message) {
    std::vector<uint8_t> bytes = good;
    bytes[at] = value;
    writeBytes(path(), bytes);
    EXPECT_EQ(openError(), path() + ": " + message) << "byte " << at;
  };
  expectError(0, 'X', "byte 0: not a metadata sidecar: the magic is not \"MXTMETA\\0\"");
  expectError(8, 2, "byte 8: metadata version 2; only version 1 is supported");
  expectError(12, 200, "byte 12: column count 200 but the file holds room for at most 11");
  expectError(23, 1, "byte 16: row count 72057594037927939 but the file holds room for at most 14 "
                     "document hashes");
  expectError(48, 9, "byte 48: column 0 has unknown kind 9 (1 float32, 2 and 3 strings)");
  expectError(52, 1, "byte 48: reserved bytes of column 0 are not zero");
  expectError(63, 1, "byte 63: nonzero padding byte after the name of column 'quality'");
  // Column 'domain' starts at byte 80: descriptor, name (8), dictionary header at 96, offsets
  // at 104 (3 entries), text at 116 ("medweb"), codes at 128.
  expectError(128, 7, "byte 128: row 0 of column 'domain' has code 7 but the dictionary has 3 "
                      "entries");
  expectError(104, 9, "byte 104: dictionary entry 0 of column 'domain' ends at 9, outside [0, 6]");

  std::vector<uint8_t> repeated = good;
  std::copy(good.begin() + 116, good.begin() + 119, repeated.begin() + 119); // "medmed"
  writeBytes(path(), repeated);
  EXPECT_EQ(openError(), path() + ": byte 119: dictionary entry 1 of column 'domain' repeats the "
                                  "value 'med'");
}

TEST_F(MetadataTest, TrailingBytes) {
  writeSample();
  std::vector<uint8_t> bytes = readBytes(path());
  size_t size = bytes.size();
  bytes.resize(size + 8);
  writeBytes(path(), bytes);
  EXPECT_EQ(openError(), path() + ": byte " + std::to_string(size) + ": 8 bytes after the last column");
}

} // namespace
