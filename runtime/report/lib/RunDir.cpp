//===- RunDir.cpp - read a run directory: plan.json, metrics.jsonl, DONE --===//
//
// The formats are in docs/plan-format.md and docs/run-format.md; plan/ and rundir/ read
// them. The runtime appends metrics as it goes, so a run killed mid-write leaves a
// truncated last line: that one is skipped with a warning.
//
//===----------------------------------------------------------------------===//
#include "mixtape/report/Report.h"

#include "mixtape/plan/PlanJSON.h"
#include "mixtape/rundir/RunDir.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"

#include "llvm/Support/FileSystem.h"

using namespace mixtape;
using namespace mixtape::report;

llvm::StringRef mixtape::report::stateName(NodeState state) {
  switch (state) {
  case NodeState::Done:
    return "done";
  case NodeState::Partial:
    return "partial";
  case NodeState::NotRun:
    return "not run";
  }
  llvm_unreachable("unknown node state");
}

llvm::Expected<Run> mixtape::report::loadRun(llvm::StringRef runDir) {
  std::string planPath = joinPath(runDir, "plan.json");
  if (!llvm::sys::fs::exists(planPath))
    return fileError(planPath, "no such file (is this a run directory? `mixtape run` writes it)");
  llvm::Expected<plan::Plan> plan = plan::readPlanFile(planPath);
  if (!plan)
    return plan.takeError();
  Run run;
  run.Plan = std::move(*plan);
  for (const plan::Node &node : run.Plan.Nodes) {
    std::string dir = rundir::nodeDir(runDir, node);
    NodeState state = rundir::isDone(runDir, node)       ? NodeState::Done
                      : llvm::sys::fs::is_directory(dir) ? NodeState::Partial
                                                         : NodeState::NotRun;
    run.States.push_back(state);
    std::string path = joinPath(dir, "metrics.jsonl");
    llvm::Expected<rundir::Metrics> metrics = rundir::readMetrics(path);
    if (!metrics)
      return metrics.takeError();
    auto known = [&](const std::string &name) -> llvm::Error {
      // A final eval of a moving average names it as its input does: "NAME.ema".
      llvm::StringRef model = name;
      if (plan::findNode(run.Plan, name) || (model.consume_back(plan::kAverageSuffix) && plan::findNode(run.Plan, model)))
        return llvm::Error::success();
      return fileError(path, "node '" + name + "' is not in the plan (a stale run directory?)");
    };
    bool partial = state != NodeState::Done;
    for (rundir::TrainRecord &r : metrics->Train) {
      if (llvm::Error e = known(r.Node))
        return std::move(e);
      run.Logs.Train.push_back({std::move(r), partial});
    }
    for (rundir::EvalRecord &r : metrics->Evals) {
      if (llvm::Error e = known(r.Node))
        return std::move(e);
      run.Logs.Evals.push_back({std::move(r), partial});
    }
    for (rundir::TaskRecord &r : metrics->Tasks) {
      if (llvm::Error e = known(r.Node))
        return std::move(e);
      run.Logs.Tasks.push_back({std::move(r), partial});
    }
    for (std::string &w : metrics->Warnings)
      run.Logs.Warnings.push_back(std::move(w));
  }
  return run;
}
