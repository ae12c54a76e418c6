//===- Blend.cpp ----------------------------------------------------------===//
#include "mixtape/compiler/Blend.h"

#include <algorithm>

using namespace mixtape;

Blender::Blender(const Mixture &mixture, uint64_t seqLen)
    : mixture(mixture), seqLen(seqLen), target(mixture.streams.size(), 0.0),
      taken(mixture.streams.size(), 0) {
  constantWeights = std::all_of(mixture.weights.begin(), mixture.weights.end(),
                                [&](const std::vector<double> &w) { return w == mixture.weights.front(); });
  if (constantWeights && !mixture.weights.empty())
    weights = mixture.weights.front();
}

size_t Blender::next() {
  if (!constantWeights)
    weights = mixture.weightsAt(static_cast<double>(done * seqLen));
  const std::vector<double> &w = weights;
  size_t best = 0;
  double bestLag = -1e300;
  for (size_t s = 0; s < w.size(); ++s) {
    target[s] += w[s];
    double lag = target[s] - static_cast<double>(taken[s]);
    if (lag > bestLag) {
      bestLag = lag;
      best = s;
    }
  }
  ++taken[best];
  ++done;
  return best;
}

void Blender::skipTo(uint64_t sample) {
  while (done < sample)
    next();
}
