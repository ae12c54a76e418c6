//===- main.cpp - the `mixtape` command ----------------------------------===//
//
// The compiler's commands run here, in a binary without LibTorch, so `mixtape lint` and
// `mixtape plan` start in milliseconds. The runtime's commands run in `mixtape-runtime`,
// the executable beside this one, which this one replaces itself with.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/support/Files.h"
#include "mixtape/support/Options.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cerrno>
#include <cstring>
#include <unistd.h>
#include <vector>

using namespace mixtape;

/// Replaces this process with `mixtape-runtime COMMAND ARGS...`.
static int runtime(llvm::StringRef command, llvm::ArrayRef<llvm::StringRef> args) {
  std::string self = llvm::sys::fs::getMainExecutable(nullptr, reinterpret_cast<void *>(&runtime));
  std::string path = joinPath(llvm::sys::path::parent_path(self), "mixtape-runtime");
  std::vector<std::string> argv{std::string(path), command.str()};
  for (llvm::StringRef a : args)
    argv.push_back(a.str());
  std::vector<char *> cargv;
  for (std::string &a : argv)
    cargv.push_back(a.data());
  cargv.push_back(nullptr);
  ::execv(cargv[0], cargv.data());
  llvm::errs() << "mixtape " << command << ": cannot run " << path << ": " << std::strerror(errno)
               << (errno == ENOENT ? " (this mixtape was built without LibTorch: run, exec, export and merge need it)"
                                   : "")
               << "\n";
  return cli::Failure;
}

static int runCommand(llvm::ArrayRef<llvm::StringRef> args) { return runtime("run", args); }
static int execCommand(llvm::ArrayRef<llvm::StringRef> args) { return runtime("exec", args); }
static int exportCommand(llvm::ArrayRef<llvm::StringRef> args) { return runtime("export", args); }
static int mergeCommand(llvm::ArrayRef<llvm::StringRef> args) { return runtime("merge", args); }

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  static const Subcommand commands[] = {
      {"lint", "check recipes and report every problem, like a compiler", cli::lintMain},
      {"plan", "lower a recipe to its execution graph: nodes, data cursors, ledger, cost", cli::planMain},
      {"run", cli::kRunSummary, runCommand},
      {"exec", cli::kExecSummary, execCommand},
      {"submit", "submit a recipe's plan as Slurm jobs that depend on each other (--slurm)", cli::submitMain},
      {"export", cli::kExportSummary, exportCommand},
      {"merge", cli::kMergeSummary, mergeCommand},
      {"data", "synthesize, prepare and inspect token datasets", cli::dataMain},
      {"report", "tables and plots of a run: metrics, forgetting, LR", cli::reportMain},
      {"fit", "fit a scaling law (D-CPT, replay) to a run's sweep and predict the best ratio", cli::fitMain},
      {"schema", "print the JSON schema of recipes, for editors (Even Better TOML, taplo)", cli::schemaMain},
      {"completion", "print a bash or zsh completion script", cli::completionMain},
  };
  std::vector<llvm::StringRef> args(argv + 1, argv + argc);
  return CommandTable("mixtape", "a recipe compiler and runtime for continual pre-training", commands)
      .version("mixtape " MIXTAPE_VERSION " (plan format " + std::to_string(plan::kPlanFormatVersion) + ")")
      .dispatch(args);
}
