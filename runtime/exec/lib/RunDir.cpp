//===- RunDir.cpp ---------------------------------------------------------===//
#include "RunDir.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <fcntl.h>
#include <unistd.h>

using namespace mixtape::exec;

static llvm::Error fileError(llvm::StringRef path, const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), path + ": " + what);
}

std::string mixtape::exec::joinPath(llvm::StringRef dir, llvm::StringRef name) {
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, name);
  return std::string(path);
}

llvm::Error mixtape::exec::syncPath(llvm::StringRef path) {
  int fd = ::open(path.str().c_str(), O_RDONLY);
  if (fd < 0)
    return fileError(path, "cannot open to sync");
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0)
    return fileError(path, "fsync failed");
  return llvm::Error::success();
}

llvm::Error mixtape::exec::writeFileDurably(llvm::StringRef path, llvm::StringRef text) {
  llvm::SmallString<256> temp;
  int fd = -1;
  if (std::error_code ec = llvm::sys::fs::createUniqueFile(path + ".tmp-%%%%%%", fd, temp))
    return fileError(path, "cannot create a temporary file: " + ec.message());
  const char *p = text.data();
  size_t left = text.size();
  while (left) {
    ssize_t n = ::write(fd, p, left);
    if (n <= 0) {
      ::close(fd);
      llvm::sys::fs::remove(temp);
      return fileError(path, "write failed");
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) {
    llvm::sys::fs::remove(temp);
    return fileError(path, "fsync failed");
  }
  if (std::error_code ec = llvm::sys::fs::rename(temp, path)) {
    llvm::sys::fs::remove(temp);
    return fileError(path, "cannot rename into place: " + ec.message());
  }
  return syncPath(llvm::sys::path::parent_path(path));
}

MetricsLog::~MetricsLog() {
  if (File)
    std::fclose(File);
}

llvm::Error MetricsLog::open(llvm::StringRef path, std::optional<uint64_t> keepBytes) {
  uint64_t size = 0;
  if (llvm::sys::fs::exists(path)) {
    auto buffer = llvm::MemoryBuffer::getFile(path);
    if (!buffer)
      return fileError(path, "cannot read: " + buffer.getError().message());
    llvm::StringRef text = (*buffer)->getBuffer();
    size = keepBytes ? std::min<uint64_t>(*keepBytes, text.size()) : text.size();
    // Never keep a partial last line.
    size_t lastNewline = text.take_front(size).rfind('\n');
    size = lastNewline == llvm::StringRef::npos ? 0 : lastNewline + 1;
  }
  File = std::fopen(path.str().c_str(), size ? "r+" : "w");
  if (!File)
    return fileError(path, "cannot open for writing");
  if (::ftruncate(fileno(File), static_cast<off_t>(size)) != 0 || std::fseek(File, static_cast<long>(size), SEEK_SET))
    return fileError(path, "cannot cut to the last checkpoint");
  Bytes = size;
  return llvm::Error::success();
}

void MetricsLog::write(const llvm::json::Object &record) {
  if (!File)
    return;
  std::string line = llvm::formatv("{0}", llvm::json::Value(llvm::json::Object(record))).str() + "\n";
  std::fwrite(line.data(), 1, line.size(), File);
  std::fflush(File);
  Bytes += line.size();
}
