//===- Error.cpp ----------------------------------------------------------===//
#include "mixtape/support/Error.h"

llvm::Error mixtape::makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

llvm::Error mixtape::fileError(const llvm::Twine &file, const llvm::Twine &message) {
  return makeError(file + ": " + message);
}

llvm::Error mixtape::fileError(const llvm::Twine &file, uint64_t offset, const llvm::Twine &message) {
  return makeError(file + ": byte " + llvm::Twine(offset) + ": " + message);
}

llvm::Error mixtape::prefixError(const llvm::Twine &context, llvm::Error error) {
  return makeError(context + ": " + llvm::toString(std::move(error)));
}
