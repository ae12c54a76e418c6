//===- Files.h - mapping files ---------------------------------*- C++ -*-===//
#pragma once

#include "mixtape/support/Error.h"

#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>

namespace llvm {
class MemoryBuffer;
} // namespace llvm

namespace mixtape::data {

/// Maps a file read-only (small files are read); the buffer's identifier is the path.
llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> mapFile(const llvm::Twine &path);

} // namespace mixtape::data
