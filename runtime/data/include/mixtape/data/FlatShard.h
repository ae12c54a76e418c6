//===- FlatShard.h - nanoGPT-style flat token files ------------*- C++ -*-===//
//
// A flat .bin is nothing but uint16 tokens (little-endian), documents separated by the
// tokenizer's end-of-text id, as nanoGPT's prepare scripts write them. The separator may
// precede or follow each document (both conventions exist); runs between separators are
// the documents, and empty runs are not documents. Opening scans the file once and keeps
// the document boundaries.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/data/Manifest.h"
#include "mixtape/data/TokenShard.h"

#include <memory>
#include <string>
#include <vector>

namespace llvm {
class MemoryBuffer;
} // namespace llvm

namespace mixtape::data {

class AtomicFile;

class FlatShard final : public TokenShard {
public:
  static llvm::Expected<std::unique_ptr<FlatShard>> open(llvm::StringRef path, uint32_t eot);
  static llvm::Expected<std::unique_ptr<FlatShard>> fromBuffer(std::unique_ptr<llvm::MemoryBuffer> data,
                                                               uint32_t eot);
  ~FlatShard() override;

  llvm::StringRef path() const override;
  DType dtype() const override { return DType::UInt16; }
  uint64_t numDocuments() const override { return Documents.size(); }
  TokenSpan document(uint64_t i) const override;
  uint64_t numTokens() const override { return Tokens; }
  uint32_t eot() const { return Eot; }

private:
  struct Range {
    uint64_t Begin, End; ///< token indices
  };
  FlatShard(std::unique_ptr<llvm::MemoryBuffer> data, uint32_t eot);

  std::unique_ptr<llvm::MemoryBuffer> Data;
  uint32_t Eot;
  std::vector<Range> Documents;
  uint64_t Tokens = 0;
};

/// Streams documents into a flat .bin, each followed by the end-of-text id; the file is
/// written to a temporary and renamed into place by finish().
class FlatShardWriter {
public:
  static llvm::Expected<std::unique_ptr<FlatShardWriter>> create(llvm::StringRef path, uint32_t eot);
  ~FlatShardWriter();

  /// Appends one non-empty document; ids must fit uint16 and differ from the separator.
  llvm::Error addDocument(llvm::ArrayRef<uint32_t> tokens);
  uint64_t numTokens() const { return Tokens; }
  llvm::Expected<FileDigest> finish();

private:
  FlatShardWriter(std::unique_ptr<AtomicFile> bin, uint32_t eot);

  std::unique_ptr<AtomicFile> Bin;
  uint32_t Eot;
  std::vector<uint8_t> Scratch;
  uint64_t Documents = 0;
  uint64_t Tokens = 0;
};

} // namespace mixtape::data
