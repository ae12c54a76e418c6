//===- PlanJSON.cpp - the plan as versioned JSON --------------------------===//
#include "mixtape/compiler/Plan.h"

#include "llvm/Support/MemoryBuffer.h"

using namespace mixtape;
using llvm::json::Array;
using llvm::json::Object;

llvm::json::Value Plan::toJSON() const {
  Array nodesJSON;
  for (const PlanNode &n : nodes) {
    Array inputs, inputHashes, variantsJSON;
    for (size_t i : n.inputs) {
      inputs.push_back(nodes[i].name);
      inputHashes.push_back(nodes[i].hash);
    }
    for (const std::string &v : n.variants)
      variantsJSON.push_back(v);
    Object ledger;
    if (n.kind == NodeKind::Train) {
      Object byStream, epochs;
      for (const auto &[s, t] : n.tokensByStream)
        byStream[s] = static_cast<int64_t>(t);
      for (const auto &[s, e] : n.epochsAtEnd)
        epochs[s] = e;
      ledger = Object{{"tokens", static_cast<int64_t>(n.tokens)},
                      {"tokens_by_stream", std::move(byStream)},
                      {"epochs_at_end", std::move(epochs)},
                      {"replay_fraction", n.replayFraction},
                      {"flops", n.flops},
                      {"gpu_hours", n.flops / (cost.peakFlops * cost.mfu) / 3600}};
    }
    Object node{{"name", n.name},
                {"kind", nodeKindName(n.kind)},
                {"hash", n.hash},
                {"dir", n.dirName()},
                {"provisional", n.provisional},
                {"inputs", std::move(inputs)},
                {"input_hashes", std::move(inputHashes)},
                {"variants", std::move(variantsJSON)},
                {"settings", Object(n.settings)},
                {"exec", Object(n.exec)}};
    if (!ledger.empty())
      node["ledger"] = std::move(ledger);
    nodesJSON.push_back(std::move(node));
  }
  Array reasons;
  for (const std::string &r : provisionalReasons)
    reasons.push_back(r);
  return Object{{"format", "mixtape-plan"},
                {"version", kPlanFormatVersion},
                {"recipe", recipe},
                {"seed", static_cast<int64_t>(seed)},
                {"provisional", provisional},
                {"provisional_reasons", std::move(reasons)},
                {"model", Object(model)},
                {"streams", Object(streams)},
                {"cost", Object{{"peak_flops", cost.peakFlops}, {"mfu", cost.mfu}}},
                {"sharing", Object{{"variant_tokens", static_cast<int64_t>(variantTokens)},
                                   {"shared_tokens", static_cast<int64_t>(sharedTokens)}}},
                {"nodes", std::move(nodesJSON)}};
}

llvm::Expected<llvm::json::Value> mixtape::readPlanFile(llvm::StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return llvm::createStringError(buffer.getError(), "%s: cannot read: %s", path.str().c_str(),
                                   buffer.getError().message().c_str());
  llvm::Expected<llvm::json::Value> json = llvm::json::parse((*buffer)->getBuffer());
  if (!json)
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "%s: %s", path.str().c_str(),
                                   llvm::toString(json.takeError()).c_str());
  const Object *o = json->getAsObject();
  if (!o || o->getString("format") != llvm::StringRef("mixtape-plan"))
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "%s: not a Mixtape plan", path.str().c_str());
  if (o->getInteger("version") != kPlanFormatVersion)
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "%s: plan format version %lld, this mixtape reads %lld",
                                   path.str().c_str(), static_cast<long long>(o->getInteger("version").getValueOr(-1)),
                                   static_cast<long long>(kPlanFormatVersion));
  return std::move(*json);
}
