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

void mixtape::dist::gatherTensorInSlices(Collectives &comm, const ShardLayout &layout, size_t index,
                                         llvm::ArrayRef<at::Tensor> shards, llvm::ArrayRef<at::Tensor> wholes) {
  const int64_t W = comm.worldSize(), S = layout.ShardSize, K = static_cast<int64_t>(shards.size());
  const int64_t first = layout.Offsets[index],
                end = index + 1 < layout.Offsets.size() ? layout.Offsets[index + 1] : layout.Total;
  // Rank r holds the tensor's elements [begin(r), begin(r) + length(r)) at begin(r) - r S in its shards.
  auto begin = [&](int64_t r) { return std::max(first, r * S); };
  auto length = [&](int64_t r) { return std::max<int64_t>(0, std::min(end, (r + 1) * S) - begin(r)); };
  int64_t longest = 0;
  for (int64_t r = 0; r < W; ++r)
    longest = std::max(longest, length(r));
  const int64_t rank = comm.rank(), slice = std::max<int64_t>(1, kSliceBufferElements / (W * K));
  for (int64_t from = 0; from < longest; from += slice) {
    const int64_t n = std::min(slice, longest - from);
    at::Tensor in = at::zeros({K, n}, shards.front().options()), out = at::empty({W, K, n}, in.options());
    if (const int64_t mine = std::min(n, length(rank) - from); mine > 0)
      for (int64_t k = 0; k < K; ++k)
        in[k].narrow(0, 0, mine).copy_(shards[k].narrow(0, begin(rank) - rank * S + from, mine));
    at::Tensor outFlat = out.view({-1});
    comm.allGather(in.view({-1}), outFlat);
    for (int64_t r = 0; r < W && !wholes.empty(); ++r)
      if (const int64_t theirs = std::min(n, length(r) - from); theirs > 0)
        for (int64_t k = 0; k < K; ++k)
          wholes[k].view({-1}).narrow(0, begin(r) - first + from, theirs).copy_(out[r][k].narrow(0, 0, theirs));
  }
}

at::Tensor mixtape::dist::squaredSumInSlices(const at::Tensor &shard) {
  at::Tensor sum = at::zeros({1}, shard.options().dtype(at::kDouble));
  const int64_t n = shard.numel();
  for (int64_t begin = 0; begin < n; begin += kSliceBufferElements)
    sum += shard.narrow(0, begin, std::min(kSliceBufferElements, n - begin)).to(at::kDouble).square_().sum();
  return sum;
}
