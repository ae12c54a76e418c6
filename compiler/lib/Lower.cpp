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
    : Recipe(recipe), Env(env), Diags(diags), File(recipe.File.empty() ? recipe.Name : recipe.File) {
  Result.Format = plan::kPlanFormat.str();
  Result.Version = plan::kPlanFormatVersion;
  Result.Recipe = recipe.Name;
  llvm::SmallString<256> dir(recipe.BaseDir.empty() ? "." : recipe.BaseDir);
  llvm::sys::fs::make_absolute(dir);
  llvm::sys::path::remove_dots(dir, /*remove_dot_dot=*/true);
  Result.RecipeDir = std::string(dir);
  Result.Seed = recipe.Seed;
  Result.Cost = cost;
}

std::optional<plan::Plan> Lowering::run() {
  lowerStreams();
  if (Diags.errorCount())
    return std::nullopt;
  lowerModel();
  // Each model size starts from an init of its own (a sweep over `model.layers`, ...).
  for (size_t i = 0; i < Recipe.Sizes.size(); ++i)
    SizeInits.push_back(addInit("init" + Recipe.Sizes[i].Suffix, Recipe.Model.Init, sizeArchitecture(i)));
  InitNode = SizeInits.empty() ? addInit("init", Recipe.Model.Init, Result.Model) : SizeInits.front();
  for (size_t s = 0; s < Recipe.Stages.size(); ++s)
    lowerStage(s);
  lowerMerges();
  lowerAblations();
  lowerEvals();
  planLints();
  uint64_t planned = 0;
  for (const plan::Node &n : Result.Nodes)
    if (const plan::TrainNode *t = n.train())
      planned += t->Ledger.Tokens;
  Result.Sharing.VariantTokens = VariantTokens;
  Result.Sharing.SharedTokens = VariantTokens > planned ? VariantTokens - planned : 0;
  Result.Variants = plan::variantLedgers(Result);
  if (Diags.errorCount())
    return std::nullopt;
  return std::move(Result);
}

void Lowering::provisional(std::string reason) {
  Result.Provisional = true;
  // A checkpoint several references name is one reason.
  if (!llvm::is_contained(Result.ProvisionalReasons, reason))
    Result.ProvisionalReasons.push_back(std::move(reason));
}

std::string Lowering::recipePath(llvm::StringRef path) const { return plan::resolvePath(Recipe.BaseDir, path); }

size_t Lowering::addNode(plan::Node node, const std::vector<std::string> &streamsUsed) {
  for (const plan::NodeRef &in : node.Inputs) {
    node.InputHashes.push_back(Result.Nodes[in.Index].Hash);
    node.Provisional |= Result.Nodes[in.Index].Provisional;
  }
  for (const std::string &s : streamsUsed)
    node.Provisional |= llvm::StringRef(Fingerprints[s]).startswith("provisional:");
  node.Hash = plan::nodeHash(Result, node, Identities, streamsUsed);
  auto [it, fresh] = ByHash.try_emplace(node.Hash, Result.Nodes.size());
  if (!fresh) {
    for (const std::string &v : node.Variants)
      addVariant(it->second, v);
    return it->second;
  }
  node.Dir = plan::nodeDirName(node.Name, node.Hash);
  VariantSets.emplace_back();
  for (const std::string &v : node.Variants)
    VariantSets.back().insert(v);
  Result.Nodes.push_back(std::move(node));
  return Result.Nodes.size() - 1;
}

void Lowering::addVariant(size_t node, const std::string &name) {
  if (VariantSets[node].insert(name).second)
    Result.Nodes[node].Variants.push_back(name);
}

uint64_t Lowering::tokensThrough(size_t index) const {
  const plan::Node &n = Result.Nodes[index];
  if (const plan::TrainNode *t = n.train())
    return t->Exec.ChainTokens + t->Ledger.Tokens;
  uint64_t deepest = 0;
  for (const plan::NodeRef &in : n.Inputs)
    deepest = std::max(deepest, tokensThrough(in.Index));
  return deepest;
}

double Lowering::flopsPerToken(const plan::Architecture &m, uint64_t seqLen) {
  // PaLM (Chowdhery et al. 2022, appendix B): 6N + 12 L d T per token, forward and backward.
  return 6 * plan::parameterCount(m) +
         12 * static_cast<double>(m.Layers) * static_cast<double>(m.DModel) * static_cast<double>(seqLen);
}

plan::Architecture Lowering::architectureOf(size_t node) const {
  return plan::modelArchitecture(Result, Result.Nodes[node]);
}

size_t Lowering::finalNode(const ModelRef &ref) {
  switch (ref.Kind) {
  case ModelRef::Init:
    if (ref.HfPath.empty())
      return InitNode;
    if (!HfInits.count(ref.HfPath)) {
      // The runtime builds the checkpoint's own architecture; an absent one plans as the model's.
      const std::optional<plan::CheckpointInfo> *info = checkpoint("hf:" + ref.HfPath);
      plan::Architecture model = Result.Model;
      if (info && *info && (*info)->Family)
        model = checkpointArchitecture(**info);
      HfInits[ref.HfPath] = addInit("hf:" + ref.HfPath, "hf:" + ref.HfPath, model);
    }
    return HfInits[ref.HfPath];
  case ModelRef::Stage: {
    const LoweredVariant &lv = Variants[ref.Index][ref.Variant];
    return lv.Nodes.empty() ? lv.StartNode : lv.Nodes.back();
  }
  case ModelRef::Merge:
    return MergeNodes[ref.Index];
  case ModelRef::Ablation:
    return AblationNodes[ref.Index].empty() ? InitNode : AblationNodes[ref.Index].front();
  }
  return InitNode;
}

StreamSizes mixtape::lowerStreamSizes(const CheckedRecipe &recipe, plan::Environment &env, DiagnosticEngine &diags) {
  Lowering lowering(recipe, env, plan::Cost{}, diags);
  lowering.lowerStreams();
  StreamSizes sizes;
  for (const auto &[name, stats] : lowering.Stats)
    sizes[name] = stats ? std::optional<uint64_t>(stats->TrainTokens) : std::nullopt;
  return sizes;
}

std::optional<plan::Plan> mixtape::lowerToPlan(const CheckedRecipe &recipe, plan::Environment &env,
                                               const plan::Cost &cost, DiagnosticEngine &diags) {
  return Lowering(recipe, env, cost, diags).run();
}
