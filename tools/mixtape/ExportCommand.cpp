//===- ExportCommand.cpp - `mixtape export` -------------------------------===//
//
// `mixtape export RUN_DIR NODE --hf DIR` writes the model a finished node left as a Hugging
// Face folder. The node's directory comes from RUN_DIR/plan.json, the plan the run executed.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/exec/Executor.h"
#include "mixtape/plan/PlanJSON.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/Options.h"

#include "llvm/Support/raw_ostream.h"

using namespace mixtape;

int mixtape::cli::exportMain(llvm::ArrayRef<llvm::StringRef> args) {
  std::vector<std::string> positional;
  std::string hfDir;
  OptionParser options("mixtape export", "RUN_DIR NODE",
                       "Writes the model that NODE of the run left as a Hugging Face folder (config.json +\n"
                       "model.safetensors, loadable by transformers' from_pretrained).");
  options.value("--hf", "DIR", hfDir, "the folder to write; it must not exist")
      .required()
      .positional("RUN_DIR NODE", positional, 2, 2)
      .epilog("exit status: 0 written, 1 errors, 2 usage");
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  const std::string &runDir = positional[0], &node = positional[1];
  llvm::Expected<plan::Plan> plan = plan::readPlanFile(joinPath(runDir, "plan.json"));
  if (!plan) {
    llvm::errs() << "mixtape export: error: " << llvm::toString(plan.takeError()) << "\n";
    return Failure;
  }
  if (llvm::Error e = exec::exportNode(*plan, runDir, node, hfDir)) {
    llvm::errs() << "mixtape export: error: " << llvm::toString(std::move(e)) << "\n";
    return Failure;
  }
  llvm::errs() << "mixtape export: " << node << " -> " << hfDir << "\n";
  return Success;
}
