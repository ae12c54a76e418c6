//===- TorchCompat.h - one home for LibTorch version differences -*- C++ -*-===//
//
// CI builds against Debian's LibTorch 1.13; GPU machines have 2.x. The 2.x fast paths
// (fused scaled_dot_product_attention, the fused AdamW kernel) sit here, each with the
// plain ATen fallback 1.13 runs. Include only from implementation files: it pulls in
// <ATen/ATen.h>.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <ATen/ATen.h>
#include <torch/version.h>

#include <cmath>

#define MIXTAPE_TORCH_AT_LEAST(major, minor)                                                  \
  (TORCH_VERSION_MAJOR > (major) ||                                                           \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace mixtape::compat {

/// Attention over q [B, H, T, D], k, v [B, H, T, D] (heads already repeated for GQA).
/// `allowed`: undefined for plain causal attention, else a bool mask broadcastable to
/// [B, H, T, T], true where a query may attend a key (every row has at least one).
inline at::Tensor attention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
                            const at::Tensor &allowed) {
#if MIXTAPE_TORCH_AT_LEAST(2, 0)
  if (!allowed.defined())
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
  return at::scaled_dot_product_attention(q, k, v, allowed, 0.0, /*is_causal=*/false);
#else
  int64_t t = q.size(-2);
  at::Tensor mask = allowed.defined()
                        ? allowed
                        : at::ones({t, t}, q.options().dtype(at::kBool)).tril();
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(double(q.size(-1))));
  scores = scores.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
  return at::matmul(at::softmax(scores, -1), v);
#endif
}

/// Whether this LibTorch has the multi-tensor fused AdamW kernel (2.x, CUDA tensors).
constexpr bool HasFusedAdamW = MIXTAPE_TORCH_AT_LEAST(2, 0);

} // namespace mixtape::compat
