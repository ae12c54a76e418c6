//===- Collectives.h - what data parallelism needs from c10d ---*- C++ -*-===//
//
// The handful of collectives data-parallel training uses, over c10d's process groups:
// Gloo for CPU tensors, NCCL for CUDA tensors, a rendezvous through c10d::TCPStore at
// rank 0's host. c10d's API moved between LibTorch 1.13 and 2.x; that stays in lib/.
// Every operation blocks until done (the start* ones until their wait()); a peer that died or stopped answering makes it
// throw (std::runtime_error naming the operation) within the timeout.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/dist/World.h"

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/Error.h"

#include <ATen/core/Tensor.h>

#include <chrono>
#include <exception>
#include <memory>
#include <string>

namespace mixtape::dist {

/// A collective in flight. wait() blocks until it is done and throws as the blocking call
/// would; destroying it without waiting abandons the result, not the operation.
class PendingCollective {
public:
  virtual ~PendingCollective() = default;
  virtual void wait() = 0;
};

/// A run of collectives that rank 0 paces, working alone between them: a streamed save,
/// where rank 0 writes the tensors one collective gathered before the next starts. The
/// others wait for each collective in the rendezvous store, as rankZeroAlone's wait, for as
/// long as rank 0's work takes while its heartbeat goes on, not inside the collective,
/// whose timeout bounds any wait. Every rank makes the same calls in the same order.
class RankZeroPace {
public:
  virtual ~RankZeroPace() = default;
  /// Before each collective of the run: rank 0 announces it, the others wait until it has.
  /// `doing` names rank 0's work since the last one ("writing model.safetensors up to
  /// 'norm.weight'") in the others' error. Throws std::runtime_error on the others when rank
  /// 0 gives no sign of life for the timeout, dies or failed.
  virtual void next(const std::string &doing) = 0;
  /// Ends the run: rank 0 publishes its outcome `local` and gets it back; the others get
  /// rank 0's (or at once their own `local` error: a collective or the wait failed).
  virtual llvm::Error finish(llvm::Error local) = 0;
};

class Collectives {
public:
  virtual ~Collectives() = default;
  virtual int rank() const = 0;
  virtual int worldSize() const = 0;

  /// In place: every rank ends with the elementwise sum over ranks.
  virtual void allReduceSum(at::Tensor &tensor) = 0;
  /// allReduceSum started in the background: `tensor` must stay untouched until wait().
  /// Every rank must start its collectives in the same order.
  virtual std::unique_ptr<PendingCollective> startAllReduceSum(at::Tensor &tensor);
  /// `input` (contiguous, worldSize() * output.numel() elements) is summed over ranks;
  /// rank r keeps slice r of the sum in `output`.
  virtual void reduceScatterSum(const at::Tensor &input, at::Tensor &output) = 0;
  /// `output` (contiguous, worldSize() * input.numel() elements) gets every rank's
  /// `input`, rank 0's first.
  virtual void allGather(const at::Tensor &input, at::Tensor &output) = 0;
  /// allGather started in the background: `input` and `output` must stay untouched until
  /// wait(). Every rank must start its collectives in the same order.
  virtual std::unique_ptr<PendingCollective> startAllGather(const at::Tensor &input, at::Tensor &output);
  /// In place: every rank ends with `root`'s values.
  virtual void broadcast(at::Tensor &tensor, int root) = 0;
  virtual void barrier() = 0;
  /// Where this group's tensors live (CPU for Gloo, CUDA for NCCL).
  virtual c10::DeviceType deviceType() const = 0;
  /// Work rank 0 does alone: files the others need next (an init or merge node, a
  /// checkpoint, a done marker). Rank 0 runs `work`; the others wait for its end however
  /// long that takes, as long as rank 0 is alive: its heartbeat in the rendezvous store
  /// must not stop for the timeout. Rank 0 gets `work`'s error, the others one saying that
  /// rank 0 failed (or died) while `what` ("saving the checkpoint at step 40"). A pace of no
  /// collectives.
  llvm::Error rankZeroAlone(const std::string &what, llvm::function_ref<llvm::Error()> work);
  /// Starts a run of collectives rank 0 paces (RankZeroPace); `what` names it in the
  /// others' errors, as rankZeroAlone's. Every rank starts the same ones in the same order.
  virtual std::unique_ptr<RankZeroPace> paceByRankZero(const std::string &what) = 0;
  /// Runs `run` on every rank with such a pace and ends it with `run`'s outcome, an
  /// exception (a failed collective or wait) taken as an error: rank 0 gets its own, the
  /// others rank 0's unless theirs failed.
  llvm::Error rankZeroPaces(const std::string &what, llvm::function_ref<llvm::Error(RankZeroPace &)> run);

  /// Sugar over broadcast for one number (a resume step, a yes/no).
  int64_t broadcastValue(int64_t value, int root = 0);
};

/// Where the tensors live: the process group must match (Gloo: CPU, NCCL: CUDA).
enum class Device { CPU, CUDA };

/// The collectives of `world`: a trivial implementation for a world of one, else a c10d
/// process group for `device` after a rendezvous at world.MasterAddr:MasterPort (rank 0
/// serves the store unless torchrun's agent does). `timeout` bounds the rendezvous and
/// every operation. Errors name this build's missing backend or the unreachable store.
llvm::Expected<std::unique_ptr<Collectives>> connect(const World &world, Device device,
                                                     std::chrono::milliseconds timeout);
/// connect's process group, made even for a world of one (a one-GPU machine's only way to
/// run NCCL: tests on the GPU machine).
llvm::Expected<std::unique_ptr<Collectives>> connectProcessGroup(const World &world, Device device,
                                                                 std::chrono::milliseconds timeout);

/// Whether this build has a process group for `device` (Gloo / NCCL compiled in).
bool hasBackend(Device device);

/// A LibTorch exception's message without its C++ backtrace ("Exception raised from ...").
std::string firstLines(const std::exception &e);

} // namespace mixtape::dist
