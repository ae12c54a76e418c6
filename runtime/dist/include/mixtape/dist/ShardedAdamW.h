//===- ShardedAdamW.h - ZeRO-1: each rank updates a shard ------*- C++ -*-===//
//
// ZeRO stage 1 (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training
// Trillion Parameter Models", section 5.1): the parameters, laid end to end in one flat
// buffer padded to a multiple of W, are cut into W equal shards. After the backward passes
// the gradients are reduce-scattered so that rank r holds the sum of its shard only; it
// clips that shard by the global norm (the ranks sum their shards' squared norms), updates
// its slice of the parameters with AdamW moments for that slice alone, and the ranks
// all-gather the updated parameters. The optimizer state per rank is 1/W of AdamW's. Both
// collectives run a slice of every shard at a time (SlicedCollectives.h): the flat buffer
// is never formed whole.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/dist/DataParallel.h"
#include "mixtape/dist/ShardedCheckpoint.h"
#include "mixtape/train/AdamW.h"

#include "llvm/ADT/STLFunctionalExtras.h"

#include <memory>
#include <vector>

namespace mixtape::dist {

struct ShardLayout;

class ShardedAdamW final : public DataParallel {
public:
  /// Takes this rank's shard of `optimizer`'s moments (zeros where it holds none) and
  /// leaves it none: from here on `optimizer` keeps only its options and step count.
  /// The parameters must be contiguous and share one dtype and device.
  ~ShardedAdamW() override;
  static llvm::Expected<std::unique_ptr<ShardedAdamW>> create(Collectives &collectives, train::AdamW &optimizer);

  /// Nothing starts during backward: the gradients are reduce-scattered after it.
  void beforeLastBackward(llvm::ArrayRef<model::NamedParameter>) override {}
  void sumGradients(llvm::ArrayRef<model::NamedParameter> params, llvm::MutableArrayRef<double> sums) override;
  double clipAndStep(train::AdamW &optimizer, double clipNorm, double lr) override;

  /// Collective: rank 0 runs `saveWeights` (the weights are whole on every rank) and then
  /// writes `optimizer`'s state to `optimizerPath` (as AdamW::saveState), the same bytes as
  /// without ZeRO-1. Each parameter's moments are all-gathered as the file reaches them and
  /// dropped after: no rank ever holds the whole state. The others wait for rank 0's work
  /// between the gathers however long it takes (Collectives::paceByRankZero); every rank
  /// gets rank 0's outcome, `what` naming the work in the others' error.
  llvm::Error saveWhole(const train::AdamW &optimizer, const std::string &what,
                        llvm::function_ref<llvm::Error()> saveWeights, llvm::StringRef optimizerPath);

  /// On save, this rank's shard of the weights and moments (each element on one rank); on
  /// load, the whole weights (every rank keeps them) and its shard of the moments.
  std::vector<StateSlice> checkpointSlices(const train::AdamW &optimizer, SlicePurpose purpose) const;

  /// Elements of the flat buffer each rank owns (a test's check).
  int64_t shardSize() const;

private:
  ShardedAdamW(Collectives &collectives, train::AdamW &optimizer);
  /// Parameter `p` as a flat view of its storage.
  static at::Tensor flatView(const model::NamedParameter &p);

  std::unique_ptr<ShardLayout> Layout; ///< the parameters end to end
  at::Tensor ExpAvg, ExpAvgSq; ///< [ShardSize]: this rank's moments
  at::Tensor GradShard;        ///< [ShardSize]: the summed gradients of the shard
  std::vector<bool> AnyRankHad; ///< per parameter: whether any rank had a gradient for it
};

} // namespace mixtape::dist
