//===- Checkpoints.h - a train node's checkpoints ---------------*- C++ -*-===//
//
// <node dir>/checkpoints/step-00000042/ holds the weights and optimizer state the runtime
// writes (model.safetensors, optimizer.safetensors) and state.json, written last and
// durably: a checkpoint counts only once its state.json parses. The store names the
// folders, commits state.json, keeps the newest few and finds the latest; it knows no
// tensors.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>

namespace mixtape::rundir {

/// What a checkpoint's state.json records beside the weights.
struct CheckpointState {
  uint64_t Step = 0;          ///< the stage step it resumes at
  uint64_t MetricsBytes = 0;  ///< metrics.jsonl up to this step
  std::string Numerics;       ///< the numerics fingerprint it was written under
  uint64_t SkippedSteps = 0, ConsecutiveSkips = 0;
  /// The ranks that wrote it and each one's micro-batch (0: not recorded): another split
  /// of the batch sums in another order.
  uint64_t WorldSize = 0, MicroBatch = 0;
};

struct Checkpoint {
  std::string Dir;
  CheckpointState State;
};

class CheckpointStore {
public:
  explicit CheckpointStore(std::string nodeDir) : NodeDir(std::move(nodeDir)) {}

  /// <node dir>/checkpoints/step-00000042
  std::string dirFor(uint64_t step) const;
  /// Creates the folder of a new checkpoint at `step`, where the runtime writes its files.
  llvm::Expected<std::string> begin(uint64_t step) const;
  /// Makes the checkpoint at `state.Step` count (its state.json, durably, last), then
  /// removes all but the newest `keep` (at least the one just written).
  llvm::Error commit(const CheckpointState &state, uint64_t keep) const;
  /// The newest complete checkpoint; an error naming a damaged state.json.
  llvm::Expected<std::optional<Checkpoint>> latest() const;
  /// A complete checkpoint at `step`: its state.json (whole) and weights are there.
  bool complete(uint64_t step) const;

private:
  std::string NodeDir;
};

} // namespace mixtape::rundir
