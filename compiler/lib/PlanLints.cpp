//===- PlanLints.cpp - lints that need the lowered plan and its data ------===//
//
// Epochs past 4 (Muennighoff et al. 2023), and eval splits that share documents with
// training. (Empty filters are reported where the streams are lowered.)
//
//===----------------------------------------------------------------------===//
#include "Lowering.h"

#include "llvm/Support/FormatVariadic.h"

#include <set>

using namespace mixtape;
using namespace mixtape::lower;

void Lowering::planLints() {
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
