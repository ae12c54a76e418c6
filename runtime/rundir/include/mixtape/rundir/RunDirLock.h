//===- RunDirLock.h - one run at a time in a run directory -----*- C++ -*-===//
//
// A run holds an exclusive flock on RUN_DIR/lock from before it writes plan.json to its
// exit. A job that runs only some nodes (`exec --node`, one Slurm job per train node)
// shares that lock with the other such jobs and holds RUN_DIR/locks/<node> exclusively for
// each of its nodes: jobs of different nodes run side by side, never two of one node, and
// never any beside a whole run. The kernel releases a lock when its holder dies, however it
// dies; liveness is never judged from a PID, which means nothing on another host of a
// shared filesystem. Exclusive lock files name their holder (HOST:PID) for the message.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace mixtape::rundir {

class RunDirLock {
public:
  /// Takes the locks of `runDir` (created if missing) for the whole run, or for `nodes`
  /// only, or fails at once: "run directory DIR is locked by HOST:PID". A worker started by
  /// a launcher that holds them (shareWithWorkers) runs under the launcher's locks, checked
  /// on the descriptor it inherited.
  static llvm::Expected<RunDirLock> acquire(llvm::StringRef runDir, llvm::ArrayRef<std::string> nodes = {});

  RunDirLock(RunDirLock &&other);
  RunDirLock &operator=(RunDirLock &&) = delete;
  ~RunDirLock();

  /// Lets the worker processes this one starts next hold the lock with it: the descriptor
  /// stays open across exec and MIXTAPE_RUN_LOCK_FD names it.
  llvm::Error shareWithWorkers();

private:
  explicit RunDirLock(std::string path) : Path(std::move(path)) {}

  std::string Path;     ///< RUN_DIR/lock
  std::vector<int> Fds; ///< RUN_DIR/lock's first, then the nodes'
};

} // namespace mixtape::rundir
