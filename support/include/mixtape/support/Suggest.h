//===- Suggest.h - did you mean? --------------------------------*- C++ -*-===//
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <optional>
#include <string>

namespace mixtape {

/// The candidate closest to `word` when it is close enough to be a typo of it (one or two
/// edits, changing at most half of the candidate), for "did you mean" notes.
std::optional<std::string> closestMatch(llvm::StringRef word, llvm::ArrayRef<std::string> candidates);

} // namespace mixtape
