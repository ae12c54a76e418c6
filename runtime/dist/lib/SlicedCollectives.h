//===- SlicedCollectives.h - ZeRO's collectives a slice at a time -*- C++ -*-===//
//
// The reduce-scatter and all-gather of a ShardLayout's flat buffer, run a slice of every
// rank's shard at a time so that neither the flat buffer nor Gloo's copy of it is ever
// whole: Gloo's reduce-scatter all-reduces a copy of its input, and its all-gather copies
// through a flat buffer, so one call over a model's gradients held them three times. The
// squared norm of a shard is summed a slice at a time for the same reason.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "ShardLayout.h"
#include "mixtape/dist/Collectives.h"
#include "mixtape/plan/MemoryPlan.h"

#include <ATen/core/Tensor.h>

namespace mixtape::dist {

/// Elements of one call's buffer (W slices), as the memory plan counts them.
inline constexpr int64_t kSliceBufferElements = plan::kCollectiveSliceElements;

/// Adds over the ranks the tensors `flat` (1-D, laid out by `layout`; undefined: zeros) and
/// writes this rank's shard of the sum into `shard` ([ShardSize]).
void reduceScatterInSlices(Collectives &comm, const ShardLayout &layout, llvm::ArrayRef<at::Tensor> flat,
                           at::Tensor shard);

/// Gives every rank the values of each rank's shard of the tensors `flat` (1-D, laid out
/// by `layout`): rank r's pieces of them are copied into the others' `flat`. No rank holds
/// its shard apart, only one slice of it at a time.
void allGatherInSlices(Collectives &comm, const ShardLayout &layout, llvm::ArrayRef<at::Tensor> flat);

/// Gathers tensor `index` of `layout` from every rank's shards `shards` (each [ShardSize]:
/// several of one layout, such as both AdamW moments, travel together) into `wholes` (one
/// contiguous tensor per shard, of the tensor's elements), a slice at a time. A tensor may
/// lie in the shards of several ranks; each call carries the same number of its elements
/// from every rank. Every rank takes part; one that passes no `wholes` only sends.
void gatherTensorInSlices(Collectives &comm, const ShardLayout &layout, size_t index,
                          llvm::ArrayRef<at::Tensor> shards, llvm::ArrayRef<at::Tensor> wholes);

/// The sum of squares of `shard` in double, as a one-element tensor on its device: a
/// slice at a time, so that the double copy is one slice's, not the shard's (on a ZeRO-1
/// shard of 67M parameters the whole copy and its square were 1 GiB).
at::Tensor squaredSumInSlices(const at::Tensor &shard);

} // namespace mixtape::dist
