//===- SlicedCollectives.h - ZeRO's collectives a slice at a time -*- C++ -*-===//
//
// The reduce-scatter and all-gather of a ShardLayout's flat buffer, run a slice of every
// rank's shard at a time so that neither the flat buffer nor Gloo's copy of it is ever
// whole: Gloo's reduce-scatter all-reduces a copy of its input, and its all-gather copies
// through a flat buffer, so one call over a model's gradients held them three times.
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

/// Gathers every rank's `shard` into the tensors `flat` (1-D, laid out by `layout`).
void allGatherInSlices(Collectives &comm, const ShardLayout &layout, const at::Tensor &shard,
                       llvm::ArrayRef<at::Tensor> flat);

} // namespace mixtape::dist
