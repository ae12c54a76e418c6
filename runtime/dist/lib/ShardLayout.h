//===- ShardLayout.h - tensors end to end, cut into W shards ---*- C++ -*-===//
//
// ZeRO's layout, shared by ShardedAdamW (the whole model as one buffer) and FullShard (a
// buffer per unit): tensors laid end to end in one flat buffer, padded to a multiple of
// W and cut into W equal shards; rank r owns shard r.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/ArrayRef.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace mixtape::dist {

struct ShardLayout {
  /// The part of tensor `Tensor` (an index into the sizes given) in this rank's shard.
  struct Piece {
    size_t Tensor;
    int64_t InTensor, InShard, Length;
  };

  ShardLayout(llvm::ArrayRef<int64_t> numels, int rank, int worldSize) {
    for (int64_t n : numels) {
      Offsets.push_back(Total);
      Total += n;
    }
    ShardSize = (Total + worldSize - 1) / worldSize;
    const int64_t begin = rank * ShardSize, end = begin + ShardSize;
    for (size_t i = 0; i < numels.size(); ++i) {
      const int64_t lo = std::max(begin, Offsets[i]), hi = std::min(end, Offsets[i] + numels[i]);
      if (lo < hi)
        Pieces.push_back({i, lo - Offsets[i], lo - begin, hi - lo});
    }
  }

  std::vector<int64_t> Offsets; ///< of each tensor in the flat buffer
  int64_t Total = 0, ShardSize = 0;
  std::vector<Piece> Pieces;
};

} // namespace mixtape::dist
