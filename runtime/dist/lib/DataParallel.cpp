//===- DataParallel.cpp - summed counts, bucketed gradients ---------------===//
#include "mixtape/dist/DataParallel.h"

#include "llvm/ADT/ScopeExit.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <cassert>

using namespace mixtape::dist;
using mixtape::model::NamedParameter;

void DataParallel::sumCounts(int64_t &lossTokens, int64_t &tokens) {
  at::Tensor counts = at::tensor(std::vector<int64_t>{lossTokens, tokens}, at::kLong).to(Comm.deviceType());
  Comm.allReduceSum(counts);
  counts = counts.cpu();
  lossTokens = counts[0].item<int64_t>();
  tokens = counts[1].item<int64_t>();
}

namespace mixtape::dist {
/// Runs after autograd accumulated a parameter's gradient (the .grad() a step reads).
struct GradientReadyHook final : torch::autograd::FunctionPostHook {
  GradientReadyHook(DataParallel &owner, size_t index) : Owner(owner), Index(index) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list &outputs,
                                            const torch::autograd::variable_list &) override {
    Owner.gradientReady(Index);
    return outputs;
  }
  DataParallel &Owner;
  size_t Index;
};
} // namespace mixtape::dist

DataParallel::~DataParallel() {
  for (size_t i = 0; i < Accumulators.size(); ++i)
    Accumulators[i]->del_post_hook(HookKeys[i]);
}

void DataParallel::planBuckets(llvm::ArrayRef<NamedParameter> params) {
  if (!Buckets.empty()) {
    assert(params.size() == Params.size() && (params.empty() || params.front().Tensor.is_same(Params.front().Tensor)) &&
           "a DataParallel serves one model's parameter list");
    return;
  }
  // A copy: the trainer passes the trained parameters, a list it builds for each step.
  Params.assign(params.begin(), params.end());
  BucketOf.assign(params.size(), 0);
  // Consecutive parameters of one dtype, last first, up to BucketBytes.
  size_t bytes = 0;
  for (size_t i = params.size(); i-- > 0;) {
    const at::Tensor &p = params[i].Tensor;
    const size_t size = p.numel() * p.element_size();
    if (Buckets.empty() || bytes + size > BucketBytes ||
        params[Buckets.back().Params.back()].Tensor.scalar_type() != p.scalar_type()) {
      Buckets.emplace_back();
      bytes = 0;
    }
    Buckets.back().Params.push_back(i);
    BucketOf[i] = Buckets.size() - 1;
    bytes += size;
  }
  for (Bucket &b : Buckets) {
    int64_t numel = 0;
    for (size_t i : b.Params)
      numel += params[i].Tensor.numel();
    b.Flat = at::empty({numel}, params[b.Params.front()].Tensor.options().requires_grad(false));
  }
}

void DataParallel::beforeLastBackward(llvm::ArrayRef<NamedParameter> params) {
  planBuckets(params);
  if (Accumulators.empty())
    for (size_t i = 0; i < params.size(); ++i) {
      Accumulators.push_back(torch::autograd::impl::grad_accumulator(params[i].Tensor));
      HookKeys.push_back(Accumulators.back()->add_post_hook(std::make_unique<GradientReadyHook>(*this, i)));
    }
  Ready.assign(params.size(), false);
  for (Bucket &b : Buckets)
    b.Waiting = b.Params.size();
  NextToStart = 0;
  Armed = true;
}

void DataParallel::gradientReady(size_t index) {
  if (!Armed || Ready[index])
    return;
  Ready[index] = true;
  if (--Buckets[BucketOf[index]].Waiting == 0)
    startReadyBuckets();
}

void DataParallel::startReadyBuckets() {
  while (NextToStart < Buckets.size() && Buckets[NextToStart].Waiting == 0)
    start(Buckets[NextToStart++]);
}

void DataParallel::start(Bucket &bucket) {
  at::NoGradGuard noGrad;
  int64_t offset = 0;
  for (size_t i : bucket.Params) {
    const at::Tensor &grad = Params[i].Tensor.grad();
    const int64_t n = Params[i].Tensor.numel();
    if (grad.defined()) // else no gradient here, but maybe on another rank: zeros
      bucket.Flat.narrow(0, offset, n).copy_(grad.reshape({-1}));
    else
      bucket.Flat.narrow(0, offset, n).zero_();
    offset += n;
  }
  bucket.Sum = Comm.startAllReduceSum(bucket.Flat);
}

void DataParallel::sumGradients(llvm::ArrayRef<NamedParameter> params, llvm::MutableArrayRef<double> sums) {
  at::NoGradGuard noGrad;
  planBuckets(params);
  Armed = false;
  StartedDuringBackward = NextToStart;
  // A failed collective ends the node; whatever happens, the next step starts afresh.
  auto reset = llvm::make_scope_exit([&] {
    NextToStart = 0;
    for (Bucket &b : Buckets)
      b.Sum.reset();
  });
  // What backward did not finish (a parameter without a gradient in the last micro-batch,
  // or no hooks armed): started now, in the same order as on every other rank.
  for (; NextToStart < Buckets.size(); ++NextToStart)
    start(Buckets[NextToStart]);
  std::vector<bool> had(params.size());
  for (size_t i = 0; i < params.size(); ++i)
    had[i] = params[i].Tensor.grad().defined();
  for (Bucket &b : Buckets) {
    b.Sum->wait();
    int64_t offset = 0;
    for (size_t i : b.Params) {
      at::Tensor &grad = const_cast<at::Tensor &>(params[i].Tensor).mutable_grad();
      at::Tensor sum = b.Flat.narrow(0, offset, params[i].Tensor.numel()).view_as(params[i].Tensor);
      if (grad.defined())
        grad.copy_(sum);
      else
        grad = sum.clone();
      offset += params[i].Tensor.numel();
    }
  }
  dropGradients(params, anyRank(had));
  sumLoss(sums);
}

std::vector<bool> DataParallel::fillMissingGradients(llvm::ArrayRef<NamedParameter> params) {
  std::vector<bool> had(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    had[i] = params[i].Tensor.grad().defined();
    if (!had[i])
      const_cast<at::Tensor &>(params[i].Tensor).mutable_grad() = at::zeros_like(params[i].Tensor);
  }
  return anyRank(had);
}

std::vector<bool> DataParallel::anyRank(const std::vector<bool> &flags) {
  at::Tensor counts = at::zeros({static_cast<int64_t>(flags.size())}, at::kInt);
  for (size_t i = 0; i < flags.size(); ++i)
    counts.data_ptr<int>()[i] = flags[i] ? 1 : 0;
  counts = counts.to(Comm.deviceType());
  Comm.allReduceSum(counts);
  counts = counts.cpu();
  std::vector<bool> any(flags.size());
  for (size_t i = 0; i < flags.size(); ++i)
    any[i] = counts.data_ptr<int>()[i] > 0;
  return any;
}

void DataParallel::dropGradients(llvm::ArrayRef<NamedParameter> params, const std::vector<bool> &anyRankHad) {
  for (size_t i = 0; i < params.size(); ++i)
    if (!anyRankHad[i])
      const_cast<at::Tensor &>(params[i].Tensor).mutable_grad() = at::Tensor();
}

void DataParallel::sumLoss(llvm::MutableArrayRef<double> sums) {
  at::Tensor total = at::tensor(c10::ArrayRef<double>(sums.data(), sums.size()), at::TensorOptions(at::kDouble))
                         .to(Comm.deviceType());
  Comm.allReduceSum(total);
  total = total.cpu();
  std::copy_n(total.data_ptr<double>(), sums.size(), sums.begin());
}

uint64_t mixtape::dist::shareMicroBatch(uint64_t share, uint64_t micro) {
  for (uint64_t m = std::min(share, micro); m > 1; --m)
    if (share % m == 0)
      return m;
  return 1;
}

void mixtape::dist::broadcastParameters(Collectives &collectives, llvm::ArrayRef<NamedParameter> params) {
  at::NoGradGuard noGrad;
  for (const NamedParameter &p : params) {
    at::Tensor data = p.Tensor.detach();
    collectives.broadcast(data, 0);
  }
}
