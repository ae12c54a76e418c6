//===- DataParallel.h - a training step shared by every rank ---*- C++ -*-===//
//
// Each rank runs forward and backward on its share of the batch; before the backward
// passes the ranks sum their loss-token counts (every rank then divides by the whole
// batch's count), and after them they sum the gradients in flat buckets of about 25 MB, so
// that W ranks take the step one rank would take on the whole batch.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/dist/Collectives.h"
#include "mixtape/train/Trainer.h"

#include <vector>

namespace mixtape::dist {

class DataParallel : public train::StepSync {
public:
  /// PyTorch DDP's default bucket: large enough that per-call latency is amortized.
  static constexpr size_t kDefaultBucketBytes = size_t(25) << 20;

  explicit DataParallel(Collectives &collectives, size_t bucketBytes = kDefaultBucketBytes)
      : Comm(collectives), BucketBytes(bucketBytes) {}

  void sumCounts(int64_t &lossTokens, int64_t &tokens) override;
  void sumGradients(llvm::ArrayRef<model::NamedParameter> params, llvm::MutableArrayRef<double> sums) override;

  /// Collective calls the last sumGradients made for its gradients (a test's check).
  size_t lastBuckets() const { return LastBuckets; }

protected:
  /// Every rank must make the same calls: a parameter that got no gradient here (but may
  /// have elsewhere) takes part with zeros. Returns, per parameter, whether any rank had a
  /// gradient for it (one small all-reduce of flags).
  std::vector<bool> fillMissingGradients(llvm::ArrayRef<model::NamedParameter> params);
  /// A parameter no rank had a gradient for gets none again, as one process leaves it:
  /// AdamW skips it (no decay, no moment update).
  static void dropGradients(llvm::ArrayRef<model::NamedParameter> params, const std::vector<bool> &anyRankHad);
  /// `sums` (the loss, then per-stream sums and counts) summed elementwise over the ranks.
  void sumLoss(llvm::MutableArrayRef<double> sums);

  Collectives &Comm;

private:
  size_t BucketBytes;
  size_t LastBuckets = 0;
};

/// The micro-batch of a rank's share of `share` sequences: the largest that divides the
/// share and is at most the plan's `micro` (a share of 9 in micro-batches of at most 12: 9).
uint64_t shareMicroBatch(uint64_t share, uint64_t micro);

/// Every rank's parameters become rank 0's (after each rank loaded the same files, this
/// rules out a rank that read something else).
void broadcastParameters(Collectives &collectives, llvm::ArrayRef<model::NamedParameter> params);

} // namespace mixtape::dist
