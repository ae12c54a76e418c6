//===- LintCommand.cpp - `mixtape lint` ----------------------------------===//
#include "Commands.h"

#include "llvm/Support/raw_ostream.h"

int mixtape::cli::lintMain(llvm::ArrayRef<llvm::StringRef>) {
  llvm::errs() << "mixtape lint: not built yet\n";
  return Failure;
}
