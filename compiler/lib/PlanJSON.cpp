//===- PlanJSON.cpp - the plan as versioned JSON --------------------------===//
#include "mixtape/compiler/Plan.h"

#include "llvm/Support/MemoryBuffer.h"

#include <cmath>

using namespace mixtape;
using llvm::json::Array;
using llvm::json::Object;

std::map<std::string, std::map<std::string, uint64_t>> Plan::tokensByVariant() const {
  std::map<std::string, std::map<std::string, uint64_t>> out;
  for (const PlanNode &n : nodes)
    if (n.kind == NodeKind::Train)
      for (const std::string &v : n.variants)
        for (const auto &[stream, tokens] : n.tokensByStream)
          out[v][stream] += tokens;
  return out;
}

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
  Object variants;
  for (const auto &[variant, byStream] : tokensByVariant()) {
    Object streamsJSON;
    int64_t total = 0;
    for (const auto &[stream, tokens] : byStream) {
      streamsJSON[stream] = static_cast<int64_t>(tokens);
      total += static_cast<int64_t>(tokens);
    }
    variants[variant] = Object{{"tokens", total}, {"tokens_by_stream", std::move(streamsJSON)}};
  }
  Array ablationsJSON;
  for (const AblationLedger &a : ablations)
    ablationsJSON.push_back(Object{{"name", a.name},
                                   {"unit_tokens", static_cast<int64_t>(a.unitTokens)},
                                   {"direct_tokens", static_cast<int64_t>(a.directTokens)},
                                   {"combinations", static_cast<int64_t>(a.combinations)}});
  Array reasons;
  for (const std::string &r : provisionalReasons)
    reasons.push_back(r);
  return Object{{"format", "mixtape-plan"},
                {"version", kPlanFormatVersion},
                {"recipe", recipe},
                {"recipe_dir", recipeDir},
                {"seed", static_cast<int64_t>(seed)},
                {"provisional", provisional},
                {"provisional_reasons", std::move(reasons)},
                {"model", Object(model)},
                {"streams", Object(streams)},
                {"cost", Object{{"peak_flops", cost.peakFlops}, {"mfu", cost.mfu}}},
                {"sharing", Object{{"variant_tokens", static_cast<int64_t>(variantTokens)},
                                   {"shared_tokens", static_cast<int64_t>(sharedTokens)}}},
                {"variants", std::move(variants)},
                {"ablations", std::move(ablationsJSON)},
                {"nodes", std::move(nodesJSON)}};
}

static llvm::Error malformed(const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), "malformed plan: " + what.str());
}

Object mixtape::scheduleJSON(const schedule::Schedule &s, uint64_t horizon) {
  Array phases;
  for (const schedule::Phase &p : s.phases()) {
    Object o{{"shape", schedule::shapeName(p.shape)}, {"begin", p.begin}, {"from", p.from}, {"to", p.to}};
    if (std::isfinite(p.length))
      o["length"] = p.length;
    if (p.shape == schedule::Shape::InverseSqrt) {
      o["alpha"] = p.alpha;
      o["timescale"] = p.timescale;
    }
    phases.push_back(std::move(o));
  }
  return Object{{"horizon", static_cast<int64_t>(horizon)}, {"phases", std::move(phases)}};
}

llvm::Expected<schedule::Schedule> mixtape::scheduleFromJSON(const Object &o) {
  const Array *phases = o.getArray("phases");
  if (!phases)
    return malformed("lr has no phases");
  std::vector<schedule::Phase> out;
  for (const llvm::json::Value &v : *phases) {
    const Object *p = v.getAsObject();
    std::optional<schedule::Shape> shape;
    if (p)
      if (auto name = p->getString("shape"))
        for (auto candidate : {schedule::Shape::Warmup, schedule::Shape::Constant, schedule::Shape::Linear,
                               schedule::Shape::Cosine, schedule::Shape::Exp, schedule::Shape::InverseSqrt,
                               schedule::Shape::OneMinusSqrt})
          if (schedule::shapeName(candidate) == *name)
            shape = candidate;
    if (!shape || !p->getNumber("begin") || !p->getNumber("from") || !p->getNumber("to"))
      return malformed("an lr phase needs a known shape, begin, from and to");
    schedule::Phase phase;
    phase.shape = *shape;
    phase.begin = *p->getNumber("begin");
    phase.from = *p->getNumber("from");
    phase.to = *p->getNumber("to");
    if (auto length = p->getNumber("length"))
      phase.length = *length;
    phase.alpha = p->getNumber("alpha").getValueOr(1.0);
    phase.timescale = p->getNumber("timescale").getValueOr(0.0);
    out.push_back(phase);
  }
  return schedule::Schedule(std::move(out));
}

Object mixtape::mixtureJSON(const Mixture &m) {
  Array streams, positions, weights;
  for (const std::string &s : m.streams)
    streams.push_back(s);
  for (double p : m.positions)
    positions.push_back(p);
  for (const auto &row : m.weights) {
    Array r;
    for (double w : row)
      r.push_back(w);
    weights.push_back(std::move(r));
  }
  return Object{{"streams", std::move(streams)}, {"positions", std::move(positions)}, {"weights", std::move(weights)}};
}

llvm::Expected<Mixture> mixtape::mixtureFromJSON(const Object &o) {
  const Array *streams = o.getArray("streams"), *positions = o.getArray("positions"), *weights = o.getArray("weights");
  if (!streams || !positions || !weights || positions->size() != weights->size() || streams->empty())
    return malformed("a mixture needs streams, and one row of weights per position");
  Mixture m;
  for (const llvm::json::Value &s : *streams) {
    if (!s.getAsString())
      return malformed("mixture streams are names");
    m.streams.push_back(s.getAsString()->str());
  }
  for (size_t i = 0; i < positions->size(); ++i) {
    const Array *row = (*weights)[i].getAsArray();
    if (!(*positions)[i].getAsNumber() || !row || row->size() != m.streams.size())
      return malformed("a mixture row needs a position and one weight per stream");
    m.positions.push_back(*(*positions)[i].getAsNumber());
    std::vector<double> w;
    for (const llvm::json::Value &x : *row) {
      if (!x.getAsNumber())
        return malformed("mixture weights are numbers");
      w.push_back(*x.getAsNumber());
    }
    m.weights.push_back(std::move(w));
  }
  return m;
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
