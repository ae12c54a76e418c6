//===- TorchCompat.h - one home for LibTorch version differences -*- C++ -*-===//
//
// CI builds against Debian's LibTorch 1.13; GPU machines have 2.x. The 2.x fast paths
// (fused scaled_dot_product_attention, the fused AdamW kernel) sit here, each with the
// plain ATen fallback 1.13 runs. Include only from implementation files: it pulls in
// <ATen/ATen.h>.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/model/Attention.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <cmath>
#include <limits>
#include <optional>

#define MIXTAPE_TORCH_AT_LEAST(major, minor)                                                  \
  (TORCH_VERSION_MAJOR > (major) ||                                                           \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace mixtape::compat {

/// A forward pass's attention mask, made once for all its layers. `Allowed`: undefined for
/// plain causal attention, else bool [B, 1, T, T], true where a query may attend a key (every
/// row has at least one). `Additive`: the same as 0 / -inf in model::groupedAttention's
/// layout, [group * T, T] or [B * KV, group * T, T]; undefined where LibTorch 2.x's fused
/// kernel reads `Allowed` (CUDA).
struct AttentionMask {
  at::Tensor Allowed, Additive;
};

/// The mask of attention with KV heads of `group` query heads each over T positions, for
/// tensors like `options`.
inline AttentionMask attentionMask(const at::Tensor &allowed, int64_t KV, int64_t group, int64_t T,
                                   at::TensorOptions options) {
  AttentionMask mask{allowed, {}};
#if MIXTAPE_TORCH_AT_LEAST(2, 0)
  if (options.device().is_cuda())
    return mask;
#endif
  const double inf = std::numeric_limits<double>::infinity();
  if (!allowed.defined()) {
    mask.Additive = at::full({T, T}, -inf, options).triu(1).repeat({group, 1});
  } else {
    const int64_t B = allowed.size(0);
    mask.Additive = at::zeros(allowed.sizes(), options)
                        .masked_fill(allowed.logical_not(), -inf)
                        .unsqueeze(2)
                        .expand({B, KV, group, T, T})
                        .reshape({B * KV, group * T, T});
  }
  return mask;
}

/// Attention over q [B, H, T, D] and k, v [B, KV, T, D], KV dividing H: KV head j serves
/// query heads j*H/KV .. (j+1)*H/KV - 1 (grouped-query attention; KV == H is plain).
/// LibTorch 2.x's fused kernel on CUDA; elsewhere model::groupedAttention, which never
/// repeats K and V and folds the scale and the mask into the score GEMM.
inline at::Tensor attention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
                            const AttentionMask &mask) {
  const int64_t KV = k.size(1), group = q.size(1) / KV;
#if MIXTAPE_TORCH_AT_LEAST(2, 0)
  if (q.is_cuda()) {
    at::Tensor kr = group == 1 ? k : k.repeat_interleave(group, 1);
    at::Tensor vr = group == 1 ? v : v.repeat_interleave(group, 1);
    if (!mask.Allowed.defined())
      return at::scaled_dot_product_attention(q, kr, vr, {}, 0.0, /*is_causal=*/true);
    return at::scaled_dot_product_attention(q, kr, vr, mask.Allowed, 0.0, /*is_causal=*/false);
  }
#endif
  // The query heads that share a KV head are one [group * T, D] matrix.
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  return model::groupedAttention(q.reshape({B * KV, group * T, D}), k.reshape({B * KV, T, D}),
                                 v.reshape({B * KV, T, D}), mask.Additive, 1.0 / std::sqrt(double(D)),
                                 /*causal=*/true)
      .view({B, H, T, D});
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

/// The dtype CUDA autocast computes matrix products in for `t`, if autocast is on and `t`
/// lives on a CUDA device. Custom autograd functions read it in forward to run their backward
/// pass (where autocast is off) in the same precision.
inline std::optional<at::ScalarType> cudaAutocastType(const at::Tensor &t) {
  if (!t.is_cuda())
    return std::nullopt;
#if MIXTAPE_TORCH_AT_LEAST(2, 4)
  if (at::autocast::is_autocast_enabled(at::kCUDA))
    return at::autocast::get_autocast_dtype(at::kCUDA);
#else
  if (at::autocast::is_enabled())
    return at::autocast::get_autocast_gpu_dtype();
#endif
  return std::nullopt;
}

/// bf16 autocast on CUDA for the guard's lifetime when `param` (any model parameter) lives
/// on a CUDA device; nothing on the CPU, which trains in fp32. Restores what it found, and
/// drops autocast's cast cache when the outermost guard ends, as torch.autocast does.
class CudaAutocast {
public:
  explicit CudaAutocast(const at::Tensor &param) : Active(param.is_cuda()) {
    if (!Active)
      return;
#if MIXTAPE_TORCH_AT_LEAST(2, 4)
    WasEnabled = at::autocast::is_autocast_enabled(at::kCUDA);
    WasType = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
    WasEnabled = at::autocast::is_enabled();
    WasType = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
    at::autocast::increment_nesting();
  }
  ~CudaAutocast() {
    if (!Active)
      return;
    if (at::autocast::decrement_nesting() == 0)
      at::autocast::clear_cache();
#if MIXTAPE_TORCH_AT_LEAST(2, 4)
    at::autocast::set_autocast_enabled(at::kCUDA, WasEnabled);
    at::autocast::set_autocast_dtype(at::kCUDA, WasType);
#else
    at::autocast::set_enabled(WasEnabled);
    at::autocast::set_autocast_gpu_dtype(WasType);
#endif
  }
  CudaAutocast(const CudaAutocast &) = delete;
  CudaAutocast &operator=(const CudaAutocast &) = delete;

private:
  bool Active;
  bool WasEnabled = false;
  at::ScalarType WasType = at::kFloat;
};

/// bf16 autocast on the CPU for the guard's lifetime: where a test stands a CPU in for a
/// CUDA device that trains under CudaAutocast (full sharding's bf16 parameters, whose parts
/// mix them with fp32 activations). Restores what it found.
class CpuAutocast {
public:
  CpuAutocast() {
#if MIXTAPE_TORCH_AT_LEAST(2, 4)
    WasEnabled = at::autocast::is_autocast_enabled(at::kCPU);
    WasType = at::autocast::get_autocast_dtype(at::kCPU);
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
#else
    WasEnabled = at::autocast::is_cpu_enabled();
    WasType = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
#endif
    at::autocast::increment_nesting();
  }
  ~CpuAutocast() {
    if (at::autocast::decrement_nesting() == 0)
      at::autocast::clear_cache();
#if MIXTAPE_TORCH_AT_LEAST(2, 4)
    at::autocast::set_autocast_enabled(at::kCPU, WasEnabled);
    at::autocast::set_autocast_dtype(at::kCPU, WasType);
#else
    at::autocast::set_cpu_enabled(WasEnabled);
    at::autocast::set_autocast_cpu_dtype(WasType);
#endif
  }
  CpuAutocast(const CpuAutocast &) = delete;
  CpuAutocast &operator=(const CpuAutocast &) = delete;

private:
  bool WasEnabled = false;
  at::ScalarType WasType = at::kFloat;
};

} // namespace mixtape::compat
