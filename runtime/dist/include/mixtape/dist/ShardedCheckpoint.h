//===- ShardedCheckpoint.h - each rank writes what it owns -----*- C++ -*-===//
//
// A checkpoint written by W ranks without gathering anything: rank r writes the elements
// of the weights and AdamW moments it owns as shard-0000r-of-0000W.safetensors (a slice
// of each tensor, flattened, as a 1-D tensor of the tensor's name), and rank 0 then writes
// index.json from the shards' headers: per tensor its shape, dtype and, per slice, the
// file, rank, first element, length and data_offsets. Which elements a rank owns is the
// sharding's business (FullShard, ShardedAdamW, or an even split of replicated state);
// a reader needs only the index: every rank of another world size or shard mode reads the
// slices it holds from the files that have them (resharding on load), and an export reads
// each whole tensor. The checkpoint store's state.json, committed after the index, is
// what makes the folder count (docs/cluster.md).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/dist/Collectives.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mixtape::model {
class Model;
struct NamedParameter;
} // namespace mixtape::model
namespace mixtape::train {
class AdamW;
} // namespace mixtape::train

namespace mixtape::dist {

/// The index's name in a checkpoint folder.
constexpr llvm::StringLiteral kCheckpointIndex = "index.json";
/// "shard-00001-of-00004.safetensors"
std::string shardFileName(int rank, int worldSize);

/// Elements [Begin, Begin + View.numel()) of checkpoint tensor `Name` (weights: the
/// parameter's name; moments: "<name>.exp_avg", "<name>.exp_avg_sq"), flattened: `View`
/// (1-D) is where this rank keeps them, written from on save and filled on load.
struct StateSlice {
  std::string Name;
  std::vector<int64_t> Shape; ///< the whole tensor's
  int64_t Begin = 0;
  at::Tensor View;
};

/// What a rank writes (each element on exactly one rank) or loads (all it keeps).
enum class SlicePurpose { Save, Load };

/// The slices of replicated state (no sharding, or a world of one): on save, rank `rank`
/// writes its even share of the weights and moments laid end to end; on load, it fills
/// every parameter and moment. Moments the optimizer lacks (a parameter that never had a
/// gradient) are made zeros first, as AdamW::saveState writes and loadState reads them.
std::vector<StateSlice> replicatedSlices(train::AdamW &optimizer, int rank, int worldSize, SlicePurpose purpose);
/// The checkpoint names of a parameter's moments, as AdamW::saveState spells them.
std::string expAvgName(llvm::StringRef param);
std::string expAvgSqName(llvm::StringRef param);

/// The weights of `params` that are not trained (frozen, a LoRA's base: no gradient), which
/// every rank holds: rank `rank`'s even share of them, to save. A resuming node takes them
/// from its input, as at its start; evals and exports of the checkpoint read them.
std::vector<StateSlice> frozenSlices(llvm::ArrayRef<model::NamedParameter> params, int rank, int worldSize);

/// The name of the first slice holding a NaN or infinity (nothing that holds one is saved).
std::optional<std::string> firstNonFinite(llvm::ArrayRef<StateSlice> slices);

/// Writes `slices` as rank `rank`'s shard file in `dir`, durably (fsynced, renamed).
llvm::Error writeShard(llvm::StringRef dir, int rank, int worldSize, llvm::ArrayRef<StateSlice> slices);
/// Rank 0, once every shard is written: index.json of `dir` from the shards' headers,
/// durably; `shardMode` and the optimizer's step count recorded beside the tensors.
llvm::Error writeShardIndex(llvm::StringRef dir, int worldSize, llvm::StringRef shardMode, int64_t optimizerSteps);

/// A checked index.json: every tensor's slices cover it once, files are plain names of its
/// folder. Errors name the index, a shard file and the tensor at fault.
class CheckpointIndex {
public:
  static llvm::Expected<CheckpointIndex> open(llvm::StringRef indexPath);

  int64_t worldSize() const { return WorldSize; }
  const std::string &shardMode() const { return ShardMode; }
  int64_t optimizerSteps() const { return OptimizerSteps; }
  bool has(llvm::StringRef name) const { return Tensors.count(name.str()) != 0; }

  /// Fills each slice's View from the shard files that hold its elements, opening only
  /// those; a missing, cut or inconsistent file is an error naming it.
  llvm::Error read(llvm::ArrayRef<StateSlice> slices) const;

private:
  struct Piece {
    std::string File;
    int64_t Begin = 0, Length = 0;
  };
  struct Tensor {
    std::vector<int64_t> Shape;
    std::string Dtype;
    std::vector<Piece> Pieces; ///< by Begin
  };
  std::string Dir, Path, ShardMode;
  int64_t WorldSize = 0, OptimizerSteps = 0;
  std::map<std::string, Tensor> Tensors;
};

/// Every rank: fails on every rank when `local` failed on any (one small all-reduce), so
/// none waits for a collective the failed one never starts.
llvm::Error everyRankSucceeded(Collectives &collectives, llvm::Error local, llvm::StringRef what);

/// Every rank: fills `slices`, what this rank keeps (of any world size and shard mode),
/// from the sharded checkpoint `indexPath`, opening only the shard files that hold them, and
/// gives `optimizer` its step count. Fails on every rank when any failed: a rank's own error
/// names the file at fault, the others' the index.
llvm::Error loadCheckpointSlices(Collectives &collectives, llvm::StringRef indexPath,
                                 llvm::ArrayRef<StateSlice> slices, train::AdamW &optimizer);

/// A whole model's weights from a sharded checkpoint's index (an export, an eval served
/// from a checkpoint): each parameter read tensor by tensor into its own storage.
llvm::Error loadShardedWeights(model::Model &model, llvm::StringRef indexPath);

} // namespace mixtape::dist
