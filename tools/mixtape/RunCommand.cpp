//===- RunCommand.cpp - `mixtape run` and `mixtape exec` -----------------===//
//
// `run` compiles a recipe and executes its plan in a run directory (default
// runs/<recipe name>), writing the plan there; `exec` executes a compiled plan, all of it
// or one node (what cluster jobs call).
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/compiler/PlanReport.h"
#include "mixtape/compiler/Sema.h"
#include "mixtape/data/ShardCatalog.h"
#include "mixtape/exec/Executor.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

using namespace mixtape;

namespace {
struct RunArgs {
  std::string input, runDir;
  std::vector<std::string> nodes;
  bool quiet = false;
};

std::optional<RunArgs> parseRunArgs(llvm::StringRef command, llvm::ArrayRef<llvm::StringRef> args,
                                    llvm::StringRef usage) {
  RunArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    llvm::StringRef a = args[i];
    if (a == "--help" || a == "-h") {
      llvm::outs() << usage;
      std::exit(cli::Success);
    }
    if ((a == "--run-dir" || a == "--node") && i + 1 < args.size()) {
      (a == "--run-dir" ? out.runDir : out.nodes.emplace_back()) = args[++i].str();
    } else if (a == "--quiet") {
      out.quiet = true;
    } else if (a.startswith("-") || !out.input.empty()) {
      llvm::errs() << "mixtape " << command << ": unexpected argument '" << a << "'\n" << usage;
      return std::nullopt;
    } else {
      out.input = a.str();
    }
  }
  if (out.input.empty()) {
    llvm::errs() << usage;
    return std::nullopt;
  }
  return out;
}

int execute(const llvm::json::Object &plan, const RunArgs &args) {
  exec::ExecOptions options;
  options.runDir = args.runDir;
  options.nodes = args.nodes;
  options.progress = !args.quiet;
  if (llvm::Error e = exec::executePlan(plan, options)) {
    llvm::errs() << "mixtape: error: " << llvm::toString(std::move(e)) << "\n";
    return cli::Failure;
  }
  return cli::Success;
}
} // namespace

int mixtape::cli::runMain(llvm::ArrayRef<llvm::StringRef> args) {
  const char *usage = "usage: mixtape run RECIPE [--run-dir DIR] [--node NAME]... [--quiet]\n"
                      "  compile RECIPE, write DIR/plan.json (default DIR: runs/<recipe name>) and execute it;\n"
                      "  finished nodes are skipped, interrupted ones resume from their last checkpoint\n";
  std::optional<RunArgs> a = parseRunArgs("run", args, usage);
  if (!a)
    return Usage;
  llvm::SourceMgr sources;
  DiagnosticEngine diags(sources);
  bool color = llvm::sys::Process::StandardErrIsDisplayed();
  std::unique_ptr<CheckedRecipe> recipe = loadRecipe(a->input, diags);
  if (!recipe) {
    diags.print(llvm::errs(), color);
    return Failure;
  }
  if (a->runDir.empty())
    a->runDir = cli::defaultRunDir(recipe->name);
  llvm::SmallString<256> cache(a->runDir);
  llvm::sys::path::append(cache, "cache");
  llvm::sys::fs::make_absolute(cache);
  data::ShardCatalog catalog{std::string(cache), data::defaultManifestCacheDir(cache), &llvm::errs()};
  std::optional<Plan> plan = lowerToPlan(*recipe, catalog, CostModel(), diags);
  diags.print(llvm::errs(), color);
  if (!plan)
    return Failure;
  llvm::json::Value json = plan->toJSON();
  std::string planPath = (a->runDir + "/plan.json");
  if (std::error_code ec = llvm::sys::fs::create_directories(a->runDir)) {
    llvm::errs() << "mixtape run: " << a->runDir << ": " << ec.message() << "\n";
    return Failure;
  }
  {
    std::error_code ec;
    llvm::raw_fd_ostream out(planPath, ec);
    if (ec) {
      llvm::errs() << "mixtape run: " << planPath << ": " << ec.message() << "\n";
      return Failure;
    }
    out << llvm::formatv("{0:2}\n", json);
  }
  if (!a->quiet)
    llvm::errs() << llvm::formatv("mixtape run: {0} nodes, plan in {1}\n", plan->nodes.size(), planPath);
  return execute(*json.getAsObject(), *a);
}

int mixtape::cli::execMain(llvm::ArrayRef<llvm::StringRef> args) {
  const char *usage = "usage: mixtape exec PLAN.json [--run-dir DIR] [--node NAME]... [--quiet]\n"
                      "  execute a compiled plan (default DIR: the plan's folder)\n";
  std::optional<RunArgs> a = parseRunArgs("exec", args, usage);
  if (!a)
    return Usage;
  llvm::Expected<llvm::json::Value> plan = readPlanFile(a->input);
  if (!plan) {
    llvm::errs() << "mixtape exec: error: " << llvm::toString(plan.takeError()) << "\n";
    return Failure;
  }
  if (a->runDir.empty())
    a->runDir = std::string(llvm::sys::path::parent_path(a->input).empty() ? "." : llvm::sys::path::parent_path(a->input));
  return execute(*plan->getAsObject(), *a);
}
