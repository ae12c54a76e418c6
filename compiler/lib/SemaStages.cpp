//===- SemaStages.cpp - sweeps, stages, edges and their variants ----------===//
//
// Stages form a forest through `after`. Each stage's variants are the product of the sweep
// axes its own settings and its ancestry use (zipped axes vary together). Every variant's
// settings are resolved: the sweep's value, else the stage's own, else (for inherited keys)
// the parent variant's, else the model's default.
//
//===----------------------------------------------------------------------===//
#include "SemaContext.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallBitVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace mixtape;
using namespace mixtape::sema;

namespace {

constexpr size_t kMaxVariants = 100000;
/// Relative LR change at a stage edge that counts as a jump.
constexpr double kLrJumpTolerance = 0.01;

struct StageDecl {
  const Value *table = nullptr;
  std::string name;
  llvm::SMRange nameRange;
  const Value *after = nullptr; ///< the `after` value (string or table)
  const Value *afterName = nullptr;
  int parent = -1;              ///< index into decls
  bool inCycle = false;
};

/// What a variant was written with, beyond Recipe.h's resolved numbers: inherited batches
/// keep their unit, so a later stage with a longer seq_len keeps the same tokens per step.
struct BatchWritten {
  Quantity quantity;
  const Value *value = nullptr;
};

class StageChecker {
public:
  explicit StageChecker(Context &ctx) : ctx(ctx), recipe(ctx.recipe) {}

  void run() {
    collectStages();
    linkParents();
    collectAxes();
    std::vector<int> order = topologicalOrder();
    for (int i : order)
      buildStage(i);
    checkUnusedStreams();
  }

private:
  Context &ctx;
  CheckedRecipe &recipe;
  std::vector<StageDecl> decls;
  std::map<std::string, int> declIndex;
  std::vector<std::vector<const Value *>> axisValues; // per axis, per label
  std::vector<const Value *> axisKeyValues;
  std::vector<int> outIndex;                          // decl -> index in recipe.stages
  std::vector<std::vector<BatchWritten>> batches;     // per out stage, per variant
  /// Root streams a variant and its ancestry trained on, with the init's pretraining data
  /// (per out stage, per variant): what counts as "earlier data" for its children.
  /// Bits by index in recipe.streams: a set of strings per variant made long chains slow.
  std::vector<std::vector<llvm::SmallBitVector>> trainedOn;

  std::vector<std::string> stageNames() const {
    std::vector<std::string> names;
    for (const StageDecl &d : decls)
      names.push_back(d.name);
    return names;
  }

  int findDecl(llvm::StringRef name) const {
    auto it = declIndex.find(name.str());
    return it == declIndex.end() ? -1 : it->second;
  }

  void collectStages() {
    const Value *stages = ctx.root.get("stage");
    if (!stages || stages->kind != Value::Array) {
      ctx.report(DiagCode::MissingKey, ctx.root.range, "the recipe needs at least one [[stage]]");
      return;
    }
    for (const auto &item : stages->items) {
      if (item->kind != Value::Table)
        continue;
      const Value *name = item->get("name");
      if (!name || name->kind != Value::String)
        continue;
      if (int prev = findDecl(name->string); prev >= 0) {
        Diagnostic *d = ctx.report(DiagCode::DuplicateName, name->range,
                                   "a stage named '" + name->string + "' already exists");
        if (d)
          DiagnosticEngine::addNote(*d, decls[prev].nameRange, "first defined here");
        continue;
      }
      StageDecl decl;
      decl.table = item.get();
      decl.name = name->string;
      decl.nameRange = name->range;
      decl.after = item->get("after");
      if (decl.after)
        decl.afterName = decl.after->kind == Value::Table ? decl.after->get("stage") : decl.after;
      declIndex[decl.name] = static_cast<int>(decls.size());
      decls.push_back(decl);
    }
  }

  void linkParents() {
    for (StageDecl &d : decls) {
      if (!d.afterName || d.afterName->kind != Value::String)
        continue;
      const std::string &parent = d.afterName->string;
      d.parent = findDecl(parent);
      if (d.parent < 0) {
        bool selector = llvm::StringRef(parent).contains('[');
        Diagnostic *diag = ctx.report(
            DiagCode::UnknownRef, d.afterName->range,
            selector ? "'after' names a stage; its variants follow the parent's, so it takes no selector"
                     : "unknown stage '" + parent + "'");
        if (!selector)
          ctx.suggest(diag, parent, stageNames(), d.afterName->location().range(0, parent.size()));
      }
    }
    // Cycles: walk each chain of parents once; a walk that meets itself closes a cycle,
    // reported once, at the `after` of the cycle's first stage in the file.
    enum State { Unseen, OnWalk, Done };
    std::vector<State> state(decls.size(), Unseen);
    for (size_t start = 0; start < decls.size(); ++start) {
      std::vector<int> walk;
      int cur = static_cast<int>(start);
      while (cur >= 0 && state[cur] == Unseen) {
        state[cur] = OnWalk;
        walk.push_back(cur);
        cur = decls[cur].parent;
      }
      if (cur >= 0 && state[cur] == OnWalk) {
        std::vector<int> cycle(llvm::find(walk, cur), walk.end());
        int first = *std::min_element(cycle.begin(), cycle.end());
        std::string path;
        for (auto it = llvm::find(cycle, first); path.empty() || *it != first;) {
          path += decls[*it].name + " -> ";
          if (++it == cycle.end())
            it = cycle.begin();
        }
        for (int c : cycle)
          decls[c].inCycle = true;
        ctx.report(DiagCode::Cycle, decls[first].afterName->range,
                   "stages continue from each other in a cycle: " + path + decls[first].name);
      }
      for (int w : walk)
        state[w] = Done;
    }
  }

  std::vector<int> topologicalOrder() {
    std::vector<int> order;
    std::vector<bool> placed(decls.size());
    outIndex.assign(decls.size(), -1);
    bool progress = true;
    while (progress) {
      progress = false;
      for (size_t i = 0; i < decls.size(); ++i) {
        if (placed[i] || decls[i].inCycle)
          continue;
        if (decls[i].parent >= 0 && !placed[decls[i].parent]) {
          continue;
        }
        placed[i] = true;
        progress = true;
        order.push_back(static_cast<int>(i));
      }
    }
    return order;
  }

  //===--------------------------------------------------------------------===//
  // [sweep]
  //===--------------------------------------------------------------------===//

  void collectAxes() {
    const Value *sweep = ctx.root.get("sweep");
    if (!sweep || sweep->kind != Value::Table)
      return;
    for (const Field &f : sweep->fields) {
      if (f.key == "zip" || f.value->kind != Value::Table)
        continue;
      const Value *key = f.value->get("key");
      const Value *values = f.value->get("values");
      if (!key || key->kind != Value::String || !values || values->kind != Value::Table)
        continue;
      SweepAxis axis;
      axis.name = f.key;
      if (!parseSweepKey(*key, axis))
        continue;
      if (values->fields.empty()) {
        ctx.report(DiagCode::BadValue, values->range, "axis '" + axis.name + "' has no values");
        continue;
      }
      std::vector<const Value *> labelValues;
      for (const Field &label : values->fields) {
        axis.labels.push_back(label.key);
        labelValues.push_back(label.value.get());
      }
      axis.zipGroup = static_cast<unsigned>(recipe.axes.size());
      recipe.axes.push_back(std::move(axis));
      axisValues.push_back(std::move(labelValues));
      axisKeyValues.push_back(key);
    }
    if (const Value *zip = sweep->get("zip"); zip && zip->kind == Value::Array)
      collectZip(*zip);
  }

  bool parseSweepKey(const Value &key, SweepAxis &axis) {
    llvm::SmallVector<llvm::StringRef, 3> parts;
    llvm::StringRef(key.string).split(parts, '.');
    const StringLocation &loc = key.location();
    if (parts.size() < 2 || parts.size() > 3 || llvm::any_of(parts, [](llvm::StringRef p) { return p.empty(); })) {
      ctx.report(DiagCode::BadValue, key.range,
                 "a sweep key is <stage>.<setting>[.<field>], e.g. \"adapt.mix\" or \"long.after.at\"");
      return false;
    }
    auto rangeOf = [&](size_t i) {
      size_t begin = 0;
      for (size_t k = 0; k < i; ++k)
        begin += parts[k].size() + 1;
      return loc.range(begin, begin + parts[i].size());
    };
    int stage = findDecl(parts[0]);
    if (stage < 0) {
      ctx.suggest(ctx.report(DiagCode::UnknownRef, rangeOf(0), "unknown stage '" + parts[0].str() + "'"),
                  parts[0], stageNames(), rangeOf(0));
      return false;
    }
    const KeyInfo *info = findKey(SectionId::Stage, parts[1]);
    if (!info) {
      ctx.suggest(ctx.report(DiagCode::UnknownKey, rangeOf(1), "stages have no setting '" + parts[1].str() + "'"),
                  parts[1], keyNames(SectionId::Stage), rangeOf(1));
      return false;
    }
    if (info->name == "name" || (info->name == "after" && parts.size() == 2)) {
      ctx.report(DiagCode::BadValue, rangeOf(1),
                 "'" + info->name.str() + "' cannot be swept: it decides the graph, not a setting" +
                     (info->name == "after" ? " (sweep after.at or after.optimizer)" : ""));
      return false;
    }
    std::optional<SectionId> sub = subsection(info->type);
    if (sub && parts.size() == 2) {
      std::vector<std::string> fields = keyNames(*sub);
      ctx.report(DiagCode::BadValue, rangeOf(1),
                 "sweep one field of '" + parts[1].str() + "', e.g. \"" + parts[0].str() + "." + parts[1].str() +
                     "." + fields.back() + "\"");
      return false;
    }
    if (parts.size() == 3) {
      const KeyInfo *field = sub ? findKey(*sub, parts[2]) : nullptr;
      if (!field || field->name == "stage") {
        Diagnostic *d = ctx.report(DiagCode::UnknownKey, rangeOf(2),
                                   "'" + parts[1].str() + "' has no field '" + parts[2].str() + "' to sweep");
        if (sub)
          ctx.suggest(d, parts[2], keyNames(*sub), rangeOf(2));
        return false;
      }
      axis.subkey = parts[2].str();
    }
    axis.stage = parts[0].str();
    axis.key = parts[1].str();
    return true;
  }

  int findAxis(llvm::StringRef name) const {
    for (size_t i = 0; i < recipe.axes.size(); ++i)
      if (recipe.axes[i].name == name)
        return static_cast<int>(i);
    return -1;
  }

  void collectZip(const Value &zip) {
    std::vector<const Value *> groups;
    if (!zip.items.empty() && zip.items[0]->kind == Value::String)
      groups.push_back(&zip);
    else
      for (const auto &g : zip.items)
        groups.push_back(g.get());
    std::vector<std::string> axisNames;
    for (const SweepAxis &a : recipe.axes)
      axisNames.push_back(a.name);
    std::set<int> zipped;
    for (const Value *group : groups) {
      int first = -1;
      for (const auto &item : group->items) {
        int axis = findAxis(item->string);
        if (axis < 0) {
          ctx.suggest(ctx.report(DiagCode::UnknownRef, item->range, "unknown axis '" + item->string + "'"),
                      item->string, axisNames, item->location().range(0, item->string.size()));
          continue;
        }
        if (!zipped.insert(axis).second) {
          ctx.report(DiagCode::BadValue, item->range, "axis '" + item->string + "' is zipped twice");
          continue;
        }
        if (first < 0) {
          first = axis;
          continue;
        }
        if (recipe.axes[axis].labels.size() != recipe.axes[first].labels.size()) {
          ctx.report(DiagCode::BadValue, item->range,
                     llvm::formatv("zipped axes pair values by position, but '{0}' has {1} values and '{2}' has {3}",
                                   recipe.axes[first].name, recipe.axes[first].labels.size(),
                                   recipe.axes[axis].name, recipe.axes[axis].labels.size())
                         .str());
          continue;
        }
        recipe.axes[axis].zipGroup = recipe.axes[first].zipGroup;
      }
    }
  }

  //===--------------------------------------------------------------------===//
  // Stages and variants
  //===--------------------------------------------------------------------===//

  /// The value a variant uses for key[.sub]: the sweep's label, else the stage's own.
  const Value *effective(const StageDecl &d, const StageSpec &stage, const VariantLabels &labels,
                         llvm::StringRef key, llvm::StringRef sub = "") const {
    for (unsigned a : stage.axes) {
      const SweepAxis &axis = recipe.axes[a];
      if (axis.stage == d.name && axis.key == key && axis.subkey == sub)
        return axisValues[a][labels.at(a)];
    }
    const Value *v = d.table->get(key);
    if (!v || sub.empty())
      return v;
    return v->kind == Value::Table ? v->get(sub) : nullptr;
  }

  void buildStage(int declIndex) {
    const StageDecl &d = decls[declIndex];
    StageSpec stage;
    stage.name = d.name;
    const StageSpec *parent = nullptr;
    int parentOut = -1;
    if (d.parent >= 0) {
      parentOut = outIndex[d.parent];
      if (parentOut < 0) {
        // The parent is broken (and reported); still check what needs no inheritance.
        checkExpressions(d, stage, VariantLabels());
        return;
      }
      parent = &recipe.stages[parentOut];
      stage.parent = parent->name;
      stage.axes = parent->axes;
    }
    for (size_t a = 0; a < recipe.axes.size(); ++a)
      if (recipe.axes[a].stage == d.name && !llvm::is_contained(stage.axes, a))
        stage.axes.push_back(static_cast<unsigned>(a));
    // Zipped partners vary together.
    for (size_t a = 0; a < recipe.axes.size(); ++a)
      for (unsigned used : std::vector<unsigned>(stage.axes))
        if (recipe.axes[a].zipGroup == recipe.axes[used].zipGroup && !llvm::is_contained(stage.axes, a))
          stage.axes.push_back(static_cast<unsigned>(a));
    llvm::sort(stage.axes);

    // Enumerate: one counter per zip group, in axis order.
    std::vector<unsigned> groups;
    for (unsigned a : stage.axes)
      if (!llvm::is_contained(groups, recipe.axes[a].zipGroup))
        groups.push_back(recipe.axes[a].zipGroup);
    size_t total = 1;
    for (unsigned g : groups) {
      total *= groupSize(g);
      if (total > kMaxVariants) {
        ctx.report(DiagCode::BadValue, d.nameRange,
                   llvm::formatv("stage '{0}' would have more than {1} variants", d.name, kMaxVariants).str());
        return;
      }
    }
    std::map<VariantLabels, int> parentVariants;
    if (parent)
      for (size_t i = 0; i < parent->variants.size(); ++i)
        parentVariants[parent->variants[i].labels] = static_cast<int>(i);

    std::vector<BatchWritten> stageBatches;
    std::vector<llvm::SmallBitVector> stageData;
    bool ok = true;
    for (size_t n = 0; n < total && ok; ++n) {
      VariantLabels labels;
      size_t rest = n;
      for (auto g = groups.rbegin(); g != groups.rend(); ++g) {
        size_t size = groupSize(*g);
        unsigned label = static_cast<unsigned>(rest % size);
        rest /= size;
        for (unsigned a : stage.axes)
          if (recipe.axes[a].zipGroup == *g)
            labels[a] = label;
      }
      StageVariant v;
      v.labels = labels;
      v.displayName = displayName(d.name, labels);
      const StageVariant *pv = nullptr;
      const BatchWritten *pb = nullptr;
      if (parent) {
        VariantLabels parentLabels;
        for (unsigned a : parent->axes)
          parentLabels[a] = labels.at(a);
        v.parentVariant = parentVariants.at(parentLabels);
        pv = &parent->variants[v.parentVariant];
        pb = &batches[parentOut][v.parentVariant];
      }
      BatchWritten batch;
      ok = resolveVariant(d, stage, v, pv, pb, batch);
      if (!ok)
        checkExpressions(d, stage, labels);
      stageData.push_back(withMixture(parent ? trainedOn[parentOut][v.parentVariant] : pretrainingData(), v));
      stage.variants.push_back(std::move(v));
      stageBatches.push_back(batch);
    }
    if (!ok)
      return;
    outIndex[declIndex] = static_cast<int>(recipe.stages.size());
    recipe.stages.push_back(std::move(stage));
    batches.push_back(std::move(stageBatches));
    trainedOn.push_back(std::move(stageData));
  }

  /// Checks of a variant's mixture and schedule that need nothing resolved, so that a
  /// stage whose batch or parent is broken still reports every error in its own text.
  void checkExpressions(const StageDecl &d, const StageSpec &stage, const VariantLabels &labels) {
    auto eff = [&](llvm::StringRef key) {
      for (unsigned a : stage.axes)
        if (recipe.axes[a].stage == d.name && recipe.axes[a].key == key && recipe.axes[a].subkey.empty() &&
            labels.count(a))
          return axisValues[a][labels.at(a)];
      return d.table->get(key);
    };
    if (const Value *mix = eff("mix"); mix && mix->kind == Value::String)
      if (const MixtureSpec *spec = ctx.mixture(*mix))
        checkStreamRefs(*mix, *spec);
    if (const Value *lr = eff("lr"); lr && lr->kind == Value::String)
      ctx.scheduleSpec(*lr);
  }

  size_t groupSize(unsigned group) const {
    for (const SweepAxis &a : recipe.axes)
      if (a.zipGroup == group)
        return a.labels.size();
    return 1;
  }

  std::string displayName(const std::string &name, const VariantLabels &labels) const {
    if (labels.empty())
      return name;
    std::string out = name + "[";
    bool first = true;
    for (auto [axis, label] : labels) {
      out += (first ? "" : ",") + recipe.axes[axis].name + "=" + recipe.axes[axis].labels[label];
      first = false;
    }
    return out + "]";
  }

  /// Resolve every setting of one variant; false when a setting it needs is broken.
  bool resolveVariant(const StageDecl &d, const StageSpec &stage, StageVariant &v, const StageVariant *parent,
                      const BatchWritten *parentBatch, BatchWritten &batch) {
    const ModelSpec &model = recipe.model;
    auto eff = [&](llvm::StringRef key, llvm::StringRef sub = "") {
      return effective(d, stage, v.labels, key, sub);
    };
    bool ok = true;

    // Shape: seq_len, positions, rope_theta, attention.
    v.seqLen = parent ? parent->seqLen : model.seqLen;
    if (const Value *s = eff("seq_len")) {
      auto q = ctx.quantity(*s, {Dim::Number, Dim::Tokens}, Dim::Number, "a sequence length such as 4096");
      auto n = q ? ctx.count(*s, *q, "seq_len") : std::nullopt;
      if (!n)
        return false;
      v.seqLen = *n;
      if (model.family == Family::GPT2 && v.seqLen > model.maxPositions)
        ctx.report(DiagCode::Positions, s->range,
                   llvm::formatv("seq_len {0} is beyond gpt2's learned position table of {1} (max_positions)",
                                 v.seqLen, model.maxPositions)
                       .str());
    }
    v.ropeTheta = parent ? parent->ropeTheta : model.ropeTheta;
    v.ropeThetaWritten = parent ? parent->ropeThetaWritten : model.ropeThetaWritten;
    if (const Value *r = eff("rope_theta")) {
      if (model.family == Family::GPT2)
        ctx.report(DiagCode::BadValue, r->range, "gpt2 uses learned positions: rope_theta does not apply");
      else if (!r->isNumber() || r->number() <= 0)
        ctx.report(DiagCode::BadValue, r->range, "rope_theta must be a positive number");
      else {
        v.ropeTheta = r->number();
        v.ropeThetaWritten = true;
      }
    }
    v.attention = parent ? parent->attention : model.attention;
    if (const Value *a = eff("attention"))
      v.attention = a->string == "within_document" ? Attention::WithinDocument : Attention::Causal;

    // Batch: a whole number of sequences.
    if (const Value *b = eff("batch")) {
      auto q = ctx.quantity(*b, {Dim::Tokens, Dim::Sequences}, Dim::Number,
                            "a batch such as \"1Mi tokens\" or \"512 sequences\"");
      if (!q)
        return false;
      batch = {*q, b};
    } else if (parentBatch) {
      batch = *parentBatch;
    } else {
      ctx.report(DiagCode::MissingKey, d.nameRange,
                 "stage '" + d.name + "' needs 'batch' (it has no parent stage to inherit one from)");
      return false;
    }
    if (!resolveBatch(batch, v, d))
      return false;
    v.microBatchSequences = parent ? std::min(parent->microBatchSequences, v.batchSequences) : v.batchSequences;
    if (const Value *m = eff("micro_batch")) {
      auto q = ctx.quantity(*m, {Dim::Sequences}, Dim::Sequences, "a number of sequences such as 8");
      auto n = q ? ctx.count(*m, *q, "micro_batch") : std::nullopt;
      if (!n)
        return false;
      v.microBatchSequences = *n;
    }
    if (v.batchSequences % v.microBatchSequences) {
      ctx.report(DiagCode::BatchShape, eff("micro_batch") ? eff("micro_batch")->range : d.nameRange,
                 llvm::formatv("micro_batch of {0} sequences does not divide the batch of {1} sequences",
                               v.microBatchSequences, v.batchSequences)
                     .str());
      ok = false;
    }

    v.zero1 = parent && parent->zero1;
    if (const Value *z = eff("zero1"); z && z->kind == Value::Bool)
      v.zero1 = z->boolean;

    // Tokens -> whole optimizer steps, rounding up (docs/language.md).
    const Value *tokens = eff("tokens");
    if (!tokens)
      return false; // missing-key already reported
    auto tq = ctx.quantity(*tokens, {Dim::Tokens, Dim::Steps}, Dim::Tokens, "a number of tokens such as \"2B\"");
    auto tn = tq ? ctx.count(*tokens, *tq, "tokens") : std::nullopt;
    if (!tn)
      return false;
    uint64_t perStep = v.batchTokens();
    v.requestedTokens = tq->dim == Dim::Steps ? *tn * perStep : *tn;
    v.steps = (v.requestedTokens + perStep - 1) / perStep;
    v.tokens = v.steps * perStep;
    v.horizon = v.tokens;
    if (const Value *h = eff("horizon")) {
      auto hq = ctx.quantity(*h, {Dim::Tokens, Dim::Steps}, Dim::Tokens, "a number of tokens such as \"10B\"");
      auto hn = hq ? ctx.count(*h, *hq, "horizon") : std::nullopt;
      if (!hn)
        return false;
      v.horizon = hq->dim == Dim::Steps ? *hn * perStep : *hn;
      if (v.horizon < v.requestedTokens)
        ctx.report(DiagCode::ScheduleDomain, h->range,
                   llvm::formatv("horizon of {0} tokens is shorter than the stage's {1}", formatCount(v.horizon),
                                 formatCount(v.requestedTokens))
                       .str());
    }

    ok &= resolveMix(eff("mix"), v);
    ok &= resolveLr(eff("lr"), v);
    resolveOptimizer(d, stage, v, parent);
    resolveCheckpoint(eff, v, parent);
    if (d.after)
      ok &= resolveEdge(d, stage, v, parent);
    if (ok)
      checkEdgeLints(d, v, parent);
    return ok;
  }

  bool resolveBatch(const BatchWritten &batch, StageVariant &v, const StageDecl &d) {
    const Value &b = *batch.value;
    if (batch.quantity.dim == Dim::Sequences) {
      auto n = ctx.count(b, batch.quantity, "a batch");
      if (!n)
        return false;
      v.batchSequences = *n;
      return true;
    }
    auto tokens = ctx.count(b, batch.quantity, "a batch");
    if (!tokens)
      return false;
    if (*tokens % v.seqLen == 0) {
      v.batchSequences = *tokens / v.seqLen;
      return true;
    }
    // Not whole: say by how much, and offer the nearest whole batches.
    uint64_t below = *tokens / v.seqLen;
    std::string message = llvm::formatv("a batch of {0} tokens is not a whole number of {1}-token sequences "
                                        "({2} sequences)",
                                        formatCount(*tokens), v.seqLen,
                                        shortNumber(static_cast<double>(*tokens) / v.seqLen))
                              .str();
    if (batch.value != d.table->get("batch"))
      message += llvm::formatv(" in stage '{0}'", d.name).str();
    Diagnostic *diag = ctx.report(DiagCode::BatchShape, b.range, message);
    if (diag && b.kind == Value::String) {
      // 1M tokens with 512-token sequences: 1Mi (2^20) is whole, and usually what was meant.
      double binary = batch.quantity.value / 1e6 * (1 << 20);
      std::string suggestion;
      if (batch.quantity.hasScale && std::fmod(binary, static_cast<double>(v.seqLen)) == 0 &&
          std::fmod(batch.quantity.value, 1e6) == 0)
        suggestion = formatCount(static_cast<uint64_t>(binary)) + " tokens";
      else
        suggestion = std::to_string(std::max<uint64_t>(below, 1)) + " sequences";
      DiagnosticEngine::addNote(*diag, b.range, "did you mean '" + suggestion + "'?");
      DiagnosticEngine::addFixIt(*diag, b.location().range(0, b.string.size()), suggestion);
    }
    return false;
  }

  std::vector<std::string> streamNames() const {
    std::vector<std::string> names;
    for (const StreamSpec &s : recipe.streams)
      names.push_back(s.name);
    return names;
  }

  bool checkStreamRefs(const Value &mix, const MixtureSpec &spec) {
    bool ok = true;
    for (const auto &[name, range] : streamRefs(spec)) {
      if (recipe.stream(name))
        continue;
      llvm::SMRange r = mix.location().range(range.begin, range.end);
      ctx.suggest(ctx.report(DiagCode::UnknownRef, r, "unknown stream '" + name + "'"), name, streamNames(), r);
      ok = false;
    }
    return ok;
  }

  bool resolveMix(const Value *mix, StageVariant &v) {
    if (!mix)
      return false;
    const MixtureSpec *spec = ctx.mixture(*mix);
    if (!spec || !checkStreamRefs(*mix, *spec))
      return false;
    ExprDiags list;
    std::optional<plan::Mixture> resolved = resolveMixture(*spec, static_cast<double>(v.tokens), list);
    ctx.reportExpr(*mix, list);
    if (!resolved)
      return false;
    v.mixture = std::move(*resolved);
    return true;
  }

  bool resolveLr(const Value *lr, StageVariant &v) {
    if (!lr)
      return false;
    const schedule::ScheduleSpec *spec = ctx.scheduleSpec(*lr);
    if (!spec)
      return false;
    ExprDiags list;
    std::optional<schedule::Resolved> resolved = schedule::resolve(*spec, static_cast<double>(v.horizon), list);
    ctx.reportExpr(*lr, list);
    if (!resolved)
      return false;
    v.lr = std::move(resolved->Schedule);
    v.lrPhaseRanges = std::move(resolved->PhaseRanges);
    const std::vector<plan::Phase> &phases = v.lr.Phases;
    const StringLocation &loc = lr->location();
    for (size_t i = 0; i < phases.size(); ++i) {
      if (phases[i].Shape != schedule::Shape::Warmup)
        continue;
      double end = plan::phaseEnd(phases[i]);
      if (end > static_cast<double>(v.tokens))
        ctx.report(DiagCode::ScheduleDomain, loc.range(v.lrPhaseRanges[i].begin, v.lrPhaseRanges[i].end),
                   llvm::formatv("warmup ends at {0} tokens, after the stage ends ({1} tokens)",
                                 formatCount(static_cast<uint64_t>(end)), formatCount(v.tokens))
                       .str());
    }
    double end = plan::scheduleEnd(v.lr);
    if (std::isfinite(end) && end < static_cast<double>(v.requestedTokens) && !phases.empty())
      ctx.report(DiagCode::ScheduleTail, loc.range(v.lrPhaseRanges.back().begin, v.lrPhaseRanges.back().end),
                 llvm::formatv("the schedule ends at {0} tokens but the stage trains {1}: the LR stays at {2} "
                               "for the last {3} tokens",
                               formatCount(static_cast<uint64_t>(end)), formatCount(v.requestedTokens),
                               shortNumber(plan::learningRate(v.lr, end)),
                               formatCount(v.requestedTokens - static_cast<uint64_t>(end)))
                     .str());
    return true;
  }

  void resolveOptimizer(const StageDecl &d, const StageSpec &stage, StageVariant &v, const StageVariant *parent) {
    v.optimizer = parent ? parent->optimizer : OptimizerSpec();
    v.gradClip = parent ? parent->gradClip : defaults::GradClip;
    auto eff = [&](llvm::StringRef sub) { return effective(d, stage, v.labels, "optimizer", sub); };
    if (const Value *b = eff("betas"); b && b->kind == Value::Array) {
      if (b->items.size() != 2)
        ctx.report(DiagCode::BadValue, b->range, "betas are two numbers, [beta1, beta2]");
      else {
        for (const auto &x : b->items)
          if (x->number() < 0 || x->number() >= 1)
            ctx.report(DiagCode::BadValue, x->range, "a beta must be in [0, 1)");
        v.optimizer.beta1 = b->items[0]->number();
        v.optimizer.beta2 = b->items[1]->number();
      }
    }
    if (const Value *e = eff("eps"); e && e->isNumber()) {
      if (e->number() <= 0)
        ctx.report(DiagCode::BadValue, e->range, "eps must be positive");
      v.optimizer.eps = e->number();
    }
    if (const Value *w = eff("weight_decay"); w && w->isNumber()) {
      if (w->number() < 0)
        ctx.report(DiagCode::BadValue, w->range, "weight_decay must not be negative");
      v.optimizer.weightDecay = w->number();
    }
    if (const Value *e = eff("decay_embeddings"); e && e->kind == Value::Bool)
      v.optimizer.decayEmbeddings = e->boolean;
    if (const Value *g = effective(d, stage, v.labels, "grad_clip"); g && g->isNumber()) {
      if (g->number() < 0)
        ctx.report(DiagCode::BadValue, g->range, "grad_clip must not be negative (0 disables clipping)");
      v.gradClip = g->number();
    }
    v.skipNonFinite = parent && parent->skipNonFinite;
    if (const Value *n = effective(d, stage, v.labels, "on_nonfinite"); n && n->kind == Value::String)
      v.skipNonFinite = n->string == "skip";
  }

  template <typename Eff>
  void resolveCheckpoint(Eff &eff, StageVariant &v, const StageVariant *parent) {
    v.checkpointEvery = parent ? parent->checkpointEvery : 0;
    v.checkpointKeep = parent ? parent->checkpointKeep : defaults::CheckpointKeep;
    if (const Value *e = eff("checkpoint", "every")) {
      auto q = ctx.quantity(*e, {Dim::Tokens, Dim::Steps}, Dim::Tokens, "a number of tokens such as \"200M\"");
      if (auto n = q ? ctx.count(*e, *q, "a checkpoint interval") : std::nullopt)
        v.checkpointEvery = q->dim == Dim::Steps ? *n * v.batchTokens() : *n;
    }
    if (const Value *k = eff("checkpoint", "keep"); k && k->kind == Value::Integer) {
      if (k->integer < 0)
        ctx.report(DiagCode::BadValue, k->range, "keep must not be negative");
      else
        v.checkpointKeep = static_cast<uint64_t>(k->integer);
    }
  }

  bool resolveEdge(const StageDecl &d, const StageSpec &stage, StageVariant &v, const StageVariant *parent) {
    if (!parent)
      return false;
    v.branchTokens = parent->tokens;
    if (const Value *o = effective(d, stage, v.labels, "after", "optimizer"); o && o->kind == Value::String)
      v.keepOptimizer = o->string == "keep";
    const Value *at = effective(d, stage, v.labels, "after", "at");
    if (!at)
      return true;
    auto q = ctx.quantity(*at, {Dim::Tokens, Dim::Steps, Dim::Fraction}, Dim::Tokens,
                          "a point such as \"1B\", \"500 steps\" or \"50%\"");
    if (!q)
      return false;
    double tokens = q->dim == Dim::Steps       ? q->value * static_cast<double>(parent->batchTokens())
                    : q->dim == Dim::Fraction ? q->value * static_cast<double>(parent->tokens)
                                              : q->value;
    if (tokens <= 0 || tokens > static_cast<double>(parent->tokens)) {
      ctx.report(DiagCode::BadValue, at->range,
                 llvm::formatv("branch point {0} tokens is outside '{1}', which trains {2} tokens",
                               shortNumber(tokens), parent->displayName, formatCount(parent->tokens))
                     .str());
      return false;
    }
    // Branch at an optimizer-step boundary of the parent, rounding up like tokens -> steps.
    uint64_t perStep = parent->batchTokens();
    uint64_t step = static_cast<uint64_t>(std::ceil(tokens / static_cast<double>(perStep)));
    v.branchTokens = std::min(step * perStep, parent->tokens);
    return true;
  }

  /// The index in recipe.streams of the root of stream `name`, if there is one.
  std::optional<size_t> rootIndex(llvm::StringRef name) const {
    const StreamSpec *spec = recipe.stream(name);
    const StreamSpec *root = spec ? recipe.stream(spec->root) : nullptr;
    return root ? std::optional<size_t>(root - recipe.streams.data()) : std::nullopt;
  }

  llvm::SmallBitVector pretrainingData() const {
    llvm::SmallBitVector seen(recipe.streams.size());
    for (const std::string &s : recipe.model.pretrainedOn)
      if (std::optional<size_t> root = rootIndex(s))
        seen.set(*root);
    return seen;
  }

  llvm::SmallBitVector withMixture(llvm::SmallBitVector seen, const StageVariant &v) const {
    for (const std::string &s : v.mixture.Streams)
      if (std::optional<size_t> root = rootIndex(s))
        seen.set(*root);
    return seen;
  }

  /// At a stage's start: a rewarm onto new data without replay, or an LR jump that is not
  /// written as a rewarm. A first stage is checked against the init's pretraining data.
  void checkEdgeLints(const StageDecl &d, const StageVariant &v, const StageVariant *parent) {
    const Value *lrValue = lrValueOf(d, v);
    if (!lrValue || v.lr.Phases.empty())
      return;
    const plan::Phase &first = v.lr.Phases.front();
    llvm::SMRange firstRange = lrValue->location().range(v.lrPhaseRanges.front().begin, v.lrPhaseRanges.front().end);
    if (first.Shape == schedule::Shape::Warmup) {
      checkRewarmReplay(v, parent ? trainedOn[outIndex[d.parent]][v.parentVariant] : pretrainingData(),
                        firstRange);
      return;
    }
    if (!parent)
      return;
    double before = plan::learningRate(parent->lr, static_cast<double>(v.branchTokens));
    double after = plan::learningRate(v.lr, 0);
    double scale = std::max(std::abs(before), std::abs(after));
    if (scale > 0 && std::abs(after - before) > kLrJumpTolerance * scale)
      ctx.report(DiagCode::LrJump, firstRange,
                 llvm::formatv("LR jumps from {0} to {1} at the edge from '{2}' without a warmup; write a rise as "
                               "a rewarm, warmup(...) then ..., and a drop as a decay from {0} "
                               "(Ibrahim et al. 2024)",
                               shortNumber(before), shortNumber(after), parent->displayName)
                     .str());
  }

  const Value *lrValueOf(const StageDecl &d, const StageVariant &v) const {
    for (const SweepAxis &axis : recipe.axes)
      if (axis.stage == d.name && axis.key == "lr" && axis.subkey.empty()) {
        size_t a = &axis - recipe.axes.data();
        return axisValues[a][v.labels.at(static_cast<unsigned>(a))];
      }
    return d.table->get("lr");
  }

  void checkRewarmReplay(const StageVariant &v, const llvm::SmallBitVector &earlier, llvm::SMRange at) {
    std::vector<std::string> fresh, replayed;
    for (const std::string &stream : v.mixture.Streams)
      if (std::optional<size_t> root = rootIndex(stream))
        (earlier.test(*root) ? replayed : fresh).push_back(stream);
    if (fresh.empty() || !replayed.empty() || earlier.none())
      return;
    std::vector<std::string> earlierNames;
    for (int i : earlier.set_bits())
      earlierNames.push_back(recipe.streams[i].name);
    llvm::sort(earlierNames);
    ctx.report(
        DiagCode::RewarmNoReplay, at,
        llvm::formatv("'{0}' rewarms the LR onto new data ({1}) with no replay of earlier data ({2}): expect "
                      "forgetting; Ibrahim et al. 2024 replay ~5% of it",
                      v.displayName, llvm::join(fresh, ", "), llvm::join(earlierNames, ", "))
            .str());
  }

  void checkUnusedStreams() {
    // Streams no mixture, eval or ablation names, and that no used stream derives from.
    std::set<std::string> used;
    for (const StageSpec &s : recipe.stages)
      for (const StageVariant &v : s.variants)
        used.insert(v.mixture.Streams.begin(), v.mixture.Streams.end());
    auto mention = [&](const Value *section, llvm::StringRef key) {
      if (!section || section->kind != Value::Array)
        return;
      for (const auto &item : section->items)
        if (const Value *v = item->get(key)) {
          if (v->kind == Value::String)
            used.insert(llvm::StringRef(v->string).split('.').first.str());
          for (const auto &s : v->items)
            used.insert(llvm::StringRef(s->string).split('.').first.str());
          if (v->kind == Value::Table)
            if (const Value *stream = v->get("stream"))
              used.insert(stream->string);
          for (const Field &f : v->fields)
            if (f.key == "mix" && f.value->kind == Value::String)
              if (const MixtureSpec *spec = ctx.mixture(*f.value))
                for (const auto &[name, range] : streamRefs(*spec))
                  used.insert(name);
        }
    };
    mention(ctx.root.get("eval"), "streams");
    mention(ctx.root.get("ablation"), "units");
    mention(ctx.root.get("ablation"), "train");
    for (const std::string &s : recipe.model.pretrainedOn)
      used.insert(s);
    const Value *streams = ctx.root.get("streams");
    if (!streams || ctx.hasErrors())
      return; // with errors (a derivation cycle, say) "unused" would be noise
    std::set<std::string> closure = used;
    for (const std::string &name : used)
      for (const StreamSpec *s = recipe.stream(name); s && !s->parent.empty(); s = recipe.stream(s->parent))
        closure.insert(s->parent);
    for (const Field &f : streams->fields)
      if (!closure.count(f.key))
        ctx.report(DiagCode::UnusedStream, f.keyRange,
                   "stream '" + f.key + "' is not used by any stage, eval or ablation");
  }
};

} // namespace

void sema::checkStages(Context &ctx) { StageChecker(ctx).run(); }
