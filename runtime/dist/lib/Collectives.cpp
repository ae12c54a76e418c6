//===- Collectives.cpp - rendezvous, and the world of one -----------------===//
#include "ProcessGroups.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

using namespace mixtape::dist;

int64_t Collectives::broadcastValue(int64_t value, int root) {
  at::Tensor t = at::full({1}, value, at::TensorOptions(at::kLong).device(deviceType()));
  broadcast(t, root);
  return t.item<int64_t>();
}

std::string mixtape::dist::firstLines(const std::exception &e) {
  llvm::StringRef what = e.what();
  return what.substr(0, what.find("\nException raised from")).rtrim().str();
}

namespace {

/// One process: every collective is the identity.
class SingleProcess final : public Collectives {
public:
  int rank() const override { return 0; }
  int worldSize() const override { return 1; }
  void allReduceSum(at::Tensor &) override {}
  void reduceScatterSum(const at::Tensor &input, at::Tensor &output) override { output.copy_(input.view_as(output)); }
  void allGather(const at::Tensor &input, at::Tensor &output) override { output.copy_(input.view_as(output)); }
  void broadcast(at::Tensor &, int) override {}
  void barrier() override {}
  c10::DeviceType deviceType() const override { return c10::DeviceType::CPU; }
};

llvm::Error connectError(const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), what);
}

} // namespace

bool mixtape::dist::hasBackend(Device device) {
#if defined(MIXTAPE_HAVE_GLOO)
  if (device == Device::CPU)
    return true;
#endif
#if defined(MIXTAPE_HAVE_NCCL)
  if (device == Device::CUDA)
    return true;
#endif
  return false;
}

llvm::Expected<std::unique_ptr<Collectives>> mixtape::dist::connect(const World &world, Device device,
                                                                    std::chrono::milliseconds timeout) {
  if (world.size == 1)
    return std::make_unique<SingleProcess>();
  return connectProcessGroup(world, device, timeout);
}

llvm::Expected<std::unique_ptr<Collectives>>
mixtape::dist::connectProcessGroup(const World &world, Device device, std::chrono::milliseconds timeout) {
  if (!hasBackend(device))
    return connectError(device == Device::CPU
                                   ? "this build has no process group for CPU tensors (LibTorch or the gloo "
                                     "headers lack Gloo): train on one process"
                                   : "this build has no process group for CUDA tensors (LibTorch without NCCL)");
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions options;
    options.port = world.masterPort;
    options.isServer = world.rank == 0 && !world.storeServedByAgent;
    options.numWorkers = world.size;
    options.waitWorkers = !world.storeServedByAgent;
    options.timeout = timeout;
    // The prefix keeps our keys apart from those of torchrun's agent, which serves the same store.
    store = c10::make_intrusive<c10d::PrefixStore>(
        "mixtape", c10::make_intrusive<c10d::TCPStore>(world.masterAddr, options));
  } catch (const std::exception &e) {
    return connectError("no rendezvous with the other ranks at " + world.masterAddr + ":" +
                                   llvm::Twine(world.masterPort) + " (" + world.source + ") within " +
                                   llvm::Twine(timeout.count() / 1000) + " s: " + firstLines(e));
  }
  try {
#if defined(MIXTAPE_HAVE_GLOO)
    if (device == Device::CPU)
      return makeGlooCollectives(store, world, timeout);
#endif
#if defined(MIXTAPE_HAVE_NCCL)
    if (device == Device::CUDA)
      return makeNcclCollectives(store, world, timeout);
#endif
  } catch (const std::exception &e) {
    return connectError("cannot create the process group: " + firstLines(e));
  }
  llvm_unreachable("hasBackend(device) said yes");
}
