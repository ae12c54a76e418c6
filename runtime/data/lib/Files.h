//===- Files.h - mapping files, errors that name a byte --------*- C++ -*-===//
#pragma once

#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>

namespace llvm {
class MemoryBuffer;
} // namespace llvm

namespace mixtape::data {

/// "<file>: byte <offset>: <message>"
llvm::Error fileError(const llvm::Twine &file, uint64_t offset, const llvm::Twine &message);
/// "<file>: <message>", for problems that concern the whole file.
llvm::Error fileError(const llvm::Twine &file, const llvm::Twine &message);

/// Maps a file read-only (small files are read); the buffer's identifier is the path.
llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> mapFile(const llvm::Twine &path);

} // namespace mixtape::data
