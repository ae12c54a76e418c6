//===- DataParallel.cpp - summed counts, bucketed gradients ---------------===//
#include "mixtape/dist/DataParallel.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

using namespace mixtape::dist;
using mixtape::model::NamedParameter;

void DataParallel::sumCounts(int64_t &lossTokens, int64_t &tokens) {
  at::Tensor counts = at::tensor(std::vector<int64_t>{lossTokens, tokens}, at::kLong).to(Comm.deviceType());
  Comm.allReduceSum(counts);
  counts = counts.cpu();
  lossTokens = counts[0].item<int64_t>();
  tokens = counts[1].item<int64_t>();
}

void DataParallel::sumGradients(llvm::ArrayRef<NamedParameter> params, llvm::MutableArrayRef<double> sums) {
  at::NoGradGuard noGrad;
  LastBuckets = 0;
  const std::vector<bool> anyRankHad = fillMissingGradients(params);
  // Consecutive gradients of one dtype, up to BucketBytes, flattened into one all-reduce.
  size_t begin = 0;
  while (begin < params.size()) {
    const at::Tensor &head = params[begin].tensor.grad();
    size_t end = begin, bytes = 0;
    std::vector<at::Tensor> flat;
    while (end < params.size() && params[end].tensor.grad().scalar_type() == head.scalar_type() &&
           (flat.empty() || bytes + params[end].tensor.grad().nbytes() <= BucketBytes)) {
      bytes += params[end].tensor.grad().nbytes();
      flat.push_back(params[end].tensor.grad().reshape({-1}));
      ++end;
    }
    at::Tensor bucket = at::cat(flat);
    Comm.allReduceSum(bucket);
    ++LastBuckets;
    int64_t offset = 0;
    for (size_t i = begin; i < end; ++i) {
      at::Tensor grad = params[i].tensor.grad();
      grad.copy_(bucket.narrow(0, offset, grad.numel()).view_as(grad));
      offset += grad.numel();
    }
    begin = end;
  }
  dropGradients(params, anyRankHad);
  sumLoss(sums);
}

std::vector<bool> DataParallel::fillMissingGradients(llvm::ArrayRef<NamedParameter> params) {
  at::Tensor had = at::zeros({static_cast<int64_t>(params.size())}, at::kInt);
  for (size_t i = 0; i < params.size(); ++i) {
    if (params[i].tensor.grad().defined())
      had[static_cast<int64_t>(i)] = 1;
    else
      const_cast<at::Tensor &>(params[i].tensor).mutable_grad() = at::zeros_like(params[i].tensor);
  }
  had = had.to(Comm.deviceType());
  Comm.allReduceSum(had);
  had = had.cpu();
  std::vector<bool> anyRankHad(params.size());
  for (size_t i = 0; i < params.size(); ++i)
    anyRankHad[i] = had.data_ptr<int>()[i] > 0;
  return anyRankHad;
}

void DataParallel::dropGradients(llvm::ArrayRef<NamedParameter> params, const std::vector<bool> &anyRankHad) {
  for (size_t i = 0; i < params.size(); ++i)
    if (!anyRankHad[i])
      const_cast<at::Tensor &>(params[i].tensor).mutable_grad() = at::Tensor();
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
    at::Tensor data = p.tensor.detach();
    collectives.broadcast(data, 0);
  }
}
