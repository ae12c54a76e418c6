//===- Attention.h - grouped-query attention as one autograd function -*- C++ -*-===//
//
// Softmax attention where the query heads that share a KV head are one matrix, computed
// and differentiated a slice of (sequence, KV head) pairs per thread. Each thread's small
// GEMMs then run single-threaded side by side, where ATen's bmm would run them one after
// another, each split over all threads (the quickstart's 256 x 16 x 128 products spend
// more on that split than on arithmetic), and a slice's scores stay in cache from the
// softmax to the product with V. compat::attention uses it wherever no fused kernel exists
// (CPU, and LibTorch 1.13 everywhere). With at least as many pairs as threads, each pair is
// computed whole by one thread, so the bits do not depend on how the pairs are split.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <ATen/core/Tensor.h>

namespace mixtape::model {

/// softmax(mask + q k^T * scale) v for q [N, G*T, D] (G query heads of one KV head,
/// stacked), k, v [N, T, D], and an additive mask (0 or -inf, no gradient) of shape
/// [G*T, T] (the same for every pair) or [N, G*T, T]. Differentiable in q, k and v.
/// Every row of the mask must allow at least one key. `causal`: the mask hides every key
/// after its query (causal, or causal within documents), so the scores of later queries'
/// keys for earlier queries are never computed. No double backward.
at::Tensor groupedAttention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
                            const at::Tensor &mask, double scale, bool causal);

} // namespace mixtape::model
