//===- PlanCommand.cpp - `mixtape plan` ----------------------------------===//
//
// Lint, then lower the recipe to its plan, reading the data's manifests through the data
// layer's catalog; print the node table, the token ledger and what sharing saves. Lint
// errors stop planning with the lint diagnostics.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/compiler/PlanReport.h"
#include "mixtape/compiler/Sema.h"
#include "mixtape/data/ShardCatalog.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

using namespace mixtape;

static void printPlanHelp(llvm::raw_ostream &os) {
  os << "usage: mixtape plan RECIPE [options]\n\n"
        "  --out FILE          write the plan as JSON (docs/plan-format.md); '-' for standard output\n"
        "  --dot FILE          write the graph for Graphviz (dot -Tpng FILE -o graph.png)\n"
        "  --explain NODE      everything about one node: settings, tokens -> steps, what its hash covers,\n"
        "                      and which in-loop evals of a done node its retained checkpoints serve\n"
        "  --run-dir DIR       mark nodes done / partial / to run in DIR, and say why a node reruns\n"
        "                      (default runs/<recipe name>; the embedded corpus is cached in DIR/cache)\n"
        "  --peak-tflops X     per-GPU peak for the cost estimate (default 989, H100 bf16 dense)\n"
        "  --mfu X             model FLOPs utilization for the estimate (default 0.4)\n\n"
        "exit status: 0 planned, 1 errors, 2 usage\n";
}

/// Write `text` to `path` through a temporary file renamed into place: never half a plan.
static bool writeAtomically(llvm::StringRef path, llvm::StringRef text) {
  std::error_code ec;
  llvm::ToolOutputFile out(path, ec, llvm::sys::fs::OF_Text);
  if (ec) {
    llvm::errs() << "mixtape plan: " << path << ": " << ec.message() << "\n";
    return false;
  }
  out.os() << text;
  out.keep();
  return true;
}

int mixtape::cli::planMain(llvm::ArrayRef<llvm::StringRef> args) {
  std::string out, dot, explain, runDir;
  CostModel cost;
  std::vector<llvm::StringRef> files;
  for (size_t i = 0; i < args.size(); ++i) {
    llvm::StringRef arg = args[i];
    auto value = [&](std::string &into) {
      if (i + 1 >= args.size())
        return false;
      into = args[++i].str();
      return true;
    };
    std::string number;
    if (arg == "--help" || arg == "-h") {
      printPlanHelp(llvm::outs());
      return Success;
    }
    bool ok = true;
    if (arg == "--out")
      ok = value(out);
    else if (arg == "--dot")
      ok = value(dot);
    else if (arg == "--explain")
      ok = value(explain);
    else if (arg == "--run-dir")
      ok = value(runDir);
    else if (arg == "--peak-tflops" || arg == "--mfu") {
      double x = 0;
      ok = value(number) && !llvm::StringRef(number).getAsDouble(x) && x > 0;
      (arg == "--mfu" ? cost.mfu : cost.peakFlops) = arg == "--mfu" ? x : x * 1e12;
    } else if (arg.startswith("-") && arg != "-") {
      llvm::errs() << "mixtape plan: unknown option '" << arg << "'\n";
      ok = false;
    } else
      files.push_back(arg);
    if (!ok) {
      printPlanHelp(llvm::errs());
      return Usage;
    }
  }
  if (files.size() != 1) {
    printPlanHelp(llvm::errs());
    return Usage;
  }

  llvm::SourceMgr sources;
  DiagnosticEngine diags(sources);
  bool color = llvm::sys::Process::StandardErrIsDisplayed();
  std::unique_ptr<CheckedRecipe> recipe = loadRecipe(files[0], diags);
  if (!recipe) {
    diags.print(llvm::errs(), color);
    return Failure;
  }
  if (runDir.empty())
    runDir = cli::defaultRunDir(recipe->name);
  std::unique_ptr<data::ShardCatalog> catalog = cli::runDirCatalog(runDir);
  std::optional<Plan> plan = lowerToPlan(*recipe, *catalog, cost, diags);
  diags.print(llvm::errs(), color);
  if (!plan)
    return Failure;

  llvm::raw_ostream &report = out == "-" ? llvm::errs() : llvm::outs();
  if (!out.empty()) {
    std::string json = llvm::formatv("{0:2}", plan->toJSON()).str() + "\n";
    if (out == "-")
      llvm::outs() << json;
    else if (!writeAtomically(out, json))
      return Failure;
  }
  if (!dot.empty()) {
    std::string text;
    llvm::raw_string_ostream os(text);
    writePlanDot(*plan, os);
    if (!writeAtomically(dot, os.str()))
      return Failure;
  }
  if (!explain.empty()) {
    if (!explainNode(*plan, explain, report, llvm::sys::fs::is_directory(runDir) ? llvm::StringRef(runDir) : "")) {
      llvm::errs() << "mixtape plan: no node named '" << explain << "'; `mixtape plan " << files[0]
                   << "` lists them\n";
      return Failure;
    }
    return Success;
  }
  std::vector<NodeStatus> status;
  bool haveRunDir = llvm::sys::fs::is_directory(runDir);
  if (haveRunDir)
    status = planStatus(*plan, runDir);
  printPlanSummary(*plan, report, haveRunDir ? &status : nullptr);
  if (haveRunDir)
    for (size_t i = 0; i < status.size(); ++i)
      if (status[i].state != NodeStatus::Done && status[i].why != "never run")
        report << "  " << plan->nodes[i].name << ": " << status[i].why << "\n";
  return Success;
}
