//===- NcclCollectives.cpp - c10d::ProcessGroupNCCL (CUDA tensors) --------===//
//
// Compiled only where LibTorch has CUDA and ships ProcessGroupNCCL.hpp;
// runtime/dist/CMakeLists.txt decides. One GPU per rank: LOCAL_RANK's.
//
//===----------------------------------------------------------------------===//
#include "ProcessGroups.h"

#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <cstdlib>

std::unique_ptr<mixtape::dist::Collectives>
mixtape::dist::makeNcclCollectives(const c10::intrusive_ptr<c10d::Store> &store, const World &world,
                                   std::chrono::milliseconds timeout) {
  const int devices = static_cast<int>(c10::cuda::device_count());
  if (world.LocalRank >= devices)
    throw std::runtime_error("local rank " + std::to_string(world.LocalRank) + " has no GPU of its own (" +
                             std::to_string(devices) + " visible)");
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(world.LocalRank));
  // As with Gloo, a peer that died or hangs must make wait() throw within the timeout:
  // without blocking wait, it only orders the stream, and NCCL's watchdog tears the process
  // down instead. Blocking wait turns the watchdog's async error handling off. Read when the
  // group is made; a setting of the user's (either spelling) wins.
  if (!std::getenv("NCCL_BLOCKING_WAIT"))
    ::setenv("TORCH_NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, world.Rank, world.Size, options);
  return std::make_unique<ProcessGroupCollectives<c10d::ProcessGroupNCCL, /*FlatCollectives=*/true>>(
      std::move(group), store, world, c10::DeviceType::CUDA, timeout);
}
