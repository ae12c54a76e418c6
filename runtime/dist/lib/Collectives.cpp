//===- Collectives.cpp - rendezvous, and the world of one -----------------===//
#include "ProcessGroups.h"

#include "mixtape/support/Error.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <condition_variable>
#include <mutex>
#include <thread>

using namespace mixtape::dist;
using mixtape::makeError;

int64_t Collectives::broadcastValue(int64_t value, int root) {
  at::Tensor t = at::full({1}, value, at::TensorOptions(at::kLong).device(deviceType()));
  broadcast(t, root);
  return t.item<int64_t>();
}

namespace {
/// What a blocking collective leaves to wait for: nothing.
class Finished final : public PendingCollective {
public:
  void wait() override {}
};
} // namespace

std::unique_ptr<PendingCollective> Collectives::startAllReduceSum(at::Tensor &tensor) {
  allReduceSum(tensor);
  return std::make_unique<Finished>();
}

std::unique_ptr<PendingCollective> Collectives::startAllGather(const at::Tensor &input, at::Tensor &output) {
  allGather(input, output);
  return std::make_unique<Finished>();
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
  llvm::Error rankZeroAlone(const std::string &, llvm::function_ref<llvm::Error()> work) override { return work(); }
};

} // namespace

llvm::Error mixtape::dist::rankZeroAloneOverStore(c10d::Store &store, int rank, uint64_t sequence,
                                                  const std::string &what, llvm::function_ref<llvm::Error()> work,
                                                  std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  // A beat every quarter of the timeout at most: a waiting rank sees several before it gives up.
  const auto beat = std::min<std::chrono::milliseconds>(std::chrono::seconds(1), timeout / 4);
  const std::string key = "rank0/" + std::to_string(sequence) + "/", alive = key + "alive", outcome = key + "outcome";
  if (rank == 0) {
    std::mutex mutex;
    std::condition_variable stop;
    bool finished = false;
    std::thread heartbeat([&] {
      std::unique_lock<std::mutex> lock(mutex);
      while (!stop.wait_for(lock, beat, [&] { return finished; })) {
        lock.unlock();
        try {
          store.add(alive, 1);
        } catch (const std::exception &) {
          // The store is gone: the others see no more beats, and the outcome below fails.
        }
        lock.lock();
      }
    });
    llvm::Error result = llvm::Error::success();
    try {
      result = work();
    } catch (const std::exception &e) {
      result = makeError(firstLines(e));
    }
    {
      std::lock_guard<std::mutex> lock(mutex);
      finished = true;
    }
    stop.notify_one();
    heartbeat.join();
    std::string message = result ? llvm::toString(std::move(result)) : "";
    try {
      std::string text = message.empty() ? "ok" : "failed: " + message;
      store.set(outcome, std::vector<uint8_t>(text.begin(), text.end()));
    } catch (const std::exception &e) {
      return makeError(message.empty()
                           ? "cannot tell the other ranks that rank 0 finished " + what + ": " + firstLines(e)
                           : message);
    }
    return message.empty() ? llvm::Error::success() : makeError(message);
  }
  try {
    int64_t beats = 0;
    Clock::time_point lastBeat = Clock::now();
    // Quick answers for quick work, at most two store requests a second for long work.
    std::chrono::milliseconds poll(2);
    while (!store.check({outcome})) {
      if (int64_t now = store.add(alive, 0); now != beats) {
        beats = now;
        lastBeat = Clock::now();
      } else if (Clock::now() - lastBeat > timeout) {
        return makeError("rank 0 gave no sign of life for " +
                         llvm::Twine(std::chrono::duration_cast<std::chrono::seconds>(timeout).count()) + " s while " +
                         what);
      }
      std::this_thread::sleep_for(poll);
      poll = std::min<std::chrono::milliseconds>(poll * 2, std::chrono::milliseconds(500));
    }
    std::vector<uint8_t> bytes = store.get(outcome);
    llvm::StringRef text(reinterpret_cast<const char *>(bytes.data()), bytes.size());
    if (text == "ok")
      return llvm::Error::success();
    text.consume_front("failed: ");
    return makeError("rank 0 failed while " + what + ": " + text);
  } catch (const std::exception &e) {
    return makeError("lost rank 0 while " + what + ": " + firstLines(e));
  }
}

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
  if (world.Size == 1)
    return std::make_unique<SingleProcess>();
  return connectProcessGroup(world, device, timeout);
}

llvm::Expected<std::unique_ptr<Collectives>>
mixtape::dist::connectProcessGroup(const World &world, Device device, std::chrono::milliseconds timeout) {
  if (!hasBackend(device))
    return makeError(device == Device::CPU
                         ? "this build has no process group for CPU tensors (LibTorch or the gloo "
                           "headers lack Gloo): train on one process"
                         : "this build has no process group for CUDA tensors (LibTorch without NCCL)");
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions options;
    options.port = world.MasterPort;
    options.isServer = world.Rank == 0 && !world.StoreServedByAgent;
    options.numWorkers = world.Size;
    options.waitWorkers = !world.StoreServedByAgent;
    options.timeout = timeout;
    // The prefix keeps our keys apart from those of torchrun's agent, which serves the same store.
    store = c10::make_intrusive<c10d::PrefixStore>(
        world.StorePrefix, c10::make_intrusive<c10d::TCPStore>(world.MasterAddr, options));
  } catch (const std::exception &e) {
    return makeError("no rendezvous with the other ranks at " + world.MasterAddr + ":" + llvm::Twine(world.MasterPort) +
                     " (" + world.Source + ") within " + llvm::Twine(timeout.count() / 1000) + " s: " + firstLines(e));
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
    return makeError("cannot create the process group: " + firstLines(e));
  }
  llvm_unreachable("hasBackend(device) said yes");
}
