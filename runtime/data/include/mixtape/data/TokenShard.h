//===- TokenShard.h - documents of tokens in a mapped file -----*- C++ -*-===//
//
// One interface over both token file formats (Megatron .bin/.idx and flat .bin): a shard
// is a sequence of documents, each a contiguous run of tokens inside a memory-mapped file.
// Views are zero-copy; they live as long as the shard.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/data/DType.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <cassert>
#include <cstdint>
#include <cstring>
#include <vector>

namespace mixtape::data {

/// The tokens of one document, as stored: `size()` elements of `dtype()` (little-endian)
/// starting at byte `byteOffset()` of the token file.
class TokenSpan {
public:
  TokenSpan() = default;
  TokenSpan(const uint8_t *data, uint64_t size, DType dtype, uint64_t byteOffset)
      : Data(data), Size(size), Type(dtype), Offset(byteOffset) {}

  uint64_t size() const { return Size; }
  bool empty() const { return Size == 0; }
  DType dtype() const { return Type; }
  uint64_t byteOffset() const { return Offset; }
  llvm::ArrayRef<uint8_t> bytes() const { return {Data, Size * dtypeSize(Type)}; }

  /// Token `i` as an id (integer dtypes; negative values wrap).
  uint32_t operator[](uint64_t i) const;
  /// Appends every token as an id.
  void appendTo(std::vector<uint32_t> &out) const;
  std::vector<uint32_t> toVector() const {
    std::vector<uint32_t> out;
    appendTo(out);
    return out;
  }

  /// The tokens typed as stored; T must match dtype() (e.g. uint16_t for UInt16).
  template <typename T> llvm::ArrayRef<T> as() const {
    assert(sizeof(T) == dtypeSize(Type) && "element type does not match the dtype");
    return {reinterpret_cast<const T *>(Data), static_cast<size_t>(Size)};
  }

private:
  const uint8_t *Data = nullptr;
  uint64_t Size = 0;
  DType Type = DType::UInt16;
  uint64_t Offset = 0;
};

class TokenShard {
public:
  virtual ~TokenShard();
  /// The token file (the .bin).
  virtual llvm::StringRef path() const = 0;
  virtual DType dtype() const = 0;
  virtual uint64_t numDocuments() const = 0;
  /// Tokens of document `i` (< numDocuments()).
  virtual TokenSpan document(uint64_t i) const = 0;
  /// Tokens in all documents (for flat files, separators excluded).
  virtual uint64_t numTokens() const = 0;

  /// Reads every token; fails naming the file and byte of the first id outside
  /// [0, vocabSize).
  llvm::Error checkTokenRange(uint64_t vocabSize) const;
  /// The same for document `d` alone.
  llvm::Error checkTokenRange(uint64_t vocabSize, uint64_t d) const;
};

} // namespace mixtape::data
