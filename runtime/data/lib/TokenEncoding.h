//===- TokenEncoding.h - token ids to stored bytes -------------*- C++ -*-===//
#pragma once

#include "mixtape/data/DType.h"

#include "llvm/ADT/ArrayRef.h"

#include <optional>
#include <vector>

namespace mixtape::data {

/// Replaces `out` with `tokens` stored as little-endian `type`; returns the index of the
/// first id the type cannot hold (out is then unspecified).
std::optional<size_t> encodeTokens(llvm::ArrayRef<uint32_t> tokens, DType type,
                                   std::vector<uint8_t> &out);

} // namespace mixtape::data
