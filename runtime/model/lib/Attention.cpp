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

/// Query positions [begin, end) of every stacked head. With a causal mask such a block
/// attends keys [0, end) only: every later key is hidden from all its queries.
struct QueryBlock {
  int64_t Begin, End;
  int64_t size() const { return End - Begin; }
};

/// Shorter sequences are not worth a second round of small GEMMs.
constexpr int64_t kMinBlockedLength = 32;

/// Two halves of the positions for a causal mask: the upper-right quarter of the scores, all
/// hidden, is never computed (the second half's keys [T/2, T) are the first half's
/// -inf). One block otherwise.
std::vector<QueryBlock> queryBlocks(int64_t T, bool causal) {
  if (!causal || T < kMinBlockedLength)
    return {{0, T}};
  return {{0, T / 2}, {T / 2, T}};
}

/// Block `b`'s rows of each of the G stacked heads of x [c, G*T, W], as [c, G, R, W].
at::Tensor headRows(const at::Tensor &x, int64_t G, QueryBlock b) {
  return x.view({x.size(0), G, x.size(1) / G, x.size(2)}).narrow(2, b.Begin, b.size());
}
/// The same rows as one matrix per pair, [c, G*R, W] (a copy unless b is everything).
at::Tensor stackedRows(const at::Tensor &x, int64_t G, QueryBlock b) {
  return headRows(x, G, b).reshape({x.size(0), G * b.size(), x.size(2)});
}
/// Block `b`'s part of an additive mask [G*T, T] or [c, G*T, T]: its rows, keys [0, b.End).
at::Tensor blockMask(const at::Tensor &mask, int64_t G, QueryBlock b) {
  const int64_t T = mask.size(-1);
  if (mask.dim() == 2)
    return mask.view({G, T, T}).narrow(1, b.Begin, b.size()).narrow(2, 0, b.End).reshape({G * b.size(), b.End});
  const int64_t c = mask.size(0);
  return mask.view({c, G, T, T}).narrow(2, b.Begin, b.size()).narrow(3, 0, b.End).reshape({c, G * b.size(), b.End});
}

struct GroupedAttention : torch::autograd::Function<GroupedAttention> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &q, const at::Tensor &k,
                            const at::Tensor &v, const at::Tensor &mask, double scale, bool causal) {
    const int64_t N = q.size(0), T = k.size(1), G = q.size(1) / T, D = q.size(2);
    const std::vector<QueryBlock> blocks = queryBlocks(T, causal);
    std::vector<at::Tensor> probs; // per block [N, G*R, keys]
    for (QueryBlock b : blocks)
      probs.push_back(at::empty({N, G * b.size(), b.End}, q.options()));
    at::Tensor out = at::empty_like(q, at::MemoryFormat::Contiguous);
    forEachSlice(q, N, [&](auto part) {
      at::Tensor qs = part(q), ks = part(k), vs = part(v), os = part(out), ms = part(mask);
      for (size_t i = 0; i < blocks.size(); ++i) {
        const QueryBlock b = blocks[i];
        at::Tensor scores = at::baddbmm(blockMask(ms, G, b), stackedRows(qs, G, b),
                                        ks.narrow(1, 0, b.End).transpose(1, 2), /*beta=*/1.0, scale);
        at::Tensor p = part(probs[i]);
        at::_softmax_out(p, scores, -1, /*half_to_float=*/false);
        headRows(os, G, b).copy_(at::bmm(p, vs.narrow(1, 0, b.End)).view({qs.size(0), G, b.size(), D}));
      }
    });
    variable_list saved{q, k, v};
    saved.insert(saved.end(), probs.begin(), probs.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["causal"] = causal;
    return out;
  }

  // Per block, with P = softmax(S) and O = P V: dV += P^T dO, dP = dO V^T,
  // dS = P * (dP - rowsum(dP * P)), dQ = scale dS K, dK += scale dS^T Q.
  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    // The gradients below are computed outside autograd: a graph of them would be wrong.
    TORCH_CHECK(!at::GradMode::is_enabled(), "groupedAttention has no double backward (create_graph)");
    variable_list saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2];
    const double scale = ctx->saved_data["scale"].toDouble();
    const int64_t T = k.size(1), G = q.size(1) / T, D = q.size(2);
    const std::vector<QueryBlock> blocks = queryBlocks(T, ctx->saved_data["causal"].toBool());
    at::Tensor gradOut = grads[0].contiguous();
    at::Tensor gradQ = at::empty_like(q, at::MemoryFormat::Contiguous);
    at::Tensor gradK = at::zeros_like(k, at::MemoryFormat::Contiguous);
    at::Tensor gradV = at::zeros_like(v, at::MemoryFormat::Contiguous);
    forEachSlice(q, q.size(0), [&](auto part) {
      at::Tensor qs = part(q), ks = part(k), vs = part(v), dOut = part(gradOut);
      at::Tensor dQ = part(gradQ), dK = part(gradK), dV = part(gradV);
      for (size_t i = 0; i < blocks.size(); ++i) {
        const QueryBlock b = blocks[i];
        at::Tensor p = part(saved[3 + i]), dO = stackedRows(dOut, G, b);
        dV.narrow(1, 0, b.End).baddbmm_(p.transpose(1, 2), dO);
        at::Tensor dScores = at::_softmax_backward_data(at::bmm(dO, vs.narrow(1, 0, b.End).transpose(1, 2)), p, -1,
                                                        p.scalar_type());
        headRows(dQ, G, b).copy_(
            at::bmm(dScores, ks.narrow(1, 0, b.End)).mul_(scale).view({qs.size(0), G, b.size(), D}));
        dK.narrow(1, 0, b.End).baddbmm_(dScores.transpose(1, 2), stackedRows(qs, G, b), /*beta=*/1.0, scale);
      }
    });
    return {gradQ, gradK, gradV, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

} // namespace

at::Tensor mixtape::model::groupedAttention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
                                            const at::Tensor &mask, double scale, bool causal) {
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.sizes() == k.sizes() && q.size(0) == k.size(0) &&
                  q.size(2) == k.size(2) && q.size(1) % k.size(1) == 0,
              "groupedAttention: q [N, G*T, D], k and v [N, T, D] expected, got ", q.sizes(), ", ",
              k.sizes(), ", ", v.sizes());
  TORCH_CHECK(!mask.requires_grad(), "groupedAttention: the mask takes no gradient");
  return GroupedAttention::apply(q.contiguous(), k.contiguous(), v.contiguous(), mask.contiguous(), scale, causal);
}
