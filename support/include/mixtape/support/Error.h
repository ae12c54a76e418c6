//===- Error.h - the errors every part returns -------------------*- C++ -*-===//
//
// Mixtape reports failures as llvm::Error with a message a person can act on; a message
// about a file starts with the file, and with the byte where one is known.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

#include <cstdint>

namespace mixtape {

/// An error that is only its message.
llvm::Error makeError(const llvm::Twine &message);
/// "<file>: <message>", for problems that concern the whole file.
llvm::Error fileError(const llvm::Twine &file, const llvm::Twine &message);
/// "<file>: byte <offset>: <message>"
llvm::Error fileError(const llvm::Twine &file, uint64_t offset, const llvm::Twine &message);
/// "<context>: <the error's message>", the error consumed.
llvm::Error prefixError(const llvm::Twine &context, llvm::Error error);

} // namespace mixtape
