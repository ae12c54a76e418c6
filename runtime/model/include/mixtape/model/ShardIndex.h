//===- ShardIndex.h - model.safetensors.index.json -------------*- C++ -*-===//
//
// A sharded Hugging Face checkpoint's index: which shard file of the folder holds each
// tensor. One reader for the runtime (Model::loadHuggingFaceWeights) and planning
// (inspectCheckpoint); no LibTorch here.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <map>
#include <string>
#include <vector>

namespace mixtape::model {

struct ShardIndex {
  /// Shard file name -> its tensors; in name order, so what reads the shards in this
  /// order does not depend on hashing.
  std::map<std::string, std::vector<std::string>> TensorsOfShard;
  /// Tensor -> shard file name.
  llvm::StringMap<std::string> ShardOfTensor;
};

/// The index `text` of the file `fileName`. Refuses a text over the safetensors header
/// limit, no "weight_map" object, a tensor listed twice (llvm::json keeps the last of
/// duplicate keys silently, so the index would be ambiguous) and a shard that is not a file
/// name of the folder (empty, ".", "..", a separator or a NUL). Errors name the file.
llvm::Expected<ShardIndex> parseShardIndex(llvm::StringRef text, llvm::StringRef fileName);

} // namespace mixtape::model
