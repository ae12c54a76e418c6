//===- RuntimeMain.cpp - `mixtape-runtime`: the commands that need LibTorch ===//
//
// `mixtape run|exec|export|merge` end here (the `mixtape` driver runs this executable for
// them); cluster launchers may call it directly.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/support/Options.h"

#include "llvm/Support/InitLLVM.h"

#include <vector>

using namespace mixtape;

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  static const Subcommand commands[] = {
      {"run", cli::kRunSummary, cli::runMain},
      {"exec", cli::kExecSummary, cli::execMain},
      {"export", cli::kExportSummary, cli::exportMain},
      {"merge", cli::kMergeSummary, cli::mergeMain},
  };
  std::vector<llvm::StringRef> args(argv + 1, argv + argc);
  return CommandTable("mixtape", "the commands of mixtape that run models (LibTorch)", commands).dispatch(args);
}
