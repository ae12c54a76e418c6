//===- RunDirLock.cpp -----------------------------------------------------===//
#include "mixtape/rundir/RunDirLock.h"

#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace mixtape;
using namespace mixtape::rundir;

static constexpr const char *kInheritedFd = "MIXTAPE_RUN_LOCK_FD";

/// Whether `fd` is open on the same file as `path`.
static bool sameFile(int fd, const std::string &path) {
  struct stat a, b;
  return ::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/// Opens and flocks `path` without waiting; an exclusive holder writes HOST:PID into it.
/// `what` begins the message when another run holds it.
static llvm::Expected<int> lockFile(const std::string &path, bool exclusive, const llvm::Twine &what) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return fileError(path, std::string("cannot open the lock: ") + std::strerror(errno));
  if (::flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
    int error = errno;
    char holder[256] = {};
    ssize_t n = ::pread(fd, holder, sizeof holder - 1, 0);
    ::close(fd);
    if (error != EWOULDBLOCK)
      return fileError(path, std::string("cannot lock: ") + std::strerror(error));
    llvm::StringRef who = llvm::StringRef(holder, n > 0 ? static_cast<size_t>(n) : 0).trim();
    return makeError(what + " is locked by " + (who.empty() ? "other runs of some of its nodes" : who) +
                     ": one run at a time (a lock goes when its run exits, however it ends)");
  }
  if (!exclusive)
    return fd;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::string who = std::string(host) + ":" + std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, who.data(), who.size(), 0) != static_cast<ssize_t>(who.size())) {
    int error = errno;
    ::close(fd);
    return fileError(path, std::string("cannot write the lock's holder: ") + std::strerror(error));
  }
  return fd;
}

llvm::Expected<RunDirLock> RunDirLock::acquire(llvm::StringRef runDir, llvm::ArrayRef<std::string> nodes) {
  const std::string nodeLocks = joinPath(runDir, "locks");
  if (std::error_code ec = llvm::sys::fs::create_directories(nodes.empty() ? runDir : llvm::StringRef(nodeLocks)))
    return fileError(runDir, "cannot create the run directory: " + ec.message());
  RunDirLock lock(joinPath(runDir, "lock"));
  // A launcher's worker: the locks are held already through the descriptor it inherited
  // (a flock belongs to the open file, which the launcher and its workers share).
  if (const char *inherited = std::getenv(kInheritedFd)) {
    int fd = -1;
    if (llvm::to_integer(inherited, fd) && fd >= 0 && sameFile(fd, lock.Path) &&
        ::flock(fd, (nodes.empty() ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0) {
      lock.Fds.push_back(::dup(fd));
      return std::move(lock);
    }
  }
  llvm::Expected<int> whole = lockFile(lock.Path, nodes.empty(), "run directory " + runDir);
  if (!whole)
    return whole.takeError();
  lock.Fds.push_back(*whole);
  for (const std::string &node : nodes) {
    llvm::Expected<int> fd = lockFile(joinPath(nodeLocks, node), true, "node '" + node + "' of run directory " + runDir);
    if (!fd)
      return fd.takeError(); // the destructor lets go of the others
    lock.Fds.push_back(*fd);
  }
  return std::move(lock);
}

RunDirLock::RunDirLock(RunDirLock &&other) : Path(std::move(other.Path)), Fds(std::move(other.Fds)) {
  other.Fds.clear();
}

RunDirLock::~RunDirLock() {
  for (int fd : Fds)
    ::close(fd); // the last descriptor of an open file releases its lock
}

llvm::Error RunDirLock::shareWithWorkers() {
  int fd = Fds.front();
  int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0 || ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) != 0 ||
      ::setenv(kInheritedFd, std::to_string(fd).c_str(), 1) != 0)
    return fileError(Path, std::string("cannot share the lock with the workers: ") + std::strerror(errno));
  return llvm::Error::success();
}
