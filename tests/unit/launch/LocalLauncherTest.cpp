//===- LocalLauncherTest.cpp - N workers, prefixed output, a failing rank -===//
#include "mixtape/dist/LocalLauncher.h"

#include <gtest/gtest.h>

#include <chrono>

using namespace mixtape::dist;

namespace {
LaunchOptions shell(const std::string &script, int nproc, std::chrono::milliseconds grace) {
  LaunchOptions o;
  o.Command = {"/bin/sh", "-c", script};
  o.Nproc = nproc;
  o.Grace = grace;
  return o;
}
} // namespace

TEST(LocalLauncher, EveryRankGetsTorchrunsVariables) {
  std::string out;
  llvm::raw_string_ostream os(out);
  llvm::Error e = launchLocalWorkers(
      shell("echo \"rank=$RANK size=$WORLD_SIZE local=$LOCAL_RANK addr=$MASTER_ADDR\"; echo err >&2; "
            "test \"$MASTER_PORT\" -gt 0",
            2, std::chrono::seconds(5)),
      os);
  ASSERT_FALSE(bool(e)) << llvm::toString(std::move(e));
  os.flush();
  EXPECT_NE(out.find("[rank 0] rank=0 size=2 local=0 addr=127.0.0.1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("[rank 1] rank=1 size=2 local=1 addr=127.0.0.1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("[rank 1] err\n"), std::string::npos) << out;
}

TEST(LocalLauncher, AFailedRankStopsTheOthersWithinTheGrace) {
  std::string out;
  llvm::raw_string_ostream os(out);
  auto start = std::chrono::steady_clock::now();
  // Rank 1 fails; rank 0 would wait far longer than the grace period (a hung peer).
  llvm::Error e = launchLocalWorkers(
      shell("if [ \"$RANK\" = 1 ]; then exit 3; fi; exec sleep 100", 2, std::chrono::seconds(1)), os);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(bool(e));
  EXPECT_EQ(llvm::toString(std::move(e)),
            "rank 1 of 2 exited with status 3; every rank stopped (rank 0 killed after 1 s)");
  EXPECT_LT(seconds, 10);
}

TEST(LocalLauncher, ASignalIsNamed) {
  std::string out;
  llvm::raw_string_ostream os(out);
  llvm::Error e = launchLocalWorkers(shell("if [ \"$RANK\" = 0 ]; then kill -9 $$; fi", 2, std::chrono::seconds(5)), os);
  ASSERT_TRUE(bool(e));
  EXPECT_EQ(llvm::toString(std::move(e)), "rank 0 of 2 was killed by signal 9 (Killed); every rank stopped");
}

TEST(LocalLauncher, AGrandchildHoldingTheOutputDoesNotHoldTheLauncher) {
  std::string out;
  llvm::raw_string_ostream os(out);
  auto start = std::chrono::steady_clock::now();
  // The worker exits 0 at once; a background child keeps its stdout open for 30 s.
  llvm::Error e = launchLocalWorkers(shell("sleep 30 & echo started", 1, std::chrono::seconds(60)), os);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_FALSE(bool(e)) << llvm::toString(std::move(e));
  os.flush();
  EXPECT_NE(out.find("[rank 0] started\n"), std::string::npos) << out;
  EXPECT_LT(seconds, 10);
}
