//===- Checksum.h - sizes and XXH3-64 of files -----------------*- C++ -*-===//
//
// What data manifests and checkpoints record of their files, so that a file changed or cut
// after it was written is never taken as valid.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>

namespace mixtape {

/// Size and XXH3-64 of one file; `Name` is relative to the folder of whatever lists it.
struct FileDigest {
  std::string Name;
  uint64_t Bytes = 0;
  uint64_t Xxh3 = 0;
};

/// 16 lowercase hex digits, most significant first (XXH64_canonical order).
std::string formatChecksum(uint64_t xxh3);
/// Maps and hashes a file; `Name` of the result is the path's file name.
llvm::Expected<FileDigest> digestFile(llvm::StringRef path);

} // namespace mixtape
