//===- PythonText.h - Python's whitespace and strip() on UTF-8 --*- C++ -*-===//
//
// What Python's str.strip() family removes, on UTF-8 text: the ecosystem's prompts
// (lm-eval-harness's templates, its _encode_pair's rstrip(), stripped generations) are
// defined with it, and it is wider than ASCII whitespace.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/StringRef.h"

#include <cstdint>

namespace mixtape {

/// Python's str.isspace() for one code point: Unicode's White_Space and U+001C..U+001F.
bool isPythonSpace(uint32_t codePoint);

/// str.lstrip(), str.rstrip() and str.strip() without arguments. A byte that is not valid
/// UTF-8 counts as the code point of its value.
llvm::StringRef pythonLStrip(llvm::StringRef text);
llvm::StringRef pythonRStrip(llvm::StringRef text);
llvm::StringRef pythonStrip(llvm::StringRef text);

} // namespace mixtape
