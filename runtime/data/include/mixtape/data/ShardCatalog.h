//===- ShardCatalog.h - what planning learns of data and checkpoints -*- C++ -*-===//
//
// plan::Environment backed by the runtime's readers: stream stats (fingerprint, train/val
// documents and tokens after the split and the filters), evaluation leakage, documents
// grouped by a metadata column, Hugging Face checkpoints (model/Checkpoint.h) and
// tokenizer vocabularies. A stream's `shards` is a glob relative to the recipe's folder
// (every matching .idx or .bin is a dataset prefix with a manifest) or "synth:DOMAIN", the
// embedded corpus, generated into "<cacheDir>/synth-v<version>-<seed>/" on first use.
// Fingerprints come from the manifests' checksums and document hashes from the sidecars:
// planning never hashes a token file.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/data/Sampler.h"
#include "mixtape/plan/Environment.h"

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

/// Stream `name` of `plan` as the data layer opens it, starting at token `cursor`: its
/// root's datasets and declarations (paths resolved against the plan's recipe folder), the
/// filters of the stream and its ancestors, its unit and transform. nullopt when no
/// dataset matches the root's shards.
llvm::Expected<std::optional<NodeStream>> nodeStream(const plan::Plan &plan, llvm::StringRef name,
                                                     uint64_t cursor = 0);

class DataVerifier;

/// The Hugging Face checkpoint in `folder` (model::inspectCheckpoint), the checksums of its
/// weight files from `verifier` (hashed once, then cached by their stamps).
llvm::Expected<std::optional<plan::CheckpointInfo>> inspectCheckpoint(llvm::StringRef folder, DataVerifier &verifier);

class ShardCatalog final : public plan::Environment {
public:
  /// `manifestCacheDir`, `notes`: as DataSources takes them.
  explicit ShardCatalog(std::string cacheDir, std::string manifestCacheDir = "", llvm::raw_ostream *notes = nullptr)
      : CacheDir(std::move(cacheDir)), ManifestCacheDir(std::move(manifestCacheDir)), Notes(notes) {}

  llvm::Expected<std::optional<plan::StreamStats>> streamStats(const plan::Plan &plan, llvm::StringRef name) override;
  llvm::Expected<std::optional<uint64_t>> leakedDocuments(const plan::Plan &plan, llvm::StringRef val,
                                                          llvm::StringRef train) override;
  llvm::Expected<std::optional<plan::SharedDocuments>> sharedDocuments(const plan::Plan &plan, llvm::StringRef name,
                                                                      llvm::ArrayRef<std::string> others) override;
  llvm::Expected<std::optional<plan::ColumnGroups>> groupBy(const plan::Plan &plan, llvm::StringRef name,
                                                           llvm::StringRef column) override;
  llvm::Expected<std::optional<plan::CheckpointInfo>> checkpoint(llvm::StringRef folder) override;
  llvm::Expected<std::optional<uint64_t>> tokenizerVocabulary(llvm::StringRef file) override;
  llvm::Expected<std::optional<std::vector<std::string>>> tokenizerTokens(llvm::StringRef file) override;
  llvm::Expected<std::optional<plan::TaskStats>> taskStats(const plan::Plan &plan, const plan::Task &task) override;
  llvm::Expected<std::optional<uint64_t>> taskLeakage(const plan::Plan &plan, const plan::Task &task,
                                                      llvm::StringRef train) override;

private:
  /// The stream's view; null when its data is absent.
  llvm::Expected<const StreamView *> view(const plan::Plan &plan, llvm::StringRef name);

  std::string CacheDir, ManifestCacheDir;
  llvm::raw_ostream *Notes;
  std::map<uint64_t, std::unique_ptr<DataSources>> BySeed;
};

} // namespace mixtape::data
