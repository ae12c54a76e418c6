//===- RunCommand.cpp - `mixtape run` and `mixtape exec` -----------------===//
//
// `run` compiles a recipe and executes its plan in a run directory (default
// runs/<recipe name>), writing the plan there; `exec` executes a compiled plan, all of it
// or one node (what cluster jobs call). With `--nproc N` either one starts N local workers
// (`mixtape-runtime exec` with torchrun's variables set); a worker started by torchrun or
// srun reads its rank from the environment (docs/cluster.md).
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/compiler/Lower.h"
#include "mixtape/dist/LocalLauncher.h"
#include "mixtape/exec/Executor.h"
#include "mixtape/plan/PlanJSON.h"
#include "mixtape/rundir/RunDirLock.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/Options.h"
#include "mixtape/support/Signals.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

using namespace mixtape;

namespace {

struct RunArgs {
  std::vector<std::string> Input;
  std::string RunDir, Device, VerifyData = "cached", Shard;
  std::vector<std::string> Nodes;
  bool Quiet = false, Zero1 = false, Force = false;
  int Nproc = 1;
  unsigned TimeoutSeconds = 600;
};

/// The options `run` and `exec` share.
void declareRunOptions(OptionParser &options, RunArgs &args, llvm::StringRef input, llvm::StringRef runDirHelp) {
  options.value("--run-dir", "DIR", args.RunDir, runDirHelp)
      .list("--node", "NAME", args.Nodes, "run only this node (its inputs must be done); repeatable")
      .value("--device", "D", args.Device,
             "cpu, cuda, cuda:N or auto (default: $MIXTAPE_DEVICE, else auto: CUDA when there is one); with "
             "--nproc, each worker takes the GPU of its local rank")
      .flag("--quiet", args.Quiet, "no progress lines")
      .integer("--nproc", "N", args.Nproc, 1, 1024,
               "run N data-parallel workers on this machine (each trains on 1/N of every batch)")
      .integer("--timeout", "S", args.TimeoutSeconds, 1, 1u << 20,
               "a rank that died or hangs stops the others within S seconds (default 600)")
      .choice("--shard", {"none", "optimizer", "full"}, args.Shard,
              "how every train node shards its state over the ranks (default: as the recipe says): none, "
              "optimizer (AdamW's moments, ZeRO-1) or full (parameters, gradients and moments, FSDP)")
      .flag("--zero1", args.Zero1, "the same as --shard optimizer")
      .choice("--verify-data", {"cached", "full"}, args.VerifyData,
              "before a node reads a dataset, hash its files against the manifest and check its token ids "
              "against the model's vocabulary; cached (default) skips files verified before and unchanged "
              "since (same size, mtime, inode), full hashes every file again")
      .positional(input, args.Input, 1, 1)
      .epilog("exit status: 0 done, 1 errors, 2 usage");
}

/// This process's part of the plan: all of it, or one rank's share when torchrun, srun or
/// --nproc started it.
int execute(const plan::Plan &plan, const RunArgs &args) {
  exec::ExecOptions options;
  options.RunDir = args.RunDir;
  options.Nodes = args.Nodes;
  options.Progress = !args.Quiet;
  options.Device = args.Device;
  options.Timeout = std::chrono::seconds(args.TimeoutSeconds);
  if (args.Zero1)
    options.Shard = plan::ShardMode::Optimizer;
  else if (!args.Shard.empty())
    options.Shard = plan::enumFromName<plan::ShardMode>(args.Shard);
  options.VerifyData = args.VerifyData == "full" ? data::VerifyMode::Full : data::VerifyMode::Cached;
  llvm::Expected<dist::World> world = dist::worldFromEnvironment();
  if (!world) {
    llvm::errs() << "mixtape: error: " << llvm::toString(world.takeError()) << "\n";
    return cli::Failure;
  }
  options.World = *world;
  catchStopSignals();
  if (llvm::Error e = exec::executePlan(plan, options)) {
    std::string rank = world->Size > 1 ? llvm::formatv("rank {0} of {1}: ", world->Rank, world->Size).str() : "";
    llvm::errs() << "mixtape: error: " << rank << llvm::toString(std::move(e)) << "\n";
    return stopSignal() ? 128 + stopSignal() : cli::Failure; // as a shell reports a death by that signal
  }
  return cli::Success;
}

/// The run directory's locks for this process (docs/run-format.md), or a message and none.
std::optional<rundir::RunDirLock> lockRunDir(llvm::StringRef command, const RunArgs &args) {
  llvm::Expected<rundir::RunDirLock> lock = rundir::RunDirLock::acquire(args.RunDir, args.Nodes);
  if (!lock) {
    llvm::errs() << command << ": error: " << llvm::toString(lock.takeError()) << "\n";
    return std::nullopt;
  }
  return std::move(*lock);
}

/// A run directory whose plan.json comes from another recipe (two names that map to one
/// folder, a mistyped --run-dir) is not taken over unless --force says so.
bool checkOwner(const plan::Plan &plan, const RunArgs &args, llvm::StringRef planPath) {
  if (args.Force || !llvm::sys::fs::exists(planPath))
    return true;
  llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> text = mapFile(planPath);
  std::string owner = "(unreadable)";
  if (text) {
    if (llvm::Expected<llvm::json::Value> json = llvm::json::parse((*text)->getBuffer())) {
      if (const llvm::json::Object *o = json->getAsObject())
        owner = o->getString("recipe").getValueOr(owner).str();
    } else {
      llvm::consumeError(json.takeError());
    }
  } else {
    llvm::consumeError(text.takeError());
  }
  if (owner == plan.Recipe)
    return true;
  llvm::errs() << llvm::formatv("mixtape run: error: run directory {0} holds the plan of recipe '{1}', not '{2}'; "
                                "choose another --run-dir, or pass --force to run '{2}' there\n",
                                args.RunDir, owner, plan.Recipe);
  return false;
}

/// --nproc N: N copies of `mixtape-runtime exec PLAN` with this command's options, each a rank.
int launch(llvm::StringRef planPath, const RunArgs &args) {
  std::string self = llvm::sys::fs::getMainExecutable("mixtape-runtime", reinterpret_cast<void *>(&cli::execMain));
  dist::LaunchOptions options;
  options.Nproc = args.Nproc;
  options.Grace = std::chrono::seconds(args.TimeoutSeconds);
  options.Command = {self, "exec", planPath.str(), "--run-dir", args.RunDir, "--timeout",
                     std::to_string(args.TimeoutSeconds)};
  for (const std::string &node : args.Nodes)
    options.Command.insert(options.Command.end(), {"--node", node});
  if (!args.Device.empty())
    options.Command.insert(options.Command.end(), {"--device", args.Device});
  if (args.Quiet)
    options.Command.push_back("--quiet");
  if (args.Zero1)
    options.Command.push_back("--zero1");
  if (!args.Shard.empty())
    options.Command.insert(options.Command.end(), {"--shard", args.Shard});
  options.Command.insert(options.Command.end(), {"--verify-data", args.VerifyData});
  if (llvm::Error e = dist::launchLocalWorkers(options, llvm::errs())) {
    llvm::errs() << "mixtape: error: " << llvm::toString(std::move(e)) << "\n";
    return stopSignal() ? 128 + stopSignal() : cli::Failure;
  }
  return cli::Success;
}

} // namespace

int mixtape::cli::runMain(llvm::ArrayRef<llvm::StringRef> args) {
  RunArgs a;
  OptionParser options("mixtape run", "RECIPE",
                       "Compiles RECIPE, writes DIR/plan.json and executes it; finished nodes are skipped,\n"
                       "interrupted ones resume from their last checkpoint.");
  declareRunOptions(options, a, "RECIPE", "the run directory (default runs/<recipe name>)");
  options.flag("--force", a.Force, "run in a run directory that holds another recipe's plan");
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  std::optional<plan::Plan> plan = compileRecipe(a.Input[0], a.RunDir, defaultCost());
  if (!plan)
    return Failure;
  std::string planPath = joinPath(a.RunDir, "plan.json");
  std::optional<rundir::RunDirLock> lock = lockRunDir("mixtape run", a);
  if (!lock || !checkOwner(*plan, a, planPath))
    return Failure;
  if (a.Nproc > 1)
    if (llvm::Error e = lock->shareWithWorkers()) {
      llvm::errs() << "mixtape run: error: " << llvm::toString(std::move(e)) << "\n";
      return Failure;
    }
  if (!writePlan("mixtape run", *plan, planPath))
    return Failure;
  if (!a.Quiet)
    llvm::errs() << llvm::formatv("mixtape run: {0} nodes, plan in {1}\n", plan->Nodes.size(), planPath);
  return a.Nproc > 1 ? launch(planPath, a) : execute(*plan, a);
}

int mixtape::cli::execMain(llvm::ArrayRef<llvm::StringRef> args) {
  RunArgs a;
  OptionParser options("mixtape exec", "PLAN.json",
                       "Executes a compiled plan; under torchrun or srun, one rank of it.");
  declareRunOptions(options, a, "PLAN.json", "the run directory (default: the plan's folder)");
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  llvm::Expected<plan::Plan> plan = plan::readPlanFile(a.Input[0]);
  if (!plan) {
    llvm::errs() << "mixtape exec: error: " << llvm::toString(plan.takeError()) << "\n";
    return Failure;
  }
  if (a.RunDir.empty()) {
    llvm::StringRef parent = llvm::sys::path::parent_path(a.Input[0]);
    a.RunDir = parent.empty() ? "." : parent.str();
  }
  // The launcher, or the one rank that writes files (rank 0 of torchrun or srun), holds the
  // run directory's locks; the other ranks only read what rank 0 wrote.
  llvm::Expected<dist::World> world = dist::worldFromEnvironment();
  const bool writesFiles = a.Nproc > 1 || !world || world->Rank == 0;
  if (!world)
    llvm::consumeError(world.takeError()); // execute() reports a bad environment
  std::optional<rundir::RunDirLock> lock = writesFiles ? lockRunDir("mixtape exec", a) : std::nullopt;
  if (writesFiles) {
    if (!lock)
      return Failure;
    if (a.Nproc > 1)
      if (llvm::Error e = lock->shareWithWorkers()) {
        llvm::errs() << "mixtape exec: error: " << llvm::toString(std::move(e)) << "\n";
        return Failure;
      }
  }
  return a.Nproc > 1 ? launch(a.Input[0], a) : execute(*plan, a);
}
