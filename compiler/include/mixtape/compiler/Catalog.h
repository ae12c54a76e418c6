//===- Catalog.h - what the plan compiler may learn about data ---*- C++ -*-===//
//
// The compiler never reads shards itself (it depends on LLVM Support and TOML++ only).
// `mixtape plan` hands it a catalog backed by the data layer; tests hand it fakes. A
// stream whose data is absent has no stats: its plan hashes are provisional.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/compiler/Recipe.h"

#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mixtape {

struct StreamStats {
  std::string fingerprint;   ///< content hash of the root stream's shards (from manifests)
  /// After the train/val split by document hash and the stream's filter; tokens include
  /// one end-of-document token per document.
  uint64_t trainDocuments = 0, trainTokens = 0;
  uint64_t valDocuments = 0, valTokens = 0;
  uint64_t vocabSize = 0;    ///< the manifests' tokenizer vocabulary
  std::string tokenizer;     ///< the manifests' tokenizer id, e.g. "bytes-v1"
};

/// The documents of a stream that hold one value of a metadata column, after the stream's
/// split and filters (tokens include one end-of-document token per document).
struct ColumnGroup {
  ColumnValue value;
  uint64_t trainDocuments = 0, trainTokens = 0;
  uint64_t valDocuments = 0, valTokens = 0;
};

/// A stream's documents grouped by a metadata column: `by = column` ablation units.
struct ColumnGroups {
  /// Every metadata column of the stream's datasets, sorted (for did-you-mean).
  std::vector<std::string> columns;
  /// One group per value some training document holds, in ColumnValue order; documents
  /// without a value (or in a dataset without the column) form the missing group. Empty
  /// when no dataset has the column.
  std::vector<ColumnGroup> groups;
};

class DataCatalog {
public:
  virtual ~DataCatalog() = default;
  /// Stats of a stream (root or derived); nullopt when its data is not present. An error
  /// means present but unreadable (named file and byte), which stops planning.
  virtual llvm::Expected<std::optional<StreamStats>> stats(const StreamSpec &stream,
                                                           const CheckedRecipe &recipe) = 0;
  /// Documents of `val`'s held-out split that also occur (by document hash) in `train`'s
  /// training split: evaluation leakage. nullopt when either stream's data is absent.
  virtual llvm::Expected<std::optional<uint64_t>> leakedDocuments(const StreamSpec &val, const StreamSpec &train,
                                                                  const CheckedRecipe &recipe) = 0;
  /// The stream's documents grouped by their value of `column`; nullopt when its data is absent.
  virtual llvm::Expected<std::optional<ColumnGroups>> groupBy(const StreamSpec &stream, llvm::StringRef column,
                                                             const CheckedRecipe &recipe) = 0;
};

} // namespace mixtape
