//===- Verify.h - shards checked against their manifests before training -*- C++ -*-===//
//
// Opening a dataset checks sizes only; a shard edited in place at the same size would train
// silently, and a token id at or above the model's vocabulary would fail deep inside
// LibTorch. Before a node reads a dataset, every file its manifest lists is hashed (XXH3-64
// of the whole file) and compared, and the largest token id is checked against the model's
// vocabulary. A small cache file remembers files verified before, keyed by absolute path,
// size, modification time (ns), inode and the expected checksum, so a rerun hashes only
// what changed. The layout is in docs/data-format.md.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/data/Dataset.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

namespace llvm {
class raw_ostream;
} // namespace llvm

namespace mixtape::data {

/// `--verify-data`: `cached` trusts a cache entry for a file unchanged since it was
/// verified; `full` hashes every file again (and refreshes the cache).
enum class VerifyMode { Cached, Full };

struct VerifyOptions {
  VerifyMode Mode = VerifyMode::Cached;
  /// The cache file; "" keeps no cache (every file is hashed).
  std::string CacheFile;
  /// The model's vocabulary: every token id must be below it; 0 checks no id.
  uint64_t VocabSize = 0;
};

/// "<manifestCacheDir>/verified-files.json".
std::string verificationCacheFile(llvm::StringRef manifestCacheDir);

/// The largest token id of a shard (negative ids of signed dtypes count as UINT64_MAX).
uint64_t maxTokenId(const TokenShard &tokens);

class DataVerifier {
public:
  explicit DataVerifier(VerifyOptions options, llvm::raw_ostream *notes = nullptr)
      : Options(std::move(options)), Notes(notes) {}

  /// Verifies every file each dataset's manifest (its own or a derived one) lists, and its
  /// token ids; then records what it hashed in the cache file, rewritten once (a cache that
  /// cannot be written only costs a rehash next time). Fails naming the file, both checksums
  /// and the manifest, or the file, document and position of the first id outside the
  /// vocabulary.
  llvm::Error verify(llvm::ArrayRef<std::unique_ptr<Dataset>> datasets);
  llvm::Error verify(const Dataset &dataset);

  /// XXH3-64 of the whole file at `path`: the cache's when the file has the size, time and
  /// inode recorded with it (and the mode is `cached`), else hashed and recorded at once.
  llvm::Expected<uint64_t> checksum(llvm::StringRef path);

  /// Bytes hashed, and bytes whose verification came from the cache, so far.
  uint64_t hashedBytes() const { return Hashed; }
  uint64_t cachedBytes() const { return Cached; }

private:
  struct Entry {
    uint64_t Bytes = 0, MtimeNs = 0, Inode = 0, Xxh3 = 0;
    /// The largest token id, for a token file; UINT64_MAX for other files.
    uint64_t MaxToken = UINT64_MAX;
  };
  /// The file's absolute path and its entry without a checksum.
  static llvm::Expected<std::pair<std::string, Entry>> stamp(llvm::StringRef path);
  static bool sameFile(const Entry &a, const Entry &b);
  void load();
  void save();
  /// verify() without saving; sets `changed` when it hashed a file.
  llvm::Error verifyOne(const Dataset &dataset, bool &changed);

  VerifyOptions Options;
  llvm::raw_ostream *Notes;
  bool Loaded = false;
  std::map<std::string, Entry> Entries; ///< by absolute path
  uint64_t Hashed = 0, Cached = 0;
};

} // namespace mixtape::data
