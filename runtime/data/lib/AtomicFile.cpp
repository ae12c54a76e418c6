//===- AtomicFile.cpp -----------------------------------------------------===//
#include "AtomicFile.h"

#include "mixtape/support/Files.h"
#include "mixtape/data/Manifest.h"

#include "llvm/Support/Path.h"

#include <xxhash.h>

using namespace mixtape;
using namespace mixtape::data;

static void freeHash(XXH3_state_t *state) { XXH3_freeState(state); }

AtomicFile::AtomicFile(DurableFile file) : File(std::move(file)), Hash(XXH3_createState(), freeHash) {
  XXH3_64bits_reset(Hash.get());
}

AtomicFile::AtomicFile(AtomicFile &&other)
    : File(std::move(other.File)), Hash(std::move(other.Hash)), Written(other.Written) {}

llvm::Expected<AtomicFile> AtomicFile::create(llvm::StringRef path) {
  llvm::Expected<DurableFile> file = DurableFile::create(path);
  if (!file)
    return file.takeError();
  return AtomicFile(std::move(*file));
}

void AtomicFile::write(llvm::ArrayRef<uint8_t> bytes) {
  File.os().write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
  XXH3_64bits_update(Hash.get(), bytes.data(), bytes.size());
  Written += bytes.size();
}

llvm::Expected<FileDigest> AtomicFile::commit() {
  if (llvm::Error e = File.commit())
    return std::move(e);
  return FileDigest{llvm::sys::path::filename(File.path()).str(), Written, XXH3_64bits_digest(Hash.get())};
}
