//===- Attention.cpp - grouped-query attention, a slice of pairs per thread -===//
#include "mixtape/model/Attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>

using namespace mixtape::model;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

/// The rows [begin, end) of a per-pair tensor; a mask shared by all pairs as it is.
at::Tensor slice(const at::Tensor &t, int64_t begin, int64_t end, int64_t pairs) {
  return t.dim() == 3 && t.size(0) == pairs ? t.narrow(0, begin, end - begin) : t;
}

/// Splits the N pairs over ATen's threads: inside the parallel region ATen's ops and
/// OpenBLAS run single-threaded, so each slice is one thread's sequential work. OpenMP's
/// workers get the caller's thread-local state (grad mode off, inference mode, ...). Off the
/// CPU, or with fewer pairs than threads, `fn` takes all pairs at once and ATen's ops spread
/// (or launch) the work themselves.
template <typename Fn> void forEachSlice(const at::Tensor &like, int64_t pairs, const Fn &fn) {
  if (!like.is_cpu() || pairs < at::get_num_threads()) {
    fn([](const at::Tensor &t) { return t; });
    return;
  }
  const at::ThreadLocalState caller;
  at::parallel_for(0, pairs, /*grain_size=*/1, [&](int64_t begin, int64_t end) {
    at::ThreadLocalStateGuard state(caller);
    fn([&](const at::Tensor &t) { return slice(t, begin, end, pairs); });
  });
}

struct GroupedAttention : torch::autograd::Function<GroupedAttention> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &q, const at::Tensor &k,
                            const at::Tensor &v, const at::Tensor &mask, double scale) {
    const int64_t N = q.size(0);
    at::Tensor probs = at::empty({N, q.size(1), k.size(1)}, q.options());
    at::Tensor out = at::empty_like(q, at::MemoryFormat::Contiguous);
    forEachSlice(q, N, [&](auto part) {
      at::Tensor scores = at::baddbmm(part(mask), part(q), part(k).transpose(1, 2), /*beta=*/1.0, scale);
      at::Tensor p = part(probs), o = part(out);
      at::_softmax_out(p, scores, -1, /*half_to_float=*/false);
      at::bmm_out(o, p, part(v));
    });
    ctx->save_for_backward({q, k, v, probs});
    ctx->saved_data["scale"] = scale;
    return out;
  }

  // With P = softmax(S) and O = P V: dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dP * P)),
  // dQ = scale dS K, dK = scale dS^T Q.
  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    // The gradients below are computed outside autograd: a graph of them would be wrong.
    TORCH_CHECK(!at::GradMode::is_enabled(), "groupedAttention has no double backward (create_graph)");
    variable_list saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &probs = saved[3];
    const double scale = ctx->saved_data["scale"].toDouble();
    at::Tensor gradOut = grads[0].contiguous();
    at::Tensor gradQ = at::empty_like(q, at::MemoryFormat::Contiguous);
    at::Tensor gradK = at::empty_like(k, at::MemoryFormat::Contiguous);
    at::Tensor gradV = at::empty_like(v, at::MemoryFormat::Contiguous);
    forEachSlice(q, q.size(0), [&](auto part) {
      at::Tensor p = part(probs), dOut = part(gradOut);
      at::Tensor dV = part(gradV), dQ = part(gradQ), dK = part(gradK);
      at::bmm_out(dV, p.transpose(1, 2), dOut);
      at::Tensor dScores =
          at::_softmax_backward_data(at::bmm(dOut, part(v).transpose(1, 2)), p, -1, p.scalar_type());
      at::bmm_out(dQ, dScores, part(k)).mul_(scale);
      at::bmm_out(dK, dScores.transpose(1, 2), part(q)).mul_(scale);
    });
    return {gradQ, gradK, gradV, at::Tensor(), at::Tensor()};
  }
};

} // namespace

at::Tensor mixtape::model::groupedAttention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
                                            const at::Tensor &mask, double scale) {
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.sizes() == k.sizes() && q.size(0) == k.size(0) &&
                  q.size(2) == k.size(2) && q.size(1) % k.size(1) == 0,
              "groupedAttention: q [N, G*T, D], k and v [N, T, D] expected, got ", q.sizes(), ", ",
              k.sizes(), ", ", v.sizes());
  TORCH_CHECK(!mask.requires_grad(), "groupedAttention: the mask takes no gradient");
  return GroupedAttention::apply(q.contiguous(), k.contiguous(), v.contiguous(), mask, scale);
}
