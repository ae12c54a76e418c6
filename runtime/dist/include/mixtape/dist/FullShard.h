//===- FullShard.h - parameters, gradients and AdamW state sharded -*- C++ -*-===//
//
// `--shard full`, in the manner of PyTorch's FSDP (Zhao et al. 2023, "PyTorch FSDP:
// Experiences on Scaling Fully Sharded Data Parallel"). The model's parameters form
// units: one per part (the embeddings, each block, the final norm with the head; a tied head's
// part joins the embeddings'). Each unit's
// parameters are laid end to end, padded to a multiple of W and cut into W shards
// (ShardLayout); rank r keeps shard r of every unit (the weights the optimizer updates)
// and AdamW's moments for it. The parameter tensors hold no storage except while their
// unit is in use:
//  - forward: a block's parameters are all-gathered into their tensors just before the
//    block runs and freed after it (Model::setPartRunner); as a part starts, the all-gather
//    of the next part's unit starts in the background, so that it overlaps the part's compute;
//  - backward: when the gradient of a block's output arrives, its parameters are gathered
//    again (autograd saved the tensors, whose storage is refilled) and the all-gather of the
//    block before it starts in the background; once autograd has
//    accumulated each of the block's gradients, the gradients are reduce-scattered (rank r
//    adds the sum of its shard) a slice of every shard at a time, and the gradients and
//    parameters freed; the embeddings' unit is a block's like any other;
//  - the outer unit (the head's) is gathered when its part runs and kept until its
//    gradients are reduced in backward (or, without gradients, to the pass's end);
//  - the step: the gradient norm is the square root of the ranks' summed squared shard
//    norms; each rank updates its shards with AdamW.
// At most one gather runs ahead (FSDP's prefetch with a limit of one): a rank holds the
// running unit, the outer one and the next unit's gathered buffer.
// Training builds the model sharded (build): a unit at a time is given storage, filled on
// rank 0, broadcast and cut, so that no rank ever holds the whole model; resuming from a
// sharded checkpoint, each rank reads its own shards instead and no unit is ever whole.
// Mixed precision, as FSDP's MixedPrecision (FullShardOptions): the parameter tensors can be
// of a narrower compute dtype than the shards, so that a gather moves and holds half the
// bytes of fp32; their gradients, of that dtype too, are reduce-scattered in the reduce
// dtype into the shards' dtype. The shards, the moments and the step stay in the shards' dtype,
// as does everything written (saveWhole, checkpointSlices).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/dist/DataParallel.h"
#include "mixtape/dist/ShardedCheckpoint.h"
#include "mixtape/train/AdamW.h"

#include "llvm/ADT/STLFunctionalExtras.h"

#include <c10/core/ScalarType.h>

#include <memory>
#include <optional>
#include <vector>

namespace mixtape::dist {

struct ShardLayout;

/// The dtypes of full sharding's mixed precision; unset: the parameters' own (no mixed precision).
struct FullShardOptions {
  /// The gathered parameters the parts compute with, and so their gradients.
  std::optional<c10::ScalarType> ComputeDtype;
  /// The gradients' reduce-scatter; the summed gradient shards keep the shards' dtype.
  /// bf16 needs NCCL (Gloo sums no bf16: create and build refuse it on a CPU world).
  std::optional<c10::ScalarType> ReduceDtype;
};

class FullShard final : public DataParallel, public model::PartRunner {
public:
  /// Takes this rank's shard of `model`'s parameters and `optimizer`'s moments, frees
  /// the parameters' storage and leaves `optimizer` no moments; installs itself as the
  /// model's part runner until destroyed. Every rank must pass the same model.
  /// With a `ComputeDtype` in `options` the parameter tensors take that dtype (once their
  /// shards are taken) and hold it from then on.
  static llvm::Expected<std::unique_ptr<FullShard>> create(Collectives &collectives, model::Model &model,
                                                           train::AdamW &optimizer, FullShardOptions options = {});
  /// create for a model whose parameters hold no storage yet (Model::createUnallocated),
  /// built one unit at a time: its parameters get storage, rank 0 gives them their start
  /// values with `fill` (indices into the model's parameters) and broadcasts them, each rank
  /// keeps its shard and frees the rest. No rank ever holds more than one unit whole.
  /// Without `fill` no unit gets storage and nothing is broadcast: the shards start at zero
  /// for each rank to read its own from a sharded checkpoint (checkpointSlices,
  /// loadCheckpointSlices), so no rank holds any unit whole.
  static llvm::Expected<std::unique_ptr<FullShard>>
  build(Collectives &collectives, model::Model &model, train::AdamW &optimizer,
        llvm::function_ref<llvm::Error(llvm::ArrayRef<size_t>)> fill, FullShardOptions options = {});
  ~FullShard() override;

  /// Also starts the step's gradient shards afresh.
  void sumCounts(int64_t &lossTokens, int64_t &tokens) override;
  void beforeLastBackward(llvm::ArrayRef<model::NamedParameter>) override {}
  /// The gradients were reduce-scattered during backward; sums the loss.
  void sumGradients(llvm::ArrayRef<model::NamedParameter> params, llvm::MutableArrayRef<double> sums) override;
  double clipAndStep(train::AdamW &optimizer, double clipNorm, double lr) override;
  at::Tensor run(size_t part, const at::Tensor &input,
                 llvm::function_ref<at::Tensor(const at::Tensor &)> body) override;

  /// Collective: every unit's parameters gathered and kept (evals, whose ranks may run
  /// different numbers of forward passes) until releaseWhole().
  void gatherWhole();
  void releaseWhole();
  /// Collective: rank 0 writes the model's weights to `modelPath` (as Model::saveWeights)
  /// and `optimizer`'s state to `optimizerPath` (as AdamW::saveState), the same bytes as
  /// without sharding. Units are all-gathered as the files reach them and dropped after
  /// their last tensor: no rank ever holds the whole model. The others wait for rank 0's
  /// writes between the gathers however long they take (Collectives::paceByRankZero); every
  /// rank gets rank 0's outcome, `what` naming the work in the others' error.
  llvm::Error saveWhole(const train::AdamW &optimizer, const std::string &what, llvm::StringRef modelPath,
                        llvm::StringRef optimizerPath);

  /// This rank's shard of every parameter and of its moments, as views of the shards it
  /// keeps: what it writes to a sharded checkpoint and what it loads from one.
  std::vector<StateSlice> checkpointSlices() const;

  /// Elements of the shards this rank keeps, summed over units (a test's check).
  int64_t shardElements() const;

private:
  struct Unit;
  struct UnitGather;
  class UnitWalk;
  friend struct UnitGradientHook;

  /// Forms the units and their layouts; takes nothing yet.
  FullShard(Collectives &collectives, model::Model &model, FullShardOptions options);
  /// This rank's shard of `unit`'s parameters, and of their moments where `optimizer` has them.
  void takeShard(Unit &unit, const train::AdamW &optimizer);
  /// `unit`'s shards of weights and moments, zeros, and its gradient shard.
  void allocateShards(Unit &unit);
  /// Once every shard is taken: leaves `optimizer` no moments, frees the parameters and
  /// gives them the compute dtype, hooks the gradients and installs itself as the model's
  /// part runner.
  void finishSetup(train::AdamW &optimizer);
  /// All-gathers `unit`'s parameters into their tensors (nothing when they are there),
  /// finishing the gather started ahead for it if there is one.
  void gather(Unit &unit);
  /// A buffer for `unit`'s gathered parameters from GatherBuffers: one no parameter uses
  /// any more, of at least its size and at most an eighth more, else a new one as large as
  /// the largest unit of that class.
  at::Tensor gatherBuffer(const Unit &unit);
  /// Starts the all-gather of `part`'s unit in the background unless it is gathered or
  /// another gather runs ahead.
  void prefetch(size_t part);
  /// Waits for the gather running ahead, if any, and drops its buffer.
  void dropPrefetch();
  /// Frees the storage of `unit`'s parameters (unless the whole model is kept).
  void release(Unit &unit);
  /// Autograd accumulated parameter `param`'s gradient in this backward pass.
  void gradientReady(size_t param);
  /// Reduce-scatters `unit`'s gradients into its gradient shard, frees them and its parameters.
  void reduce(Unit &unit);

  model::Model &Model;
  llvm::ArrayRef<model::NamedParameter> Params;
  std::vector<Unit> Units;
  std::vector<size_t> UnitOfPart, UnitOfParam;
  size_t Outer = 0; ///< the last part's unit (the first's too, with a tied head)
  /// The shards' (the parameters' as created), the gathered parameters' and the reduce-scatter's.
  c10::ScalarType ShardDtype, ComputeDtype, ReduceDtype;
  bool KeepWhole = false;
  std::unique_ptr<UnitGather> Ahead; ///< the gather started ahead of its unit's use
  /// Every buffer units were gathered into, kept for the next gathers: the parameters point
  /// into them while gathered. A step allocates them in the same order each time, but
  /// between the gradient shards and autograd's own allocations malloc's arena fragmented
  /// (a third above the live peak of 2 ranks of a 134M Llama).
  std::vector<at::Tensor> GatherBuffers;
  /// The parameters' gradient accumulators, kept alive with the keys of our hooks.
  std::vector<std::shared_ptr<torch::autograd::Node>> Accumulators;
  std::vector<uintptr_t> HookKeys;
};

} // namespace mixtape::dist
