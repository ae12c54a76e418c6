//===- AtomicFile.cpp -----------------------------------------------------===//
#include "AtomicFile.h"

#include "Files.h"
#include "mixtape/data/Manifest.h"

#include "llvm/Support/Path.h"

#include <xxhash.h>

using namespace mixtape::data;

static void freeHash(XXH3_state_t *state) { XXH3_freeState(state); }

AtomicFile::AtomicFile(std::string path, llvm::sys::fs::TempFile temp)
    : Path(std::move(path)), Temp(std::make_unique<llvm::sys::fs::TempFile>(std::move(temp))),
      Hash(XXH3_createState(), freeHash) {
  Out = std::make_unique<llvm::raw_fd_ostream>(Temp->FD, /*shouldClose=*/false);
  XXH3_64bits_reset(Hash.get());
}

AtomicFile::AtomicFile(AtomicFile &&other)
    : Path(std::move(other.Path)), Temp(std::move(other.Temp)), Out(std::move(other.Out)),
      Hash(std::move(other.Hash)), Written(other.Written) {}

AtomicFile::~AtomicFile() {
  if (!Temp)
    return;
  Out->clear_error(); // the write error, if any, was not reported: the file is discarded
  Out.reset();
  llvm::consumeError(Temp->discard());
}

llvm::Expected<AtomicFile> AtomicFile::create(llvm::StringRef path) {
  llvm::Expected<llvm::sys::fs::TempFile> temp =
      llvm::sys::fs::TempFile::create(path + ".tmp-%%%%%%");
  if (!temp)
    return fileError(path, "cannot create a temporary file: " + llvm::toString(temp.takeError()));
  return AtomicFile(path.str(), std::move(*temp));
}

void AtomicFile::write(llvm::ArrayRef<uint8_t> bytes) {
  Out->write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
  XXH3_64bits_update(Hash.get(), bytes.data(), bytes.size());
  Written += bytes.size();
}

llvm::Expected<FileDigest> AtomicFile::commit() {
  Out->flush();
  if (std::error_code ec = Out->error())
    return fileError(Path, "write failed: " + ec.message());
  Out.reset();
  std::unique_ptr<llvm::sys::fs::TempFile> temp = std::move(Temp);
  if (llvm::Error err = temp->keep(Path))
    return fileError(Path, "cannot move the finished file into place: " +
                               llvm::toString(std::move(err)));
  return FileDigest{llvm::sys::path::filename(Path).str(), Written, XXH3_64bits_digest(Hash.get())};
}
