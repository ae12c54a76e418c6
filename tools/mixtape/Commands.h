//===- Commands.h - the subcommands of `mixtape` ----------------*- C++ -*-===//
//
// Two executables: `mixtape` (lint, plan, submit, data, report, fit, schema, completion; no
// LibTorch, so it starts in milliseconds) and `mixtape-runtime` (run, exec, export, merge),
// which `mixtape` runs for those commands. Both share what is declared here.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/MemoryPlan.h"
#include "mixtape/plan/Plan.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mixtape::data {
class ShardCatalog;
}

namespace mixtape::cli {

/// Exit codes shared by every subcommand.
enum ExitCode : int { Success = 0, Failure = 1, Usage = 2 };

/// runs/<recipe name>, the name made safe for a path (a recipe may be named anything).
std::string defaultRunDir(llvm::StringRef recipeName);

/// What `mixtape plan`'s flags set over the recipe: [resources], and every stage's shard.
struct PlanOverrides {
  uint64_t Gpus = 0;                    ///< 0: the recipe's
  uint64_t GpuMemory = 0;               ///< bytes; 0: the recipe's
  double InterconnectGbps = 0;          ///< 0: the recipe's
  std::optional<plan::ShardMode> Shard;
};

/// Lints `recipePath` and lowers it to its plan, reading the data through the catalog of
/// `runDir` (default, when empty: defaultRunDir, which is then set). Diagnostics go to
/// stderr; nullopt after errors. `cluster`, when given, gets the GPUs the memory plan
/// assumed (none: no GPUs or no memory). With `verified`, the diagnostics are checked
/// against the recipe's '# expect-error@+1: ...' comments instead (mismatches to stderr).
std::optional<plan::Plan> compileRecipe(llvm::StringRef recipePath, std::string &runDir, const plan::Cost &cost,
                                        const PlanOverrides &overrides = {}, plan::Cluster *cluster = nullptr,
                                        bool *verified = nullptr);

/// Writes a plan file durably (docs/plan-format.md): a killed command leaves the old file or
/// the whole new one. Prints the error, naming `command`.
bool writePlan(llvm::StringRef command, const plan::Plan &plan, llvm::StringRef path);

/// A child process's exit status (-1 when it could not run, `Message` saying why) and
/// standard output.
struct Captured {
  int Status = -1;
  std::string Out, Message;
};
/// Runs `program` with `args`, standard input empty; its standard error is ours, or
/// discarded when `quietErrors`.
Captured runCapturing(llvm::StringRef program, llvm::ArrayRef<std::string> args, bool quietErrors = false);

int lintMain(llvm::ArrayRef<llvm::StringRef> args);
int planMain(llvm::ArrayRef<llvm::StringRef> args);
int submitMain(llvm::ArrayRef<llvm::StringRef> args);
int dataMain(llvm::ArrayRef<llvm::StringRef> args);
int reportMain(llvm::ArrayRef<llvm::StringRef> args);
int fitMain(llvm::ArrayRef<llvm::StringRef> args);
int schemaMain(llvm::ArrayRef<llvm::StringRef> args);
int completionMain(llvm::ArrayRef<llvm::StringRef> args);
// mixtape-runtime's.
int runMain(llvm::ArrayRef<llvm::StringRef> args);
int execMain(llvm::ArrayRef<llvm::StringRef> args);
int exportMain(llvm::ArrayRef<llvm::StringRef> args);
int mergeMain(llvm::ArrayRef<llvm::StringRef> args);

/// What `mixtape --help` says of the runtime's commands, and their help (printed by
/// `mixtape-runtime`, so that both say the same).
extern const char *const kRunSummary, *const kExecSummary, *const kExportSummary, *const kMergeSummary;

} // namespace mixtape::cli
