//===- DatasetTest.cpp - prefix-level writing, opening, cross-checks ------===//
#include "DataTestSupport.h"

#include "mixtape/data/Dataset.h"
#include "mixtape/data/IndexedDataset.h"

using namespace mixtape::data;
using namespace mixtape::data::test;

namespace {

class DatasetTest : public ::testing::TestWithParam<ShardFormat> {
protected:
  std::string prefix() const { return Dir / "sub/web"; }
  Manifest writeSample() {
    ByteTokenizer tokenizer;
    auto writer = take(DatasetWriter::create(prefix(), GetParam(), tokenizer));
    EXPECT_TRUE(writer);
    for (const char *text : {"first document", "second", "third one"}) {
      EXPECT_FALSE(writer->addDocument(tokenizer.encode(text)));
      EXPECT_FALSE(writer->setNumber("quality", llvm::StringRef(text).size()));
      EXPECT_FALSE(writer->setString("domain", llvm::StringRef(text).take_front(5)));
    }
    return take(writer->finish());
  }
  std::string openError(llvm::StringRef path) { return errorText(Dataset::open(path)); }
  TempDir Dir;
};

TEST_P(DatasetTest, WriteThenOpenByAnyFile) {
  Manifest written = writeSample();
  EXPECT_EQ(written.Documents, 3u);
  EXPECT_EQ(written.Tokens, 29u);
  EXPECT_EQ(written.Dtype, DType::UInt16);
  std::vector<std::string> paths = {prefix(), prefix() + ".bin", prefix() + ".meta",
                                    prefix() + ".manifest.json"};
  if (GetParam() == ShardFormat::Megatron)
    paths.push_back(prefix() + ".idx");
  for (const std::string &path : paths) {
    auto dataset = take(Dataset::open(path));
    ASSERT_TRUE(dataset) << path;
    EXPECT_EQ(dataset->prefix(), prefix());
    EXPECT_EQ(dataset->format(), GetParam());
    ASSERT_TRUE(dataset->manifest());
    EXPECT_EQ(formatManifest(*dataset->manifest()), formatManifest(written));
    ByteTokenizer tokenizer;
    EXPECT_EQ(tokenizer.decode(dataset->tokens().document(1).toVector()), "second");
    const MetadataTable *meta = dataset->metadata();
    ASSERT_TRUE(meta);
    EXPECT_EQ(meta->number(*meta->findColumn("quality"), 2), 9.0f);
    EXPECT_EQ(meta->string(*meta->findColumn("domain"), 0), "first");
    EXPECT_EQ(meta->documentHash(1), documentHash(tokenizer.encode("second")));
    EXPECT_EQ(meta->documentHash(1), documentHash(dataset->tokens().document(1)));
    EXPECT_FALSE(dataset->verifyChecksums());
  }
}

TEST_P(DatasetTest, MissingShard) {
  writeSample();
  llvm::sys::fs::remove(prefix() + ".bin");
  EXPECT_EQ(openError(prefix()), prefix() + ".bin: cannot open the file that " + prefix() +
                                     ".manifest.json lists: No such file or directory");
}

TEST_P(DatasetTest, ChecksumMismatch) {
  writeSample();
  std::vector<uint8_t> bytes = readBytes(prefix() + ".bin");
  bytes[0] ^= 1; // same size: only the checksum can tell
  writeBytes(prefix() + ".bin", bytes);
  auto dataset = take(Dataset::open(prefix()));
  ASSERT_TRUE(dataset);
  std::string message = errorText(dataset->verifyChecksums());
  EXPECT_EQ(message.rfind(prefix() + ".bin: checksum mismatch: XXH3-64 is ", 0), 0u) << message;
}

TEST_P(DatasetTest, SizeMismatch) {
  writeSample();
  std::vector<uint8_t> bytes = readBytes(prefix() + ".meta");
  bytes.resize(bytes.size() - 8);
  writeBytes(prefix() + ".meta", bytes);
  EXPECT_EQ(openError(prefix()), prefix() + ".meta: byte " + std::to_string(bytes.size()) +
                                     ": file has " + std::to_string(bytes.size()) +
                                     " bytes but " + prefix() + ".manifest.json records " +
                                     std::to_string(bytes.size() + 8));
}

TEST_P(DatasetTest, DTypeTooSmallForTheVocabulary) {
  writeSample();
  std::string path = prefix() + ".manifest.json";
  std::vector<uint8_t> bytes = readBytes(path);
  std::string text(bytes.begin(), bytes.end());
  text.replace(text.find("\"uint16\""), 8, "\"uint8\"");
  writeBytes(path, std::vector<uint8_t>(text.begin(), text.end()));
  EXPECT_EQ(openError(prefix()),
            path + ": dtype: dtype uint8 holds token ids below 256 but vocab_size is 264");
}

TEST_P(DatasetTest, WritingReplacesAnOlderDataset) {
  writeSample();
  Manifest second = writeSample();
  auto dataset = take(Dataset::open(prefix()));
  ASSERT_TRUE(dataset);
  EXPECT_EQ(formatManifest(*dataset->manifest()), formatManifest(second));
}

INSTANTIATE_TEST_SUITE_P(Formats, DatasetTest,
                         ::testing::Values(ShardFormat::Megatron, ShardFormat::Flat),
                         [](const auto &info) { return shardFormatName(info.param).str(); });

TEST(DatasetOpenTest, ManifestDTypeMustMatchTheIndex) {
  TempDir dir;
  ByteTokenizer tokenizer;
  auto writer = take(DatasetWriter::create(dir / "web", ShardFormat::Megatron, tokenizer));
  ASSERT_TRUE(writer);
  ASSERT_FALSE(writer->addDocument({1, 2, 3}));
  take(writer->finish());
  // Rewrite the shard as int32 behind the manifest's back, keeping sizes consistent is not
  // possible, so the size check or the dtype check must fire; the index is checked first.
  auto shard = take(IndexedDatasetWriter::create(dir / "web", DType::Int32));
  ASSERT_TRUE(shard);
  ASSERT_FALSE(shard->addDocument({1, 2, 3}));
  take(shard->finish());
  std::string message = errorText(Dataset::open(dir / "web"));
  EXPECT_NE(message.find("records"), std::string::npos) << message;
}

TEST(DatasetOpenTest, WithoutManifest) {
  TempDir dir;
  auto shard = take(IndexedDatasetWriter::create(dir / "raw", DType::Int32));
  ASSERT_TRUE(shard);
  ASSERT_FALSE(shard->addDocument({70000, 1}));
  take(shard->finish());
  auto dataset = take(Dataset::open(dir / "raw.idx"));
  ASSERT_TRUE(dataset);
  EXPECT_FALSE(dataset->manifest());
  EXPECT_FALSE(dataset->metadata());
  EXPECT_EQ(dataset->tokens().document(0).toVector(), (std::vector<uint32_t>{70000, 1}));
  EXPECT_EQ(errorText(dataset->verifyChecksums()),
            dir / "raw" + ": no manifest, so no checksums to verify");

  std::vector<uint8_t> flat;
  put(flat, 5, 2);
  put(flat, 256, 2);
  writeBytes(dir / "flat.bin", flat);
  EXPECT_EQ(errorText(Dataset::open(dir / "flat.bin")),
            dir / "flat.bin" + ": a flat .bin without a manifest needs its end-of-text id (--eot)");
  DatasetOpenOptions options;
  options.FlatEot = 256;
  auto opened = take(Dataset::open(dir / "flat.bin", options));
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->tokens().numDocuments(), 1u);
  EXPECT_EQ(errorText(Dataset::open(dir / "nothing")),
            dir / "nothing" + ": no dataset here: neither " + dir / "nothing" +
                ".manifest.json nor " + dir / "nothing" + ".idx exists");
}

} // namespace
