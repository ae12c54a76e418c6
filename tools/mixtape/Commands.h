//===- Commands.h - the subcommands of the one `mixtape` binary -*- C++ -*-===//
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <memory>
#include <string>

namespace mixtape::data {
class ShardCatalog;
}

namespace mixtape::cli {

/// Exit codes shared by every subcommand.
enum ExitCode : int { Success = 0, Failure = 1, Usage = 2 };

/// Each subcommand receives the arguments after its name.
using CommandMain = int (*)(llvm::ArrayRef<llvm::StringRef> args);

struct Command {
  llvm::StringRef name;
  llvm::StringRef summary;
  CommandMain run;
};

/// runs/<recipe name>, the name made safe for a path (a recipe may be named anything).
std::string defaultRunDir(llvm::StringRef recipeName);

/// The data catalog that planning reads through for a run directory: its caches under
/// <runDir>/cache (made absolute: the plan records them), derived manifests where
/// data::defaultManifestCacheDir puts them, notes on stderr.
std::unique_ptr<data::ShardCatalog> runDirCatalog(llvm::StringRef runDir);

int lintMain(llvm::ArrayRef<llvm::StringRef> args);
int planMain(llvm::ArrayRef<llvm::StringRef> args);
int submitMain(llvm::ArrayRef<llvm::StringRef> args);
#ifdef MIXTAPE_HAVE_RUNTIME
int runMain(llvm::ArrayRef<llvm::StringRef> args);
int execMain(llvm::ArrayRef<llvm::StringRef> args);
int exportMain(llvm::ArrayRef<llvm::StringRef> args);
int mergeMain(llvm::ArrayRef<llvm::StringRef> args);
#endif
int dataMain(llvm::ArrayRef<llvm::StringRef> args);
int reportMain(llvm::ArrayRef<llvm::StringRef> args);

} // namespace mixtape::cli
