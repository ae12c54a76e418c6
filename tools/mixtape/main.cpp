//===- main.cpp - the `mixtape` command ----------------------------------===//
#include "Commands.h"

#include "mixtape/data/ShardCatalog.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <vector>

using namespace mixtape::cli;

static const Command kCommands[] = {
    {"lint", "check recipes and report every problem, like a compiler", lintMain},
    {"plan", "lower a recipe to its execution graph: nodes, data cursors, ledger, cost", planMain},
    {"submit", "submit a recipe's plan as Slurm jobs that depend on each other (--slurm)", submitMain},
#ifdef MIXTAPE_HAVE_RUNTIME
    {"run", "compile a recipe and execute its plan: train, evaluate, merge", runMain},
    {"exec", "execute a compiled plan, or one node of it", execMain},
    {"export", "write a node's model as a Hugging Face folder", exportMain},
    {"merge", "merge safetensors files: linear, slerp, task_arithmetic, ties, dare_*", mergeMain},
#endif
    {"data", "synthesize, prepare and inspect token datasets", dataMain},
    {"report", "tables and plots of a run: metrics, forgetting, LR", reportMain},
};

std::string mixtape::cli::defaultRunDir(llvm::StringRef recipeName) {
  std::string safe;
  for (char c : recipeName)
    safe += llvm::isAlnum(c) || c == '-' || c == '_' || c == '.' ? c : '_';
  if (safe.empty() || llvm::StringRef(safe).startswith("."))
    safe = "_" + safe;
  return "runs/" + safe;
}

std::unique_ptr<mixtape::data::ShardCatalog> mixtape::cli::runDirCatalog(llvm::StringRef runDir) {
  llvm::SmallString<256> cache(runDir);
  llvm::sys::path::append(cache, "cache");
  llvm::sys::fs::make_absolute(cache);
  return std::make_unique<data::ShardCatalog>(std::string(cache), data::defaultManifestCacheDir(cache), &llvm::errs());
}

static void printUsage(llvm::raw_ostream &os) {
  os << "usage: mixtape <command> [args]\n\ncommands:\n";
  for (const Command &c : kCommands)
    os << "  " << llvm::left_justify(c.name, 10) << c.summary << "\n";
  os << "\n'mixtape <command> --help' describes a command.\n";
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  if (argc < 2) {
    printUsage(llvm::errs());
    return Usage;
  }
  llvm::StringRef name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    printUsage(llvm::outs());
    return Success;
  }
  std::vector<llvm::StringRef> args(argv + 2, argv + argc);
  for (const Command &c : kCommands)
    if (c.name == name)
      return c.run(args);
  llvm::errs() << "mixtape: unknown command '" << name << "'\n";
  printUsage(llvm::errs());
  return Usage;
}
