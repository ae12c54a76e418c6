//===- LocalLauncher.h - `--nproc N`: N workers on this machine -*- C++ -*-===//
//
// What torchrun does for one node, small: start N copies of a worker command with
// torchrun's variables set (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1 and a free
// MASTER_PORT), forward their output line by line prefixed "[rank R] ", and once one of
// them fails, give the others `grace` to exit on their own (their collectives fail when a
// peer's connection closes or times out) before killing them. POSIX only.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <string>

namespace mixtape::dist {

struct LaunchOptions {
  /// The worker's command line; the first element is the program's path.
  std::vector<std::string> Command;
  int Nproc = 1;
  std::chrono::milliseconds Grace{std::chrono::seconds(60)};
};

/// Runs the workers to the end. Success when every one exits 0; otherwise an error that
/// names the first rank to fail and how (exit status, signal), and any rank that had to be
/// killed. Each worker gets MIXTAPE_NUM_THREADS = cores / N unless it is set already.
llvm::Error launchLocalWorkers(const LaunchOptions &options, llvm::raw_ostream &out);

/// A loopback port nobody listens on now (the kernel's pick for port 0); whoever binds it
/// next wins, the race torchrun's standalone mode accepts too.
llvm::Expected<uint16_t> freeLocalPort();

} // namespace mixtape::dist
