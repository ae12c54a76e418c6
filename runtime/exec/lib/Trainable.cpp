//===- Trainable.cpp ------------------------------------------------------===//
#include "mixtape/exec/Trainable.h"

#include "mixtape/plan/ParamGroups.h"
#include "mixtape/support/Error.h"

#include "llvm/ADT/STLExtras.h"

using namespace mixtape;

namespace {

/// A recipe's group names with the parameters each matched.
struct Selectors {
  std::vector<std::pair<std::string, plan::GroupSelector>> Named;
  std::vector<bool> Matched;

  /// The index of the selector that picks parameter group `group`, or -1.
  int find(const std::optional<plan::GroupSelector> &group) {
    for (size_t i = 0; group && i < Named.size(); ++i)
      if (plan::selects(Named[i].second, *group)) {
        Matched[i] = true;
        return static_cast<int>(i);
      }
    return -1;
  }
};

llvm::Expected<Selectors> selectors(llvm::ArrayRef<std::string> names, llvm::StringRef key) {
  Selectors out;
  for (const std::string &name : names) {
    std::optional<plan::GroupSelector> s = plan::parseGroupSelector(name);
    if (!s)
      return makeError(key + ": '" + name + "' is not a parameter group (" + plan::kGroupSyntax + ")");
    out.Named.push_back({name, *s});
  }
  out.Matched.assign(names.size(), false);
  return out;
}

llvm::Error checkAllMatched(const Selectors &s, llvm::StringRef key, const model::ModelConfig &config) {
  for (size_t i = 0; i < s.Named.size(); ++i)
    if (!s.Matched[i])
      return makeError(key + ": group '" + s.Named[i].first + "' names no parameter of this " +
                       plan::enumName(config.Family) + " model (" + std::to_string(config.NumLayers) + " layers" +
                       (config.TieEmbeddings ? ", its head tied to the embeddings)" : ")"));
  return llvm::Error::success();
}

} // namespace

llvm::Expected<std::vector<double>> exec::applyTrainable(const plan::TrainSettings &settings, model::Model &m) {
  const model::ModelConfig &config = m.config();
  if (settings.Lora) {
    const plan::Lora &l = *settings.Lora;
    if (llvm::Error e = m.addLora({static_cast<int64_t>(l.Rank), l.Alpha, l.Targets, l.Dropout, l.Seed}))
      return std::move(e);
  }
  std::vector<std::string> freezeNames = settings.Freeze.value_or(std::vector<std::string>());
  llvm::Expected<Selectors> frozen = selectors(freezeNames, "freeze");
  if (!frozen)
    return frozen.takeError();
  std::vector<std::string> scaleNames;
  for (const auto &[name, scale] : settings.LRScale.value_or(plan::GroupScales()))
    scaleNames.push_back(name);
  llvm::Expected<Selectors> scaled = selectors(scaleNames, "lr_scale");
  if (!scaled)
    return scaled.takeError();
  std::vector<double> scales;
  for (const model::NamedParameter &p : m.parameters()) {
    std::optional<plan::GroupSelector> group = plan::groupOfParameter(config.Family, p.Name);
    if (frozen->find(group) >= 0)
      p.Tensor.set_requires_grad(false);
    const int scale = scaled->find(group);
    if (p.Tensor.requires_grad())
      scales.push_back(scale >= 0 ? settings.LRScale->at(scaleNames[scale]) : 1.0);
  }
  if (llvm::Error e = checkAllMatched(*frozen, "freeze", config))
    return std::move(e);
  if (llvm::Error e = checkAllMatched(*scaled, "lr_scale", config))
    return std::move(e);
  if (scales.empty())
    return makeError("freeze: every parameter of the model is frozen; nothing would train");
  return scales;
}
