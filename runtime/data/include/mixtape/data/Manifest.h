//===- Manifest.h - what a dataset holds, and its checksums ----*- C++ -*-===//
//
// "<prefix>.manifest.json" describes one dataset: the shard format, the tokenizer and its
// vocabulary, the token dtype, token and document counts, and every file of the dataset
// with its size and XXH3-64. It is written last, so its presence marks a complete dataset.
// The layout is documented in docs/data-format.md.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/data/DType.h"
#include "mixtape/support/Checksum.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mixtape::data {

enum class ShardFormat { Megatron, Flat };
llvm::StringRef shardFormatName(ShardFormat format);
/// "megatron" or "flat"; none for any other name.
std::optional<ShardFormat> shardFormatFromName(llvm::StringRef name);

struct Manifest {
  static constexpr int64_t Version = 1;

  ShardFormat Format = ShardFormat::Megatron;
  std::string Tokenizer;
  uint64_t VocabSize = 0;
  DType Dtype = DType::UInt16;
  /// The tokenizer's end-of-text id; separates documents in flat files.
  uint32_t Eot = 0;
  uint64_t Tokens = 0;
  uint64_t Documents = 0;
  /// Megatron: every document's last token is `eot` (Megatron's preprocess_data.py
  /// --append-eod), so streams use it as the document separator instead of adding one.
  bool EodPresent = false;
  /// File name of the metadata sidecar ("" when there is none); also listed in `files`.
  std::string Metadata;
  std::vector<FileDigest> Files;

  const FileDigest *findFile(llvm::StringRef name) const;
};

/// Parses and checks a manifest; errors name `fileName` and the JSON path or byte.
llvm::Expected<Manifest> parseManifest(llvm::StringRef json, llvm::StringRef fileName);
llvm::Expected<Manifest> readManifest(llvm::StringRef path);
std::string formatManifest(const Manifest &manifest);

} // namespace mixtape::data
