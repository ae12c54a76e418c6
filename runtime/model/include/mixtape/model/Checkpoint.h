//===- Checkpoint.h - a Hugging Face checkpoint folder, for planning -*- C++ -*-===//
//
// What planning learns of an `hf:` checkpoint (plan/Environment.h) without loading it:
// config.json read by readHFConfig, the one reader the runtime builds models from, and a
// content fingerprint over the config and every weight file's bytes.
// No LibTorch here.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Environment.h"

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/Error.h"

#include <optional>

namespace mixtape::model {

/// The XXH3-64 of a whole file (data::DataVerifier::checksum keeps them in a cache).
using FileChecksum = llvm::function_ref<llvm::Expected<uint64_t>(llvm::StringRef path)>;

/// The checkpoint in `folder`; nullopt when it has no config.json. The fingerprint is
/// "sha256:<hex>" of, in order: config.json (its name, size and bytes); then either
/// model.safetensors (name, size, `checksum` of its bytes) or model.safetensors.index.json
/// (name, size, bytes) followed by each shard its weight_map names, in name order (name,
/// size, checksum); empty when there are no weights. Touching or copying the files changes
/// nothing; changing one weight changes it.
llvm::Expected<std::optional<plan::CheckpointInfo>> inspectCheckpoint(llvm::StringRef folder, FileChecksum checksum);

} // namespace mixtape::model
