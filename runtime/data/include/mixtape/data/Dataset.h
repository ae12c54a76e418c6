//===- Dataset.h - token shard + manifest + metadata, by prefix -*- C++ -*-===//
//
// A dataset is the files sharing one prefix: "<prefix>.bin" (+ "<prefix>.idx" for
// Megatron), "<prefix>.meta" and "<prefix>.manifest.json". The writer streams documents
// and commits the manifest last; the reader opens by prefix or by any of the files and
// cross-checks everything the manifest states.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/data/Manifest.h"
#include "mixtape/data/Metadata.h"
#include "mixtape/data/TokenShard.h"
#include "mixtape/data/Tokenizer.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <optional>
#include <string>

namespace mixtape::data {

class IndexedDatasetWriter;
class FlatShardWriter;

/// XXH3-64 of token ids as little-endian uint32: the per-document hash of the sidecar.
uint64_t documentHash(llvm::ArrayRef<uint32_t> tokens);
uint64_t documentHash(const TokenSpan &tokens);

/// "data/web.idx", "data/web.manifest.json", ... -> "data/web"; other paths unchanged.
std::string datasetPrefix(llvm::StringRef path);

/// Writes the sidecar "<prefix>.meta", then "<prefix>.manifest.json": `m` with the sidecar
/// added to its files, which it returns. The manifest is renamed into place last.
llvm::Expected<Manifest> commitManifest(llvm::StringRef prefix, Manifest m, MetadataBuilder &metadata);

class DatasetWriter {
public:
  /// Removes any older dataset at the prefix (manifest first) and starts a new one.
  static llvm::Expected<std::unique_ptr<DatasetWriter>>
  create(llvm::StringRef prefix, ShardFormat format, const Tokenizer &tokenizer);
  ~DatasetWriter();

  /// Appends a document and starts its metadata row.
  llvm::Error addDocument(llvm::ArrayRef<uint32_t> tokens);
  /// Metadata of the last document added.
  llvm::Error setNumber(llvm::StringRef column, double value);
  llvm::Error setString(llvm::StringRef column, llvm::StringRef value);

  uint64_t numDocuments() const;
  uint64_t numTokens() const;

  /// Commits the token files, the sidecar and then the manifest, which it returns.
  llvm::Expected<Manifest> finish();

private:
  DatasetWriter(std::string prefix, Manifest manifest);

  std::string Prefix;
  Manifest Partial; ///< everything but counts and files
  std::unique_ptr<IndexedDatasetWriter> Megatron;
  std::unique_ptr<FlatShardWriter> Flat;
  MetadataBuilder Metadata;
};

struct DatasetOpenOptions {
  /// End-of-text id of a flat .bin that has no manifest.
  std::optional<uint32_t> FlatEot;
  /// For a dataset without a manifest of its own: one computed from its token files
  /// (ManifestCache.h), checked like a recorded one, and the sidecar with its document
  /// hashes. `DerivedFrom` names it in errors.
  std::optional<Manifest> Derived;
  std::string DerivedHashes, DerivedFrom;
};

class Dataset {
public:
  /// Opens by prefix or by the path of any of its files. With a manifest (its own, else
  /// `options.Derived`), every file it lists must exist with its recorded size, and dtype,
  /// counts and vocabulary must agree. Without one, a .idx (or a prefix with one) opens as
  /// Megatron, a .bin as flat.
  static llvm::Expected<std::unique_ptr<Dataset>> open(llvm::StringRef path,
                                                       const DatasetOpenOptions &options = {});
  ~Dataset();

  llvm::StringRef prefix() const { return Prefix; }
  ShardFormat format() const { return Format; }
  const TokenShard &tokens() const { return *Tokens; }
  /// Null when the dataset has no manifest.
  const Manifest *manifest() const { return Recorded ? &*Recorded : nullptr; }
  /// "<prefix>.manifest.json", or where a derived manifest came from; "" without one.
  llvm::StringRef manifestPath() const { return ManifestPath; }
  /// The manifest was computed from the token files, not read from next to them.
  bool manifestDerived() const { return Derived; }
  /// Null when the dataset has no sidecar.
  const MetadataTable *metadata() const { return Metadata.get(); }

  /// Hashes every file the manifest lists and compares; fails on the first mismatch.
  llvm::Error verifyChecksums() const;
  /// Where a file the manifest lists is: next to the dataset.
  std::string filePath(const FileDigest &listed) const;
  /// Fails, naming the file, both checksums and the manifest, unless `actual` is `listed`.
  llvm::Error checkDigest(const FileDigest &listed, const FileDigest &actual) const;

private:
  Dataset() = default;

  std::string Prefix, ManifestPath;
  ShardFormat Format = ShardFormat::Megatron;
  std::optional<Manifest> Recorded;
  bool Derived = false;
  std::unique_ptr<TokenShard> Tokens;
  std::unique_ptr<MetadataTable> Metadata;
};

} // namespace mixtape::data
