//===- Lower.cpp - checked recipe -> execution graph: the driver ----------===//
//
// Each stage variant becomes a chain of train nodes. Variants of a stage that share their
// start (input node and data cursors) and every setting but their length train one chain,
// cut wherever one of them ends or a child stage branches off; so branches share the run
// up to their points and a variant trained through a shared prefix sees the same data as
// alone. Data cursors (token offsets into each stream's global order) flow from node to
// node. Every node is hashed over its settings, its inputs' hashes, the data fingerprints
// and the format and semantics versions (plan::nodeHash) — never over names.
//
//===----------------------------------------------------------------------===//
#include "Lowering.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace mixtape;
using namespace mixtape::lower;

Lowering::Lowering(const CheckedRecipe &recipe, plan::Environment &env, const plan::Cost &cost,
                   DiagnosticEngine &diags)
    : recipe(recipe), env(env), diags(diags), file(recipe.file.empty() ? recipe.name : recipe.file) {
  result.Format = plan::kPlanFormat.str();
  result.Version = plan::kPlanFormatVersion;
  result.Recipe = recipe.name;
  llvm::SmallString<256> dir(recipe.baseDir.empty() ? "." : recipe.baseDir);
  llvm::sys::fs::make_absolute(dir);
  llvm::sys::path::remove_dots(dir, /*remove_dot_dot=*/true);
  result.RecipeDir = std::string(dir);
  result.Seed = recipe.seed;
  result.Cost = cost;
}

std::optional<plan::Plan> Lowering::run() {
  lowerStreams();
  if (diags.errorCount())
    return std::nullopt;
  lowerModel();
  initNode = addInit("init", recipe.model.init);
  for (size_t s = 0; s < recipe.stages.size(); ++s)
    lowerStage(s);
  lowerMerges();
  lowerAblations();
  lowerEvals();
  planLints();
  uint64_t planned = 0;
  for (const plan::Node &n : result.Nodes)
    if (const plan::TrainNode *t = n.train())
      planned += t->Ledger.Tokens;
  result.Sharing.VariantTokens = variantTokens;
  result.Sharing.SharedTokens = variantTokens > planned ? variantTokens - planned : 0;
  result.Variants = plan::variantLedgers(result);
  if (diags.errorCount())
    return std::nullopt;
  return std::move(result);
}

void Lowering::provisional(std::string reason) {
  result.Provisional = true;
  // A checkpoint several references name is one reason.
  if (!llvm::is_contained(result.ProvisionalReasons, reason))
    result.ProvisionalReasons.push_back(std::move(reason));
}

std::string Lowering::recipePath(llvm::StringRef path) const { return plan::resolvePath(recipe.baseDir, path); }

size_t Lowering::addNode(plan::Node node, const std::vector<std::string> &streamsUsed) {
  for (const plan::NodeRef &in : node.Inputs) {
    node.InputHashes.push_back(result.Nodes[in.Index].Hash);
    node.Provisional |= result.Nodes[in.Index].Provisional;
  }
  for (const std::string &s : streamsUsed)
    node.Provisional |= llvm::StringRef(fingerprints[s]).startswith("provisional:");
  node.Hash = plan::nodeHash(result, node, identities, streamsUsed);
  auto [it, fresh] = byHash.try_emplace(node.Hash, result.Nodes.size());
  if (!fresh) {
    for (const std::string &v : node.Variants)
      addVariant(it->second, v);
    return it->second;
  }
  node.Dir = plan::nodeDirName(node.Name, node.Hash);
  variantSets.emplace_back();
  for (const std::string &v : node.Variants)
    variantSets.back().insert(v);
  result.Nodes.push_back(std::move(node));
  return result.Nodes.size() - 1;
}

void Lowering::addVariant(size_t node, const std::string &name) {
  if (variantSets[node].insert(name).second)
    result.Nodes[node].Variants.push_back(name);
}

uint64_t Lowering::tokensThrough(size_t index) const {
  const plan::Node &n = result.Nodes[index];
  if (const plan::TrainNode *t = n.train())
    return t->Exec.ChainTokens + t->Ledger.Tokens;
  uint64_t deepest = 0;
  for (const plan::NodeRef &in : n.Inputs)
    deepest = std::max(deepest, tokensThrough(in.Index));
  return deepest;
}

double Lowering::flopsPerToken(uint64_t seqLen) const {
  const plan::Architecture &m = result.Model;
  // PaLM (Chowdhery et al. 2022, appendix B): 6N + 12 L d T per token, forward and backward.
  return 6 * nonEmbeddingParams +
         12 * static_cast<double>(m.Layers) * static_cast<double>(m.DModel) * static_cast<double>(seqLen);
}

size_t Lowering::finalNode(const ModelRef &ref) {
  switch (ref.kind) {
  case ModelRef::Init:
    if (ref.hfPath.empty())
      return initNode;
    if (!hfInits.count(ref.hfPath))
      hfInits[ref.hfPath] = addInit("hf:" + ref.hfPath, "hf:" + ref.hfPath);
    return hfInits[ref.hfPath];
  case ModelRef::Stage: {
    const LoweredVariant &lv = variants[ref.index][ref.variant];
    return lv.nodes.empty() ? lv.startNode : lv.nodes.back();
  }
  case ModelRef::Merge:
    return mergeNodes[ref.index];
  case ModelRef::Ablation:
    return ablationNodes[ref.index].empty() ? initNode : ablationNodes[ref.index].front();
  }
  return initNode;
}

std::optional<plan::Plan> mixtape::lowerToPlan(const CheckedRecipe &recipe, plan::Environment &env,
                                               const plan::Cost &cost, DiagnosticEngine &diags) {
  return Lowering(recipe, env, cost, diags).run();
}
