//===- IndexedDataset.h - Megatron-LM .bin/.idx ----------------*- C++ -*-===//
//
// Megatron-LM's indexed dataset (megatron/core/datasets/indexed_dataset.py), read and
// written byte-compatibly so datasets prepared for Megatron or NeMo work unchanged.
// "<prefix>.bin" holds the tokens of every sequence back to back; "<prefix>.idx" is
// (little-endian, unaligned):
//
//   byte 0   9 bytes   magic "MMIDIDX\0\0"
//   byte 9   uint64    version, 1
//   byte 17  uint8     dtype code (DType)
//   byte 18  uint64    sequence count S
//   byte 26  uint64    document index count D (documents + 1)
//   byte 34  int32[S]  sequence lengths, in tokens
//            int64[S]  sequence pointers, byte offsets into the .bin
//            int64[D]  document indices: 0, then the end (in sequences) of each document
//
// A document is the run of sequences between two document indices. Opening validates the
// whole index against the .bin (sequences contiguous from byte 0, covering the .bin
// exactly), so every view handed out afterwards is in bounds.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/data/Manifest.h"
#include "mixtape/data/TokenShard.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <string>

namespace llvm {
class MemoryBuffer;
} // namespace llvm

namespace mixtape::data {

class AtomicFile;

class IndexedDataset final : public TokenShard {
public:
  static constexpr uint64_t HeaderSize = 34;

  /// Maps and validates "<prefix>.idx" and "<prefix>.bin".
  static llvm::Expected<std::unique_ptr<IndexedDataset>> open(llvm::StringRef prefix);
  /// Validates buffers already in memory; errors name the buffers' identifiers.
  static llvm::Expected<std::unique_ptr<IndexedDataset>>
  fromBuffers(std::unique_ptr<llvm::MemoryBuffer> index, std::unique_ptr<llvm::MemoryBuffer> data);
  ~IndexedDataset() override;

  llvm::StringRef path() const override;
  llvm::StringRef indexPath() const;
  DType dtype() const override { return Type; }
  uint64_t numDocuments() const override { return DocumentIndexCount - 1; }
  TokenSpan document(uint64_t i) const override;
  uint64_t numTokens() const override;

  uint64_t numSequences() const { return SequenceCount; }
  TokenSpan sequence(uint64_t i) const;
  /// Entry `i` of the document index, i <= numDocuments().
  uint64_t documentIndex(uint64_t i) const;

private:
  IndexedDataset(std::unique_ptr<llvm::MemoryBuffer> index, std::unique_ptr<llvm::MemoryBuffer> data);
  llvm::Error validate();
  uint32_t sequenceLength(uint64_t i) const;
  uint64_t sequencePointer(uint64_t i) const;
  /// Byte in the .bin where sequence `i` starts; the .bin's size for i == numSequences().
  uint64_t sequenceStart(uint64_t i) const;

  std::unique_ptr<llvm::MemoryBuffer> Index;
  std::unique_ptr<llvm::MemoryBuffer> Data;
  DType Type = DType::UInt16;
  uint64_t SequenceCount = 0;
  uint64_t DocumentIndexCount = 0;
};

/// Streams documents into "<prefix>.bin"; finish() writes "<prefix>.idx". Both are written
/// to temporary files and renamed into place by finish(); until then neither exists (an
/// older .bin/.idx at the prefix is removed by create()).
class IndexedDatasetWriter {
public:
  static llvm::Expected<std::unique_ptr<IndexedDatasetWriter>> create(llvm::StringRef prefix,
                                                                      DType dtype);
  ~IndexedDatasetWriter();

  /// Appends one document of one sequence; every id must fit the dtype.
  llvm::Error addDocument(llvm::ArrayRef<uint32_t> tokens);
  uint64_t numTokens() const { return Tokens; }

  /// Renames the .bin, then writes and renames the .idx; returns both digests (.bin first).
  llvm::Expected<std::vector<FileDigest>> finish();

private:
  IndexedDatasetWriter(std::string prefix, DType dtype, std::unique_ptr<AtomicFile> bin);

  std::string Prefix;
  DType Type;
  std::unique_ptr<AtomicFile> Bin;
  std::vector<int32_t> Lengths;
  std::vector<uint8_t> Scratch;
  uint64_t Tokens = 0;
};

} // namespace mixtape::data
