//===- Blend.h - which stream each sample of a stage comes from -*- C++ -*-===//
//
// Megatron-LM's deterministic blending, with weights that may change piecewise-linearly
// over the stage: sample j (0-based, within the stage) goes to the stream whose realized
// count lags its target most, where a stream's target is the sum of its weight at every
// sample so far (weights read at j * seq_len stage tokens). Ties go to the earlier stream.
// Proportions are exact to within one sample at every prefix.
//
// One source of truth: the plan compiler counts each node's samples per stream (its data
// cursors) with this, and the data layer replays it to find sample j's stream.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/compiler/Mixture.h"

#include <cstdint>
#include <vector>

namespace mixtape {

class Blender {
public:
  Blender(const Mixture &mixture, uint64_t seqLen);

  /// The stream (index into mixture.streams) of the next sample; advances by one.
  size_t next();
  /// Advance to stage sample `sample` (no-op if already there or past).
  void skipTo(uint64_t sample);

  uint64_t samplesDone() const { return done; }
  /// Samples taken from each stream so far.
  const std::vector<uint64_t> &counts() const { return taken; }

private:
  const Mixture &mixture;
  uint64_t seqLen;
  uint64_t done = 0;
  std::vector<double> target;
  std::vector<uint64_t> taken;
  bool constantWeights = false; ///< every point has the same weights: read them once
  std::vector<double> weights;
};

} // namespace mixtape
