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
  for (const plan::Node &n : result.Nodes)
    if (const plan::TrainNode *t = n.train())
      for (const auto &[stream, epochs] : t->Ledger.EpochsAtEnd)
        if (epochs > worst[stream].first)
          worst[stream] = {epochs, n.Name};
  for (const auto &[stream, w] : worst)
    if (w.first > 4)
      diags.reportFile(DiagCode::RepeatedData, file,
                       llvm::formatv("stream '{0}' is repeated {1:f1} epochs by the end of '{2}'; returns diminish "
                                     "past about 4 epochs (Muennighoff et al. 2023, Scaling Data-Constrained LMs)",
                                     stream, w.first, w.second)
                           .str());
  std::set<std::string> trained;
  for (const StageSpec &s : recipe.stages)
    for (const StageVariant &v : s.variants)
      trained.insert(v.mixture.Streams.begin(), v.mixture.Streams.end());
  for (const EvalSpec &e : recipe.evals)
    for (const plan::EvalSplit &split : e.splits) {
      if (split.Split != plan::SplitKind::Val)
        continue;
      for (const std::string &t : trained) {
        if (recipe.stream(t)->root == recipe.stream(split.Stream)->root)
          continue; // one root's split never overlaps itself
        llvm::Expected<std::optional<uint64_t>> leaked = env.leakedDocuments(result, split.Stream, t);
        if (!leaked) {
          error(DiagCode::DataError, llvm::toString(leaked.takeError()));
          continue;
        }
        if (*leaked && **leaked)
          diags.reportFile(DiagCode::Leakage, file,
                           llvm::formatv("eval '{0}': {1} documents of '{2}.val' are also in the training data of "
                                         "'{3}'; its loss overstates generalization",
                                         e.name, **leaked, split.Stream, t)
                               .str());
      }
    }
}
