//===- ShardCatalog.h - the plan compiler's view of the data ----*- C++ -*-===//
//
// mixtape::DataCatalog backed by the data layer: stream stats (fingerprint, train/val
// documents and tokens after the split and the filter), evaluation leakage, and documents
// grouped by a metadata column. A stream's
// `shards` is a glob relative to the recipe's directory (every matching .idx or .bin is a
// dataset prefix with a manifest) or "synth:DOMAIN", the embedded corpus, generated into
// "<cacheDir>/synth-v<version>-<seed>/" on first use. Fingerprints come from the manifests'
// checksums and document hashes from the sidecars: planning never hashes a token file.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/compiler/Catalog.h"
#include "mixtape/data/Stream.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mixtape::data {

/// Dataset prefixes a `shards` value names: sorted, unique; nullopt when nothing matches.
/// "synth:DOMAIN" is returned as it is. `*` and `?` may cross directory separators. A
/// folder names the datasets directly inside it.
llvm::Expected<std::optional<std::vector<std::string>>> expandShards(llvm::StringRef shards,
                                                                      llvm::StringRef baseDir);

/// Stream `stream`'s declared tokenizer, eod and format, with a relative tokenizer path
/// ("hf:PATH" or PATH) resolved against `baseDir`; fails, naming the stream, on an eod other
/// than auto, present or append, or a format other than auto, megatron or flat.
llvm::Expected<DataDeclaration> streamDeclaration(llvm::StringRef stream, llvm::StringRef tokenizer,
                                                  llvm::StringRef eod, llvm::StringRef format,
                                                  llvm::StringRef baseDir);

/// The filters a stream applies: its own `where` and its ancestors', root first, as
/// canonical predicate text.
std::vector<std::string> streamFilters(const mixtape::StreamSpec &stream, const mixtape::CheckedRecipe &recipe);

class ShardCatalog final : public mixtape::DataCatalog {
public:
  /// `manifestCacheDir`, `notes`: as DataSources takes them.
  explicit ShardCatalog(std::string cacheDir, std::string manifestCacheDir = "", llvm::raw_ostream *notes = nullptr)
      : CacheDir(std::move(cacheDir)), ManifestCacheDir(std::move(manifestCacheDir)), Notes(notes) {}

  llvm::Expected<std::optional<mixtape::StreamStats>> stats(const mixtape::StreamSpec &stream,
                                                            const mixtape::CheckedRecipe &recipe) override;
  llvm::Expected<std::optional<uint64_t>> leakedDocuments(const mixtape::StreamSpec &val,
                                                          const mixtape::StreamSpec &train,
                                                          const mixtape::CheckedRecipe &recipe) override;
  llvm::Expected<std::optional<mixtape::ColumnGroups>> groupBy(const mixtape::StreamSpec &stream,
                                                               llvm::StringRef column,
                                                               const mixtape::CheckedRecipe &recipe) override;

private:
  /// The stream's view; null when its data is absent.
  llvm::Expected<const StreamView *> view(const mixtape::StreamSpec &stream, const mixtape::CheckedRecipe &recipe);

  std::string CacheDir, ManifestCacheDir;
  llvm::raw_ostream *Notes;
  std::map<uint64_t, std::unique_ptr<DataSources>> BySeed;
};

} // namespace mixtape::data
