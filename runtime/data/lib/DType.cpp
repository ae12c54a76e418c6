//===- DType.cpp ----------------------------------------------------------===//
#include "mixtape/data/DType.h"

using namespace mixtape;
using namespace mixtape::data;

std::optional<DType> mixtape::data::dtypeFromCode(uint8_t code) {
  if (code < 1 || code > 8)
    return std::nullopt;
  return static_cast<DType>(code);
}

std::optional<DType> mixtape::data::dtypeFromName(llvm::StringRef name) {
  for (uint8_t code = 1; code <= 8; ++code)
    if (dtypeName(static_cast<DType>(code)) == name)
      return static_cast<DType>(code);
  return std::nullopt;
}

llvm::StringRef mixtape::data::dtypeName(DType type) {
  switch (type) {
  case DType::UInt8: return "uint8";
  case DType::Int8: return "int8";
  case DType::Int16: return "int16";
  case DType::Int32: return "int32";
  case DType::Int64: return "int64";
  case DType::Float64: return "float64";
  case DType::Float32: return "float32";
  case DType::UInt16: return "uint16";
  }
  return "unknown";
}

unsigned mixtape::data::dtypeSize(DType type) {
  switch (type) {
  case DType::UInt8:
  case DType::Int8: return 1;
  case DType::Int16:
  case DType::UInt16: return 2;
  case DType::Int32:
  case DType::Float32: return 4;
  case DType::Int64:
  case DType::Float64: return 8;
  }
  return 1;
}

uint64_t mixtape::data::dtypeTokenCapacity(DType type) {
  switch (type) {
  case DType::UInt8: return uint64_t(1) << 8;
  case DType::Int8: return uint64_t(1) << 7;
  case DType::Int16: return uint64_t(1) << 15;
  case DType::UInt16: return uint64_t(1) << 16;
  case DType::Int32: return uint64_t(1) << 31;
  case DType::Int64: return uint64_t(1) << 63;
  case DType::Float32:
  case DType::Float64: return 0;
  }
  return 0;
}

DType mixtape::data::smallestTokenDType(uint64_t vocabSize) {
  if (vocabSize <= dtypeTokenCapacity(DType::UInt8))
    return DType::UInt8;
  if (vocabSize <= dtypeTokenCapacity(DType::UInt16))
    return DType::UInt16;
  if (vocabSize <= dtypeTokenCapacity(DType::Int32))
    return DType::Int32;
  return DType::Int64;
}
