//===- VerifyTest.cpp - shards hashed against their manifests before training -===//
#include "DataTestSupport.h"

#include "mixtape/data/Stream.h"
#include "mixtape/data/Verify.h"
#include "mixtape/support/Checksum.h"

#include "llvm/Support/FileSystem.h"

#include <unistd.h>

using namespace mixtape;
using namespace mixtape::data;
using namespace mixtape::data::test;
namespace fs = llvm::sys::fs;

namespace {

class VerifyTest : public ::testing::Test {
protected:
  std::string prefix() const { return Dir / "data/web"; }
  std::string bin() const { return prefix() + ".bin"; }
  std::string cacheFile() const { return Dir / "cache/verified-files.json"; }

  void SetUp() override {
    ByteTokenizer tokenizer;
    auto writer = take(DatasetWriter::create(prefix(), ShardFormat::Megatron, tokenizer));
    ASSERT_TRUE(writer);
    for (const char *text : {"first document", "second~", "third one"})
      ASSERT_FALSE(writer->addDocument(tokenizer.encode(text)));
    Written = take(writer->finish());
  }

  /// The files the manifest lists: .bin, .idx and .meta.
  uint64_t allBytes() const {
    uint64_t sum = 0;
    for (const FileDigest &file : Written.Files)
      sum += file.Bytes;
    return sum;
  }
  uint64_t binBytes() const { return Written.findFile("web.bin")->Bytes; }
  std::unique_ptr<Dataset> open() { return take(Dataset::open(prefix())); }
  VerifyOptions options(VerifyMode mode = VerifyMode::Cached, uint64_t vocab = 264) const {
    return {mode, cacheFile(), vocab};
  }
  /// Verifies with a verifier of its own (a new process): the bytes it hashed.
  uint64_t hashed(VerifyMode mode = VerifyMode::Cached) {
    DataVerifier verifier(options(mode));
    EXPECT_FALSE(verifier.verify(*open()));
    return verifier.hashedBytes();
  }

  /// Overwrites byte `at` of the .bin in place: same size, same inode.
  void editInPlace(uint64_t at, uint8_t value) {
    int fd;
    ASSERT_FALSE(fs::openFileForReadWrite(bin(), fd, fs::CD_OpenExisting, fs::OF_None));
    ASSERT_EQ(::pwrite(fd, &value, 1, static_cast<off_t>(at)), 1);
    ::close(fd);
  }
  llvm::sys::TimePoint<> mtime() {
    fs::file_status status;
    EXPECT_FALSE(fs::status(bin(), status));
    return status.getLastModificationTime();
  }
  void setMtime(llvm::sys::TimePoint<> t) {
    int fd;
    ASSERT_FALSE(fs::openFileForReadWrite(bin(), fd, fs::CD_OpenExisting, fs::OF_None));
    ASSERT_FALSE(fs::setLastAccessAndModificationTime(fd, t));
    ::close(fd);
  }
  std::string mismatch() {
    FileDigest actual = take(digestFile(bin()));
    return bin() + ": checksum mismatch: XXH3-64 is " + formatChecksum(actual.Xxh3) + " (" +
           std::to_string(actual.Bytes) + " bytes) but " + prefix() + ".manifest.json records " +
           formatChecksum(Written.findFile("web.bin")->Xxh3) + " (" + std::to_string(actual.Bytes) + " bytes)";
  }

  TempDir Dir;
  Manifest Written;
};

TEST_F(VerifyTest, InPlaceEditIsCaughtWhenANodeOpensTheStream) {
  // 'f' -> 'g': still a valid id, so only the checksum can tell.
  editInPlace(0, 'g');
  DataSources sources(7, Dir / "cache");
  RootSpec spec;
  spec.Name = "web";
  spec.Shards = {prefix()};
  // Planning checks sizes only: the same-size edit opens.
  EXPECT_TRUE(!!take(sources.root(spec)));
  DataSources verified(7, Dir / "cache");
  verified.verifyData(options());
  EXPECT_EQ(errorText(verified.root(spec)), "stream 'web': " + mismatch());
}

TEST_F(VerifyTest, CacheIsUsedWhileSizeMtimeAndInodeMatch) {
  EXPECT_GT(hashed(), 0u);
  EXPECT_TRUE(fs::exists(cacheFile()));
  DataVerifier again(options());
  EXPECT_FALSE(again.verify(*open()));
  EXPECT_EQ(again.hashedBytes(), 0u);
  EXPECT_EQ(again.cachedBytes(), allBytes());
  // The cache trusts the stamp: an edit that restores the mtime and keeps the inode passes
  // `cached` (what --verify-data full is for).
  llvm::sys::TimePoint<> before = mtime();
  editInPlace(0, 'g');
  setMtime(before);
  EXPECT_EQ(hashed(VerifyMode::Cached), 0u);
  DataVerifier full(options(VerifyMode::Full));
  EXPECT_EQ(errorText(full.verify(*open())), mismatch());
}

TEST_F(VerifyTest, CacheIsIgnoredWhenTheMtimeChanges) {
  EXPECT_GT(hashed(), 0u);
  // A touch alone: the content is the same, but the .bin is hashed again.
  setMtime(mtime() + std::chrono::nanoseconds(1));
  EXPECT_EQ(hashed(), binBytes());
  // An edit in place (a new mtime) is caught despite the cache.
  llvm::sys::TimePoint<> before = mtime();
  editInPlace(3, 'x');
  setMtime(before + std::chrono::seconds(1));
  DataVerifier verifier(options());
  EXPECT_EQ(errorText(verifier.verify(*open())), mismatch());
}

// A checkpoint's fingerprint hashes its weights once: then the cache answers while the
// file's stamp holds, and a file touched or replaced is hashed again.
TEST_F(VerifyTest, ChecksumOfAFileIsCachedByItsStamp) {
  const uint64_t expected = take(digestFile(bin())).Xxh3;
  DataVerifier first(options());
  EXPECT_EQ(take(first.checksum(bin())), expected);
  EXPECT_EQ(first.hashedBytes(), binBytes());
  DataVerifier again(options());
  EXPECT_EQ(take(again.checksum(bin())), expected);
  EXPECT_EQ(again.hashedBytes(), 0u);
  EXPECT_EQ(again.cachedBytes(), binBytes());
  editInPlace(0, 'g');
  setMtime(mtime() + std::chrono::seconds(1));
  DataVerifier edited(options());
  EXPECT_EQ(take(edited.checksum(bin())), take(digestFile(bin())).Xxh3);
  EXPECT_NE(take(edited.checksum(bin())), expected);
  EXPECT_EQ(edited.hashedBytes(), binBytes());
  EXPECT_EQ(errorText(again.checksum(Dir / "data/absent.bin")).rfind(Dir / "data/absent.bin", 0), 0u);
}

TEST_F(VerifyTest, CacheIsIgnoredWhenTheInodeChanges) {
  EXPECT_GT(hashed(), 0u);
  // A copy renamed over the file, with the same size and mtime: another inode.
  llvm::sys::TimePoint<> before = mtime();
  ASSERT_FALSE(fs::copy_file(bin(), bin() + ".new"));
  ASSERT_FALSE(fs::rename(bin() + ".new", bin()));
  setMtime(before);
  EXPECT_EQ(hashed(), binBytes());
}

TEST_F(VerifyTest, FullModeHashesEverythingAgain) {
  EXPECT_EQ(hashed(), allBytes());
  EXPECT_EQ(hashed(VerifyMode::Full), allBytes());
  EXPECT_EQ(hashed(VerifyMode::Cached), 0u);
}

TEST_F(VerifyTest, CorruptCacheIsNoCache) {
  EXPECT_GT(hashed(), 0u);
  writeBytes(cacheFile(), {'{', '"'});
  EXPECT_GT(hashed(), 0u);
  EXPECT_EQ(hashed(), 0u);
}

TEST_F(VerifyTest, OutOfVocabularyIdNamesFileDocumentAndPosition) {
  // Document 0 ("first document", 14 tokens) stays below 120; document 1 ("second~") holds
  // '~' (126) as its token 6, at byte 2 * (14 + 6).
  std::string want = bin() + ": byte 40: token 6 of document 1 is id 126, not below the model's vocabulary of 120";
  DataVerifier verifier(options(VerifyMode::Cached, 120));
  EXPECT_EQ(errorText(verifier.verify(*open())), want);
  // From the cache (the largest id is kept with the checksum), the same error.
  DataVerifier cached(options(VerifyMode::Cached, 120));
  EXPECT_EQ(errorText(cached.verify(*open())), want);
  EXPECT_EQ(cached.hashedBytes(), 0u);
  DataVerifier fits(options(VerifyMode::Cached, '~' + 1));
  EXPECT_FALSE(fits.verify(*open()));
}

TEST_F(VerifyTest, MaxTokenId) { EXPECT_EQ(maxTokenId(open()->tokens()), uint64_t('~')); }

} // namespace
