//===- GlooCollectives.cpp - c10d::ProcessGroupGloo (CPU tensors) ---------===//
//
// Compiled only where LibTorch was built with Gloo and the gloo headers are installed
// (Debian: libgloo-dev); runtime/dist/CMakeLists.txt decides.
//
//===----------------------------------------------------------------------===//
#include "ProcessGroups.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include <cstdlib>

std::unique_ptr<mixtape::dist::Collectives>
mixtape::dist::makeGlooCollectives(const c10::intrusive_ptr<c10d::Store> &store, const World &world,
                                   std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  // As torch.distributed: GLOO_SOCKET_IFNAME picks the network interface, else the address
  // this host's name resolves to (loopback when it resolves to none).
  if (const char *interface = std::getenv("GLOO_SOCKET_IFNAME"))
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
  else
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, world.Rank, world.Size, options);
  return std::make_unique<ProcessGroupCollectives<c10d::ProcessGroupGloo, /*FlatCollectives=*/false>>(
      std::move(group), store, world, c10::DeviceType::CPU, timeout);
}
