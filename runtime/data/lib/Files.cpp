//===- Files.cpp ----------------------------------------------------------===//
#include "Files.h"

#include "llvm/Support/MemoryBuffer.h"

using namespace mixtape;
using namespace mixtape::data;

llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> mixtape::data::mapFile(const llvm::Twine &path) {
  // Without a required null terminator, MemoryBuffer maps any file of 16 KiB or more.
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      llvm::MemoryBuffer::getFile(path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!buffer)
    return fileError(path.str(), "cannot open: " + buffer.getError().message());
  return std::move(*buffer);
}
