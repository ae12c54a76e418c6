//===- ParamGroups.cpp ----------------------------------------------------===//
#include "mixtape/plan/ParamGroups.h"

#include "mixtape/plan/MemoryPlan.h"

#include "llvm/ADT/STLExtras.h"

#include <vector>

using namespace mixtape::plan;

std::optional<GroupSelector> mixtape::plan::parseGroupSelector(llvm::StringRef name) {
  if (name == "embeddings")
    return GroupSelector{GroupKind::Embeddings};
  if (name == "final_norm")
    return GroupSelector{GroupKind::FinalNorm};
  if (name == "head")
    return GroupSelector{GroupKind::Head};
  llvm::StringRef range = name;
  if (!range.consume_front("layers."))
    return std::nullopt;
  auto [first, last] = range.split('-');
  GroupSelector s{GroupKind::Layers};
  // Plain decimal numbers only: getAsInteger would also take "0x1f".
  auto number = [](llvm::StringRef text, uint64_t &out) {
    return !text.empty() && text.size() <= 9 && llvm::all_of(text, [](char c) { return c >= '0' && c <= '9'; }) &&
           !text.getAsInteger(10, out);
  };
  if (!number(first, s.First) || !number(range.contains('-') ? last : first, s.Last) || s.Last < s.First)
    return std::nullopt;
  return s;
}

bool mixtape::plan::overlaps(const GroupSelector &a, const GroupSelector &b) {
  return a.Kind == b.Kind && (a.Kind != GroupKind::Layers || (a.First <= b.Last && b.First <= a.Last));
}

bool mixtape::plan::selects(const GroupSelector &selector, const GroupSelector &group) {
  return overlaps(selector, group);
}

std::optional<GroupSelector> mixtape::plan::groupOfParameter(ModelFamily family, llvm::StringRef name) {
  struct Prefixes {
    llvm::StringRef Layers;
    std::vector<llvm::StringRef> Embeddings, FinalNorm, Head;
  };
  static const Prefixes gpt2{"transformer.h.", {"transformer.wte.", "transformer.wpe."}, {"transformer.ln_f."}, {"lm_head."}};
  static const Prefixes llama{"model.layers.", {"model.embed_tokens."}, {"model.norm."}, {"lm_head."}};
  static const Prefixes neox{"gpt_neox.layers.", {"gpt_neox.embed_in."}, {"gpt_neox.final_layer_norm."}, {"embed_out."}};
  const Prefixes &p = family == ModelFamily::GPT2 ? gpt2 : family == ModelFamily::Llama ? llama : neox;
  auto startsWithAny = [&](const std::vector<llvm::StringRef> &prefixes) {
    return llvm::any_of(prefixes, [&](llvm::StringRef prefix) { return name.startswith(prefix); });
  };
  if (startsWithAny(p.Embeddings))
    return GroupSelector{GroupKind::Embeddings};
  if (startsWithAny(p.FinalNorm))
    return GroupSelector{GroupKind::FinalNorm};
  if (startsWithAny(p.Head))
    return GroupSelector{GroupKind::Head};
  llvm::StringRef rest = name;
  uint64_t layer = 0;
  if (!rest.consume_front(p.Layers) || rest.consumeInteger(10, layer) || !rest.startswith("."))
    return std::nullopt;
  return GroupSelector{GroupKind::Layers, layer, layer};
}

llvm::ArrayRef<llvm::StringRef> mixtape::plan::loraTargets(ModelFamily family) {
  static const llvm::StringRef withGate[] = {"q", "k", "v", "o", "gate", "up", "down"};
  static const llvm::StringRef withoutGate[] = {"q", "k", "v", "o", "up", "down"};
  if (family == ModelFamily::Llama)
    return withGate;
  return withoutGate;
}

namespace {

/// A target's input and output widths.
struct Shape {
  uint64_t In = 0, Out = 0;
};

Shape targetShape(const Architecture &m, llvm::StringRef target) {
  const uint64_t d = m.DModel, head = m.DModel / m.Heads, q = m.Heads * head, kv = m.KVHeads * head;
  if (target == "q")
    return {d, q};
  if (target == "k" || target == "v")
    return {d, kv};
  if (target == "o")
    return {q, d};
  if (target == "down")
    return {m.Ffn, d};
  return {d, m.Ffn}; // gate, up
}

/// Parameters of one group of `kind` (a block for Layers), as the memory plan counts them.
uint64_t groupParameters(const Architecture &m, GroupKind kind) {
  const ParameterCounts p = countParameters(m);
  switch (kind) {
  case GroupKind::Embeddings: return static_cast<uint64_t>(p.Embedding);
  case GroupKind::Layers: return static_cast<uint64_t>(p.Block);
  case GroupKind::FinalNorm: return static_cast<uint64_t>(p.FinalNorm);
  case GroupKind::Head: return static_cast<uint64_t>(p.Head);
  }
  return 0;
}

} // namespace

uint64_t mixtape::plan::countTrainableParameters(const Architecture &model, const TrainSettings &settings) {
  std::vector<GroupSelector> frozen;
  for (const std::string &name : settings.Freeze.value_or(std::vector<std::string>()))
    if (std::optional<GroupSelector> s = parseGroupSelector(name))
      frozen.push_back(*s);
  auto isFrozen = [&](const GroupSelector &group) {
    return llvm::any_of(frozen, [&](const GroupSelector &s) { return selects(s, group); });
  };
  uint64_t trainable = 0;
  for (uint64_t layer = 0; layer < model.Layers; ++layer) {
    if (isFrozen({GroupKind::Layers, layer, layer}))
      continue;
    if (!settings.Lora) {
      trainable += groupParameters(model, GroupKind::Layers);
      continue;
    }
    for (const std::string &target : settings.Lora->Targets) {
      Shape s = targetShape(model, target);
      trainable += settings.Lora->Rank * (s.In + s.Out);
    }
  }
  if (settings.Lora)
    return trainable;
  for (GroupKind kind : {GroupKind::Embeddings, GroupKind::FinalNorm, GroupKind::Head})
    if (!isFrozen({kind}))
      trainable += groupParameters(model, kind);
  return trainable;
}
