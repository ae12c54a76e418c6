//===- IndexedDatasetTest.cpp - Megatron .bin/.idx ------------------------===//
#include "DataTestSupport.h"

#include "mixtape/data/IndexedDataset.h"

using namespace mixtape::data;
using namespace mixtape::data::test;

namespace {

const std::vector<std::vector<uint32_t>> kDocuments = {{1, 2, 3}, {}, {300, 65535, 0, 7}, {42}};

/// An index built byte by byte from the format description, independently of the writer:
/// uint16 tokens, one sequence per document.
struct HandMadeIndex {
  std::vector<uint8_t> Idx, Bin;
  explicit HandMadeIndex(const std::vector<std::vector<uint32_t>> &docs) {
    const char magic[] = "MMIDIDX\0\0";
    Idx.assign(magic, magic + 9);
    put(Idx, 1, 8);  // version
    put(Idx, 8, 1);  // uint16
    put(Idx, docs.size(), 8);
    put(Idx, docs.size() + 1, 8);
    for (const auto &doc : docs)
      put(Idx, doc.size(), 4);
    uint64_t pointer = 0;
    for (const auto &doc : docs) {
      put(Idx, pointer, 8);
      pointer += 2 * doc.size();
    }
    for (size_t i = 0; i <= docs.size(); ++i)
      put(Idx, i, 8);
    for (const auto &doc : docs)
      for (uint32_t token : doc)
        put(Bin, token, 2);
  }
  // Offsets of the fields (the header is 34 bytes).
  size_t lengthAt(size_t i) const { return 34 + 4 * i; }
  size_t pointerAt(size_t i, size_t sequences) const { return 34 + 4 * sequences + 8 * i; }
};

class IndexedDatasetTest : public ::testing::Test {
protected:
  std::string prefix() const { return Dir / "web"; }
  void writeHandMade(const HandMadeIndex &index) const {
    writeBytes(prefix() + ".idx", index.Idx);
    writeBytes(prefix() + ".bin", index.Bin);
  }
  std::string openError() const { return errorText(IndexedDataset::open(prefix())); }
  TempDir Dir;
};

TEST_F(IndexedDatasetTest, RoundTripIsExact) {
  auto writer = take(IndexedDatasetWriter::create(prefix(), DType::UInt16));
  ASSERT_TRUE(writer);
  for (const auto &doc : kDocuments)
    ASSERT_FALSE(writer->addDocument(doc));
  auto files = take(writer->finish());
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].Name, "web.bin");
  EXPECT_EQ(files[1].Name, "web.idx");

  auto dataset = take(IndexedDataset::open(prefix()));
  ASSERT_TRUE(dataset);
  EXPECT_EQ(dataset->dtype(), DType::UInt16);
  ASSERT_EQ(dataset->numDocuments(), kDocuments.size());
  EXPECT_EQ(dataset->numSequences(), kDocuments.size());
  EXPECT_EQ(dataset->numTokens(), 8u);
  for (size_t d = 0; d < kDocuments.size(); ++d)
    EXPECT_EQ(dataset->document(d).toVector(), kDocuments[d]) << "document " << d;
  EXPECT_EQ(dataset->document(2).as<uint16_t>()[1], 65535);
  EXPECT_EQ(dataset->document(2).byteOffset(), 6u);

  // The writer produces exactly the bytes the format description gives.
  HandMadeIndex expected(kDocuments);
  EXPECT_EQ(readBytes(prefix() + ".idx"), expected.Idx);
  EXPECT_EQ(readBytes(prefix() + ".bin"), expected.Bin);
}

TEST_F(IndexedDatasetTest, ReadsAnIndependentlyWrittenFile) {
  writeHandMade(HandMadeIndex(kDocuments));
  auto dataset = take(IndexedDataset::open(prefix()));
  ASSERT_TRUE(dataset);
  for (size_t d = 0; d < kDocuments.size(); ++d)
    EXPECT_EQ(dataset->document(d).toVector(), kDocuments[d]);
}

TEST_F(IndexedDatasetTest, DocumentsOfSeveralSequences) {
  // Two documents: sequences {0,1} and {2}, as Megatron's add_item + end_document write.
  HandMadeIndex index({{1, 2}, {3}, {4, 5, 6}});
  for (int i = 0; i < 32; ++i)
    index.Idx.pop_back();
  put(index.Idx, 0, 8);
  put(index.Idx, 2, 8);
  put(index.Idx, 3, 8);
  index.Idx[26] = 3; // document index count
  writeHandMade(index);
  auto dataset = take(IndexedDataset::open(prefix()));
  ASSERT_TRUE(dataset);
  ASSERT_EQ(dataset->numDocuments(), 2u);
  EXPECT_EQ(dataset->document(0).toVector(), (std::vector<uint32_t>{1, 2, 3}));
  EXPECT_EQ(dataset->document(1).toVector(), (std::vector<uint32_t>{4, 5, 6}));
  EXPECT_EQ(dataset->sequence(1).toVector(), (std::vector<uint32_t>{3}));
}

TEST_F(IndexedDatasetTest, WrongMagic) {
  HandMadeIndex index(kDocuments);
  index.Idx[0] = 'X';
  writeHandMade(index);
  EXPECT_EQ(openError(), prefix() + ".idx: byte 0: not a Megatron index: the magic is not "
                                    "\"MMIDIDX\\0\\0\"");
}

TEST_F(IndexedDatasetTest, WrongVersion) {
  HandMadeIndex index(kDocuments);
  index.Idx[9] = 2;
  writeHandMade(index);
  EXPECT_EQ(openError(), prefix() + ".idx: byte 9: index version 2; only version 1 is supported");
}

TEST_F(IndexedDatasetTest, UnknownDTypeCode) {
  HandMadeIndex index(kDocuments);
  index.Idx[17] = 9;
  writeHandMade(index);
  EXPECT_EQ(openError(),
            prefix() + ".idx: byte 17: unknown dtype code 9 (Megatron's codes are 1 to 8)");
}

TEST_F(IndexedDatasetTest, FloatDTypeHoldsNoTokens) {
  HandMadeIndex index(kDocuments);
  index.Idx[17] = 7;
  writeHandMade(index);
  EXPECT_EQ(openError(), prefix() + ".idx: byte 17: dtype float32 cannot hold token ids");
}

TEST_F(IndexedDatasetTest, TruncatedHeader) {
  HandMadeIndex index(kDocuments);
  index.Idx.resize(20);
  writeHandMade(index);
  EXPECT_EQ(openError(), prefix() + ".idx: byte 20: file ends inside the 34-byte header of a "
                                    "Megatron index (20 bytes)");
}

TEST_F(IndexedDatasetTest, DocumentCountLargerThanTheIndex) {
  HandMadeIndex index(kDocuments);
  index.Idx[26] = 10;
  writeHandMade(index);
  EXPECT_EQ(openError(), prefix() + ".idx: byte 26: document index count 10 but the index "
                                    "holds room for 5");
}

TEST_F(IndexedDatasetTest, SequenceCountLargerThanTheIndex) {
  HandMadeIndex index(kDocuments);
  index.Idx[25] = 0x80; // a huge count must not overflow the size arithmetic
  writeHandMade(index);
  EXPECT_EQ(openError(), prefix() + ".idx: byte 18: sequence count 9223372036854775812 but the "
                                    "index holds room for at most 7");
}

TEST_F(IndexedDatasetTest, TruncatedBin) {
  HandMadeIndex index(kDocuments);
  index.Bin.resize(index.Bin.size() - 2);
  writeHandMade(index);
  EXPECT_EQ(openError(), prefix() + ".bin: byte 14: file ends at byte 14 but " + prefix() +
                             ".idx needs 16 bytes of tokens (truncated?)");
}

TEST_F(IndexedDatasetTest, TrailingBytesInBin) {
  HandMadeIndex index(kDocuments);
  index.Bin.push_back(0);
  writeHandMade(index);
  EXPECT_EQ(openError(),
            prefix() + ".bin: byte 16: 1 bytes after the last sequence of " + prefix() + ".idx");
}

TEST_F(IndexedDatasetTest, PointerPastTheEnd) {
  HandMadeIndex index(kDocuments);
  size_t at = index.pointerAt(3, kDocuments.size());
  index.Idx[at + 1] = 0x10; // 4096 + 12
  writeHandMade(index);
  EXPECT_EQ(openError(), prefix() + ".idx: byte " + std::to_string(at) +
                             ": sequence 3 points at byte 4110, past the end of " + prefix() +
                             ".bin (16 bytes)");
}

TEST_F(IndexedDatasetTest, OverlappingPointer) {
  HandMadeIndex index(kDocuments);
  size_t at = index.pointerAt(2, kDocuments.size());
  index.Idx[at] = 2;
  writeHandMade(index);
  EXPECT_EQ(openError(), prefix() + ".idx: byte " + std::to_string(at) +
                             ": sequence 2 points at byte 2 but the sequences before it end at "
                             "byte 6 (sequences must be contiguous)");
}

TEST_F(IndexedDatasetTest, NegativeLength) {
  HandMadeIndex index(kDocuments);
  size_t at = index.lengthAt(1);
  for (int i = 0; i < 4; ++i)
    index.Idx[at + i] = 0xff;
  writeHandMade(index);
  EXPECT_EQ(openError(), prefix() + ".idx: byte " + std::to_string(at) +
                             ": sequence 1 has negative length -1");
}

TEST_F(IndexedDatasetTest, DocumentIndicesMustRise) {
  HandMadeIndex index(kDocuments);
  size_t at = 34 + 12 * kDocuments.size() + 8 * 2;
  index.Idx[at] = 0;
  writeHandMade(index);
  EXPECT_EQ(openError(), prefix() + ".idx: byte " + std::to_string(at) +
                             ": document index 2 is 0; entries must rise from 1 to the sequence "
                             "count 4");
}

TEST_F(IndexedDatasetTest, MultimodalModesAreRejected) {
  HandMadeIndex index(kDocuments);
  size_t size = index.Idx.size();
  index.Idx.insert(index.Idx.end(), kDocuments.size(), 0);
  writeHandMade(index);
  EXPECT_EQ(openError(), prefix() + ".idx: byte " + std::to_string(size) +
                             ": 4 bytes after the document indices (multimodal sequence modes "
                             "are not supported)");
}

TEST_F(IndexedDatasetTest, MissingFiles) {
  EXPECT_EQ(openError(),
            prefix() + ".idx: cannot open: No such file or directory");
  writeBytes(prefix() + ".idx", HandMadeIndex(kDocuments).Idx);
  EXPECT_EQ(openError(), prefix() + ".bin: cannot open: No such file or directory");
}

TEST_F(IndexedDatasetTest, WriterRejectsTokensTooLargeForTheDType) {
  auto writer = take(IndexedDatasetWriter::create(prefix(), DType::UInt8));
  ASSERT_TRUE(writer);
  EXPECT_FALSE(writer->addDocument({1, 2}));
  EXPECT_EQ(errorText(writer->addDocument({3, 256})),
            prefix() + ".bin: byte 3: token id 256 of document 1 does not fit dtype uint8");
}

TEST_F(IndexedDatasetTest, NothingIsVisibleBeforeFinish) {
  writeHandMade(HandMadeIndex(kDocuments));
  {
    auto writer = take(IndexedDatasetWriter::create(prefix(), DType::UInt16));
    ASSERT_TRUE(writer);
    EXPECT_FALSE(writer->addDocument({1, 2}));
    EXPECT_FALSE(llvm::sys::fs::exists(prefix() + ".bin"));
    EXPECT_FALSE(llvm::sys::fs::exists(prefix() + ".idx"));
  } // abandoned: the temporary file goes too
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(Dir.Path, ec), end; it != end && !ec; it.increment(ec))
    ADD_FAILURE() << "left behind: " << it->path();
}

TEST_F(IndexedDatasetTest, CheckTokenRangeNamesTheByte) {
  writeHandMade(HandMadeIndex(kDocuments));
  auto dataset = take(IndexedDataset::open(prefix()));
  ASSERT_TRUE(dataset);
  EXPECT_FALSE(dataset->checkTokenRange(65536));
  EXPECT_EQ(errorText(dataset->checkTokenRange(300)),
            prefix() + ".bin: byte 6: token 0 of document 2 is outside the vocabulary of 300");
}

} // namespace
