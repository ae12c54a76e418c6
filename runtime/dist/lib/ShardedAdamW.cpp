//===- ShardedAdamW.cpp - reduce-scatter, shard update, all-gather --------===//
#include "mixtape/dist/ShardedAdamW.h"
#include "ShardLayout.h"
#include "SlicedCollectives.h"

#include "mixtape/support/Error.h"

#include "llvm/Support/Path.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cassert>
#include <cmath>

using namespace mixtape::dist;
using mixtape::makeError;
using mixtape::model::NamedParameter;

llvm::Expected<std::unique_ptr<ShardedAdamW>> ShardedAdamW::create(Collectives &collectives,
                                                                   train::AdamW &optimizer) {
  llvm::ArrayRef<NamedParameter> params = optimizer.parameters();
  if (params.empty())
    return makeError("ZeRO-1: the model has no parameters");
  for (const NamedParameter &p : params)
    if (!p.Tensor.is_contiguous() || p.Tensor.scalar_type() != params.front().Tensor.scalar_type() ||
        p.Tensor.device() != params.front().Tensor.device())
      return makeError("ZeRO-1 shards one flat buffer: parameter '" + p.Name +
                       "' is not contiguous or differs in dtype or device from '" + params.front().Name + "'");
  return std::unique_ptr<ShardedAdamW>(new ShardedAdamW(collectives, optimizer));
}

ShardedAdamW::ShardedAdamW(Collectives &collectives, train::AdamW &optimizer) : DataParallel(collectives) {
  at::NoGradGuard noGrad;
  llvm::ArrayRef<NamedParameter> params = optimizer.parameters();
  std::vector<int64_t> numels;
  for (const NamedParameter &p : params)
    numels.push_back(p.Tensor.numel());
  Layout = std::make_unique<ShardLayout>(numels, Comm.rank(), Comm.worldSize());
  const int64_t shardSize = Layout->ShardSize;
  at::TensorOptions options = params.front().Tensor.options();
  ExpAvg = at::zeros({shardSize}, options);
  ExpAvgSq = at::zeros({shardSize}, options);
  for (const ShardLayout::Piece &p : Layout->Pieces)
    if (optimizer.expAvg(p.Tensor).defined()) {
      ExpAvg.narrow(0, p.InShard, p.Length)
          .copy_(optimizer.expAvg(p.Tensor).reshape({-1}).narrow(0, p.InTensor, p.Length));
      ExpAvgSq.narrow(0, p.InShard, p.Length)
          .copy_(optimizer.expAvgSq(p.Tensor).reshape({-1}).narrow(0, p.InTensor, p.Length));
    }
  for (size_t i = 0; i < params.size(); ++i)
    optimizer.setMoments(i, at::Tensor(), at::Tensor());
}

ShardedAdamW::~ShardedAdamW() = default;

int64_t ShardedAdamW::shardSize() const { return Layout->ShardSize; }

at::Tensor ShardedAdamW::flatView(const NamedParameter &p) { return p.Tensor.detach().view({-1}); }

void ShardedAdamW::sumGradients(llvm::ArrayRef<NamedParameter> params, llvm::MutableArrayRef<double> sums) {
  at::NoGradGuard noGrad;
  AnyRankHad = fillMissingGradients(params);
  std::vector<at::Tensor> flat;
  for (const NamedParameter &p : params)
    flat.push_back(p.Tensor.grad().reshape({-1}));
  GradShard = at::empty({Layout->ShardSize}, flat.front().options());
  reduceScatterInSlices(Comm, *Layout, flat, GradShard);
  // The step reads GradShard only: the whole gradients go before the optimizer's temporaries come.
  flat.clear();
  for (const NamedParameter &p : params)
    const_cast<at::Tensor &>(p.Tensor).mutable_grad() = at::Tensor();
  sumLoss(sums);
}

double ShardedAdamW::clipAndStep(train::AdamW &optimizer, double clipNorm, double lr) {
  at::NoGradGuard noGrad;
  at::Tensor squares = squaredSumInSlices(GradShard).to(Comm.deviceType());
  Comm.allReduceSum(squares);
  const double norm = std::sqrt(squares.item<double>());
  if (!std::isfinite(norm)) { // every rank sees the same sum: all skip the update
    GradShard = at::Tensor();
    return norm;
  }
  if (double factor = train::clipFactor(norm, clipNorm); factor < 1)
    GradShard.mul_(factor);
  llvm::ArrayRef<NamedParameter> params = optimizer.parameters();
  const int64_t step = optimizer.countStep();
  for (const ShardLayout::Piece &p : Layout->Pieces)
    if (AnyRankHad[p.Tensor]) // as AdamW skips a parameter without a gradient
      train::AdamW::update(flatView(params[p.Tensor]).narrow(0, p.InTensor, p.Length),
                           GradShard.narrow(0, p.InShard, p.Length), ExpAvg.narrow(0, p.InShard, p.Length),
                           ExpAvgSq.narrow(0, p.InShard, p.Length), lr * optimizer.lrScale(p.Tensor),
                           optimizer.weightDecay(p.Tensor), step, optimizer.options());
  GradShard = at::Tensor();
  std::vector<at::Tensor> flat;
  for (const NamedParameter &p : params)
    flat.push_back(flatView(p));
  allGatherInSlices(Comm, *Layout, flat);
  return norm;
}

std::vector<StateSlice> ShardedAdamW::checkpointSlices(const train::AdamW &optimizer, SlicePurpose purpose) const {
  llvm::ArrayRef<NamedParameter> params = optimizer.parameters();
  std::vector<StateSlice> out;
  if (purpose == SlicePurpose::Load)
    for (const NamedParameter &param : params)
      out.push_back({param.Name, param.Tensor.sizes().vec(), 0, flatView(param)});
  for (const ShardLayout::Piece &p : Layout->Pieces) {
    const NamedParameter &param = params[p.Tensor];
    const std::vector<int64_t> shape = param.Tensor.sizes().vec();
    if (purpose == SlicePurpose::Save)
      out.push_back({param.Name, shape, p.InTensor, flatView(param).narrow(0, p.InTensor, p.Length)});
    out.push_back({expAvgName(param.Name), shape, p.InTensor, ExpAvg.narrow(0, p.InShard, p.Length)});
    out.push_back({expAvgSqName(param.Name), shape, p.InTensor, ExpAvgSq.narrow(0, p.InShard, p.Length)});
  }
  return out;
}

llvm::Error ShardedAdamW::saveWhole(const train::AdamW &optimizer, const std::string &what,
                                    llvm::function_ref<llvm::Error()> saveWeights, llvm::StringRef optimizerPath) {
  at::NoGradGuard noGrad;
  llvm::ArrayRef<NamedParameter> params = optimizer.parameters();
  const bool root = Comm.rank() == 0;
  const std::string file = llvm::sys::path::filename(optimizerPath).str();
  return Comm.rankZeroPaces(what, [&](RankZeroPace &pace) {
    llvm::Error written = root ? saveWeights() : llvm::Error::success();
    // Every rank gathers every parameter's moments in order, whether or not rank 0's
    // writer stopped early; rank 0 keeps those its writer asks for (`keep`).
    size_t gathered = 0;
    auto gatherNext = [&](bool keep) {
      pace.next(gathered == 0 ? "writing the weights"
                              : "writing " + file + " up to '" + params[gathered].Name + "'");
      std::vector<at::Tensor> moments;
      if (keep)
        for (int k = 0; k < 2; ++k)
          moments.push_back(at::empty(params[gathered].Tensor.sizes(), ExpAvg.options()));
      gatherTensorInSlices(Comm, *Layout, gathered, {ExpAvg, ExpAvgSq}, moments);
      ++gathered;
      return moments;
    };
    if (root && !written)
      written = optimizer.saveState(optimizerPath, [&]([[maybe_unused]] size_t i) {
        assert(i == gathered && "AdamW::saveState asked for the moments out of order");
        std::vector<at::Tensor> moments = gatherNext(/*keep=*/true);
        return std::pair{moments[0], moments[1]};
      });
    while (gathered < params.size())
      gatherNext(/*keep=*/false);
    return written;
  });
}
