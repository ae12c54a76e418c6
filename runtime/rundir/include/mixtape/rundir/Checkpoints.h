//===- Checkpoints.h - a train node's checkpoints ---------------*- C++ -*-===//
//
// <node dir>/checkpoints/step-00000042/ holds the weights and optimizer state the runtime
// writes (each rank's shard and their index.json: runtime/dist/ShardedCheckpoint.h; older
// runs: model.safetensors and optimizer.safetensors) and state.json, written last and
// durably with the size and XXH3-64 of every other file: a checkpoint counts only once its
// state.json is there, and only while its files are what was written. The store names the
// folders, commits state.json, keeps the newest few and finds the newest valid one; it
// knows no tensors.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/support/Checksum.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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
  /// Every file of the checkpoint but state.json; commit() fills it in.
  std::vector<FileDigest> Files;
};

/// state.json's text for `state` (its Files as given).
std::string checkpointStateText(const CheckpointState &state);
/// The state.json text of the file `path`: an error names the file and what is wrong (a
/// count missing, a file entry without its digest or naming a path outside the folder).
llvm::Expected<CheckpointState> parseCheckpointState(llvm::StringRef text, llvm::StringRef path);

struct Checkpoint {
  std::string Dir;
  CheckpointState State;
};

/// The newest valid checkpoint, and why each newer one was passed over (a file changed or
/// cut after it was written, a damaged state.json): the caller warns with these.
struct LatestCheckpoint {
  std::optional<Checkpoint> Found;
  std::vector<std::string> PassedOver;
};

class CheckpointStore {
public:
  explicit CheckpointStore(std::string nodeDir) : NodeDir(std::move(nodeDir)) {}

  /// <node dir>/checkpoints/step-00000042
  std::string dirFor(uint64_t step) const;
  /// Creates the folder of a new checkpoint at `step`, where the runtime writes its files.
  llvm::Expected<std::string> begin(uint64_t step) const;
  /// Makes the checkpoint at `state.Step` count: hashes its files and writes state.json,
  /// durably, last; then removes all but the newest `keep` (at least the one just written).
  llvm::Error commit(const CheckpointState &state, uint64_t keep) const;
  /// The newest checkpoint whose state.json is whole and whose files match it. Folders
  /// without state.json (cut short before their commit) are passed over silently.
  LatestCheckpoint latest() const;
  /// A valid checkpoint at `step` with its weights: an error says why not. `Sizes` reads
  /// only the folder (for plan --explain), `Contents` hashes every file too.
  enum class Check { Sizes, Contents };
  llvm::Error validate(uint64_t step, Check depth) const;

private:
  /// Every folder under checkpoints/, oldest first.
  std::vector<std::string> checkpointDirs() const;

  std::string NodeDir;
};

} // namespace mixtape::rundir
