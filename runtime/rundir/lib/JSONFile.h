//===- JSONFile.h - the small JSON files of a run directory ----*- C++ -*-===//
//
// Private to runtime/rundir: node.json and checkpoints' state.json, read where a missing or
// damaged file means "not there" rather than an error.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/JSON.h"

#include <optional>

namespace mixtape::rundir {

/// The object the JSON file at `path` holds; nullopt when it is missing, unreadable, not
/// JSON or not an object.
std::optional<llvm::json::Object> readJSONObject(llvm::StringRef path);

} // namespace mixtape::rundir
