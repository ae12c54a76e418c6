//===- DataParallel.h - a training step shared by every rank ---*- C++ -*-===//
//
// Each rank runs forward and backward on its share of the batch; before the backward
// passes the ranks sum their loss-token counts (every rank then divides by the whole
// batch's count), and they sum the gradients in flat buckets of about 25 MB, so that W
// ranks take the step one rank would take on the whole batch. The buckets hold the
// parameters in reverse order, as backward finishes them: during the last micro-batch's
// backward, a hook on each parameter's gradient accumulator starts a bucket's all-reduce
// as soon as its gradients are final, so communication overlaps the rest of backward (as
// PyTorch's DDP does). Buckets start in the same order on every rank.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/dist/Collectives.h"
#include "mixtape/train/Trainer.h"

#include <memory>
#include <vector>

namespace torch::autograd {
struct Node;
}

namespace mixtape::dist {

class DataParallel : public train::StepSync {
public:
  /// PyTorch DDP's default bucket: large enough that per-call latency is amortized.
  static constexpr size_t kDefaultBucketBytes = size_t(25) << 20;

  explicit DataParallel(Collectives &collectives, size_t bucketBytes = kDefaultBucketBytes)
      : Comm(collectives), BucketBytes(bucketBytes) {}
  ~DataParallel() override;
  DataParallel(const DataParallel &) = delete;
  DataParallel &operator=(const DataParallel &) = delete;

  void sumCounts(int64_t &lossTokens, int64_t &tokens) override;
  /// Arms the gradient hooks (installed on the first call): the next backward starts the
  /// buckets whose gradients it finishes.
  void beforeLastBackward(llvm::ArrayRef<model::NamedParameter> params) override;
  /// Starts the buckets not started yet, waits for all, and writes the sums back.
  void sumGradients(llvm::ArrayRef<model::NamedParameter> params, llvm::MutableArrayRef<double> sums) override;

  /// Collective calls the last sumGradients made for its gradients, and how many of them
  /// had started during backward (a test's check).
  size_t lastBuckets() const { return Buckets.size(); }
  size_t lastStartedDuringBackward() const { return StartedDuringBackward; }

protected:
  /// Every rank must make the same calls: a parameter that got no gradient here (but may
  /// have elsewhere) takes part with zeros. Returns, per parameter, whether any rank had a
  /// gradient for it (one small all-reduce of flags).
  std::vector<bool> fillMissingGradients(llvm::ArrayRef<model::NamedParameter> params);
  /// Per flag, whether it is set on any rank (one small all-reduce).
  std::vector<bool> anyRank(const std::vector<bool> &flags);
  /// A parameter no rank had a gradient for gets none again, as one process leaves it:
  /// AdamW skips it (no decay, no moment update).
  static void dropGradients(llvm::ArrayRef<model::NamedParameter> params, const std::vector<bool> &anyRankHad);
  /// `sums` (the loss, then per-stream sums and counts) summed elementwise over the ranks.
  void sumLoss(llvm::MutableArrayRef<double> sums);

  Collectives &Comm;

private:
  friend struct GradientReadyHook;
  struct Bucket {
    std::vector<size_t> Params; ///< indices into the parameters, in reverse order
    at::Tensor Flat;
    size_t Waiting = 0; ///< gradients not final yet in this backward
    std::unique_ptr<PendingCollective> Sum;
  };
  /// Groups the parameters into buckets (once: the parameter list does not change).
  void planBuckets(llvm::ArrayRef<model::NamedParameter> params);
  /// A hook's news: parameter `index`'s gradient is final for this step.
  void gradientReady(size_t index);
  /// Starts buckets in order while the next one's gradients are all final.
  void startReadyBuckets();
  void start(Bucket &bucket);

  size_t BucketBytes;
  std::vector<model::NamedParameter> Params;
  std::vector<Bucket> Buckets;
  std::vector<size_t> BucketOf;
  std::vector<bool> Ready;
  size_t NextToStart = 0, StartedDuringBackward = 0;
  bool Armed = false;
  /// The parameters' gradient accumulators, kept alive so that every step's graph ends
  /// in them (and their hooks), with the keys of the hooks installed there.
  std::vector<std::shared_ptr<torch::autograd::Node>> Accumulators;
  std::vector<uintptr_t> HookKeys;
};

/// The micro-batch of a rank's share of `share` sequences: the largest that divides the
/// share and is at most the plan's `micro` (a share of 9 in micro-batches of at most 12: 9).
uint64_t shareMicroBatch(uint64_t share, uint64_t micro);

/// Every rank's parameters become rank 0's (after each rank loaded the same files, this
/// rules out a rank that read something else).
void broadcastParameters(Collectives &collectives, llvm::ArrayRef<model::NamedParameter> params);

} // namespace mixtape::dist
