//===- Checkpoint.h - a Hugging Face checkpoint folder, for planning -*- C++ -*-===//
//
// What planning learns of an `hf:` checkpoint (plan/Environment.h) without loading it:
// config.json read by readHFConfig, the one reader the runtime builds models from, and a
// content fingerprint over the safetensors headers, read by the one safetensors reader.
// No LibTorch here.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Environment.h"

#include "llvm/Support/Error.h"

#include <optional>

namespace mixtape::model {

/// The checkpoint in `folder`; nullopt when it has no config.json. The fingerprint is
/// "sha256:<hex>" of, in order: config.json (its name, size and bytes); then either
/// model.safetensors (name, size, header) or model.safetensors.index.json (name, size,
/// bytes) followed by each shard its weight_map names, in name order (name, size, header);
/// empty when there are no weights. Touching or copying the files changes nothing.
llvm::Expected<std::optional<plan::CheckpointInfo>> inspectCheckpoint(llvm::StringRef folder);

} // namespace mixtape::model
