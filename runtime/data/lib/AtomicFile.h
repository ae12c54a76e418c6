//===- AtomicFile.h - write to a temporary, rename when done ---*- C++ -*-===//
//
// Every output of the data layer is a DurableFile (support/Files.h): renamed into place only
// when complete and synced, so a half-written file is never taken as valid. The XXH3-64 of
// the bytes is computed while they are written, for the manifest.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/support/Checksum.h"
#include "mixtape/support/Files.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <memory>
#include <string>

struct XXH3_state_s;

namespace mixtape::data {

class AtomicFile {
public:
  static llvm::Expected<AtomicFile> create(llvm::StringRef path);
  AtomicFile(AtomicFile &&other);
  AtomicFile &operator=(AtomicFile &&) = delete;

  void write(llvm::ArrayRef<uint8_t> bytes);
  void write(llvm::StringRef text) {
    write(llvm::ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(text.data()), text.size()));
  }
  uint64_t bytesWritten() const { return Written; }
  llvm::StringRef path() const { return File.path(); }

  /// Flushes, closes and renames onto the final path; returns its size and checksum.
  llvm::Expected<FileDigest> commit();

private:
  explicit AtomicFile(DurableFile file);

  DurableFile File;
  std::unique_ptr<XXH3_state_s, void (*)(XXH3_state_s *)> Hash;
  uint64_t Written = 0;
};

} // namespace mixtape::data
