//===- Collectives.cpp - rendezvous, rank 0's pace, and the world of one --===//
#include "ProcessGroups.h"

#include "mixtape/support/Error.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <condition_variable>
#include <mutex>
#include <stdexcept>
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

llvm::Error Collectives::rankZeroAlone(const std::string &what, llvm::function_ref<llvm::Error()> work) {
  return rankZeroPaces(what, [&](RankZeroPace &) { return rank() == 0 ? work() : llvm::Error::success(); });
}

llvm::Error Collectives::rankZeroPaces(const std::string &what,
                                       llvm::function_ref<llvm::Error(RankZeroPace &)> run) {
  std::unique_ptr<RankZeroPace> pace = paceByRankZero(what);
  llvm::Error result = llvm::Error::success();
  try {
    result = run(*pace);
  } catch (const std::exception &e) {
    result = makeError(firstLines(e));
  }
  return pace->finish(std::move(result));
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
  std::unique_ptr<RankZeroPace> paceByRankZero(const std::string &) override { return std::make_unique<Alone>(); }

private:
  /// Rank 0 is every rank: nobody waits.
  class Alone final : public RankZeroPace {
  public:
    void next(const std::string &) override {}
    llvm::Error finish(llvm::Error local) override { return local; }
  };
};

} // namespace

namespace {

/// RankZeroPace over the rendezvous store, under keys "rank0/<sequence>/": "alive", rank
/// 0's heartbeat, a counter a thread of rank 0's bumps while the pace lasts; "<k>", rank 0's
/// k-th announcement: "next" as it starts a collective, "ok" or "failed: <message>" at the end.
class StorePace final : public RankZeroPace {
public:
  StorePace(c10d::Store &store, int rank, uint64_t sequence, std::string what, std::chrono::milliseconds timeout)
      : Store(store), Rank(rank), Prefix("rank0/" + std::to_string(sequence) + "/"), Alive(Prefix + "alive"),
        What(std::move(what)), Timeout(timeout) {
    if (Rank == 0)
      Heartbeat = std::thread([this] { beat(); });
  }

  ~StorePace() override {
    stopHeartbeat();
    if (Rank == 0 && !Finished) // an exception left the run: the others stop waiting for it
      try {
        announce("failed: rank 0 stopped");
      } catch (const std::exception &) {
        // The store is gone: the others lose rank 0.
      }
  }

  void next(const std::string &doing) override {
    if (Rank == 0)
      return announce("next");
    llvm::Expected<std::string> said = awaitAnnouncement(doing);
    if (!said)
      throw std::runtime_error(llvm::toString(said.takeError()));
    if (*said != "next")
      throw std::runtime_error(llvm::toString(outcome(*said)));
  }

  llvm::Error finish(llvm::Error local) override {
    Finished = true;
    if (Rank != 0) {
      if (local)
        return local;
      llvm::Expected<std::string> said = awaitAnnouncement("");
      return said ? outcome(*said) : said.takeError();
    }
    stopHeartbeat();
    std::string message = local ? llvm::toString(std::move(local)) : "";
    try {
      announce(message.empty() ? "ok" : "failed: " + message);
    } catch (const std::exception &e) {
      return makeError(message.empty()
                           ? "cannot tell the other ranks that rank 0 finished " + What + ": " + firstLines(e)
                           : message);
    }
    return message.empty() ? llvm::Error::success() : makeError(message);
  }

private:
  void beat() {
    // A beat every quarter of the timeout at most: a waiting rank sees several before it gives up.
    const auto every = std::min<std::chrono::milliseconds>(std::chrono::seconds(1), Timeout / 4);
    std::unique_lock<std::mutex> lock(Mutex);
    while (!Stop.wait_for(lock, every, [&] { return Stopped; })) {
      lock.unlock();
      try {
        Store.add(Alive, 1);
      } catch (const std::exception &) {
        // The store is gone: the others see no more beats, and the announcements fail.
      }
      lock.lock();
    }
  }

  void stopHeartbeat() {
    if (!Heartbeat.joinable())
      return;
    {
      std::lock_guard<std::mutex> lock(Mutex);
      Stopped = true;
    }
    Stop.notify_one();
    Heartbeat.join();
  }

  void announce(const std::string &text) {
    Store.set(Prefix + std::to_string(Announcements++), std::vector<uint8_t>(text.begin(), text.end()));
  }

  /// Rank 0's next announcement, waited for as long as its heartbeat goes on.
  llvm::Expected<std::string> awaitAnnouncement(const std::string &doing) {
    using Clock = std::chrono::steady_clock;
    const std::string key = Prefix + std::to_string(Announcements++);
    const std::string during = doing.empty() ? What : What + " (" + doing + ")";
    try {
      int64_t beats = 0;
      Clock::time_point lastBeat = Clock::now();
      // Quick answers for quick work, at most two store requests a second for long work.
      std::chrono::milliseconds poll(2);
      while (!Store.check({key})) {
        if (int64_t now = Store.add(Alive, 0); now != beats) {
          beats = now;
          lastBeat = Clock::now();
        } else if (Clock::now() - lastBeat > Timeout) {
          return makeError("rank 0 gave no sign of life for " +
                           llvm::Twine(std::chrono::duration_cast<std::chrono::seconds>(Timeout).count()) +
                           " s while " + during);
        }
        std::this_thread::sleep_for(poll);
        poll = std::min<std::chrono::milliseconds>(poll * 2, std::chrono::milliseconds(500));
      }
      std::vector<uint8_t> bytes = Store.get(key);
      return std::string(bytes.begin(), bytes.end());
    } catch (const std::exception &e) {
      return makeError("lost rank 0 while " + during + ": " + firstLines(e));
    }
  }

  /// What rank 0's announcement `said` means for a rank that expected its end.
  llvm::Error outcome(llvm::StringRef said) const {
    if (said == "ok")
      return llvm::Error::success();
    if (said.consume_front("failed: "))
      return makeError("rank 0 failed while " + What + ": " + said);
    return makeError("rank 0 made other collectives than this rank while " + What + " (it announced '" + said +
                     "')");
  }

  c10d::Store &Store;
  const int Rank;
  const std::string Prefix, Alive, What;
  const std::chrono::milliseconds Timeout;
  uint64_t Announcements = 0; ///< made (rank 0) or awaited (the others)
  bool Finished = false;
  std::thread Heartbeat; ///< rank 0's
  std::mutex Mutex;
  std::condition_variable Stop;
  bool Stopped = false;
};

} // namespace

std::unique_ptr<RankZeroPace> mixtape::dist::paceOverStore(c10d::Store &store, int rank, uint64_t sequence,
                                                            const std::string &what,
                                                            std::chrono::milliseconds timeout) {
  return std::make_unique<StorePace>(store, rank, sequence, what, timeout);
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
