//===- Checksum.cpp -------------------------------------------------------===//
#include "mixtape/support/Checksum.h"

#include "mixtape/support/Files.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <xxhash.h>

using namespace mixtape;

std::string mixtape::formatChecksum(uint64_t xxh3) {
  std::string out;
  llvm::raw_string_ostream(out) << llvm::format_hex_no_prefix(xxh3, 16, /*Upper=*/false);
  return out;
}

llvm::Expected<FileDigest> mixtape::digestFile(llvm::StringRef path) {
  llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> buffer = mapFile(path);
  if (!buffer)
    return buffer.takeError();
  llvm::StringRef bytes = (*buffer)->getBuffer();
  return FileDigest{llvm::sys::path::filename(path).str(), bytes.size(), XXH3_64bits(bytes.data(), bytes.size())};
}
