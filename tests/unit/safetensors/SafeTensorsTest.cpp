//===- SafeTensorsTest.cpp - reader, writer, hostile files ----------------===//
#include "Fixtures.h"
#include "TempDir.h"
#include "mixtape/safetensors/SafeTensors.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

using namespace mixtape::safetensors;

namespace {

using mixtape::test::fixturesDir;
using mixtape::test::TempDir;

std::string readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// A file from a header text and `dataBytes` bytes of data (no padding added).
std::string fileWith(llvm::StringRef header, size_t dataBytes) {
  std::string bytes(8, '\0');
  llvm::support::endian::write64le(bytes.data(), header.size());
  bytes += header.str();
  bytes.append(dataBytes, '\x01');
  return bytes;
}

/// The error reading `bytes` as the file "hostile.safetensors" gives ("" if none).
std::string readError(const std::string &bytes) {
  llvm::Expected<File> f =
      File::fromBuffer(llvm::MemoryBuffer::getMemBufferCopy(bytes), "hostile.safetensors");
  if (f)
    return "";
  return llvm::toString(f.takeError());
}

template <typename T> llvm::ArrayRef<uint8_t> bytesOf(const std::vector<T> &v) {
  return {reinterpret_cast<const uint8_t *>(v.data()), v.size() * sizeof(T)};
}


} // namespace

TEST(SafeTensors, DTypes) {
  for (llvm::StringRef name : {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"}) {
    std::optional<DType> t = dtypeFromName(name);
    ASSERT_TRUE(t) << name.str();
    EXPECT_EQ(dtypeName(*t), name);
  }
  EXPECT_EQ(dtypeSize(DType::BF16), 2u);
  EXPECT_EQ(dtypeSize(DType::Bool), 1u);
  EXPECT_FALSE(dtypeFromName("F8_E4M3"));
  EXPECT_FALSE(dtypeFromName("f32"));
}

TEST(SafeTensors, WriteReadWriteIsByteIdentical) {
  TempDir dir;
  std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  std::vector<int64_t> b = {1, -2, 3};
  std::vector<uint16_t> c = {0x3f80, 0xbf80}; // bf16 1.0, -1.0
  std::vector<uint8_t> d = {1, 0, 1};
  std::vector<TensorData> tensors = {
      {"layer.weight", DType::F32, {2, 3}, bytesOf(a)},
      {"ids", DType::I64, {3}, bytesOf(b)},
      {"half", DType::BF16, {2, 1}, bytesOf(c)},
      {"flags", DType::Bool, {3}, bytesOf(d)},
      {"empty", DType::F16, {0, 4}, {}},
  };
  std::string first = dir / "a.safetensors", second = dir / "b.safetensors";
  ASSERT_FALSE(llvm::errorToBool(write(first, tensors, {{"format", "pt"}, {"step", "7"}})));

  llvm::Expected<File> f = File::open(first);
  ASSERT_TRUE(!!f) << llvm::toString(f.takeError());
  EXPECT_EQ(f->dataOffset() % 8, 0u);
  EXPECT_EQ(f->metadata().at("step"), "7");
  ASSERT_EQ(f->tensors().size(), 5u);
  const TensorInfo *w = f->find("layer.weight");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->Shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w->numElements(), 6u);
  EXPECT_EQ(std::memcmp(w->Bytes.data(), a.data(), 24), 0);
  EXPECT_EQ(f->find("half")->Dtype, DType::BF16);
  EXPECT_EQ(f->find("empty")->Bytes.size(), 0u);
  EXPECT_EQ(f->find("nothing"), nullptr);

  std::vector<TensorData> again;
  for (const TensorInfo &t : f->tensors())
    again.push_back({t.Name, t.Dtype, t.Shape, t.Bytes});
  ASSERT_FALSE(llvm::errorToBool(write(second, again, f->metadata())));
  EXPECT_EQ(readBytes(first), readBytes(second));
  // Nothing of the temporary file is left behind.
  std::error_code ec;
  int entries = 0;
  for (llvm::sys::fs::directory_iterator it(dir.Path, ec), end; it != end && !ec; it.increment(ec))
    ++entries;
  EXPECT_EQ(entries, 2);
}

TEST(SafeTensors, HuggingFaceFilesRoundTripByteIdentical) {
  TempDir dir;
  for (const char *model : {"hf-tiny-gpt2", "hf-tiny-llama", "hf-tiny-gpt_neox"}) {
    std::string path = fixturesDir() + "/" + model + "/model.safetensors";
    MIXTAPE_REQUIRE_FIXTURES(path);
    llvm::Expected<File> f = File::open(path);
    ASSERT_TRUE(!!f) << llvm::toString(f.takeError());
    EXPECT_EQ(f->metadata().at("format"), "pt");
    std::vector<TensorData> tensors;
    for (const TensorInfo &t : f->tensors())
      tensors.push_back({t.Name, t.Dtype, t.Shape, t.Bytes});
    std::string out = dir / model;
    ASSERT_FALSE(llvm::errorToBool(write(out, tensors, f->metadata())));
    EXPECT_EQ(readBytes(path), readBytes(out)) << model;
  }
}

TEST(SafeTensors, WriterRefusesInconsistentTensors) {
  TempDir dir;
  std::vector<float> a = {1, 2, 3};
  auto err = [&](std::vector<TensorData> tensors) {
    llvm::Error e = write(dir / "x.safetensors", tensors);
    return e ? llvm::toString(std::move(e)) : std::string();
  };
  EXPECT_NE(err({{"a", DType::F32, {4}, bytesOf(a)}}).find("has 12 bytes, but its dtype and shape need 16"),
            std::string::npos);
  EXPECT_NE(err({{"a", DType::F32, {3}, bytesOf(a)}, {"a", DType::F32, {3}, bytesOf(a)}})
                .find("duplicate tensor name 'a'"),
            std::string::npos);
  EXPECT_NE(err({{"__metadata__", DType::F32, {3}, bytesOf(a)}}).find("bad or duplicate"),
            std::string::npos);
  EXPECT_FALSE(llvm::sys::fs::exists(dir / "x.safetensors"));
}

TEST(SafeTensors, MissingFileNamesIt) {
  llvm::Expected<File> f = File::open("/nonexistent/model.safetensors");
  ASSERT_FALSE(f);
  EXPECT_EQ(llvm::toString(f.takeError()).find("/nonexistent/model.safetensors: cannot open"), 0u);
}

// Each hostile file, and the error it must give (file name, byte offset, what is wrong).
struct Hostile {
  const char *What;
  std::string Bytes;
  const char *Error;
};

TEST(SafeTensors, HostileFilesGiveErrorsNamingFileAndOffset) {
  const std::string entry = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string huge(8, '\0');
  llvm::support::endian::write64le(huge.data(), uint64_t(1) << 40);
  std::string beyond = fileWith(entry, 8);
  llvm::support::endian::write64le(beyond.data(), entry.size() + 9);
  std::string deep = std::string(100000, '[');
  std::vector<Hostile> cases = {
      {"too short", "abc", "hostile.safetensors: byte 0: file of 3 bytes is too short"},
      {"huge header length", huge + "{}",
       "hostile.safetensors: byte 0: header length 1099511627776 exceeds the limit of 104857600"},
      {"header beyond the file", beyond,
       "hostile.safetensors: byte 0: header length 63 reaches beyond the end of the file (70 bytes)"},
      {"not an object", fileWith("[1]", 0), "hostile.safetensors: byte 8: header does not start with '{'"},
      {"non-UTF-8", fileWith("{\"t\xff\":1}", 0), "hostile.safetensors: byte 11: header is not valid UTF-8"},
      {"not JSON", fileWith("{\"t\":", 0), "hostile.safetensors: byte 13: invalid JSON: Unexpected EOF"},
      {"deep nesting", fileWith("{\"a\":" + deep, 0),
       "hostile.safetensors: byte 524: JSON nested deeper than 512 levels"},
      {"unknown dtype", fileWith(R"({"t":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}})", 2),
       "hostile.safetensors: byte 8: tensor 't': unknown dtype 'F8'"},
      {"size mismatch", fileWith(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", 12),
       "hostile.safetensors: byte 8: tensor 't': dtype F32 x shape needs 16 bytes, but "
       "data_offsets [0, 12] hold 12"},
      {"negative dimension", fileWith(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
       "tensor 't': shape holds something other than a non-negative integer"},
      {"shape overflow",
       fileWith(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4),
       "tensor 't': shape's size overflows 64 bits"},
      {"reversed offsets", fileWith(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8),
       "tensor 't': data_offsets [8, 0] end before they begin"},
      {"out of range", fileWith(entry, 4),
       "hostile.safetensors: byte 62: tensor 't' ends at data offset 8, past the end of the data "
       "region (4 bytes)"},
      {"overlap",
       fileWith(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
       "tensor 'b' overlaps the tensor before it"},
      {"gap", fileWith(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
       "hostile.safetensors: byte 62: gap of 4 bytes before tensor 'a'"},
      {"trailing bytes", fileWith(entry, 12),
       "hostile.safetensors: byte 70: 4 bytes after the last tensor belong to no tensor"},
      {"duplicate names",
       fileWith(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("t":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 16),
       "hostile.safetensors: byte 8: header names a tensor more than once (2 keys, 1 distinct)"},
      {"bad metadata", fileWith(R"({"__metadata__":{"a":1}})", 0),
       "'__metadata__' value of 'a' is not a string"},
      {"unknown field", fileWith(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":1}})", 0),
       "tensor 't': unknown field 'x'"},
      {"one offset", fileWith(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[0]}})", 0),
       "'data_offsets' is not an array of two integers"},
  };
  for (const Hostile &h : cases) {
    std::string message = readError(h.Bytes);
    EXPECT_NE(message.find(h.Error), std::string::npos)
        << h.What << ":\n  got:  " << message << "\n  want: " << h.Error;
  }
}

TEST(SafeTensors, EmptyFileWithOnlyMetadataIsValid) {
  llvm::Expected<File> f = File::fromBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(fileWith(R"({"__metadata__":{"k":"v"}}   )", 0)), "m");
  ASSERT_TRUE(!!f) << llvm::toString(f.takeError());
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_EQ(f->metadata().at("k"), "v");
}

// The fuzzer's corpus (hand-made hostile files, Hugging Face checkpoints, and what libFuzzer
// kept): every file reads or fails with a message naming it, and nothing crashes.
TEST(SafeTensors, FuzzCorpusReadsOrFailsCleanly) {
  std::string corpus = std::string(MIXTAPE_SOURCE_DIR) + "/tests/fuzz/safetensors-corpus";
  std::error_code ec;
  int files = 0, accepted = 0;
  for (llvm::sys::fs::directory_iterator it(corpus, ec), end; it != end && !ec; it.increment(ec)) {
    ++files;
    llvm::Expected<File> f = File::open(it->path());
    if (f) {
      ++accepted;
      for (const TensorInfo &t : f->tensors())
        EXPECT_EQ(t.Bytes.size(), t.numElements() * dtypeSize(t.Dtype)) << it->path();
    } else {
      EXPECT_EQ(llvm::toString(f.takeError()).find(it->path() + ": "), 0u);
    }
  }
  EXPECT_GT(files, 10);
  EXPECT_GE(accepted, 3); // at least the Hugging Face files
}

TEST(SafeTensors, StreamingWriterMatchesWriteAndChecksItsOrder) {
  TempDir dir;
  std::vector<float> a = {1, 2, 3};
  std::vector<int64_t> b = {4, 5};
  std::vector<TensorData> tensors = {{"b", DType::I64, {2}, bytesOf(b)}, {"a", DType::F32, {3}, bytesOf(a)}};
  ASSERT_FALSE(llvm::errorToBool(write(dir / "whole.safetensors", tensors, {{"format", "pt"}})));
  std::vector<TensorLayout> layout = {{"b", DType::I64, {2}}, {"a", DType::F32, {3}}};
  {
    llvm::Expected<Writer> w = Writer::create(dir / "streamed.safetensors", layout, {{"format", "pt"}});
    ASSERT_TRUE(!!w) << llvm::toString(w.takeError());
    ASSERT_FALSE(llvm::errorToBool(w->add("b", bytesOf(b))));
    ASSERT_FALSE(llvm::errorToBool(w->add("a", bytesOf(a))));
    ASSERT_FALSE(llvm::errorToBool(w->commit()));
  }
  EXPECT_EQ(readBytes(dir / "whole.safetensors"), readBytes(dir / "streamed.safetensors"));

  // Out of order, short, or abandoned: an error, and no file.
  auto failing = [&](auto steps) {
    llvm::Expected<Writer> w = Writer::create(dir / "bad.safetensors", layout);
    EXPECT_TRUE(!!w);
    std::string message = steps(*w);
    EXPECT_FALSE(llvm::sys::fs::exists(dir / "bad.safetensors"));
    return message;
  };
  EXPECT_NE(failing([&](Writer &w) { return llvm::toString(w.add("a", bytesOf(a))); })
                .find("tensor 'a' added where the header has 'b'"),
            std::string::npos);
  EXPECT_NE(failing([&](Writer &w) { return llvm::toString(w.add("b", bytesOf(a))); })
                .find("has 12 bytes, but its dtype and shape need 16"),
            std::string::npos);
  EXPECT_NE(failing([&](Writer &w) {
              llvm::cantFail(w.add("b", bytesOf(b)));
              return llvm::toString(w.commit());
            }).find("committed after 1 of 2 tensors"),
            std::string::npos);
  EXPECT_EQ(failing([&](Writer &w) {
              llvm::cantFail(w.add("b", bytesOf(b)));
              return std::string();
            }),
            "");
  std::error_code ec;
  int entries = 0;
  for (llvm::sys::fs::directory_iterator it(dir.Path, ec), end; it != end && !ec; it.increment(ec))
    ++entries;
  EXPECT_EQ(entries, 2); // no temporary file left behind
}
