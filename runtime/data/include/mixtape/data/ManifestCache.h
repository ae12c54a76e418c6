//===- ManifestCache.h - manifests for datasets that come without one -*- C++ -*-===//
//
// Datasets prepared by Megatron-LM's or NeMo's preprocess_data.py are a "<prefix>.bin" +
// "<prefix>.idx" pair and nothing else. A stream reads them unchanged: the recipe names the
// tokenizer that made the tokens (a token file cannot say), and the manifest a stream needs
// (counts, file checksums, document hashes) is derived from one scan of the tokens and
// cached, keyed by each file's absolute path, size and modification time. The cache is only
// ever an accelerator: an entry that does not parse or check is recomputed, never trusted.
// The layout of an entry is in docs/data-format.md.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Plan.h"

#include "mixtape/data/Dataset.h"
#include "mixtape/data/Metadata.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <optional>
#include <string>

namespace llvm {
class raw_ostream;
} // namespace llvm

namespace mixtape::data {

/// Whether documents of a Megatron dataset already end with the end-of-text token (Megatron's
/// --append-eod): "present" uses that token as the separator, "append" adds one, "auto"
/// takes "present" when every document ends with it and "append" otherwise. The plan's
/// enum: the recipe, the plan and the cache spell it alike.
using EodMode = plan::EodMode;

/// What a stream declares about its datasets' tokens (recipe keys `tokenizer` and `eod`).
struct DataDeclaration {
  /// "bytes", "hf:PATH" or PATH (createTokenizer); "" when the recipe does not say.
  std::string Tokenizer;
  EodMode Eod = EodMode::Auto;
  /// The recipe's `format`; none for "auto" (whatever the datasets are).
  std::optional<ShardFormat> Format = {};
};

/// A manifest computed from the token files, and the document hashes of its sidecar.
struct DerivedManifest {
  data::Manifest Manifest;
  MetadataBuilder Hashes;
};

/// Scans every token once: XXH3 of each file, counts, document hashes; fails naming the
/// file, document and byte of an id outside the tokenizer's vocabulary, a dtype too small
/// for it, or (eod "present") a document that does not end with its end-of-text id. With
/// eod present, documents are hashed without that last token.
llvm::Expected<DerivedManifest> deriveManifest(llvm::StringRef prefix, const Tokenizer &tokenizer, EodMode eod);

/// `mixtape data manifest`: derives the manifest, then writes "<prefix>.meta" and
/// "<prefix>.manifest.json" next to the token files; the manifest lists the sidecar. Refuses,
/// before reading any token, when either file exists: a sidecar may hold metadata columns that
/// a derived one (document hashes only) would lose. Returns what it wrote.
llvm::Expected<Manifest> writeManifest(llvm::StringRef prefix, const Tokenizer &tokenizer, EodMode eod);

/// "$MIXTAPE_CACHE_DIR/manifests", else "$XDG_CACHE_HOME/mixtape/manifests", else
/// "$HOME/.cache/mixtape/manifests"; "<runCacheDir>/manifests" when none of them is set.
std::string defaultManifestCacheDir(llvm::StringRef runCacheDir);

class ManifestCache {
public:
  /// `notes`, when given, hears one line when a manifest is computed (a first use can read
  /// many gigabytes).
  explicit ManifestCache(std::string dir, llvm::raw_ostream *notes = nullptr)
      : Dir(std::move(dir)), Notes(notes) {}

  const std::string &dir() const { return Dir; }

  /// Opens the dataset at `prefix`. With a manifest of its own, that one is used, and a
  /// declared tokenizer must be the one it records. Without one, the tokenizer must be
  /// declared (`tokenizer` null: an error saying so) and the derived manifest comes from the
  /// cache, computed and stored on a miss.
  llvm::Expected<std::unique_ptr<Dataset>> open(llvm::StringRef prefix, const Tokenizer *tokenizer, EodMode eod);

  /// Counters for tests and notes: entries used, and manifests computed.
  unsigned hits() const { return Hits; }
  unsigned misses() const { return Misses; }

private:
  /// The entry's path without extension (".json" stamps + manifest, ".meta" hashes).
  std::string entryPath(llvm::StringRef absolutePrefix, const Tokenizer &tokenizer, EodMode eod) const;
  /// The manifest of a valid entry; nullopt when it is absent, stale or corrupt.
  std::optional<Manifest> lookup(llvm::StringRef entry, llvm::StringRef absolutePrefix, const Tokenizer &tokenizer,
                                 EodMode eod) const;

  std::string Dir;
  llvm::raw_ostream *Notes;
  unsigned Hits = 0, Misses = 0;
};

} // namespace mixtape::data
