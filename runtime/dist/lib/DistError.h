//===- DistError.h - the errors of runtime/dist ----------------*- C++ -*-===//
//
// Private to runtime/dist: every failure here is a message for the user, with no error
// code to match on.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

namespace mixtape::dist {

inline llvm::Error distError(const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), what);
}

} // namespace mixtape::dist
