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
/// "synth:DOMAIN" is returned as it is. `*` and `?` may cross directory separators.
llvm::Expected<std::optional<std::vector<std::string>>> expandShards(llvm::StringRef shards,
                                                                      llvm::StringRef baseDir);

/// The filters a stream applies: its own `where` and its ancestors', root first, as
/// canonical predicate text.
std::vector<std::string> streamFilters(const mixtape::StreamSpec &stream, const mixtape::CheckedRecipe &recipe);

class ShardCatalog final : public mixtape::DataCatalog {
public:
  explicit ShardCatalog(std::string cacheDir) : CacheDir(std::move(cacheDir)) {}

  llvm::Expected<std::optional<mixtape::StreamStats>> stats(const mixtape::StreamSpec &stream,
                                                            const mixtape::CheckedRecipe &recipe) override;
  llvm::Expected<std::optional<uint64_t>> leakedDocuments(const mixtape::StreamSpec &val,
                                                          const mixtape::StreamSpec &train,
                                                          const mixtape::CheckedRecipe &recipe) override;
  llvm::Expected<std::optional<mixtape::ColumnGroups>> groupBy(const mixtape::StreamSpec &stream,
                                                               llvm::StringRef column,
                                                               const mixtape::CheckedRecipe &recipe) override;

private:
  /// The stream's view; nullopt when its data is absent.
  llvm::Expected<const StreamView *> view(const mixtape::StreamSpec &stream, const mixtape::CheckedRecipe &recipe,
                                          bool &absent);

  std::string CacheDir;
  std::map<uint64_t, std::unique_ptr<DataSources>> BySeed;
};

} // namespace mixtape::data
