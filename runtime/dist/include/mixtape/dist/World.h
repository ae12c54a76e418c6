//===- World.h - who this process is among its peers -----------*- C++ -*-===//
//
// A worker learns its rank, the world size and where to meet the others from its
// environment, in torchrun's convention (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT) or that of srun's tasks (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID,
// the first host of SLURM_STEP_NODELIST); docs/cluster.md. No LibTorch here.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mixtape::dist {

struct World {
  int Rank = 0;
  int Size = 1;
  int LocalRank = 0;
  std::string MasterAddr = "127.0.0.1";
  uint16_t MasterPort = 0;
  /// torchrun's agent already serves the rendezvous store at MASTER_PORT
  /// (TORCHELASTIC_USE_AGENT_STORE=True): rank 0 connects to it instead of serving one.
  bool StoreServedByAgent = false;
  /// Our keys in the rendezvous store start with it: torchrun's restarts (which keep the
  /// agent's store) and concurrent srun steps of one job never read each other's.
  std::string StorePrefix = "mixtape";
  /// "torchrun", "slurm" or "single": where the numbers came from, for messages.
  std::string Source = "single";
};

/// Reads the environment through `getenv` (a test passes a map). RANK and WORLD_SIZE win
/// over Slurm's variables (torchrun inside an allocation); Slurm's count only in a job
/// step (SLURM_STEP_ID: srun's tasks, not the batch script); neither: a world of one.
llvm::Expected<World>
worldFromEnvironment(const std::function<std::optional<std::string>(llvm::StringRef)> &getenv);
/// The process environment.
llvm::Expected<World> worldFromEnvironment();

/// Slurm's compressed host list ("node[01-04,07],gpu3", "rack[1-2]-n[1-2]") as host names,
/// in Slurm's order, zero padding kept.
llvm::Expected<std::vector<std::string>> expandNodeList(llvm::StringRef list);

} // namespace mixtape::dist
