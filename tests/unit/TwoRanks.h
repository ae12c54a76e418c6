//===- TwoRanks.h - a Gloo world of threads in one process ------*- C++ -*-===//
//
// Two (or more) ranks, each in its own thread with its own process group, meeting at a TCPStore on
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
#include <vector>

namespace mixtape::test {

/// Runs `body(collectives)` on every rank of a fresh world of `size` ranks, each in its own
/// thread; failures inside a rank are recorded as strings so that the test thread reports
/// them.
inline void ranks(int size, const std::function<void(dist::Collectives &)> &body,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  llvm::Expected<uint16_t> port = dist::freeLocalPort();
  ASSERT_TRUE(bool(port)) << llvm::toString(port.takeError());
  std::vector<std::string> failures(static_cast<size_t>(size));
  auto rank = [&](int r) {
    dist::World w;
    w.Rank = r;
    w.Size = size;
    w.MasterPort = *port;
    w.Source = "test";
    try {
      llvm::Expected<std::unique_ptr<dist::Collectives>> c = dist::connect(w, dist::Device::CPU, timeout);
      if (!c) {
        failures[static_cast<size_t>(r)] = llvm::toString(c.takeError());
        return;
      }
      body(**c);
    } catch (const std::exception &e) {
      failures[static_cast<size_t>(r)] = e.what();
    }
  };
  std::vector<std::thread> others;
  for (int r = 1; r < size; ++r)
    others.emplace_back(rank, r);
  rank(0);
  for (std::thread &t : others)
    t.join();
  for (int r = 0; r < size; ++r)
    EXPECT_EQ(failures[static_cast<size_t>(r)], "") << "rank " << r;
}

/// ranks(2, ...): the tests of what data parallelism must keep equal to one rank.
inline void twoRanks(const std::function<void(dist::Collectives &)> &body,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  ranks(2, body, timeout);
}

} // namespace mixtape::test
