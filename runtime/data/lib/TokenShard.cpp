//===- TokenShard.cpp -----------------------------------------------------===//
#include "mixtape/data/TokenShard.h"

#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "TokenEncoding.h"

#include "llvm/Support/Endian.h"
#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/SwapByteOrder.h"

#include <type_traits>

using namespace mixtape;
using namespace mixtape::data;
namespace endian = llvm::support::endian;

// Token files are little-endian and views are handed out without conversion.
static_assert(llvm::sys::IsLittleEndianHost, "mixtape::data assumes a little-endian host");

uint32_t TokenSpan::operator[](uint64_t i) const {
  assert(i < Size && "token index out of range");
  const uint8_t *p = Data + i * dtypeSize(Type);
  switch (Type) {
  case DType::UInt8: return *p;
  case DType::Int8: return static_cast<uint32_t>(static_cast<int8_t>(*p));
  case DType::Int16: return static_cast<uint32_t>(static_cast<int16_t>(endian::read16le(p)));
  case DType::UInt16: return endian::read16le(p);
  case DType::Int32: return endian::read32le(p);
  case DType::Int64: return static_cast<uint32_t>(endian::read64le(p));
  case DType::Float32:
  case DType::Float64: break;
  }
  llvm_unreachable("shards reject float dtypes when they open");
}

template <typename T> static void appendAs(const uint8_t *data, uint64_t n, std::vector<uint32_t> &out) {
  size_t base = out.size();
  out.resize(base + n);
  for (uint64_t i = 0; i < n; ++i) {
    T value;
    std::memcpy(&value, data + i * sizeof(T), sizeof(T));
    out[base + i] = static_cast<uint32_t>(value);
  }
}

void TokenSpan::appendTo(std::vector<uint32_t> &out) const {
  switch (Type) {
  case DType::UInt8: return appendAs<uint8_t>(Data, Size, out);
  case DType::Int8: return appendAs<int8_t>(Data, Size, out);
  case DType::Int16: return appendAs<int16_t>(Data, Size, out);
  case DType::UInt16: return appendAs<uint16_t>(Data, Size, out);
  case DType::Int32: return appendAs<int32_t>(Data, Size, out);
  case DType::Int64: return appendAs<int64_t>(Data, Size, out);
  case DType::Float32:
  case DType::Float64: break;
  }
  llvm_unreachable("shards reject float dtypes when they open");
}

TokenShard::~TokenShard() = default;

template <typename T>
static std::optional<uint64_t> firstOutOfRange(const uint8_t *data, uint64_t n, uint64_t vocabSize) {
  for (uint64_t i = 0; i < n; ++i) {
    T value;
    std::memcpy(&value, data + i * sizeof(T), sizeof(T));
    if constexpr (std::is_signed_v<T>)
      if (value < 0)
        return i;
    if (static_cast<uint64_t>(value) >= vocabSize)
      return i;
  }
  return std::nullopt;
}

llvm::Error TokenShard::checkTokenRange(uint64_t vocabSize) const {
  for (uint64_t d = 0, n = numDocuments(); d < n; ++d)
    if (llvm::Error err = checkTokenRange(vocabSize, d))
      return err;
  return llvm::Error::success();
}

llvm::Error TokenShard::checkTokenRange(uint64_t vocabSize, uint64_t d) const {
  TokenSpan doc = document(d);
  const uint8_t *p = doc.bytes().data();
  std::optional<uint64_t> bad;
  switch (doc.dtype()) {
  case DType::UInt8: bad = firstOutOfRange<uint8_t>(p, doc.size(), vocabSize); break;
  case DType::Int8: bad = firstOutOfRange<int8_t>(p, doc.size(), vocabSize); break;
  case DType::Int16: bad = firstOutOfRange<int16_t>(p, doc.size(), vocabSize); break;
  case DType::UInt16: bad = firstOutOfRange<uint16_t>(p, doc.size(), vocabSize); break;
  case DType::Int32: bad = firstOutOfRange<int32_t>(p, doc.size(), vocabSize); break;
  case DType::Int64: bad = firstOutOfRange<int64_t>(p, doc.size(), vocabSize); break;
  case DType::Float32:
  case DType::Float64: llvm_unreachable("shards reject float dtypes when they open");
  }
  if (!bad)
    return llvm::Error::success();
  uint64_t offset = doc.byteOffset() + *bad * dtypeSize(doc.dtype());
  return fileError(path(), offset,
                   "token " + llvm::Twine(*bad) + " of document " + llvm::Twine(d) +
                       " is outside the vocabulary of " + llvm::Twine(vocabSize));
}

template <typename T>
static std::optional<size_t> encodeAs(llvm::ArrayRef<uint32_t> tokens, uint64_t capacity,
                                      std::vector<uint8_t> &out) {
  out.resize(tokens.size() * sizeof(T));
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] >= capacity)
      return i;
    T value = static_cast<T>(tokens[i]);
    std::memcpy(out.data() + i * sizeof(T), &value, sizeof(T));
  }
  return std::nullopt;
}

std::optional<size_t> mixtape::data::encodeTokens(llvm::ArrayRef<uint32_t> tokens, DType type,
                                                  std::vector<uint8_t> &out) {
  uint64_t capacity = dtypeTokenCapacity(type);
  switch (type) {
  case DType::UInt8: return encodeAs<uint8_t>(tokens, capacity, out);
  case DType::Int8: return encodeAs<int8_t>(tokens, capacity, out);
  case DType::Int16: return encodeAs<int16_t>(tokens, capacity, out);
  case DType::UInt16: return encodeAs<uint16_t>(tokens, capacity, out);
  case DType::Int32: return encodeAs<int32_t>(tokens, capacity, out);
  case DType::Int64: return encodeAs<int64_t>(tokens, capacity, out);
  case DType::Float32:
  case DType::Float64: break;
  }
  llvm_unreachable("writers reject float dtypes when they are created");
}
