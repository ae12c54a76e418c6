//===- PlanLints.cpp - lints that need the lowered plan and its data ------===//
//
// Epochs past 4 (Muennighoff et al. 2023), eval splits that share documents with training,
// and long train nodes without checkpoints. (Empty filters are reported where the streams
// are lowered.)
//
//===----------------------------------------------------------------------===//
#include "Lowering.h"

#include "llvm/Support/FormatVariadic.h"

#include <set>

using namespace mixtape;
using namespace mixtape::lower;

/// A train node longer than this by the cost model loses too much to a kill, a preemption
/// or a time limit without checkpoints.
constexpr double kCheckpointlessMinutes = 10;

void Lowering::planLints() {
  for (const plan::Node &n : Result.Nodes)
    if (const plan::TrainNode *t = n.train(); t && !t->Exec.CheckpointEvery) {
      const double minutes = t->Ledger.GpuHours * 60;
      if (minutes > kCheckpointlessMinutes)
        Diags.reportFile(DiagCode::NoCheckpoint, File,
                         llvm::formatv("'{0}' trains about {1:f0} GPU-minutes by the cost model and writes no "
                                       "checkpoint: a kill, a preemption or a time limit loses all of it; give stage "
                                       "'{2}' checkpoint = {{ every = \"...\" }",
                                       n.Name, minutes, t->Exec.Stage)
                             .str());
    }
  std::map<std::string, std::pair<double, std::string>> worst;
  for (const plan::Node &n : Result.Nodes)
    if (const plan::TrainNode *t = n.train())
      for (const auto &[stream, epochs] : t->Ledger.EpochsAtEnd)
        if (epochs > worst[stream].first)
          worst[stream] = {epochs, n.Name};
  for (const auto &[stream, w] : worst)
    if (w.first > 4)
      Diags.reportFile(DiagCode::RepeatedData, File,
                       llvm::formatv("stream '{0}' is repeated {1:f1} epochs by the end of '{2}'; returns diminish "
                                     "past about 4 epochs (Muennighoff et al. 2023, Scaling Data-Constrained LMs)",
                                     stream, w.first, w.second)
                           .str());
  std::set<std::string> trained;
  for (const StageSpec &s : Recipe.Stages)
    for (const StageVariant &v : s.Variants)
      trained.insert(v.Mixture.Streams.begin(), v.Mixture.Streams.end());
  for (const EvalSpec &e : Recipe.Evals)
    for (const std::string &name : e.Tasks)
      for (const std::string &t : trained) {
        auto lowered = Tasks.find(name);
        if (lowered == Tasks.end() || !lowered->second || !LeakChecked.insert({name, t}).second)
          continue;
        llvm::Expected<std::optional<uint64_t>> leaked = Env.taskLeakage(Result, *lowered->second, t);
        if (!leaked) {
          error(DiagCode::DataError, llvm::toString(leaked.takeError()));
          continue;
        }
        if (*leaked && **leaked)
          Diags.reportFile(DiagCode::Leakage, File,
                           llvm::formatv("task '{0}': {1} of its {2} items are training documents of '{3}'; its "
                                         "score measures recall of them, not the skill",
                                         name, **leaked, lowered->second->Items.value_or(0), t)
                               .str());
      }
  for (const EvalSpec &e : Recipe.Evals)
    for (const plan::EvalSplit &split : e.Splits) {
      if (split.Split != plan::SplitKind::Val)
        continue;
      for (const std::string &t : trained) {
        if (Recipe.stream(t)->Root == Recipe.stream(split.Stream)->Root)
          continue; // one root's split never overlaps itself
        llvm::Expected<std::optional<uint64_t>> leaked = Env.leakedDocuments(Result, split.Stream, t);
        if (!leaked) {
          error(DiagCode::DataError, llvm::toString(leaked.takeError()));
          continue;
        }
        if (*leaked && **leaked)
          Diags.reportFile(DiagCode::Leakage, File,
                           llvm::formatv("eval '{0}': {1} documents of '{2}.val' are also in the training data of "
                                         "'{3}'; its loss overstates generalization",
                                         e.Name, **leaked, split.Stream, t)
                               .str());
      }
    }
}
