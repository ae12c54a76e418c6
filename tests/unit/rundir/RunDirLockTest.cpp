//===- RunDirLockTest.cpp - one run at a time in a run directory ----------===//
#include "TempDir.h"
#include "mixtape/rundir/RunDirLock.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <unistd.h>

using namespace mixtape;
using namespace mixtape::rundir;

namespace {

std::string holder() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return std::string(host) + ":" + std::to_string(::getpid());
}

std::string lockError(llvm::StringRef dir, std::vector<std::string> nodes = {}) {
  llvm::Expected<RunDirLock> lock = RunDirLock::acquire(dir, nodes);
  return lock ? "" : llvm::toString(lock.takeError());
}

} // namespace

// flock locks belong to open files, so a second open in this process conflicts as a second
// process would.
TEST(RunDirLock, OneWholeRunAtATime) {
  test::TempDir dir;
  const std::string runDir = dir.Path + "/run";
  {
    llvm::Expected<RunDirLock> first = RunDirLock::acquire(runDir);
    ASSERT_TRUE(bool(first)) << llvm::toString(first.takeError());
    EXPECT_EQ(lockError(runDir), "run directory " + runDir + " is locked by " + holder() +
                                     ": one run at a time (a lock goes when its run exits, however it ends)");
    // A job of some nodes neither.
    EXPECT_EQ(lockError(runDir, {"adapt"}).find("run directory " + runDir + " is locked by " + holder()), 0u);
  }
  EXPECT_EQ(lockError(runDir), ""); // released with its holder
}

TEST(RunDirLock, JobsOfDifferentNodesRunSideBySide) {
  test::TempDir dir;
  llvm::Expected<RunDirLock> a = RunDirLock::acquire(dir.Path, {"pretrain", "ppl@pretrain"});
  ASSERT_TRUE(bool(a)) << llvm::toString(a.takeError());
  llvm::Expected<RunDirLock> b = RunDirLock::acquire(dir.Path, {"adapt"});
  ASSERT_TRUE(bool(b)) << llvm::toString(b.takeError());
  EXPECT_EQ(lockError(dir.Path, {"anneal", "pretrain"}),
            "node 'pretrain' of run directory " + dir.Path + " is locked by " + holder() +
                ": one run at a time (a lock goes when its run exits, however it ends)");
  // A whole run waits for every node job to end.
  EXPECT_EQ(lockError(dir.Path).find("run directory " + dir.Path + " is locked by other runs of some of its nodes"),
            0u);
  EXPECT_EQ(lockError(dir.Path, {"anneal"}), ""); // the failed try above let go of 'anneal'
}

// --nproc: the launcher holds the lock and its workers run under it.
TEST(RunDirLock, WorkersRunUnderTheirLaunchersLock) {
  test::TempDir dir, other;
  llvm::Expected<RunDirLock> otherRun = RunDirLock::acquire(other.Path);
  ASSERT_TRUE(bool(otherRun)) << llvm::toString(otherRun.takeError());
  llvm::Expected<RunDirLock> launcher = RunDirLock::acquire(dir.Path);
  ASSERT_TRUE(bool(launcher)) << llvm::toString(launcher.takeError());
  ASSERT_FALSE(bool(launcher->shareWithWorkers()));
  EXPECT_EQ(lockError(dir.Path), "");
  // The inherited descriptor is the lock of its own run directory only.
  EXPECT_EQ(lockError(other.Path).find("run directory " + other.Path + " is locked by " + holder()), 0u);
  ::unsetenv("MIXTAPE_RUN_LOCK_FD");
  EXPECT_NE(lockError(dir.Path), "");
}
