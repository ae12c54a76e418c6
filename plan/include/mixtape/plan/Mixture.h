//===- Mixture.h - stream weights over a stage, and the blend -*- C++ -*-===//
//
// A resolved mixture (plan `settings.mixture`) gives every stream's weight at points of
// the stage, piecewise-linear between them. The Blender is Megatron-LM's deterministic
// blending with such weights: sample j (0-based, within the stage) goes to the stream
// whose realized count lags its target most, where a stream's target is the sum of its
// weight at every sample so far (weights read at j * seq_len stage tokens). Ties go to the
// earlier stream. Proportions are exact to within one sample at every prefix.
//
// One source of truth: the planner counts each node's samples per stream (its data
// cursors) with it, and the data layer replays it to find sample j's stream.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Plan.h"

#include <cstdint>
#include <optional>
#include <vector>

namespace mixtape::plan {

/// Weights of every stream (in `Streams` order) after `tokens` tokens of the stage:
/// piecewise-linear between points, constant before the first and after the last.
std::vector<double> weightsAt(const Mixture &mixture, double tokens);

/// Index of a stream in the mixture's `Streams`.
std::optional<size_t> streamIndex(const Mixture &mixture, llvm::StringRef stream);

class Blender {
public:
  Blender(const Mixture &mixture, uint64_t seqLen);

  /// The stream (index into mixture.Streams) of the next sample; advances by one.
  size_t next();
  /// Advance to stage sample `sample` (no-op if already there or past).
  void skipTo(uint64_t sample);

  uint64_t samplesDone() const { return Done; }
  /// Samples taken from each stream so far.
  const std::vector<uint64_t> &counts() const { return Taken; }

private:
  const Mixture &Weights;
  uint64_t SeqLen;
  uint64_t Done = 0;
  std::vector<double> Target;
  std::vector<uint64_t> Taken;
  bool ConstantWeights = false; ///< every point has the same weights: read them once
  std::vector<double> Current;
};

} // namespace mixtape::plan
