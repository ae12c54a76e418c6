//===- ChunkedLoss.cpp - classifier and cross-entropy a chunk of tokens at a time -===//
//
// The logits of a batch are its largest activation (Llama-3's 128k vocabulary: 4 GB of fp32
// logits for 8k tokens), yet the loss needs only two numbers of each position's row: its
// logsumexp and its target's logit. The forward pass computes them chunk by chunk; the
// backward pass computes each chunk's logits again for softmax - onehot.
//
//===----------------------------------------------------------------------===//
#include "mixtape/model/Model.h"
#include "mixtape/model/TorchCompat.h"
#include "mixtape/plan/MemoryPlan.h"

#include <torch/csrc/autograd/custom_function.h>

#if MIXTAPE_CUDA_KERNELS
#include "../cuda/LossKernels.h"

#include <c10/cuda/CUDAStream.h>
#endif

#include <algorithm>
#include <cstdlib>

using namespace mixtape::model;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

/// Where sums run: fp32 for bf16, fp16 and fp32 products, fp64 for a float64 model's.
at::ScalarType reduced(at::ScalarType compute) { return at::promote_types(compute, at::kFloat); }

/// One chunk's logits [n, V] from products in `compute`, in its reduction dtype.
at::Tensor chunkLogits(const at::Tensor &hidden, const at::Tensor &head, at::ScalarType compute) {
  return at::mm(hidden.to(compute), head.t()).to(reduced(compute));
}

#if MIXTAPE_CUDA_KERNELS
/// The row kernels (runtime/model/cuda) take bf16 and fp32 logits on CUDA; MIXTAPE_CUDA_KERNELS=0
/// in the environment keeps ATen's ops, for comparing the two.
bool fusedRows(const at::Tensor &hidden, at::ScalarType compute) {
  static const bool enabled = [] {
    const char *env = std::getenv("MIXTAPE_CUDA_KERNELS");
    return !env || std::string(env) != "0";
  }();
  return enabled && hidden.is_cuda() && (compute == at::kBFloat16 || compute == at::kFloat);
}
cuda::LogitType logitType(const at::Tensor &logits) {
  return logits.scalar_type() == at::kBFloat16 ? cuda::LogitType::BFloat16 : cuda::LogitType::Float32;
}
void *currentStream() { return c10::cuda::getCurrentCUDAStream().stream(); }
#else
bool fusedRows(const at::Tensor &, at::ScalarType) { return false; }
#endif

/// Inputs: hidden [N, d], head [V, d], targets [N] (int64, any value where not kept), keep
/// [N] (bool). Output: per-position losses [N] (fp32; fp64 for fp64 inputs), 0 where not kept.
struct ChunkedCrossEntropy : torch::autograd::Function<ChunkedCrossEntropy> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &hidden, const at::Tensor &head,
                            const at::Tensor &targets, const at::Tensor &keep, int64_t chunk) {
    // Under autocast the products run in its dtype, as at::linear's would; the backward pass
    // (where autocast is off) reads the dtype from here.
    const at::ScalarType compute = mixtape::compat::cudaAutocastType(hidden).value_or(hidden.scalar_type());
    const at::Tensor weight = head.to(compute);
    const at::Tensor safeTargets = targets.masked_fill(keep.logical_not(), 0); // gather needs a valid index
    const int64_t N = hidden.size(0);
    at::Tensor logSumExp = at::empty({N}, hidden.options().dtype(reduced(compute)));
    at::Tensor losses = at::empty({N}, hidden.options().dtype(reduced(compute)));
    [[maybe_unused]] const bool fused = fusedRows(hidden, compute);
    for (int64_t begin = 0; begin < N; begin += chunk) {
      const int64_t n = std::min(chunk, N - begin);
#if MIXTAPE_CUDA_KERNELS
      if (fused) { // the logits stay in `compute`: the kernel reads each row once
        at::Tensor logits = at::mm(hidden.narrow(0, begin, n).to(compute), weight.t());
        cuda::rowLogSumExpLoss(logits.data_ptr(), logitType(logits), n, logits.size(1),
                               safeTargets.narrow(0, begin, n).data_ptr<int64_t>(),
                               logSumExp.narrow(0, begin, n).data_ptr<float>(),
                               losses.narrow(0, begin, n).data_ptr<float>(), currentStream());
        continue;
      }
#endif
      at::Tensor logits = chunkLogits(hidden.narrow(0, begin, n), weight, compute);
      at::Tensor lse = at::logsumexp(logits, 1);
      at::Tensor target = logits.gather(1, safeTargets.narrow(0, begin, n).unsqueeze(1)).squeeze(1);
      logSumExp.narrow(0, begin, n).copy_(lse);
      losses.narrow(0, begin, n).copy_(lse - target);
    }
    losses.masked_fill_(keep.logical_not(), 0);
    ctx->save_for_backward({hidden, head, safeTargets, keep, logSumExp});
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["compute"] = static_cast<int64_t>(compute);
    return losses;
  }

  // d loss_i / d logits_i = g_i (softmax(logits_i) - onehot(target_i)) at kept positions, 0
  // elsewhere; the hidden states' and head's gradients are its products with head and hidden.
  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    variable_list saved = ctx->get_saved_variables();
    const at::Tensor &hidden = saved[0], &head = saved[1], &targets = saved[2], &keep = saved[3],
                     &logSumExp = saved[4];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const auto compute = static_cast<at::ScalarType>(ctx->saved_data["compute"].toInt());
    const at::Tensor weight = head.to(compute);
    const at::Tensor coefficient = grads[0].to(reduced(compute)).masked_fill(keep.logical_not(), 0);
    const int64_t N = hidden.size(0);
    at::Tensor gradHidden = at::empty_like(hidden);
    at::Tensor gradHead = at::zeros(head.sizes(), head.options().dtype(reduced(compute))); // summed over chunks
    const bool fused = fusedRows(hidden, compute);
    for (int64_t begin = 0; begin < N; begin += chunk) {
      const int64_t n = std::min(chunk, N - begin);
      at::Tensor h = hidden.narrow(0, begin, n).to(compute);
      at::Tensor g;
#if MIXTAPE_CUDA_KERNELS
      if (fused) { // softmax - onehot written over the chunk's logits, in `compute`
        g = at::mm(h, weight.t());
        cuda::softmaxMinusOneHot(g.data_ptr(), logitType(g), n, g.size(1), targets.narrow(0, begin, n).data_ptr<int64_t>(),
                                 logSumExp.narrow(0, begin, n).data_ptr<float>(),
                                 coefficient.narrow(0, begin, n).contiguous().data_ptr<float>(), currentStream());
      }
#endif
      if (!fused) {
        at::Tensor gradLogits =
            chunkLogits(h, weight, compute).sub_(logSumExp.narrow(0, begin, n).unsqueeze(1)).exp_();
        gradLogits.scatter_add_(1, targets.narrow(0, begin, n).unsqueeze(1),
                                at::full({n, 1}, -1.0, gradLogits.options()));
        // A masked row is set to 0, not multiplied by it: 0 * inf would be NaN.
        at::Tensor c = coefficient.narrow(0, begin, n).unsqueeze(1);
        gradLogits.mul_(c).masked_fill_(c.eq(0), 0);
        g = gradLogits.to(compute);
      }
      gradHidden.narrow(0, begin, n).copy_(at::mm(g, weight));
      if (compute == gradHead.scalar_type())
        gradHead.addmm_(g.t(), h);
      else // one [V, d] product in the reduced dtype, as large as the head's copy in it
        gradHead.add_(at::mm(g.t(), h));
    }
    return {gradHidden, gradHead.to(head.scalar_type()), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

/// Inputs: hidden [N, d] and head [V, d] (the student's), teacherHidden [N, d] and
/// teacherHead [V, d] (no gradient), keep [N] (bool). Output: T^2 KL(p || q) per position [N].
struct ChunkedDistillation : torch::autograd::Function<ChunkedDistillation> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &hidden, const at::Tensor &head,
                            const at::Tensor &teacherHidden, const at::Tensor &teacherHead, const at::Tensor &keep,
                            double temperature, int64_t chunk) {
    const at::ScalarType compute = mixtape::compat::cudaAutocastType(hidden).value_or(hidden.scalar_type());
    const at::Tensor weight = head.to(compute), teacherWeight = teacherHead.to(compute);
    const int64_t N = hidden.size(0);
    at::Tensor studentLse = at::empty({N}, hidden.options().dtype(reduced(compute)));
    at::Tensor teacherLse = at::empty_like(studentLse), terms = at::empty_like(studentLse);
    for (int64_t begin = 0; begin < N; begin += chunk) {
      const int64_t n = std::min(chunk, N - begin);
      at::Tensor student = chunkLogits(hidden.narrow(0, begin, n), weight, compute).div_(temperature);
      at::Tensor teacher = chunkLogits(teacherHidden.narrow(0, begin, n), teacherWeight, compute).div_(temperature);
      at::Tensor lseS = at::logsumexp(student, 1), lseT = at::logsumexp(teacher, 1);
      // log p - log q = (teacher - lseT) - (student - lseS)
      at::Tensor logRatio = teacher.sub(student).sub_((lseT - lseS).unsqueeze(1));
      at::Tensor p = teacher.sub_(lseT.unsqueeze(1)).exp_();
      terms.narrow(0, begin, n).copy_(p.mul_(logRatio).sum(1));
      studentLse.narrow(0, begin, n).copy_(lseS);
      teacherLse.narrow(0, begin, n).copy_(lseT);
    }
    terms.mul_(temperature * temperature).masked_fill_(keep.logical_not(), 0);
    ctx->save_for_backward({hidden, head, teacherHidden, teacherHead, keep, studentLse, teacherLse});
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["compute"] = static_cast<int64_t>(compute);
    return terms;
  }

  // d (T^2 KL) / d logit_v = T^2 (q_v - p_v) / T: both softmaxes again, chunk by chunk.
  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    variable_list saved = ctx->get_saved_variables();
    const at::Tensor &hidden = saved[0], &head = saved[1], &teacherHidden = saved[2], &teacherHead = saved[3],
                     &keep = saved[4], &studentLse = saved[5], &teacherLse = saved[6];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const auto compute = static_cast<at::ScalarType>(ctx->saved_data["compute"].toInt());
    const at::Tensor weight = head.to(compute), teacherWeight = teacherHead.to(compute);
    const at::Tensor coefficient =
        grads[0].to(reduced(compute)).mul(temperature).masked_fill(keep.logical_not(), 0);
    const int64_t N = hidden.size(0);
    at::Tensor gradHidden = at::empty_like(hidden);
    at::Tensor gradHead = at::zeros(head.sizes(), head.options().dtype(reduced(compute)));
    for (int64_t begin = 0; begin < N; begin += chunk) {
      const int64_t n = std::min(chunk, N - begin);
      at::Tensor h = hidden.narrow(0, begin, n).to(compute);
      at::Tensor q = chunkLogits(h, weight, compute)
                         .div_(temperature)
                         .sub_(studentLse.narrow(0, begin, n).unsqueeze(1))
                         .exp_();
      at::Tensor p = chunkLogits(teacherHidden.narrow(0, begin, n), teacherWeight, compute)
                         .div_(temperature)
                         .sub_(teacherLse.narrow(0, begin, n).unsqueeze(1))
                         .exp_();
      at::Tensor c = coefficient.narrow(0, begin, n).unsqueeze(1);
      at::Tensor g = q.sub_(p).mul_(c).masked_fill_(c.eq(0), 0).to(compute);
      gradHidden.narrow(0, begin, n).copy_(at::mm(g, weight));
      if (compute == gradHead.scalar_type())
        gradHead.addmm_(g.t(), h);
      else
        gradHead.add_(at::mm(g.t(), h));
    }
    return {gradHidden, gradHead.to(head.scalar_type()), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

/// A loss mask as the chunked functions take it: [N] bool, true where the position counts.
at::Tensor keptPositions(const at::Tensor &targets, const at::Tensor &lossMask) {
  return lossMask.defined() ? lossMask.reshape({-1}).ne(0)
                            : at::ones({targets.numel()}, targets.options().dtype(at::kBool));
}

int64_t chunkFor(int64_t chunkTokens, const at::Tensor &head) {
  TORCH_CHECK(chunkTokens >= 0, "chunk tokens must not be negative");
  return chunkTokens ? chunkTokens : static_cast<int64_t>(mixtape::plan::lossChunkTokens(head.size(0)));
}

} // namespace

at::Tensor mixtape::model::chunkedDistillation(const at::Tensor &hidden, const at::Tensor &head,
                                               const at::Tensor &teacherHidden, const at::Tensor &teacherHead,
                                               double temperature, const at::Tensor &lossMask, int64_t chunkTokens) {
  const int64_t d = head.size(1);
  TORCH_CHECK(hidden.dim() == 3 && hidden.size(2) == d && teacherHidden.sizes() == hidden.sizes() &&
                  teacherHead.sizes() == head.sizes(),
              "chunkedDistillation: student and teacher hidden [B, T, ", d, "] and heads [V, ", d, "] expected, got ",
              hidden.sizes(), ", ", teacherHidden.sizes(), ", ", head.sizes(), " and ", teacherHead.sizes());
  TORCH_CHECK(!lossMask.defined() || lossMask.sizes() == hidden.sizes().slice(0, 2),
              "chunkedDistillation: the loss mask must be [B, T]");
  TORCH_CHECK(temperature > 0, "chunkedDistillation: the temperature must be positive");
  const at::Tensor positions = hidden.select(2, 0);
  return ChunkedDistillation::apply(hidden.reshape({-1, d}), head, teacherHidden.reshape({-1, d}).detach(),
                                    teacherHead.detach(), keptPositions(positions, lossMask), temperature,
                                    chunkFor(chunkTokens, head))
      .view(positions.sizes());
}

at::Tensor mixtape::model::chunkedTokenLosses(const at::Tensor &hidden, const at::Tensor &head,
                                              const at::Tensor &targets, const at::Tensor &lossMask,
                                              int64_t chunkTokens) {
  const int64_t d = head.size(1);
  TORCH_CHECK(hidden.dim() == 3 && hidden.size(2) == d && targets.sizes() == hidden.sizes().slice(0, 2),
              "chunkedTokenLosses: hidden [B, T, ", d, "] and targets [B, T] expected, got ", hidden.sizes(), " and ",
              targets.sizes());
  TORCH_CHECK(!lossMask.defined() || lossMask.sizes() == targets.sizes(),
              "chunkedTokenLosses: the loss mask must have the targets' shape");
  return ChunkedCrossEntropy::apply(hidden.reshape({-1, d}), head, targets.reshape({-1}),
                                    keptPositions(targets, lossMask), chunkFor(chunkTokens, head))
      .view(targets.sizes());
}
