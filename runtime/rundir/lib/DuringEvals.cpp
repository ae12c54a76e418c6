//===- DuringEvals.cpp - in-loop eval points of done train nodes ----------===//
#include "mixtape/rundir/DuringEvals.h"

#include "mixtape/rundir/Checkpoints.h"
#include "mixtape/rundir/Metrics.h"
#include "mixtape/support/Files.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"

#include <set>
#include <tuple>

using namespace mixtape;
using namespace mixtape::rundir;

uint64_t mixtape::rundir::duringEvalStep(uint64_t stageTokens, uint64_t tokensPerStep) {
  return (stageTokens + tokensPerStep - 1) / tokensPerStep;
}

llvm::Expected<std::vector<MissingDuringEval>>
mixtape::rundir::missingDuringEvals(const plan::TrainNode &node, llvm::StringRef nodeDir, llvm::StringRef inputDir,
                                    CheckpointStore::Check check) {
  std::vector<MissingDuringEval> out;
  const uint64_t perStep = plan::tokensPerStep(node.Settings);
  const plan::StepRange steps = node.Settings.Steps;
  llvm::Expected<Metrics> metrics = readMetrics(joinPath(nodeDir, "metrics.jsonl"));
  if (!metrics)
    return metrics.takeError();
  using LoggedKey = std::tuple<std::string, uint64_t, std::string, plan::SplitKind>;
  std::set<LoggedKey> logged;
  for (const EvalRecord &r : metrics->Evals)
    if (!r.Final)
      logged.emplace(r.Eval, r.StageTokens, r.Stream, r.Split);
  std::set<std::tuple<std::string, uint64_t, std::string>> loggedTasks;
  for (const TaskRecord &r : metrics->Tasks)
    if (!r.Final)
      loggedTasks.emplace(r.Eval, r.StageTokens, r.Task);
  CheckpointStore checkpoints(nodeDir.str());
  for (const auto &[eval, during] : node.Exec.EvalDuring)
    for (uint64_t tokens : during.StageTokens) {
      MissingDuringEval m;
      m.Eval = eval;
      m.Step = duringEvalStep(tokens, perStep);
      m.StageTokens = m.Step * perStep;
      for (const plan::EvalSplit &split : during.Splits)
        if (!logged.count({m.Eval, m.StageTokens, split.Stream, split.Split}))
          m.Splits.push_back(split);
      if (during.Tasks)
        for (const auto &[name, task] : *during.Tasks)
          if (!loggedTasks.count({m.Eval, m.StageTokens, name}))
            m.Tasks.push_back(name);
      if (m.Splits.empty() && m.Tasks.empty())
        continue;
      if (m.Step == steps.Begin && llvm::sys::fs::exists(joinPath(inputDir, "model.safetensors"))) {
        m.From = MissingDuringEval::InputModel;
        m.Weights = joinPath(inputDir, "model.safetensors");
      } else if (m.Step == steps.End && llvm::sys::fs::exists(joinPath(nodeDir, "model.safetensors"))) {
        m.From = MissingDuringEval::FinalModel;
        m.Weights = joinPath(nodeDir, "model.safetensors");
      } else if (llvm::Error invalid = checkpoints.validate(m.Step, check)) {
        llvm::consumeError(std::move(invalid)); // not there, or not as written: it serves nothing
      } else {
        m.From = MissingDuringEval::Checkpoint;
        // A sharded checkpoint's index stands for its weights (ExecContext::loadModel reads it).
        const std::string index = joinPath(checkpoints.dirFor(m.Step), "index.json");
        m.Weights = llvm::sys::fs::exists(index) ? index : joinPath(checkpoints.dirFor(m.Step), "model.safetensors");
      }
      out.push_back(std::move(m));
    }
  return out;
}

std::string mixtape::rundir::describeSource(const MissingDuringEval &point) {
  switch (point.From) {
  case MissingDuringEval::InputModel:
    return "from the input's model (the weights at the node's first step)";
  case MissingDuringEval::Checkpoint:
    return llvm::formatv("from the retained checkpoint at step {0}", point.Step).str();
  case MissingDuringEval::FinalModel:
    return "from the node's final model";
  case MissingDuringEval::Unavailable:
    break;
  }
  return llvm::formatv("needs retraining: no checkpoint was retained at step {0}", point.Step).str();
}
