//===- DType.h - element types of token files ------------------*- C++ -*-===//
//
// The element types a Megatron-LM indexed dataset may declare. The enumerator values are
// the dtype codes stored in byte 17 of a .idx file (megatron/core/datasets/
// indexed_dataset.py, class DType), so a code read from disk converts with dtypeFromCode.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>

namespace mixtape::data {

enum class DType : uint8_t {
  UInt8 = 1,
  Int8 = 2,
  Int16 = 3,
  Int32 = 4,
  Int64 = 5,
  Float64 = 6,
  Float32 = 7,
  UInt16 = 8,
};

std::optional<DType> dtypeFromCode(uint8_t code);
/// NumPy spelling: "uint8", "int16", "uint16", ...
std::optional<DType> dtypeFromName(llvm::StringRef name);
llvm::StringRef dtypeName(DType type);
/// Bytes per element.
unsigned dtypeSize(DType type);
/// How many token ids (0, 1, ...) the type can hold; 0 for the float types, which hold none.
uint64_t dtypeTokenCapacity(DType type);
/// The narrowest type that holds every id of a vocabulary of `vocabSize` tokens.
DType smallestTokenDType(uint64_t vocabSize);

} // namespace mixtape::data
