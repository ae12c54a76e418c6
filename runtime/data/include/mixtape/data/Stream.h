//===- Stream.h - a stream's documents: split, filter, order per epoch -*- C++ -*-===//
//
// The sampling contract (docs/data-format.md, "Sampling"). A root stream is the documents
// of its datasets, in dataset order then document order. Each document is held out (val)
// or trained on by its hash alone; a derived stream or an ablation unit is a selection of
// the root's documents and keeps the root's split. Every epoch of a root stream is a seeded
// permutation of its training documents; a selection's epoch order is the root's, filtered.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Environment.h"
#include "mixtape/data/Dataset.h"
#include "mixtape/data/ManifestCache.h"
#include "mixtape/data/Random.h"
#include "mixtape/data/Verify.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace mixtape::data {

/// The SplitMix64 output for `x`: SplitMix64(x).next().
inline uint64_t splitmix64(uint64_t x) { return SplitMix64(x).next(); }

/// A document is held out iff splitmix64(hash) < val * 2^64.
bool isHeldOut(uint64_t documentHash, double val);

/// XXH3-64 of the lines "<file name>\t<xxh3 as 16 hex digits>\n" over every file, sorted by
/// (name, xxh3), as 16 hex digits.
std::string streamFingerprint(llvm::ArrayRef<FileDigest> files);
/// The same over every file the datasets' manifests list but a metadata sidecar without
/// columns (document hashes only, which the token files determine), plus, for each dataset
/// whose documents carry their end-of-text (eod present), the line "<.bin name>\teod-present\n".
std::string streamFingerprint(llvm::ArrayRef<std::unique_ptr<Dataset>> datasets);

/// The embedded corpus "synth:DOMAIN" for `seed`: generated once into
/// "<cacheDir>/synth-v<version>-<seed>/", returns the dataset prefix. Idempotent and safe to call from
/// several processes at once: each writes a private directory and renames the finished
/// files into place, manifest last (the content is deterministic).
/// `tokenizer` ("bytes", "hf:PATH" or PATH; empty: bytes) tokenizes the text, into a folder
/// of its own ("synth-v<version>-<seed>-<tokenizer id>").
llvm::Expected<std::string> resolveSynth(llvm::StringRef domain, uint64_t seed, llvm::StringRef cacheDir,
                                         llvm::StringRef tokenizer = "");

/// The documents of a root stream's datasets, with their split.
class RootStream {
public:
  /// `prefixes`: dataset prefixes (already resolved). Each needs a manifest (the tokenizer,
  /// its end-of-text id and the checksums the fingerprint is made of), its own or one
  /// derived through `manifests` from the declared tokenizer, and all must agree on the
  /// tokenizer. Document hashes come from the sidecar, or from the tokens when a dataset
  /// has none.
  static llvm::Expected<std::unique_ptr<RootStream>> open(llvm::StringRef name,
                                                          llvm::ArrayRef<std::string> prefixes, double val,
                                                          const DataDeclaration &declared,
                                                          ManifestCache &manifests);

  llvm::StringRef name() const { return Name; }
  const std::string &fingerprint() const { return Fingerprint; }
  /// XXH3-64 of fingerprint(): what seeds are mixed from.
  uint64_t fingerprintSeed() const { return FingerprintSeed; }
  double val() const { return Val; }
  uint32_t eot() const { return Eot; }
  /// From the manifests; "" and 0 when the datasets have none.
  const std::string &tokenizer() const { return TokenizerId; }
  uint64_t vocabSize() const { return VocabSize; }

  uint64_t numDocuments() const { return Hashes.size(); }
  uint64_t documentHash(uint32_t doc) const { return Hashes[doc]; }
  bool heldOut(uint32_t doc) const { return HeldOut[doc]; }
  /// The document's tokens without its end-of-text when the dataset stores one (eod
  /// present): every stream appends exactly one.
  TokenSpan tokens(uint32_t doc) const;
  uint64_t length(uint32_t doc) const { return tokens(doc).size(); }
  const std::vector<std::unique_ptr<Dataset>> &datasets() const { return Datasets; }
  /// The metadata columns any of its datasets has, sorted (none without sidecars of columns).
  std::vector<std::string> columns() const;
  /// The root's index of the first document of dataset `k`.
  uint64_t firstDocument(size_t k) const { return DatasetBegin[k]; }
  /// The dataset holding `doc`, and the document's index in it.
  std::pair<size_t, uint64_t> locate(uint32_t doc) const;

  /// Training documents in their natural order.
  const std::vector<uint32_t> &trainDocuments() const { return Train; }
  const std::vector<uint32_t> &valDocuments() const { return HeldOutDocs; }

private:
  RootStream() = default;

  std::string Name, Fingerprint, TokenizerId;
  uint64_t FingerprintSeed = 0, VocabSize = 0;
  double Val = 0;
  uint32_t Eot = 0;
  std::vector<std::unique_ptr<Dataset>> Datasets;
  std::vector<bool> EodPresent; ///< per dataset
  std::vector<uint64_t> DatasetBegin; ///< first document of each dataset, then the total
  std::vector<uint64_t> Hashes;
  std::vector<bool> HeldOut;
  std::vector<uint32_t> Train, HeldOutDocs;
};

/// An ablation unit: the documents of one of K equal random units
/// (splitmix64(hash ^ seed) % K == index), or those whose metadata column `by` holds `value`
/// (ColumnValue::matches: a missing value selects the documents without one).
struct AblationUnit {
  uint64_t Units = 0, Index = 0;
  std::string By;
  plan::ColumnValue Value;
};

/// Which of a root's documents a stream uses, and what it puts before each.
struct StreamSelection {
  /// Filters that must all hold: a derived stream's `where` and its ancestors', root first.
  std::vector<plan::Predicate> Where;
  std::optional<AblationUnit> Unit;
  /// The stream's own control tokens (Korbak et al. 2023; not its ancestors').
  std::optional<plan::ControlTokens> Control;
};

/// One epoch (or the val split) of a stream: documents in order and where each ends in
/// the token sequence (each document is followed by one end-of-text token, and preceded by
/// its control token where the stream has one for it).
struct DocumentOrder {
  std::vector<uint32_t> Documents;
  std::vector<uint64_t> Ends; ///< ends[i] = tokens of documents[0..i], prefixes and EOTs included
  uint64_t tokens() const { return Ends.empty() ? 0 : Ends.back(); }
};

/// A selection of a root stream's documents, train and val.
class StreamView {
public:
  /// Fails on a filter that reads a column no dataset has. A view may hold no training
  /// document: planning reports that filter, and reading it fails (noDocuments()).
  static llvm::Expected<std::unique_ptr<StreamView>> create(llvm::StringRef name, const RootStream &root,
                                                            const StreamSelection &selection, uint64_t seed);

  llvm::StringRef name() const { return Name; }
  const RootStream &root() const { return Root; }
  bool selected(uint32_t doc) const { return Keep.empty() || Keep[doc]; }
  /// The control token the stream reads before root document `doc`, if any.
  std::optional<uint32_t> prefix(uint32_t doc) const {
    return Prefixes.empty() || Prefixes[doc] == kNoPrefix ? std::nullopt : std::optional<uint32_t>(Prefixes[doc]);
  }
  bool hasPrefixes() const { return !Prefixes.empty(); }
  /// Tokens of root document `doc` in this stream: its control token, its tokens, the EOT.
  uint64_t documentTokens(uint32_t doc) const { return Root.length(doc) + 1 + (prefix(doc) ? 1 : 0); }

  uint64_t trainDocuments() const { return TrainDocs; }
  /// Tokens of one epoch, one EOT per document included.
  uint64_t trainTokens() const { return TrainTokens; }
  uint64_t valDocuments() const { return ValDocs; }
  uint64_t valTokens() const { return ValTokens; }
  /// "stream 'x': no training document of 1200 passes the filter: (quality >= 4)".
  llvm::Error noDocuments() const;

  /// Epoch `epoch`: the root's training documents permuted by Fisher-Yates with
  /// SplitMix64(epochSeed(seed, fingerprint, epoch)), then filtered by the selection.
  DocumentOrder epoch(uint64_t epoch) const;
  /// The selected held-out documents, permuted with the seed valSeed(seed, fingerprint).
  DocumentOrder valOrder() const;
  /// What an eval of `split` reads: valOrder(), or the selected training documents
  /// permuted with trainEvalSeed(seed, fingerprint) (no epoch's order, so a sample of the
  /// split however much of it was trained).
  DocumentOrder evalOrder(plan::SplitKind split) const;
  /// The selected documents grouped by their value of metadata `column` (see ColumnGroups).
  std::vector<plan::ColumnGroup> groupBy(llvm::StringRef column) const;

private:
  StreamView(std::string name, const RootStream &root, uint64_t seed)
      : Name(std::move(name)), Root(root), Seed(seed) {}
  DocumentOrder order(const std::vector<uint32_t> &documents, uint64_t shuffleSeed) const;
  /// Each document's control token; fails on a column no dataset has, or an id beyond the
  /// vocabulary.
  llvm::Error setPrefixes(const plan::ControlTokens &control);

  std::string Name;
  const RootStream &Root;
  uint64_t Seed;
  std::string Selection;  ///< what selects its documents, for messages; empty: all
  std::vector<bool> Keep; ///< per root document; empty: every document
  static constexpr uint32_t kNoPrefix = UINT32_MAX;
  std::vector<uint32_t> Prefixes; ///< per root document: its control token or kNoPrefix; empty: none
  uint64_t TrainDocs = 0, TrainTokens = 0, ValDocs = 0, ValTokens = 0;
};

/// mixSeed(mixSeed(recipeSeed, fingerprintSeed), epoch).
uint64_t epochSeed(uint64_t recipeSeed, uint64_t fingerprintSeed, uint64_t epoch);
/// mixSeed(mixSeed(recipeSeed, fingerprintSeed), XXH3-64("val")).
uint64_t valSeed(uint64_t recipeSeed, uint64_t fingerprintSeed);
/// mixSeed(mixSeed(recipeSeed, fingerprintSeed), XXH3-64("train-eval")).
uint64_t trainEvalSeed(uint64_t recipeSeed, uint64_t fingerprintSeed);

/// A root stream's shards as the plan gives them: dataset prefixes or "synth:DOMAIN".
struct RootSpec {
  std::string Name;
  std::vector<std::string> Shards;
  double Val = 0;
  DataDeclaration Declared = {};
  /// The root's fingerprint as the plan records it; when set, a root whose data has another
  /// fails to open (its documents would come in another order).
  std::string Fingerprint = {};
};

/// Opens root streams and views once per process and shares them. Holds the run's seed, the
/// cache folder for the embedded corpus and the cache of derived manifests (by default
/// "<cacheDir>/manifests"). Thread-safe.
class DataSources {
public:
  DataSources(uint64_t seed, std::string cacheDir, std::string manifestCacheDir = "",
              llvm::raw_ostream *notes = nullptr)
      : Seed(seed), CacheDir(std::move(cacheDir)),
        Manifests(manifestCacheDir.empty() ? CacheDir + "/manifests" : std::move(manifestCacheDir), notes),
        Notes(notes) {}
  ~DataSources();

  uint64_t seed() const { return Seed; }
  const std::string &cacheDir() const { return CacheDir; }
  const ManifestCache &manifests() const { return Manifests; }
  /// From now on, every dataset of a root opened is verified (Verify.h) before it is handed
  /// out: what the runtime does for the nodes it runs; planning only checks sizes.
  void verifyData(VerifyOptions options);

  /// Fails when spec.Fingerprint is set and is not the data's.
  llvm::Expected<const RootStream *> root(const RootSpec &spec);
  llvm::Expected<const StreamView *> view(const RootSpec &root, llvm::StringRef name,
                                          const StreamSelection &selection);

private:
  /// The root of `spec`, opened once.
  llvm::Expected<const RootStream *> open(const RootSpec &spec);

  uint64_t Seed;
  std::string CacheDir;
  ManifestCache Manifests;
  std::unique_ptr<DataVerifier> Verifier;
  llvm::raw_ostream *Notes;
  std::recursive_mutex Lock;
  std::map<std::string, std::unique_ptr<RootStream>> Roots;
  std::map<std::string, std::unique_ptr<StreamView>> Views;
};

/// Copies `count` tokens of `span` starting at token `from` into `out` as ids.
void copyTokens(const TokenSpan &span, uint64_t from, uint64_t count, uint32_t *out);

} // namespace mixtape::data
