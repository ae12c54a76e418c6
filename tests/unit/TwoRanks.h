//===- TwoRanks.h - a two-rank Gloo world in one process --------*- C++ -*-===//
//
// Two ranks, each in its own thread with its own process group, meeting at a TCPStore on
// loopback: for the tests of what data parallelism must keep equal to one rank.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/dist/Collectives.h"
#include "mixtape/dist/LocalLauncher.h"

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <functional>
#include <string>
#include <thread>

namespace mixtape::test {

/// Runs `body(collectives)` on ranks 0 and 1 of a fresh two-rank world; failures inside
/// a rank are recorded as strings so that the test thread reports them.
inline void twoRanks(const std::function<void(dist::Collectives &)> &body,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  llvm::Expected<uint16_t> port = dist::freeLocalPort();
  ASSERT_TRUE(bool(port)) << llvm::toString(port.takeError());
  std::string failures[2];
  auto rank = [&](int r) {
    dist::World w;
    w.Rank = r;
    w.Size = 2;
    w.MasterPort = *port;
    w.Source = "test";
    try {
      llvm::Expected<std::unique_ptr<dist::Collectives>> c = dist::connect(w, dist::Device::CPU, timeout);
      if (!c) {
        failures[r] = llvm::toString(c.takeError());
        return;
      }
      body(**c);
    } catch (const std::exception &e) {
      failures[r] = e.what();
    }
  };
  std::thread one(rank, 1);
  rank(0);
  one.join();
  EXPECT_EQ(failures[0], "");
  EXPECT_EQ(failures[1], "");
}

} // namespace mixtape::test
