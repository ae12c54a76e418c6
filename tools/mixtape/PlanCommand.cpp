//===- PlanCommand.cpp - `mixtape plan` ----------------------------------===//
//
// Lint, then lower the recipe to its plan, reading the data's manifests through the data
// layer's catalog; print the node table, the token ledger and what sharing saves. Lint
// errors stop planning with the lint diagnostics.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/compiler/Lower.h"
#include "mixtape/compiler/Quantity.h"
#include "mixtape/plan/PlanJSON.h"
#include "mixtape/plan/Print.h"
#include "mixtape/rundir/RunDir.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/Options.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

using namespace mixtape;

int mixtape::cli::planMain(llvm::ArrayRef<llvm::StringRef> args) {
  std::string out, dot, explain, runDir;
  plan::Cost cost = defaultCost();
  double peakTflops = cost.PeakFlops / 1e12;
  std::vector<std::string> recipe;
  PlanOverrides overrides;
  std::string shard;
  bool verify = false;
  OptionParser options("mixtape plan", "RECIPE",
                       "Lowers a recipe to its execution graph and prints its nodes, token ledger and cost.");
  options.value("--out", "FILE", out, "write the plan as JSON (docs/plan-format.md); '-' for standard output")
      .value("--dot", "FILE", dot, "write the graph for Graphviz (dot -Tpng FILE -o graph.png)")
      .value("--explain", "NODE", explain,
             "everything about one node: settings, tokens -> steps, what its hash covers, and which in-loop evals "
             "of a done node its retained checkpoints serve")
      .value("--run-dir", "DIR", runDir,
             "mark nodes done / partial / to run in DIR, and say why a node reruns (default runs/<recipe name>; the "
             "embedded corpus is cached in DIR/cache)")
      .number("--peak-tflops", "X", peakTflops, "per-GPU peak for the cost estimate (default 989, H100 bf16 dense)",
              OptionParser::Positive)
      .number("--mfu", "X", cost.Mfu, "model FLOPs utilization for the estimate (default 0.4)", OptionParser::Positive)
      .integer("--gpus", "N", overrides.Gpus, 1, 1u << 24,
               "GPUs of each train node for the memory plan and step time (over [resources] gpus)")
      .value("--gpu-memory", "SIZE",
             [&](llvm::StringRef text) -> std::string {
               std::optional<uint64_t> bytes = parseByteSize(text);
               if (!bytes || *bytes == 0)
                 return "--gpu-memory needs a size like 80GiB or 80GB, not '" + text.str() + "'";
               overrides.GpuMemory = *bytes;
               return "";
             },
             "memory of each GPU (over [resources] gpu_memory)")
      .number("--interconnect-gbps", "X", overrides.InterconnectGbps,
              "bandwidth per GPU for collectives in Gb/s (over [resources] interconnect_gbps; default 400)",
              OptionParser::Positive)
      .choice("--shard", {"none", "optimizer", "full"}, shard, "every stage's shard mode (over the recipe's)")
      .flag("--verify", verify,
            "check the recipe's '# expect-error@+1: ...' comments instead of printing diagnostics (tests)")
      .positional("RECIPE", recipe, 1, 1)
      .epilog("exit status: 0 planned, 1 errors, 2 usage");
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  cost.PeakFlops = peakTflops * 1e12;
  if (!shard.empty())
    overrides.Shard = plan::enumFromName<plan::ShardMode>(shard);

  plan::Cluster cluster;
  bool verified = false;
  std::optional<plan::Plan> plan = compileRecipe(recipe[0], runDir, cost, overrides, &cluster, verify ? &verified : nullptr);
  if (verify)
    return verified ? Success : Failure;
  if (!plan)
    return Failure;
  llvm::raw_ostream &report = out == "-" ? llvm::errs() : llvm::outs();
  if (out == "-")
    plan::writePlan(*plan, llvm::outs());
  else if (!out.empty() && !writePlan("mixtape plan", *plan, out))
    return Failure;
  if (!dot.empty()) {
    std::string text;
    llvm::raw_string_ostream os(text);
    plan::writePlanDot(*plan, os);
    if (llvm::Error e = writeFileDurably(dot, os.str())) {
      llvm::errs() << "mixtape plan: " << llvm::toString(std::move(e)) << "\n";
      return Failure;
    }
  }
  const bool haveRunDir = llvm::sys::fs::is_directory(runDir);
  if (!explain.empty()) {
    std::optional<size_t> node = plan::findNode(*plan, explain);
    if (!node) {
      llvm::errs() << "mixtape plan: no node named '" << explain << "'; `mixtape plan " << recipe[0]
                   << "` lists them\n";
      return Failure;
    }
    plan::explainNode(*plan, plan->Nodes[*node], report);
    if (haveRunDir)
      rundir::explainDuringEvals(*plan, plan->Nodes[*node], runDir, report);
    return Success;
  }
  std::vector<plan::NodeStatus> status;
  if (haveRunDir)
    status = rundir::planStatus(*plan, runDir);
  plan::printPlanSummary(*plan, report, haveRunDir ? &status : nullptr);
  if (cluster.Gpus)
    plan::printMemoryPlan(*plan, cluster, report);
  for (size_t i = 0; i < status.size(); ++i)
    if (status[i].Current != plan::NodeStatus::Done && status[i].Why != "never run")
      report << "  " << plan->Nodes[i].Name << ": " << status[i].Why << "\n";
  return Success;
}
