//===- Mixture.cpp --------------------------------------------------------===//
#include "mixtape/plan/Mixture.h"

#include <algorithm>

using namespace mixtape::plan;

std::optional<size_t> mixtape::plan::streamIndex(const Mixture &mixture, llvm::StringRef stream) {
  auto it = std::find(mixture.Streams.begin(), mixture.Streams.end(), stream);
  if (it == mixture.Streams.end())
    return std::nullopt;
  return static_cast<size_t>(it - mixture.Streams.begin());
}

std::vector<double> mixtape::plan::weightsAt(const Mixture &mixture, double tokens) {
  const std::vector<double> &positions = mixture.Positions;
  if (positions.empty())
    return {};
  if (!(tokens > positions.front()))
    return mixture.Weights.front();
  if (tokens >= positions.back())
    return mixture.Weights.back();
  size_t next = std::upper_bound(positions.begin(), positions.end(), tokens) - positions.begin();
  size_t prev = next - 1;
  double t = (tokens - positions[prev]) / (positions[next] - positions[prev]);
  std::vector<double> out(mixture.Streams.size());
  for (size_t s = 0; s < out.size(); ++s)
    out[s] = mixture.Weights[prev][s] + (mixture.Weights[next][s] - mixture.Weights[prev][s]) * t;
  return out;
}

Blender::Blender(const Mixture &mixture, uint64_t seqLen)
    : Weights(mixture), SeqLen(seqLen), Target(mixture.Streams.size(), 0.0), Taken(mixture.Streams.size(), 0) {
  ConstantWeights = std::all_of(mixture.Weights.begin(), mixture.Weights.end(),
                                [&](const std::vector<double> &w) { return w == mixture.Weights.front(); });
  if (ConstantWeights && !mixture.Weights.empty())
    Current = mixture.Weights.front();
}

size_t Blender::next() {
  if (!ConstantWeights)
    Current = weightsAt(Weights, static_cast<double>(Done * SeqLen));
  size_t best = 0;
  double bestLag = -1e300;
  for (size_t s = 0; s < Current.size(); ++s) {
    Target[s] += Current[s];
    double lag = Target[s] - static_cast<double>(Taken[s]);
    if (lag > bestLag) {
      bestLag = lag;
      best = s;
    }
  }
  ++Taken[best];
  ++Done;
  return best;
}

void Blender::skipTo(uint64_t sample) {
  while (Done < sample)
    next();
}
