//===- ExportCommand.cpp - `mixtape export` -------------------------------===//
//
// `mixtape export RUN_DIR NODE --hf DIR` writes the model a finished node left as a Hugging
// Face folder. The node's directory comes from RUN_DIR/plan.json, the plan the run executed.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/compiler/Plan.h"
#include "mixtape/exec/Executor.h"

#include "llvm/Support/raw_ostream.h"

#include <string>

using namespace mixtape;

int mixtape::cli::exportMain(llvm::ArrayRef<llvm::StringRef> args) {
  const char *usage = "usage: mixtape export RUN_DIR NODE --hf DIR\n"
                      "  write the model that NODE of the run left as a Hugging Face folder DIR\n"
                      "  (config.json + model.safetensors, loadable by transformers' from_pretrained)\n";
  std::vector<std::string> positional;
  std::string hfDir;
  for (size_t i = 0; i < args.size(); ++i) {
    llvm::StringRef a = args[i];
    if (a == "--help" || a == "-h") {
      llvm::outs() << usage;
      return Success;
    }
    if (a == "--hf" && i + 1 < args.size()) {
      hfDir = args[++i].str();
    } else if (a.startswith("-") || positional.size() == 2) {
      llvm::errs() << "mixtape export: unexpected argument '" << a << "'\n" << usage;
      return Usage;
    } else {
      positional.push_back(a.str());
    }
  }
  if (positional.size() != 2 || hfDir.empty()) {
    llvm::errs() << usage;
    return Usage;
  }
  const std::string &runDir = positional[0], &node = positional[1];
  llvm::Expected<llvm::json::Value> plan = readPlanFile(runDir + "/plan.json");
  if (!plan) {
    llvm::errs() << "mixtape export: error: " << llvm::toString(plan.takeError()) << "\n";
    return Failure;
  }
  if (llvm::Error e = exec::exportNode(*plan->getAsObject(), runDir, node, hfDir)) {
    llvm::errs() << "mixtape export: error: " << llvm::toString(std::move(e)) << "\n";
    return Failure;
  }
  llvm::errs() << "mixtape export: " << node << " -> " << hfDir << "\n";
  return Success;
}
