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

/// Whether fusedAdamW can update tensors like `param`: LibTorch 2.x, CUDA tensors.
inline bool canFuseAdamW(const at::Tensor &param) {
#if MIXTAPE_TORCH_AT_LEAST(2, 0)
  return param.is_cuda();
#else
  (void)param;
  return false;
#endif
}

/// One AdamW update of `params` with LibTorch 2.x's multi-tensor fused kernel (only where
/// canFuseAdamW). `steps` are per-parameter float step counts, already incremented for this
/// step, as torch/optim/adamw.py passes them; the update is the plain loop's.
inline void fusedAdamW(at::TensorList params, at::TensorList grads, at::TensorList expAvgs,
                       at::TensorList expAvgSqs, at::TensorList steps, double lr, double beta1,
                       double beta2, double weightDecay, double eps) {
#if MIXTAPE_TORCH_AT_LEAST(2, 0)
  at::_fused_adamw_(params, grads, expAvgs, expAvgSqs, /*max_exp_avg_sqs=*/{}, steps, lr, beta1,
                    beta2, weightDecay, eps, /*amsgrad=*/false, /*maximize=*/false);
#else
  (void)params, (void)grads, (void)expAvgs, (void)expAvgSqs, (void)steps, (void)lr, (void)beta1,
      (void)beta2, (void)weightDecay, (void)eps;
  TORCH_CHECK(false, "fusedAdamW needs LibTorch 2.x (see canFuseAdamW)");
#endif
}

} // namespace mixtape::compat
