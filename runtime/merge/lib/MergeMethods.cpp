//===- MergeMethods.cpp - the merge of one tensor --------------------------===//
//
// Each method follows MergeKit's code (mergekit/merge_methods/linear.py, slerp.py,
// generalized_task_arithmetic.py and mergekit/sparsify.py): the comments name where a rule
// comes from, and where this implementation differs.
//
//===----------------------------------------------------------------------===//
#include "mixtape/merge/Merge.h"

#include "mixtape/support/Error.h"
#include "mixtape/support/Format.h"

#include "llvm/Support/FormatVariadic.h"

#include <ATen/ATen.h>

#include <cmath>

using namespace mixtape;
using namespace mixtape::merge;

namespace {

uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::vector<double> weightsFor(const MergeOptions &o, size_t models) {
  return o.Weights.empty() ? std::vector<double>(models, 1.0) : o.Weights;
}

/// sparsify.py, magnitude(): keep the int(density * n) entries of largest magnitude.
/// MergeKit asserts that at least one is kept; a tensor too small for its density (a bias
/// of 4 at density 0.2) keeps none here, so small models can be merged at low density.
at::Tensor keepLargest(const at::Tensor &delta, double density) {
  if (density >= 1)
    return delta;
  int64_t k = static_cast<int64_t>(density * static_cast<double>(delta.numel()));
  at::Tensor flat = delta.reshape({-1});
  at::Tensor mask = at::zeros_like(flat);
  if (k > 0)
    mask.index_fill_(0, std::get<1>(flat.abs().topk(k)), 1.0);
  return (flat * mask).view_as(delta);
}

/// sparsify.py, bernoulli() with rescale (DARE, Yu et al. 2024, eq. 1): each entry is kept
/// with probability density and the kept ones are divided by density. The mask is drawn
/// from SplitMix64 rather than torch.bernoulli, so it is the same on every platform and
/// LibTorch version: entry j of model i is kept iff splitmix64(mix(seed, i, j)) < density·2^64.
at::Tensor dropAndRescale(const at::Tensor &delta, double density, uint64_t seed, size_t model) {
  if (density >= 1)
    return delta;
  const int64_t n = delta.numel();
  at::Tensor mask = at::empty({n}, delta.options());
  double *m = mask.data_ptr<double>();
  const uint64_t modelSeed = splitmix64(seed ^ (static_cast<uint64_t>(model) * 0xd1342543de82ef95ull));
  const double threshold = density * 0x1.0p64;
  for (int64_t j = 0; j < n; ++j)
    m[j] = static_cast<double>(splitmix64(modelSeed ^ static_cast<uint64_t>(j))) < threshold ? 1.0 / density : 0.0;
  return delta * mask.view_as(delta);
}

/// slerp.py: both tensors as one vector each; lerp when their directions are colinear
/// (|cos| > 0.9995, MergeKit's DOT_THRESHOLD), else interpolate along the great circle. As
/// there, normalized copies give the angle only: the weights sin((1-t)θ)/sin θ and
/// sin(tθ)/sin θ multiply the vectors as they are, so magnitudes interpolate too. MergeKit
/// computes in float32 (numpy), this in double.
at::Tensor slerp(double t, const at::Tensor &v0, const at::Tensor &v1) {
  constexpr double DotThreshold = 0.9995, Eps = 1e-8;
  auto direction = [&](const at::Tensor &v) {
    double norm = v.norm().item<double>();
    return norm > Eps ? v / norm : v;
  };
  double dot = (direction(v0) * direction(v1)).sum().item<double>();
  if (std::abs(dot) > DotThreshold)
    return (1 - t) * v0 + t * v1;
  double theta0 = std::acos(dot), thetaT = theta0 * t;
  double s0 = std::sin(theta0 - thetaT) / std::sin(theta0), s1 = std::sin(thetaT) / std::sin(theta0);
  return s0 * v0 + s1 * v1;
}

/// generalized_task_arithmetic.py, GTATask.execute and get_mask(method = "sum"). With
/// normalize, the mixed task vector is divided by the sum of the weights (dare_linear: all of
/// them, whatever the drop kept) or, where signs are elected, by the sum of the weights of
/// the entries that agree (a dropped or trimmed entry is 0 and never agrees); a divisor of 0
/// counts as 1.
at::Tensor taskArithmetic(const MergeOptions &o, llvm::ArrayRef<at::Tensor> models, const at::Tensor &base,
                          llvm::StringRef name) {
  const std::vector<double> w = weightsFor(o, models.size());
  const bool sparsifyByMagnitude = o.Method == Method::Ties;
  const bool dropAtRandom = o.Method == Method::DareLinear || o.Method == Method::DareTies;
  const bool electSigns = o.Method == Method::Ties || o.Method == Method::DareTies;
  const bool normalize = o.normalizes();
  const uint64_t seed = dropSeed(o.Seed, name);
  std::vector<at::Tensor> weighted;
  for (size_t i = 0; i < models.size(); ++i) {
    at::Tensor delta = models[i] - base;
    if (sparsifyByMagnitude)
      delta = keepLargest(delta, o.Density);
    if (dropAtRandom)
      delta = dropAndRescale(delta, o.Density, seed, i);
    weighted.push_back(delta * w[i]);
  }
  at::Tensor deltas = at::stack(weighted);
  at::Tensor weights = at::tensor(w, deltas.options());
  while (weights.dim() < deltas.dim())
    weights = weights.unsqueeze(-1);
  at::Tensor mixed, divisor;
  if (electSigns) {
    // The elected sign is that of the sum (ties at 0 go to +); an entry agrees when its
    // sign is the elected one, so a zero entry never agrees and never counts.
    at::Tensor elected = (deltas.sum(0) >= 0).to(deltas.scalar_type()) * 2 - 1;
    at::Tensor agree = (deltas.sign() == elected).to(deltas.scalar_type());
    mixed = (deltas * agree).sum(0);
    divisor = (weights * agree).sum(0);
    divisor.masked_fill_(divisor == 0, 1.0);
  } else {
    mixed = deltas.sum(0);
    divisor = weights.sum(0);
    divisor.masked_fill_(divisor.abs() < 1e-8, 1.0);
  }
  if (normalize)
    mixed = mixed / divisor;
  return base + mixed;
}

} // namespace

bool mixtape::merge::takesTaskVectors(Method method) {
  return method != Method::Linear && method != Method::Slerp;
}

llvm::Error MergeOptions::validate(size_t models, bool hasBase) const {
  llvm::StringRef name = plan::enumName(Method);
  if (models == 0)
    return makeError("a " + name + " merge needs at least one model");
  if (Method == Method::Slerp && models != 2)
    return makeError(llvm::formatv("slerp merges exactly two models, not {0}", models));
  if (takesTaskVectors(Method) && !hasBase)
    return makeError("'" + name + "' merges task vectors: it needs a base model");
  if (!takesTaskVectors(Method) && hasBase)
    return makeError("'" + name + "' takes no base model");
  if (!Weights.empty() && Weights.size() != models)
    return makeError(llvm::formatv("{0} weights for {1} models", Weights.size(), models));
  if (Method == Method::Linear && normalizes() && !Weights.empty()) {
    double total = 0;
    for (double w : Weights)
      total += w;
    if (total == 0)
      return makeError("a normalized linear merge needs weights that do not sum to 0");
  }
  if (!(Density > 0 && Density <= 1))
    return makeError("density must be in (0, 1], not " + formatNumber(Density));
  if (!(T >= 0 && T <= 1))
    return makeError("t must be in [0, 1], not " + formatNumber(T));
  return llvm::Error::success();
}

uint64_t mixtape::merge::dropSeed(uint64_t seed, llvm::StringRef name) {
  uint64_t hash = 0xcbf29ce484222325ull; // FNV-1a, 64 bits
  for (unsigned char c : name)
    hash = (hash ^ c) * 0x100000001b3ull;
  return splitmix64(seed ^ splitmix64(hash));
}

at::Tensor mixtape::merge::mergeTensors(const MergeOptions &options, llvm::ArrayRef<at::Tensor> models,
                                        const at::Tensor &base, llvm::StringRef name) {
  const c10::ScalarType dtype = models.front().scalar_type();
  std::vector<at::Tensor> x;
  for (const at::Tensor &m : models)
    x.push_back(m.to(at::kDouble));
  at::Tensor merged;
  switch (options.Method) {
  case Method::Linear: {
    // linear.py: sum(w_i x_i), then / sum(w_i) when normalizing.
    const std::vector<double> w = weightsFor(options, x.size());
    merged = x[0] * w[0];
    double total = w[0];
    for (size_t i = 1; i < x.size(); ++i) {
      merged.add_(x[i], w[i]);
      total += w[i];
    }
    if (options.normalizes())
      merged.div_(total);
    break;
  }
  case Method::Slerp:
    merged = slerp(options.T, x[0], x[1]);
    break;
  case Method::TaskArithmetic:
  case Method::Ties:
  case Method::DareLinear:
  case Method::DareTies:
    merged = taskArithmetic(options, x, base.to(at::kDouble), name);
    break;
  }
  return merged.to(dtype).contiguous();
}
