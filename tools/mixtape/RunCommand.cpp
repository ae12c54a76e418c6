//===- RunCommand.cpp - `mixtape run` and `mixtape exec` -----------------===//
//
// `run` compiles a recipe and executes its plan in a run directory (default
// runs/<recipe name>), writing the plan there; `exec` executes a compiled plan, all of it
// or one node (what cluster jobs call). With `--nproc N` either one starts N local workers
// (`mixtape exec` with torchrun's variables set); a worker started by torchrun or srun reads
// its rank from the environment (docs/cluster.md).
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/compiler/PlanReport.h"
#include "mixtape/compiler/Sema.h"
#include "mixtape/data/ShardCatalog.h"
#include "mixtape/dist/LocalLauncher.h"
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
  std::string input, runDir, device;
  std::vector<std::string> nodes;
  bool quiet = false, zero1 = false;
  int nproc = 1;
  unsigned timeoutSeconds = 600;
};

constexpr const char *kParallelUsage =
    "  --device D     cpu, cuda, cuda:N or auto (default: $MIXTAPE_DEVICE, else auto: CUDA when there is one);\n"
    "                 with --nproc, each worker takes the GPU of its local rank\n"
    "  --nproc N      run N data-parallel workers on this machine (each trains on 1/N of every batch)\n"
    "  --timeout S    a rank that died or hangs stops the others within S seconds (default 600)\n"
    "  --zero1        shard the optimizer state over the ranks (ZeRO-1) in every train node\n";

std::optional<RunArgs> parseRunArgs(llvm::StringRef command, llvm::ArrayRef<llvm::StringRef> args,
                                    llvm::StringRef usage) {
  RunArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    llvm::StringRef a = args[i];
    if (a == "--help" || a == "-h") {
      llvm::outs() << usage;
      std::exit(cli::Success);
    }
    if ((a == "--run-dir" || a == "--node" || a == "--device") && i + 1 < args.size()) {
      (a == "--run-dir" ? out.runDir : a == "--device" ? out.device : out.nodes.emplace_back()) = args[++i].str();
    } else if ((a == "--nproc" || a == "--timeout") && i + 1 < args.size()) {
      unsigned n = 0;
      if (args[++i].getAsInteger(10, n) || n == 0 || n > (a == "--nproc" ? 1024u : 1u << 20)) {
        llvm::errs() << "mixtape " << command << ": " << a << " needs a positive integer, not '" << args[i] << "'\n";
        return std::nullopt;
      }
      if (a == "--nproc")
        out.nproc = static_cast<int>(n);
      else
        out.timeoutSeconds = n;
    } else if (a == "--quiet") {
      out.quiet = true;
    } else if (a == "--zero1") {
      out.zero1 = true;
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

/// This process's part of the plan: all of it, or one rank's share when torchrun, srun or
/// --nproc started it.
int execute(const llvm::json::Object &plan, const RunArgs &args) {
  exec::ExecOptions options;
  options.runDir = args.runDir;
  options.nodes = args.nodes;
  options.progress = !args.quiet;
  options.device = args.device;
  options.timeout = std::chrono::seconds(args.timeoutSeconds);
  options.zero1 = args.zero1;
  llvm::Expected<dist::World> world = dist::worldFromEnvironment();
  if (!world) {
    llvm::errs() << "mixtape: error: " << llvm::toString(world.takeError()) << "\n";
    return cli::Failure;
  }
  options.world = *world;
  if (llvm::Error e = exec::executePlan(plan, options)) {
    std::string rank = world->size > 1 ? llvm::formatv("rank {0} of {1}: ", world->rank, world->size).str() : "";
    llvm::errs() << "mixtape: error: " << rank << llvm::toString(std::move(e)) << "\n";
    return cli::Failure;
  }
  return cli::Success;
}

/// --nproc N: N copies of `mixtape exec PLAN` with this command's options, each a rank.
int launch(llvm::StringRef planPath, const RunArgs &args) {
  std::string self = llvm::sys::fs::getMainExecutable("mixtape", reinterpret_cast<void *>(&cli::execMain));
  dist::LaunchOptions options;
  options.nproc = args.nproc;
  options.grace = std::chrono::seconds(args.timeoutSeconds);
  options.command = {self, "exec", planPath.str(), "--run-dir", args.runDir, "--timeout",
                     std::to_string(args.timeoutSeconds)};
  for (const std::string &node : args.nodes)
    options.command.insert(options.command.end(), {"--node", node});
  if (!args.device.empty())
    options.command.insert(options.command.end(), {"--device", args.device});
  if (args.quiet)
    options.command.push_back("--quiet");
  if (args.zero1)
    options.command.push_back("--zero1");
  if (llvm::Error e = dist::launchLocalWorkers(options, llvm::errs())) {
    llvm::errs() << "mixtape: error: " << llvm::toString(std::move(e)) << "\n";
    return cli::Failure;
  }
  return cli::Success;
}
} // namespace

int mixtape::cli::runMain(llvm::ArrayRef<llvm::StringRef> args) {
  const std::string usage =
      std::string("usage: mixtape run RECIPE [--run-dir DIR] [--node NAME]... [--device D] [--quiet] [--nproc N] [--timeout S] [--zero1]\n"
                  "  compile RECIPE, write DIR/plan.json (default DIR: runs/<recipe name>) and execute it;\n"
                  "  finished nodes are skipped, interrupted ones resume from their last checkpoint\n") +
      kParallelUsage;
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
  std::unique_ptr<data::ShardCatalog> catalog = cli::runDirCatalog(a->runDir);
  std::optional<Plan> plan = lowerToPlan(*recipe, *catalog, CostModel(), diags);
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
  return a->nproc > 1 ? launch(planPath, *a) : execute(*json.getAsObject(), *a);
}

int mixtape::cli::execMain(llvm::ArrayRef<llvm::StringRef> args) {
  const std::string usage =
      std::string("usage: mixtape exec PLAN.json [--run-dir DIR] [--node NAME]... [--device D] [--quiet] [--nproc N] [--timeout S] [--zero1]\n"
                  "  execute a compiled plan (default DIR: the plan's folder); under torchrun or srun, one rank of it\n") +
      kParallelUsage;
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
  return a->nproc > 1 ? launch(a->input, *a) : execute(*plan->getAsObject(), *a);
}
