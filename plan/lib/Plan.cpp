//===- Plan.cpp -----------------------------------------------------------===//
#include "mixtape/plan/Environment.h"
#include "mixtape/plan/Plan.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Path.h"

using namespace mixtape::plan;

Node mixtape::plan::makeNode(std::string name, std::variant<InitNode, TrainNode, EvalNode, MergeNode> payload) {
  Node node;
  node.Name = std::move(name);
  node.Payload = std::move(payload);
  node.Kind = std::visit(
      [](const auto &p) {
        using P = std::decay_t<decltype(p)>;
        return std::is_same_v<P, InitNode>    ? NodeKind::Init
               : std::is_same_v<P, TrainNode> ? NodeKind::Train
               : std::is_same_v<P, EvalNode>  ? NodeKind::Eval
                                              : NodeKind::Merge;
      },
      node.Payload);
  return node;
}

std::string mixtape::plan::nodeDirName(llvm::StringRef name, llvm::StringRef hash) {
  std::string safe;
  for (char c : name)
    safe += llvm::isAlnum(c) || c == '-' || c == '_' || c == '=' ? c : '.';
  return safe + "-" + hash.take_front(12).str();
}

std::optional<size_t> mixtape::plan::findNode(const Plan &plan, llvm::StringRef name) {
  for (size_t i = 0; i < plan.Nodes.size(); ++i)
    if (plan.Nodes[i].Name == name)
      return i;
  return std::nullopt;
}

double mixtape::plan::parameterCount(const Architecture &m) {
  double d = static_cast<double>(m.DModel), headDim = m.Heads ? double(m.DModel / m.Heads) : 0;
  double attention = d * (d + 2.0 * static_cast<double>(m.KVHeads) * headDim) + d * d;
  double mlp = (m.Family == ModelFamily::Llama ? 3.0 : 2.0) * d * static_cast<double>(m.Ffn);
  return static_cast<double>(m.Layers) * (attention + mlp) + static_cast<double>(m.Vocab) * d;
}

Architecture mixtape::plan::modelArchitecture(const Plan &plan, const Node &node) {
  // Back from the node to its init or the last growth (whose model has every size before it);
  // a node grows its input first and then extends its vocabulary.
  std::optional<VocabExtension> extension;
  Architecture m;
  for (const Node *at = &node;; at = &plan.Nodes[at->Inputs.front().Index]) {
    if (const InitNode *init = at->init()) {
      m = init->Settings.Model;
      break;
    }
    const TrainNode *t = at->train();
    if (t && t->Settings.VocabExtension && !extension)
      extension = t->Settings.VocabExtension;
    if (t && t->Settings.Grow) {
      m = t->Settings.Grow->Model;
      break;
    }
  }
  if (extension) {
    m.Vocab = extension->Vocab;
    m.Tokenizer = extension->Tokenizer;
  }
  return m;
}

VariantLedgers mixtape::plan::variantLedgers(const Plan &plan) {
  VariantLedgers out;
  for (const Node &n : plan.Nodes)
    if (const TrainNode *t = n.train())
      for (const std::string &v : n.Variants)
        for (const auto &[stream, tokens] : t->Ledger.TokensByStream) {
          out[v].TokensByStream[stream] += tokens;
          out[v].Tokens += tokens;
        }
  return out;
}

llvm::ArrayRef<KeyInfo> mixtape::plan::allPlanKeys() {
  static const KeyInfo keys[] = {
#define PLAN_FIELD(TYPE, MEMBER, KEY, CPPTYPE, PRESENCE, ROLE, DOC) {#TYPE, KEY, DOC},
#include "mixtape/plan/PlanKeys.def"
  };
  return keys;
}

std::vector<EnumInfo> mixtape::plan::allPlanEnums() {
  std::vector<EnumInfo> out;
#define PLAN_ENUM(TYPE, DOC) out.push_back({#TYPE, {}});
#define PLAN_CASE(TYPE, CASE, NAME) out.back().Names.push_back(NAME);
#include "mixtape/plan/PlanKeys.def"
  return out;
}

std::string mixtape::plan::resolvePath(llvm::StringRef baseDir, llvm::StringRef path) {
  if (llvm::sys::path::is_absolute(path) || baseDir.empty())
    return path.str();
  llvm::SmallString<256> full(baseDir);
  llvm::sys::path::append(full, path);
  return std::string(full);
}
