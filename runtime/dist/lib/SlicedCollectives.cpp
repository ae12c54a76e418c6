//===- SlicedCollectives.cpp ------------------------------------------------===//
#include "SlicedCollectives.h"

#include <ATen/ATen.h>

#include <algorithm>

using namespace mixtape::dist;

/// Calls `each(r, k, from, to)` for the elements [from, to) of tensor k that fall into
/// [begin, begin + n) of rank r's shard, as offsets into tensor k.
template <typename F>
static void forEachPiece(const ShardLayout &layout, llvm::ArrayRef<at::Tensor> flat, int64_t W, int64_t begin,
                         int64_t n, F each) {
  for (int64_t r = 0; r < W; ++r) {
    const int64_t lo = r * layout.ShardSize + begin, hi = lo + n;
    for (size_t k = 0; k < flat.size(); ++k) {
      if (!flat[k].defined())
        continue;
      const int64_t from = std::max(lo, layout.Offsets[k]), to = std::min(hi, layout.Offsets[k] + flat[k].numel());
      if (from < to)
        each(r, k, from - lo, from - layout.Offsets[k], to - from);
    }
  }
}

void mixtape::dist::reduceScatterInSlices(Collectives &comm, const ShardLayout &layout,
                                          llvm::ArrayRef<at::Tensor> flat, at::Tensor shard) {
  const int64_t W = comm.worldSize(), S = layout.ShardSize;
  const int64_t slice = std::max<int64_t>(1, kSliceBufferElements / W);
  for (int64_t begin = 0; begin < S; begin += slice) {
    const int64_t n = std::min(slice, S - begin);
    // Zeros: the padding, and a tensor left out here (it may have values on other ranks).
    at::Tensor in = at::zeros({W, n}, shard.options());
    forEachPiece(layout, flat, W, begin, n, [&](int64_t r, size_t k, int64_t inSlice, int64_t inTensor, int64_t length) {
      in[r].narrow(0, inSlice, length).copy_(flat[k].narrow(0, inTensor, length));
    });
    at::Tensor out = shard.narrow(0, begin, n);
    comm.reduceScatterSum(in.view({-1}), out);
  }
}

void mixtape::dist::allGatherInSlices(Collectives &comm, const ShardLayout &layout,
                                      llvm::ArrayRef<at::Tensor> flat) {
  const int64_t W = comm.worldSize(), S = layout.ShardSize, rank = comm.rank();
  const int64_t slice = std::max<int64_t>(1, kSliceBufferElements / W);
  const at::TensorOptions options = flat.front().options();
  for (int64_t begin = 0; begin < S; begin += slice) {
    const int64_t n = std::min(slice, S - begin);
    at::Tensor in = at::zeros({n}, options), out = at::empty({W, n}, options), outFlat = out.view({-1});
    forEachPiece(layout, flat, W, begin, n, [&](int64_t r, size_t k, int64_t inSlice, int64_t inTensor, int64_t length) {
      if (r == rank)
        in.narrow(0, inSlice, length).copy_(flat[k].narrow(0, inTensor, length));
    });
    comm.allGather(in, outFlat);
    forEachPiece(layout, flat, W, begin, n, [&](int64_t r, size_t k, int64_t inSlice, int64_t inTensor, int64_t length) {
      if (r != rank)
        flat[k].narrow(0, inTensor, length).copy_(out[r].narrow(0, inSlice, length));
    });
  }
}

at::Tensor mixtape::dist::squaredSumInSlices(const at::Tensor &shard) {
  at::Tensor sum = at::zeros({1}, shard.options().dtype(at::kDouble));
  const int64_t n = shard.numel();
  for (int64_t begin = 0; begin < n; begin += kSliceBufferElements)
    sum += shard.narrow(0, begin, std::min(kSliceBufferElements, n - begin)).to(at::kDouble).square_().sum();
  return sum;
}
