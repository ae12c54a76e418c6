//===- Files.cpp ----------------------------------------------------------===//
#include "mixtape/support/Files.h"

#include "mixtape/support/Error.h"

#include "llvm/Support/Path.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

using namespace mixtape;

std::string mixtape::joinPath(llvm::StringRef dir, llvm::StringRef name) {
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, name);
  return std::string(path);
}

llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> mixtape::mapFile(const llvm::Twine &path) {
  // Without a required null terminator, MemoryBuffer maps any file of 16 KiB or more.
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      llvm::MemoryBuffer::getFile(path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!buffer)
    return fileError(path.str(), "cannot open: " + buffer.getError().message());
  return std::move(*buffer);
}

llvm::Error mixtape::syncPath(llvm::StringRef path) {
  int fd = ::open(path.str().c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fileError(path, std::string("cannot open to sync: ") + std::strerror(errno));
  int rc = ::fsync(fd);
  int error = errno;
  ::close(fd);
  if (rc != 0)
    return fileError(path, std::string("fsync failed: ") + std::strerror(error));
  return llvm::Error::success();
}

DurableFile::DurableFile(std::string path, llvm::sys::fs::TempFile temp)
    : Path(std::move(path)), Temp(std::make_unique<llvm::sys::fs::TempFile>(std::move(temp))) {
  Out = std::make_unique<llvm::raw_fd_ostream>(Temp->FD, /*shouldClose=*/false);
}

DurableFile::DurableFile(DurableFile &&other)
    : Path(std::move(other.Path)), Temp(std::move(other.Temp)), Out(std::move(other.Out)) {}

DurableFile::~DurableFile() {
  if (!Temp)
    return;
  if (Out) {
    // The file is discarded: a write error (a full disk) goes unreported, and the stream is
    // emptied first, since one that fails again in its destructor aborts the process.
    Out->flush();
    Out->clear_error();
    Out.reset();
  }
  llvm::consumeError(Temp->discard());
}

int DurableFile::fd() const { return Temp->FD; }

llvm::Expected<DurableFile> DurableFile::create(llvm::StringRef path) {
  llvm::Expected<llvm::sys::fs::TempFile> temp = llvm::sys::fs::TempFile::create(path + ".tmp-%%%%%%");
  if (!temp)
    return fileError(path, "cannot create a temporary file: " + llvm::toString(temp.takeError()));
  return DurableFile(path.str(), std::move(*temp));
}

llvm::Error DurableFile::commit() {
  Out->flush();
  if (std::error_code ec = Out->error())
    return fileError(Path, "write failed: " + ec.message());
  Out.reset();
  if (::fsync(Temp->FD) != 0)
    return fileError(Path, std::string("fsync failed: ") + std::strerror(errno));
  std::unique_ptr<llvm::sys::fs::TempFile> temp = std::move(Temp);
  if (llvm::Error err = temp->keep(Path))
    return fileError(Path, "cannot move the finished file into place: " + llvm::toString(std::move(err)));
  // The rename is durable only once the folder's entry is.
  llvm::StringRef parent = llvm::sys::path::parent_path(Path);
  return syncPath(parent.empty() ? "." : parent);
}

llvm::Error mixtape::writeFileDurably(llvm::StringRef path, llvm::StringRef text) {
  llvm::Expected<DurableFile> file = DurableFile::create(path);
  if (!file)
    return file.takeError();
  file->os() << text;
  return file->commit();
}
