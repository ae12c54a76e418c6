//===- SemaStages.cpp - sweeps, stages, edges and their variants ----------===//
//
// Stages form a forest through `after`. Each stage's variants are the product of the sweep
// axes its own settings and its ancestry use (zipped axes vary together). Every variant's
// settings are resolved: the sweep's value, else the stage's own, else (for inherited keys)
// the parent variant's, else the model's default.
//
//===----------------------------------------------------------------------===//
#include "SemaContext.h"

#include "mixtape/plan/Growth.h"
#include "mixtape/plan/ParamGroups.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallBitVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <map>

using namespace mixtape;
using namespace mixtape::sema;

namespace {

constexpr size_t kMaxVariants = 100000;
/// Relative LR change at a stage edge that counts as a jump.
constexpr double kLrJumpTolerance = 0.01;
/// The placeholder length of a stage in epochs while the data's size is unknown (lint):
/// long enough that schedules in absolute tokens fit; checks against it are skipped.
constexpr uint64_t kPendingLengthTokens = uint64_t(1) << 50;
/// A sequence length this many times the parent's is a context extension (the papers
/// extend 4x to 32x: 8k to 32k, 32k to 128k).
constexpr uint64_t kContextExtensionFactor = 4;
/// A LoRA stage whose peak LR is this close (relatively) to the peak of the full training
/// before it took that schedule over unchanged.
constexpr double kLoraSamePeakTolerance = 0.1;
/// Above this, AdamW does not train a transformer: the loss or the gradients overflow
/// within steps (LLMs train at 1e-5 to 1e-2).
constexpr double kAbsurdPeakLR = 0.1;

struct StageDecl {
  const Value *Table = nullptr;
  std::string Name;
  llvm::SMRange NameRange;
  const Value *After = nullptr; ///< the `after` value (string or table)
  const Value *AfterName = nullptr;
  int Parent = -1;              ///< index into decls
  bool InCycle = false;
};

/// What a variant was written with, beyond Recipe.h's resolved numbers: inherited batches
/// keep their unit, so a later stage with a longer seq_len keeps the same tokens per step.
struct BatchWritten {
  mixtape::Quantity Quantity;
  const mixtape::Value *Value = nullptr;
};

class StageChecker {
public:
  explicit StageChecker(Context &ctx) : Ctx(ctx), Recipe(ctx.Recipe) {}

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
  Context &Ctx;
  CheckedRecipe &Recipe;
  std::vector<StageDecl> Decls;
  std::map<std::string, int> DeclIndex;
  std::vector<std::vector<const Value *>> AxisValues; // per axis, per label
  std::vector<const Value *> AxisKeyValues;
  std::vector<int> OutIndex;                          // decl -> index in recipe.Stages
  std::vector<std::vector<BatchWritten>> Batches;     // per out stage, per variant
  /// Streams a variant and its ancestry trained on, with the init's pretraining data
  /// (per out stage, per variant): what counts as "earlier data" for its children.
  /// Bits by index in recipe.Streams: a set of strings per variant made long chains slow.
  std::vector<std::vector<llvm::SmallBitVector>> TrainedOn;
  /// Recipe.mayShareDocuments by stream index, filled as asked (a sweep asks the same pairs).
  std::map<std::pair<size_t, size_t>, bool> SharesDocuments;

  std::vector<std::string> stageNames() const {
    std::vector<std::string> names;
    for (const StageDecl &d : Decls)
      names.push_back(d.Name);
    return names;
  }

  int findDecl(llvm::StringRef name) const {
    auto it = DeclIndex.find(name.str());
    return it == DeclIndex.end() ? -1 : it->second;
  }

  void collectStages() {
    const Value *stages = Ctx.Root.get("stage");
    if (!stages || stages->Kind != ValueKind::Array) {
      Ctx.report(DiagCode::MissingKey, Ctx.Root.Range, "the recipe needs at least one [[stage]]");
      return;
    }
    for (const auto &item : stages->Items) {
      if (item->Kind != ValueKind::Table)
        continue;
      const Value *name = item->get("name");
      if (!name || name->Kind != ValueKind::String)
        continue;
      if (int prev = findDecl(name->String); prev >= 0) {
        Diagnostic *d = Ctx.report(DiagCode::DuplicateName, name->Range,
                                   "a stage named '" + name->String + "' already exists");
        if (d)
          DiagnosticEngine::addNote(*d, Decls[prev].NameRange, "first defined here");
        continue;
      }
      StageDecl decl;
      decl.Table = item.get();
      decl.Name = name->String;
      decl.NameRange = name->Range;
      decl.After = item->get("after");
      if (decl.After)
        decl.AfterName = decl.After->Kind == ValueKind::Table ? decl.After->get("stage") : decl.After;
      DeclIndex[decl.Name] = static_cast<int>(Decls.size());
      Decls.push_back(decl);
    }
  }

  void linkParents() {
    for (StageDecl &d : Decls) {
      if (!d.AfterName || d.AfterName->Kind != ValueKind::String)
        continue;
      const std::string &parent = d.AfterName->String;
      d.Parent = findDecl(parent);
      if (d.Parent < 0) {
        bool selector = llvm::StringRef(parent).contains('[');
        Diagnostic *diag = Ctx.report(
            DiagCode::UnknownRef, d.AfterName->Range,
            selector ? "'after' names a stage; its variants follow the parent's, so it takes no selector"
                     : "unknown stage '" + parent + "'");
        if (!selector)
          Ctx.suggest(diag, parent, stageNames(), d.AfterName->location().range(0, parent.size()));
      }
    }
    // Cycles: walk each chain of parents once; a walk that meets itself closes a cycle,
    // reported once, at the `after` of the cycle's first stage in the file.
    enum State { Unseen, OnWalk, Done };
    std::vector<State> state(Decls.size(), Unseen);
    for (size_t start = 0; start < Decls.size(); ++start) {
      std::vector<int> walk;
      int cur = static_cast<int>(start);
      while (cur >= 0 && state[cur] == Unseen) {
        state[cur] = OnWalk;
        walk.push_back(cur);
        cur = Decls[cur].Parent;
      }
      if (cur >= 0 && state[cur] == OnWalk) {
        std::vector<int> cycle(llvm::find(walk, cur), walk.end());
        int first = *std::min_element(cycle.begin(), cycle.end());
        std::string path;
        for (auto it = llvm::find(cycle, first); path.empty() || *it != first;) {
          path += Decls[*it].Name + " -> ";
          if (++it == cycle.end())
            it = cycle.begin();
        }
        for (int c : cycle)
          Decls[c].InCycle = true;
        Ctx.report(DiagCode::Cycle, Decls[first].AfterName->Range,
                   "stages continue from each other in a cycle: " + path + Decls[first].Name);
      }
      for (int w : walk)
        state[w] = Done;
    }
  }

  std::vector<int> topologicalOrder() {
    std::vector<int> order;
    std::vector<bool> placed(Decls.size());
    OutIndex.assign(Decls.size(), -1);
    bool progress = true;
    while (progress) {
      progress = false;
      for (size_t i = 0; i < Decls.size(); ++i) {
        if (placed[i] || Decls[i].InCycle)
          continue;
        if (Decls[i].Parent >= 0 && !placed[Decls[i].Parent]) {
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
    const Value *sweep = Ctx.Root.get("sweep");
    if (!sweep || sweep->Kind != ValueKind::Table)
      return;
    for (const Field &f : sweep->Fields) {
      if (f.Key == "zip" || f.Value->Kind != ValueKind::Table)
        continue;
      const Value *key = f.Value->get("key");
      const Value *values = f.Value->get("values");
      if (!key || key->Kind != ValueKind::String || !values || values->Kind != ValueKind::Table)
        continue;
      SweepAxis axis;
      axis.Name = f.Key;
      if (!parseSweepKey(*key, axis))
        continue;
      if (values->Fields.empty()) {
        Ctx.report(DiagCode::BadValue, values->Range, "axis '" + axis.Name + "' has no values");
        continue;
      }
      std::vector<const Value *> labelValues;
      bool sizesOk = true;
      for (const Field &label : values->Fields) {
        axis.Labels.push_back(label.Key);
        labelValues.push_back(label.Value.get());
        if (axis.Model && !(label.Value->isNumber() && label.Value->number() >= 1 &&
                            label.Value->number() == std::floor(label.Value->number()))) {
          Ctx.report(DiagCode::BadValue, label.Value->Range, "model." + axis.Key + " must be a positive whole number");
          sizesOk = false;
        }
      }
      if (!sizesOk)
        continue;
      axis.ZipGroup = static_cast<unsigned>(Recipe.Axes.size());
      Recipe.Axes.push_back(std::move(axis));
      AxisValues.push_back(std::move(labelValues));
      AxisKeyValues.push_back(key);
    }
    if (const Value *zip = sweep->get("zip"); zip && zip->Kind == ValueKind::Array)
      collectZip(*zip);
  }

  bool parseSweepKey(const Value &key, SweepAxis &axis) {
    llvm::SmallVector<llvm::StringRef, 3> parts;
    llvm::StringRef(key.String).split(parts, '.');
    const StringLocation &loc = key.location();
    if (parts.size() < 2 || parts.size() > 3 || llvm::any_of(parts, [](llvm::StringRef p) { return p.empty(); })) {
      Ctx.report(DiagCode::BadValue, key.Range,
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
    if (stage < 0 && parts[0] == "model")
      return parseModelKey(parts, rangeOf, axis);
    if (stage < 0) {
      Ctx.suggest(Ctx.report(DiagCode::UnknownRef, rangeOf(0), "unknown stage '" + parts[0].str() + "'"),
                  parts[0], stageNames(), rangeOf(0));
      return false;
    }
    const KeyInfo *info = findKey(SectionId::Stage, parts[1]);
    if (!info) {
      Ctx.suggest(Ctx.report(DiagCode::UnknownKey, rangeOf(1), "stages have no setting '" + parts[1].str() + "'"),
                  parts[1], keyNames(SectionId::Stage), rangeOf(1));
      return false;
    }
    if (info->Name == "name" || (info->Name == "after" && parts.size() == 2)) {
      Ctx.report(DiagCode::BadValue, rangeOf(1),
                 "'" + info->Name.str() + "' cannot be swept: it decides the graph, not a setting" +
                     (info->Name == "after" ? " (sweep after.at or after.optimizer)" : ""));
      return false;
    }
    std::optional<SectionId> sub = subsection(info->Type);
    if (sub && parts.size() == 2) {
      std::vector<std::string> fields = keyNames(*sub);
      Ctx.report(DiagCode::BadValue, rangeOf(1),
                 "sweep one field of '" + parts[1].str() + "', e.g. \"" + parts[0].str() + "." + parts[1].str() +
                     "." + fields.back() + "\"");
      return false;
    }
    if (parts.size() == 3) {
      const KeyInfo *field = sub ? findKey(*sub, parts[2]) : nullptr;
      if (!field || field->Name == "stage") {
        Diagnostic *d = Ctx.report(DiagCode::UnknownKey, rangeOf(2),
                                   "'" + parts[1].str() + "' has no field '" + parts[2].str() + "' to sweep");
        if (sub)
          Ctx.suggest(d, parts[2], keyNames(*sub), rangeOf(2));
        return false;
      }
      axis.Subkey = parts[2].str();
    }
    axis.Stage = parts[0].str();
    axis.Key = parts[1].str();
    return true;
  }

  /// "model.<size>": an axis over [model]'s sizes; each size gets its own init.
  template <typename RangeOf>
  bool parseModelKey(llvm::ArrayRef<llvm::StringRef> parts, RangeOf rangeOf, SweepAxis &axis) {
    static const std::vector<std::string> kSizes = {"layers", "d_model", "heads", "kv_heads", "ffn"};
    if (parts.size() != 2 || !llvm::is_contained(kSizes, parts[1])) {
      Diagnostic *d = Ctx.report(DiagCode::UnknownKey, rangeOf(1),
                                 "a [model] sweep varies a size: layers, d_model, heads, kv_heads or ffn");
      if (parts.size() == 2)
        Ctx.suggest(d, parts[1], kSizes, rangeOf(1));
      return false;
    }
    if (llvm::StringRef(Recipe.Model.Init).startswith("hf:")) {
      Ctx.report(DiagCode::BadValue, rangeOf(0),
                 "the sizes of an hf: init are its checkpoint's: sweep model sizes with init = \"random\"");
      return false;
    }
    axis.Model = true;
    axis.Key = parts[1].str();
    return true;
  }

  int findAxis(llvm::StringRef name) const {
    for (size_t i = 0; i < Recipe.Axes.size(); ++i)
      if (Recipe.Axes[i].Name == name)
        return static_cast<int>(i);
    return -1;
  }

  void collectZip(const Value &zip) {
    std::vector<const Value *> groups;
    if (!zip.Items.empty() && zip.Items[0]->Kind == ValueKind::String)
      groups.push_back(&zip);
    else
      for (const auto &g : zip.Items)
        groups.push_back(g.get());
    std::vector<std::string> axisNames;
    for (const SweepAxis &a : Recipe.Axes)
      axisNames.push_back(a.Name);
    std::set<int> zipped;
    for (const Value *group : groups) {
      int first = -1;
      for (const auto &item : group->Items) {
        int axis = findAxis(item->String);
        if (axis < 0) {
          Ctx.suggest(Ctx.report(DiagCode::UnknownRef, item->Range, "unknown axis '" + item->String + "'"),
                      item->String, axisNames, item->location().range(0, item->String.size()));
          continue;
        }
        if (!zipped.insert(axis).second) {
          Ctx.report(DiagCode::BadValue, item->Range, "axis '" + item->String + "' is zipped twice");
          continue;
        }
        if (first < 0) {
          first = axis;
          continue;
        }
        if (Recipe.Axes[axis].Labels.size() != Recipe.Axes[first].Labels.size()) {
          Ctx.report(DiagCode::BadValue, item->Range,
                     llvm::formatv("zipped axes pair values by position, but '{0}' has {1} values and '{2}' has {3}",
                                   Recipe.Axes[first].Name, Recipe.Axes[first].Labels.size(),
                                   Recipe.Axes[axis].Name, Recipe.Axes[axis].Labels.size())
                         .str());
          continue;
        }
        Recipe.Axes[axis].ZipGroup = Recipe.Axes[first].ZipGroup;
      }
    }
  }

  //===--------------------------------------------------------------------===//
  // Stages and variants
  //===--------------------------------------------------------------------===//

  /// The value a variant uses for key[.sub]: the sweep's label, else the stage's own.
  const Value *effective(const StageDecl &d, const StageSpec &stage, const VariantLabels &labels,
                         llvm::StringRef key, llvm::StringRef sub = "") const {
    for (unsigned a : stage.Axes) {
      const SweepAxis &axis = Recipe.Axes[a];
      if (axis.Stage == d.Name && axis.Key == key && axis.Subkey == sub)
        return AxisValues[a][labels.at(a)];
    }
    const Value *v = d.Table->get(key);
    if (!v || sub.empty())
      return v;
    return v->Kind == ValueKind::Table ? v->get(sub) : nullptr;
  }

  void buildStage(int declIndex) {
    const StageDecl &d = Decls[declIndex];
    StageSpec stage;
    stage.Name = d.Name;
    stage.NameRange = d.NameRange;
    const StageSpec *parent = nullptr;
    int parentOut = -1;
    if (d.Parent >= 0) {
      parentOut = OutIndex[d.Parent];
      if (parentOut < 0) {
        // The parent is broken (and reported); still check what needs no inheritance.
        checkExpressions(d, stage, VariantLabels());
        return;
      }
      parent = &Recipe.Stages[parentOut];
      stage.Parent = parent->Name;
      stage.Axes = parent->Axes;
    }
    for (size_t a = 0; a < Recipe.Axes.size(); ++a)
      if ((Recipe.Axes[a].Stage == d.Name || (Recipe.Axes[a].Model && d.Parent < 0)) &&
          !llvm::is_contained(stage.Axes, a))
        stage.Axes.push_back(static_cast<unsigned>(a));
    // Zipped partners vary together.
    for (size_t a = 0; a < Recipe.Axes.size(); ++a)
      for (unsigned used : std::vector<unsigned>(stage.Axes))
        if (Recipe.Axes[a].ZipGroup == Recipe.Axes[used].ZipGroup && !llvm::is_contained(stage.Axes, a))
          stage.Axes.push_back(static_cast<unsigned>(a));
    llvm::sort(stage.Axes);

    // Enumerate: one counter per zip group, in axis order.
    std::vector<unsigned> groups;
    for (unsigned a : stage.Axes)
      if (!llvm::is_contained(groups, Recipe.Axes[a].ZipGroup))
        groups.push_back(Recipe.Axes[a].ZipGroup);
    size_t total = 1;
    for (unsigned g : groups) {
      total *= groupSize(g);
      if (total > kMaxVariants) {
        Ctx.report(DiagCode::BadValue, d.NameRange,
                   llvm::formatv("stage '{0}' would have more than {1} variants", d.Name, kMaxVariants).str());
        return;
      }
    }
    std::map<VariantLabels, int> parentVariants;
    if (parent)
      for (size_t i = 0; i < parent->Variants.size(); ++i)
        parentVariants[parent->Variants[i].Labels] = static_cast<int>(i);

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
        for (unsigned a : stage.Axes)
          if (Recipe.Axes[a].ZipGroup == *g)
            labels[a] = label;
      }
      StageVariant v;
      v.Labels = labels;
      v.DisplayName = displayName(d.Name, labels);
      const StageVariant *pv = nullptr;
      const BatchWritten *pb = nullptr;
      if (parent) {
        VariantLabels parentLabels;
        for (unsigned a : parent->Axes)
          parentLabels[a] = labels.at(a);
        v.ParentVariant = parentVariants.at(parentLabels);
        pv = &parent->Variants[v.ParentVariant];
        pb = &Batches[parentOut][v.ParentVariant];
      }
      if (pv) {
        v.Size = pv->Size;
      } else if (std::optional<unsigned> size = sizeOf(labels)) {
        v.Size = *size;
      } else {
        ok = false;
        break;
      }
      const ModelSpec &model = Recipe.Sizes.empty() ? Recipe.Model : Recipe.Sizes[v.Size].Model;
      v.Layers = pv ? pv->Layers : model.Layers;
      v.DModel = pv ? pv->DModel : model.DModel;
      BatchWritten batch;
      ok = resolveVariant(d, stage, v, pv, pb, batch);
      if (!ok)
        checkExpressions(d, stage, labels);
      stageData.push_back(withMixture(parent ? TrainedOn[parentOut][v.ParentVariant] : pretrainingData(), v));
      stage.Variants.push_back(std::move(v));
      stageBatches.push_back(batch);
    }
    if (!ok)
      return;
    OutIndex[declIndex] = static_cast<int>(Recipe.Stages.size());
    Recipe.Stages.push_back(std::move(stage));
    Batches.push_back(std::move(stageBatches));
    TrainedOn.push_back(std::move(stageData));
  }

  /// Checks of a variant's mixture and schedule that need nothing resolved, so that a
  /// stage whose batch or parent is broken still reports every error in its own text.
  void checkExpressions(const StageDecl &d, const StageSpec &stage, const VariantLabels &labels) {
    auto eff = [&](llvm::StringRef key) {
      for (unsigned a : stage.Axes)
        if (Recipe.Axes[a].Stage == d.Name && Recipe.Axes[a].Key == key && Recipe.Axes[a].Subkey.empty() &&
            labels.count(a))
          return AxisValues[a][labels.at(a)];
      return d.Table->get(key);
    };
    if (const Value *mix = eff("mix"); mix && mix->Kind == ValueKind::String)
      if (const MixtureSpec *spec = Ctx.mixture(*mix))
        checkStreamRefs(*mix, *spec);
    if (const Value *lr = eff("lr"); lr && lr->Kind == ValueKind::String)
      Ctx.scheduleSpec(*lr);
  }

  /// The index in Recipe.Sizes of the model a root variant's labels choose: [model] with
  /// the size axes' values, kv_heads and ffn defaulted again where [model] leaves them
  /// unsaid and no axis sweeps them. nullopt (reported) for sizes that do not fit together.
  std::optional<unsigned> sizeOf(const VariantLabels &labels) {
    VariantLabels own;
    for (auto [a, label] : labels)
      if (Recipe.Axes[a].Model)
        own[a] = label;
    if (own.empty())
      return 0;
    for (size_t i = 0; i < Recipe.Sizes.size(); ++i)
      if (Recipe.Sizes[i].Labels == own)
        return static_cast<unsigned>(i);
    const Value *table = Ctx.Root.get("model");
    ModelSize size{own, "", Recipe.Model};
    ModelSpec &m = size.Model;
    std::set<std::string> swept;
    llvm::SMRange at;
    for (auto [a, label] : own) {
      const SweepAxis &axis = Recipe.Axes[a];
      const Value *v = AxisValues[a][label];
      auto n = static_cast<uint64_t>(v->number());
      uint64_t &field = axis.Key == "layers"     ? m.Layers
                        : axis.Key == "d_model"  ? m.DModel
                        : axis.Key == "heads"    ? m.Heads
                        : axis.Key == "kv_heads" ? m.KVHeads
                                                 : m.Ffn;
      field = n;
      swept.insert(axis.Key);
      at = v->Range;
    }
    auto unsaid = [&](const char *key) { return !swept.count(key) && !(table && table->get(key)); };
    if (unsaid("kv_heads"))
      m.KVHeads = m.Heads;
    if (unsaid("ffn"))
      m.Ffn = m.Family == Family::Llama ? (m.DModel * 8 / 3 + 63) / 64 * 64 : 4 * m.DModel;
    size.Suffix = displayName("", own);
    std::string problem;
    if (!m.Layers || !m.DModel || !m.Heads)
      problem = "needs layers, d_model and heads, from [model] or the sweep";
    else if (m.DModel % m.Heads)
      problem = llvm::formatv("d_model {0} is not divisible by heads {1}", m.DModel, m.Heads).str();
    else if (m.Heads % m.KVHeads)
      problem = llvm::formatv("heads {0} is not a multiple of kv_heads {1}", m.Heads, m.KVHeads).str();
    else if (m.Family == Family::GPT2 && m.KVHeads != m.Heads)
      problem = "gpt2 has no grouped-query attention: kv_heads must equal heads";
    else
      problem = m.sizeProblem();
    if (!problem.empty()) {
      Ctx.report(DiagCode::BadValue, at, "the model " + size.Suffix + ": " + problem);
      return std::nullopt;
    }
    Recipe.Sizes.push_back(std::move(size));
    return static_cast<unsigned>(Recipe.Sizes.size() - 1);
  }

  size_t groupSize(unsigned group) const {
    for (const SweepAxis &a : Recipe.Axes)
      if (a.ZipGroup == group)
        return a.Labels.size();
    return 1;
  }

  std::string displayName(const std::string &name, const VariantLabels &labels) const {
    if (labels.empty())
      return name;
    std::string out = name + "[";
    bool first = true;
    for (auto [axis, label] : labels) {
      out += (first ? "" : ",") + Recipe.Axes[axis].Name + "=" + Recipe.Axes[axis].Labels[label];
      first = false;
    }
    return out + "]";
  }

  /// Resolve every setting of one variant; false when a setting it needs is broken.
  /// `shard`, or its older spelling `zero1 = true` ("optimizer"); both written must agree.
  bool resolveShard(const StageDecl &d, StageVariant &v, const StageVariant *parent, const Value *shard,
                    const Value *zero1) {
    v.Shard = parent ? parent->Shard : std::nullopt;
    std::optional<plan::ShardMode> fromZero1;
    if (zero1 && zero1->Kind == ValueKind::Bool)
      fromZero1 = zero1->Boolean ? plan::ShardMode::Optimizer : plan::ShardMode::None;
    std::optional<plan::ShardMode> written;
    if (shard && shard->Kind == ValueKind::String)
      written = plan::enumFromName<plan::ShardMode>(shard->String);
    if (written && fromZero1 && *written != *fromZero1) {
      Ctx.report(DiagCode::BadValue, zero1->Range,
                 llvm::formatv("stage '{0}' sets zero1 = {1} and shard = \"{2}\", which disagree: zero1 = true is "
                               "shard = \"optimizer\"; keep shard alone",
                               d.Name, zero1->Boolean ? "true" : "false", shard->String)
                     .str());
      return false;
    }
    if (written)
      v.Shard = *written;
    else if (fromZero1)
      v.Shard = *fromZero1;
    return true;
  }

  /// "none" -> 0, "full" -> 1, "every N" -> N: every Nth block recomputes its activations.
  std::optional<uint64_t> activationCheckpointing(const Value &a) {
    llvm::StringRef text = a.String;
    if (text == "none")
      return 0;
    if (text == "full")
      return 1;
    uint64_t every = 0;
    llvm::StringRef rest = text;
    if (rest.consume_front("every ") && !rest.trim().getAsInteger(10, every) && every > 0)
      return every;
    // Point at the number when the word is right, else at the whole text.
    size_t at = text.startswith("every ") ? 6 : 0;
    Ctx.suggest(Ctx.report(DiagCode::BadValue, a.location().range(at, text.size() - at),
                           "activation_checkpointing must be \"none\", \"full\" or \"every N\" with N a "
                           "positive number of blocks, not \"" + text.str() + "\""),
                text, {"none", "full"}, a.location().range(0, text.size()));
    return std::nullopt;
  }

  bool resolveVariant(const StageDecl &d, const StageSpec &stage, StageVariant &v, const StageVariant *parent,
                      const BatchWritten *parentBatch, BatchWritten &batch) {
    const ModelSpec &model = Recipe.Model;
    auto eff = [&](llvm::StringRef key, llvm::StringRef sub = "") {
      return effective(d, stage, v.Labels, key, sub);
    };
    bool ok = true;

    // Shape: seq_len, positions, rope_theta, attention.
    v.SeqLen = parent ? parent->SeqLen : model.SeqLen;
    if (const Value *s = eff("seq_len")) {
      auto q = Ctx.quantity(*s, {Dim::Number, Dim::Tokens}, Dim::Number, "a sequence length such as 4096");
      auto n = q ? Ctx.count(*s, *q, "seq_len") : std::nullopt;
      if (!n)
        return false;
      v.SeqLen = *n;
      if (model.Family == Family::GPT2 && v.SeqLen > model.MaxPositions)
        Ctx.report(DiagCode::Positions, s->Range,
                   llvm::formatv("seq_len {0} is beyond gpt2's learned position table of {1} (max_positions)",
                                 v.SeqLen, model.MaxPositions)
                       .str());
    }
    v.RopeTheta = parent ? parent->RopeTheta : model.RopeTheta;
    v.RopeThetaWritten = parent ? parent->RopeThetaWritten : model.RopeThetaWritten;
    if (const Value *r = eff("rope_theta")) {
      if (model.Family == Family::GPT2)
        Ctx.report(DiagCode::BadValue, r->Range, "gpt2 uses learned positions: rope_theta does not apply");
      else if (!r->isNumber() || r->number() <= 0)
        Ctx.report(DiagCode::BadValue, r->Range, "rope_theta must be a positive number");
      else {
        v.RopeTheta = r->number();
        v.RopeThetaWritten = true;
      }
    }
    v.Attention = parent ? parent->Attention : model.Attention;
    if (const Value *a = eff("attention"))
      v.Attention = a->String == "within_document" ? Attention::WithinDocument : Attention::Causal;
    // Supervised fine-tuning packs examples into windows: each attends only to itself.
    if (const Value *o = eff("objective"); o && o->String == "sft") {
      v.Objective = plan::Objective::SFT;
      if (const Value *a = eff("attention"); a && v.Attention == Attention::Causal)
        Ctx.report(DiagCode::BadValue, a->Range,
                   "an sft stage keeps its packed examples apart: attention must be \"within_document\" (its "
                   "default there), not \"causal\", which lets a response attend to other examples");
      v.Attention = Attention::WithinDocument;
    }

    // Batch: a whole number of sequences.
    if (const Value *b = eff("batch")) {
      auto q = Ctx.quantity(*b, {Dim::Tokens, Dim::Sequences}, Dim::Number,
                            "a batch such as \"1Mi tokens\" or \"512 sequences\"");
      if (!q)
        return false;
      batch = {*q, b};
    } else if (parentBatch) {
      batch = *parentBatch;
    } else {
      Ctx.report(DiagCode::MissingKey, d.NameRange,
                 "stage '" + d.Name + "' needs 'batch' (it has no parent stage to inherit one from)");
      return false;
    }
    if (!resolveBatch(batch, v, d))
      return false;
    v.MicroBatchSequences = parent ? std::min(parent->MicroBatchSequences, v.BatchSequences) : v.BatchSequences;
    v.MicroBatchWritten = parent && parent->MicroBatchWritten;
    if (const Value *m = eff("micro_batch")) {
      auto q = Ctx.quantity(*m, {Dim::Sequences}, Dim::Sequences, "a number of sequences such as 8");
      auto n = q ? Ctx.count(*m, *q, "micro_batch") : std::nullopt;
      if (!n)
        return false;
      v.MicroBatchSequences = *n;
      v.MicroBatchWritten = true;
    }
    if (v.BatchSequences % v.MicroBatchSequences) {
      Ctx.report(DiagCode::BatchShape, eff("micro_batch") ? eff("micro_batch")->Range : d.NameRange,
                 llvm::formatv("micro_batch of {0} sequences does not divide the batch of {1} sequences",
                               v.MicroBatchSequences, v.BatchSequences)
                     .str());
      ok = false;
    }

    ok &= resolveShard(d, v, parent, eff("shard"), eff("zero1"));
    v.ActivationCheckpointing = parent ? parent->ActivationCheckpointing : std::nullopt;
    if (const Value *a = eff("activation_checkpointing"); a && a->Kind == ValueKind::String) {
      if (std::optional<uint64_t> every = activationCheckpointing(*a))
        v.ActivationCheckpointing = every;
      else
        ok = false;
    }

    // Tokens -> whole optimizer steps, rounding up (docs/language.md).
    const Value *tokens = eff("tokens");
    if (!tokens)
      return false; // missing-key already reported
    auto tq = Ctx.quantity(*tokens, {Dim::Tokens, Dim::Steps, Dim::Epochs}, Dim::Tokens,
                           "a number of tokens such as \"2B\"");
    if (!tq)
      return false;
    uint64_t perStep = v.batchTokens();
    if (tq->Dim == Dim::Epochs) {
      std::optional<uint64_t> epochs = tokensOfEpochs(*tokens, tq->Value, eff("mix"), v);
      if (!epochs)
        return false;
      v.RequestedTokens = *epochs;
    } else {
      std::optional<uint64_t> tn = Ctx.count(*tokens, *tq, "tokens");
      if (!tn)
        return false;
      v.RequestedTokens = tq->Dim == Dim::Steps ? *tn * perStep : *tn;
    }
    v.Steps = (v.RequestedTokens + perStep - 1) / perStep;
    v.Tokens = v.Steps * perStep;
    v.Horizon = v.Tokens;
    if (const Value *h = eff("horizon")) {
      auto hq = Ctx.quantity(*h, {Dim::Tokens, Dim::Steps}, Dim::Tokens, "a number of tokens such as \"10B\"");
      auto hn = hq ? Ctx.count(*h, *hq, "horizon") : std::nullopt;
      if (!hn)
        return false;
      v.Horizon = hq->Dim == Dim::Steps ? *hn * perStep : *hn;
      if (v.Horizon < v.RequestedTokens && v.LengthKnown)
        Ctx.report(DiagCode::ScheduleDomain, h->Range,
                   llvm::formatv("horizon of {0} tokens is shorter than the stage's {1}", formatCount(v.Horizon),
                                 formatCount(v.RequestedTokens))
                       .str());
    }

    ok &= resolveMix(eff("mix"), v);
    ok &= resolveLr(eff("lr"), v);
    resolveOptimizer(d, stage, v, parent);
    resolveCheckpoint(eff, v, parent);
    if (d.After)
      resolveGrow(d, stage, v);
    resolveTrainable(d, stage, v);
    resolveRegularizers(d, stage, v);
    v.Tokenizer = Recipe.Model.Tokenizer;
    if (d.After)
      ok &= resolveEdge(d, stage, v, parent);
    if (ok) {
      checkMixtureTokenizer(v, eff("mix"));
      checkEdgeLints(d, v, parent);
      checkContextExtension(d, v, parent);
      checkPeakLR(d, v);
      checkLoraPeak(d, v, parent);
    }
    return ok;
  }

  /// A parameter group as written in `freeze` or `lr_scale`: its syntax, and its layers
  /// against the model's where [model] says how many.
  std::optional<plan::GroupSelector> groupSelector(llvm::StringRef name, llvm::SMRange range, uint64_t layers) {
    std::optional<plan::GroupSelector> s = plan::parseGroupSelector(name);
    if (!s) {
      Ctx.report(DiagCode::BadValue, range,
                 llvm::formatv("'{0}' is not a parameter group: {1}", name, plan::kGroupSyntax).str());
      return std::nullopt;
    }
    if (s->Kind == plan::GroupKind::Layers && layers && s->Last >= layers) {
      Ctx.report(DiagCode::BadValue, range,
                 llvm::formatv("'{0}' names layer {1}, but the model has {2} layers (0-{3})", name, s->Last, layers,
                               layers - 1)
                     .str());
      return std::nullopt;
    }
    return s;
  }

  /// freeze, lr_scale and lora: what the variant trains, and how fast.
  void resolveTrainable(const StageDecl &d, const StageSpec &stage, StageVariant &v) {
    auto eff = [&](llvm::StringRef key, llvm::StringRef sub = "") { return effective(d, stage, v.Labels, key, sub); };
    if (const Value *f = eff("freeze"); f && f->Kind == ValueKind::Array)
      for (const auto &item : f->Items)
        if (groupSelector(item->String, item->Range, v.Layers))
          v.Freeze.push_back(item->String);
    if (const Value *scales = eff("lr_scale"); scales && scales->Kind == ValueKind::Table) {
      std::vector<std::pair<plan::GroupSelector, const Field *>> seen;
      for (const Field &f : scales->Fields) {
        std::optional<plan::GroupSelector> s = groupSelector(f.Key, f.KeyRange, v.Layers);
        if (!s || !f.Value->isNumber())
          continue;
        if (f.Value->number() <= 0 || !std::isfinite(f.Value->number())) {
          Ctx.report(DiagCode::BadValue, f.Value->Range,
                     "an LR scale must be a positive number (to stop training a group, freeze it)");
          continue;
        }
        auto clash = llvm::find_if(seen, [&](const auto &other) { return plan::overlaps(other.first, *s); });
        if (clash != seen.end()) {
          Diagnostic *diag = Ctx.report(DiagCode::BadValue, f.KeyRange,
                                        "'" + f.Key + "' overlaps '" + clash->second->Key +
                                            "': a parameter takes one LR scale");
          if (diag)
            DiagnosticEngine::addNote(*diag, clash->second->KeyRange, "scaled here");
          continue;
        }
        seen.push_back({*s, &f});
        v.LRScale[f.Key] = f.Value->number();
      }
    }
    const Value *lora = eff("lora");
    const Value *rank = eff("lora", "rank");
    if (!lora || !rank || rank->Kind != ValueKind::Integer)
      return;
    if (rank->Integer <= 0) {
      Ctx.report(DiagCode::BadValue, rank->Range, "the LoRA rank must be a positive integer");
      return;
    }
    plan::Lora l;
    l.Rank = static_cast<uint64_t>(rank->Integer);
    l.Alpha = static_cast<double>(l.Rank);
    if (const Value *a = eff("lora", "alpha"); a && a->isNumber()) {
      if (a->number() <= 0)
        Ctx.report(DiagCode::BadValue, a->Range, "alpha must be positive");
      l.Alpha = a->number();
    }
    l.Dropout = defaults::LoraDropout;
    if (const Value *p = eff("lora", "dropout"); p && p->isNumber()) {
      if (p->number() < 0 || p->number() >= 1)
        Ctx.report(DiagCode::BadValue, p->Range, "dropout is a probability in [0, 1)");
      l.Dropout = p->number();
    }
    llvm::ArrayRef<llvm::StringRef> known = plan::loraTargets(Recipe.Model.Family);
    const Value *targets = eff("lora", "targets");
    if (!targets || targets->Kind != ValueKind::Array) {
      for (llvm::StringRef t : known)
        l.Targets.push_back(t.str());
    } else {
      std::vector<std::string> names(known.begin(), known.end());
      for (const auto &item : targets->Items) {
        if (!llvm::is_contained(known, item->String)) {
          Diagnostic *diag = Ctx.report(DiagCode::BadValue, item->Range,
                                        llvm::formatv("'{0}' is not a projection LoRA adapts in {1}: {2}",
                                                      item->String, plan::enumName(Recipe.Model.Family),
                                                      llvm::join(names, ", "))
                                            .str());
          Ctx.suggest(diag, item->String, names, item->location().range(0, item->String.size()));
        } else if (llvm::is_contained(l.Targets, item->String)) {
          Ctx.report(DiagCode::BadValue, item->Range, "'" + item->String + "' is listed twice");
        } else {
          l.Targets.push_back(item->String);
        }
      }
      if (targets->Items.empty())
        Ctx.report(DiagCode::BadValue, targets->Range, "LoRA needs at least one target");
    }
    l.Seed = Recipe.Seed;
    v.Lora = std::move(l);
  }

  /// distill, l2_to_init and ema: the terms against forgetting and the weights' average.
  void resolveRegularizers(const StageDecl &d, const StageSpec &stage, StageVariant &v) {
    auto eff = [&](llvm::StringRef key, llvm::StringRef sub = "") { return effective(d, stage, v.Labels, key, sub); };
    auto positive = [&](const Value *x, llvm::StringRef what) {
      if (x->number() > 0 && std::isfinite(x->number()))
        return true;
      Ctx.report(DiagCode::BadValue, x->Range, what.str() + " must be a positive number");
      return false;
    };
    if (const Value *distill = eff("distill"); distill && distill->Kind == ValueKind::Table) {
      DistillSpec spec;
      if (const Value *w = eff("distill", "weight"); w && w->isNumber() && positive(w, "the distillation weight"))
        spec.Weight = w->number();
      if (const Value *t = eff("distill", "temperature"); t && t->isNumber() && positive(t, "the temperature"))
        spec.Temperature = t->number();
      if (const Value *t = eff("distill", "teacher"); t && t->Kind == ValueKind::String)
        resolveTeacher(*t, stage, spec);
      v.Distill = spec;
    }
    if (const Value *l2 = eff("l2_to_init"); l2 && l2->isNumber() && positive(l2, "l2_to_init"))
      v.L2ToInit = l2->number();
    if (const Value *ema = eff("ema"); ema && ema->isNumber()) {
      if (ema->number() > 0 && ema->number() < 1)
        v.Ema = ema->number();
      else
        Ctx.report(DiagCode::BadValue, ema->Range, "ema is a decay in (0, 1), such as 0.999");
    }
    // LoRA trains factors that start at zero: an anchor or an average of them is not one of the weights.
    if (v.Lora)
      for (llvm::StringRef key : {"l2_to_init", "ema"})
        if (const Value *x = eff(key))
          Ctx.report(DiagCode::BadValue, x->Range,
                     key.str() + " applies to the weights a stage trains; a stage with lora trains its factors only");
  }

  /// A teacher: "init", or a stage this one continues from (its variant in this lineage).
  void resolveTeacher(const Value &teacher, const StageSpec &stage, DistillSpec &spec) {
    if (teacher.String == "init") {
      spec.Teacher = DistillSpec::Init;
      return;
    }
    std::vector<std::string> ancestors;
    for (std::string up = stage.Parent; !up.empty(); up = Recipe.Stages[Recipe.stageIndex(up)].Parent)
      ancestors.push_back(up);
    if (llvm::is_contained(ancestors, teacher.String)) {
      spec.Teacher = DistillSpec::Ancestor;
      spec.TeacherStage = teacher.String;
      return;
    }
    ancestors.push_back("init");
    Diagnostic *diag = Ctx.report(DiagCode::UnknownRef, teacher.Range,
                                  llvm::formatv("the teacher '{0}' is not \"init\" or a stage '{1}' continues from: "
                                                "{2}",
                                                teacher.String, stage.Name, llvm::join(ancestors, ", "))
                                      .str());
    Ctx.suggest(diag, teacher.String, ancestors, teacher.location().range(0, teacher.String.size()));
  }

  /// lora-lr: a LoRA stage that rewarms to the peak LR of the full training before it.
  void checkLoraPeak(const StageDecl &d, const StageVariant &v, const StageVariant *parent) {
    const Value *lrValue = lrValueOf(d, v);
    if (!v.Lora || !lrValue || v.LR.Phases.empty() || v.LR.Phases.front().Shape != schedule::Shape::Warmup)
      return;
    // The nearest ancestor that trained every parameter.
    int fullStage = d.Parent >= 0 ? OutIndex[d.Parent] : -1;
    const StageVariant *full = parent;
    while (full && full->Lora) {
      const StageSpec &stage = Recipe.Stages[fullStage];
      fullStage = stage.Parent.empty() ? -1 : Recipe.stageIndex(stage.Parent);
      full = fullStage >= 0 ? &Recipe.Stages[fullStage].Variants[full->ParentVariant] : nullptr;
    }
    if (!full)
      return;
    auto peakOf = [](const plan::LRSchedule &lr) {
      double peak = 0;
      for (const plan::Phase &p : lr.Phases)
        peak = std::max({peak, p.From, p.To});
      return peak;
    };
    const double fullPeak = peakOf(full->LR), loraPeak = peakOf(v.LR);
    if (fullPeak <= 0 || std::abs(loraPeak - fullPeak) > kLoraSamePeakTolerance * fullPeak)
      return;
    Ctx.report(DiagCode::LoraLr,
               lrValue->location().range(v.LRPhaseRanges.front().Begin, v.LRPhaseRanges.front().End),
               llvm::formatv("'{0}' trains LoRA adapters but rewarms to {1}, the peak LR of full training in '{2}': "
                             "LoRA's best LR is not full training's (Biderman et al. 2024 tune it apart); sweep it",
                             v.DisplayName, shortNumber(loraPeak), full->DisplayName)
                   .str());
  }

  bool resolveBatch(const BatchWritten &batch, StageVariant &v, const StageDecl &d) {
    const Value &b = *batch.Value;
    if (batch.Quantity.Dim == Dim::Sequences) {
      auto n = Ctx.count(b, batch.Quantity, "a batch");
      if (!n)
        return false;
      v.BatchSequences = *n;
      return true;
    }
    auto tokens = Ctx.count(b, batch.Quantity, "a batch");
    if (!tokens)
      return false;
    if (*tokens % v.SeqLen == 0) {
      v.BatchSequences = *tokens / v.SeqLen;
      return true;
    }
    // Not whole: say by how much, and offer the nearest whole batches.
    uint64_t below = *tokens / v.SeqLen;
    std::string message = llvm::formatv("a batch of {0} tokens is not a whole number of {1}-token sequences "
                                        "({2} sequences)",
                                        formatCount(*tokens), v.SeqLen,
                                        shortNumber(static_cast<double>(*tokens) / v.SeqLen))
                              .str();
    if (batch.Value != d.Table->get("batch"))
      message += llvm::formatv(" in stage '{0}'", d.Name).str();
    Diagnostic *diag = Ctx.report(DiagCode::BatchShape, b.Range, message);
    if (diag && b.Kind == ValueKind::String) {
      // 1M tokens with 512-token sequences: 1Mi (2^20) is whole, and usually what was meant.
      double binary = batch.Quantity.Value / 1e6 * (1 << 20);
      std::string suggestion;
      if (batch.Quantity.HasScale && std::fmod(binary, static_cast<double>(v.SeqLen)) == 0 &&
          std::fmod(batch.Quantity.Value, 1e6) == 0)
        suggestion = formatCount(static_cast<uint64_t>(binary)) + " tokens";
      else
        suggestion = std::to_string(std::max<uint64_t>(below, 1)) + " sequences";
      DiagnosticEngine::addNote(*diag, b.Range, "did you mean '" + suggestion + "'?");
      DiagnosticEngine::addFixIt(*diag, b.location().range(0, b.String.size()), suggestion);
    }
    return false;
  }

  std::vector<std::string> streamNames() const {
    std::vector<std::string> names;
    for (const StreamSpec &s : Recipe.Streams)
      names.push_back(s.Name);
    return names;
  }

  bool checkStreamRefs(const Value &mix, const MixtureSpec &spec) {
    bool ok = true;
    for (const auto &[name, range] : streamRefs(spec)) {
      if (Recipe.stream(name))
        continue;
      llvm::SMRange r = mix.location().range(range.Begin, range.End);
      Ctx.suggest(Ctx.report(DiagCode::UnknownRef, r, "unknown stream '" + name + "'"), name, streamNames(), r);
      ok = false;
    }
    return ok;
  }

  /// `tokens = "N epochs"`: N epochs of the stage's mixture (epochsLength), rounded up to a
  /// token; without the streams' sizes (lint) a placeholder, the length left unknown.
  std::optional<uint64_t> tokensOfEpochs(const Value &tokens, double epochs, const Value *mix, StageVariant &v) {
    if (epochs <= 0 || !std::isfinite(epochs)) {
      Ctx.report(DiagCode::BadValue, tokens.Range, "a stage trains a positive number of epochs");
      return std::nullopt;
    }
    const MixtureSpec *spec = mix ? Ctx.mixture(*mix) : nullptr;
    if (!spec || !checkStreamRefs(*mix, *spec))
      return std::nullopt;
    v.Epochs = epochs;
    const StreamSizes *sizes = Ctx.streamSizes();
    if (!sizes) {
      v.LengthKnown = false;
      return kPendingLengthTokens;
    }
    // By name, as the resolved mixture orders its streams.
    std::map<std::string, uint64_t> byName;
    for (const auto &[name, range] : streamRefs(*spec)) {
      auto size = sizes->find(name);
      if (size == sizes->end() || !size->second || !*size->second) {
        const StreamSpec *s = Recipe.stream(name);
        const StreamSpec *root = s ? Recipe.stream(s->Root) : nullptr;
        Ctx.report(DiagCode::DataError, tokens.Range,
                   llvm::formatv("'{0}' needs the size of stream '{1}', {2}", tokens.String, name,
                                 size != sizes->end() && size->second
                                     ? std::string("which has no training tokens")
                                     : "whose data is absent ('" + (root ? root->Shards : std::string()) + "')")
                       .str());
        return std::nullopt;
      }
      byName[name] = *size->second;
    }
    std::vector<uint64_t> streamTokens;
    for (const auto &[name, size] : byName)
      streamTokens.push_back(size);
    std::optional<double> length = epochsLength(*spec, streamTokens, epochs);
    if (!length) {
      Ctx.report(DiagCode::BadValue, tokens.Range,
                 "the mixture's points cannot be placed on a stage of any length: write tokens");
      return std::nullopt;
    }
    return static_cast<uint64_t>(std::ceil(*length));
  }

  bool resolveMix(const Value *mix, StageVariant &v) {
    if (!mix)
      return false;
    const MixtureSpec *spec = Ctx.mixture(*mix);
    if (!spec || !checkStreamRefs(*mix, *spec))
      return false;
    ExprDiags list;
    std::optional<plan::Mixture> resolved = resolveMixture(*spec, static_cast<double>(v.Tokens), list);
    Ctx.reportExpr(*mix, list);
    if (!resolved)
      return false;
    v.Mixture = std::move(*resolved);
    return true;
  }

  bool resolveLr(const Value *lr, StageVariant &v) {
    if (!lr)
      return false;
    const schedule::ScheduleSpec *spec = Ctx.scheduleSpec(*lr);
    if (!spec)
      return false;
    ExprDiags list;
    std::optional<schedule::Resolved> resolved = schedule::resolve(*spec, static_cast<double>(v.Horizon), list);
    Ctx.reportExpr(*lr, list);
    if (!resolved)
      return false;
    v.LR = std::move(resolved->Schedule);
    v.LRPhaseRanges = std::move(resolved->PhaseRanges);
    const std::vector<plan::Phase> &phases = v.LR.Phases;
    const StringLocation &loc = lr->location();
    for (size_t i = 0; i < phases.size(); ++i) {
      if (phases[i].Shape != schedule::Shape::Warmup)
        continue;
      double end = plan::phaseEnd(phases[i]);
      if (end > static_cast<double>(v.Tokens) && v.LengthKnown)
        Ctx.report(DiagCode::ScheduleDomain, loc.range(v.LRPhaseRanges[i].Begin, v.LRPhaseRanges[i].End),
                   llvm::formatv("warmup ends at {0} tokens, after the stage ends ({1} tokens)",
                                 formatCount(static_cast<uint64_t>(end)), formatCount(v.Tokens))
                       .str());
    }
    double end = plan::scheduleEnd(v.LR);
    if (std::isfinite(end) && end < static_cast<double>(v.RequestedTokens) && !phases.empty() && v.LengthKnown)
      Ctx.report(DiagCode::ScheduleTail, loc.range(v.LRPhaseRanges.back().Begin, v.LRPhaseRanges.back().End),
                 llvm::formatv("the schedule ends at {0} tokens but the stage trains {1}: the LR stays at {2} "
                               "for the last {3} tokens",
                               formatCount(static_cast<uint64_t>(end)), formatCount(v.RequestedTokens),
                               shortNumber(plan::learningRate(v.LR, end)),
                               formatCount(v.RequestedTokens - static_cast<uint64_t>(end)))
                     .str());
    return true;
  }

  void resolveOptimizer(const StageDecl &d, const StageSpec &stage, StageVariant &v, const StageVariant *parent) {
    v.Optimizer = parent ? parent->Optimizer : OptimizerSpec();
    v.GradClip = parent ? parent->GradClip : defaults::GradClip;
    auto eff = [&](llvm::StringRef sub) { return effective(d, stage, v.Labels, "optimizer", sub); };
    if (const Value *b = eff("betas"); b && b->Kind == ValueKind::Array) {
      if (b->Items.size() != 2)
        Ctx.report(DiagCode::BadValue, b->Range, "betas are two numbers, [beta1, beta2]");
      else {
        for (const auto &x : b->Items)
          if (x->number() < 0 || x->number() >= 1)
            Ctx.report(DiagCode::BadValue, x->Range, "a beta must be in [0, 1)");
        v.Optimizer.Beta1 = b->Items[0]->number();
        v.Optimizer.Beta2 = b->Items[1]->number();
      }
    }
    if (const Value *e = eff("eps"); e && e->isNumber()) {
      if (e->number() <= 0)
        Ctx.report(DiagCode::BadValue, e->Range, "eps must be positive");
      v.Optimizer.Eps = e->number();
    }
    if (const Value *w = eff("weight_decay"); w && w->isNumber()) {
      if (w->number() < 0)
        Ctx.report(DiagCode::BadValue, w->Range, "weight_decay must not be negative");
      v.Optimizer.WeightDecay = w->number();
    }
    if (const Value *e = eff("decay_embeddings"); e && e->Kind == ValueKind::Bool)
      v.Optimizer.DecayEmbeddings = e->Boolean;
    if (const Value *g = effective(d, stage, v.Labels, "grad_clip"); g && g->isNumber()) {
      if (g->number() < 0)
        Ctx.report(DiagCode::BadValue, g->Range, "grad_clip must not be negative (0 disables clipping)");
      v.GradClip = g->number();
    }
    v.SkipNonFinite = parent && parent->SkipNonFinite;
    if (const Value *n = effective(d, stage, v.Labels, "on_nonfinite"); n && n->Kind == ValueKind::String)
      v.SkipNonFinite = n->String == "skip";
  }

  template <typename Eff>
  void resolveCheckpoint(Eff &eff, StageVariant &v, const StageVariant *parent) {
    v.CheckpointEvery = parent ? parent->CheckpointEvery : 0;
    v.CheckpointKeep = parent ? parent->CheckpointKeep : defaults::CheckpointKeep;
    if (const Value *e = eff("checkpoint", "every")) {
      auto q = Ctx.quantity(*e, {Dim::Tokens, Dim::Steps}, Dim::Tokens, "a number of tokens such as \"200M\"");
      if (auto n = q ? Ctx.count(*e, *q, "a checkpoint interval") : std::nullopt)
        v.CheckpointEvery = q->Dim == Dim::Steps ? *n * v.batchTokens() : *n;
    }
    if (const Value *k = eff("checkpoint", "keep"); k && k->Kind == ValueKind::Integer) {
      if (k->Integer < 0)
        Ctx.report(DiagCode::BadValue, k->Range, "keep must not be negative");
      else
        v.CheckpointKeep = static_cast<uint64_t>(k->Integer);
    }
  }

  bool resolveEdge(const StageDecl &d, const StageSpec &stage, StageVariant &v, const StageVariant *parent) {
    if (!parent)
      return false;
    v.BranchTokens = parent->Tokens;
    if (!resolveVocabularyExtension(d, stage, v, *parent))
      return false;
    if (v.Grow && v.ExtendVocabulary) { // each keeps the function of a model of the other's shape
      Ctx.report(DiagCode::BadValue, v.Grow->Range,
                 "an edge grows the model or extends its vocabulary, not both: grow '" + d.Name +
                     "' here and move to the new tokenizer in a stage after it");
      return false;
    }
    if (const Value *o = effective(d, stage, v.Labels, "after", "optimizer"); o && o->Kind == ValueKind::String) {
      v.KeepOptimizer = o->String == "keep";
      // Optimizer state belongs to the tensors trained: the same only without adapters and
      // with the same groups frozen.
      if (v.KeepOptimizer && (v.Lora || parent->Lora || v.Freeze != parent->Freeze))
        Ctx.report(DiagCode::BadValue, o->Range,
                   "optimizer = \"keep\" needs the parameters trained to stay the same, but '" + d.Name +
                       "' changes freeze or lora from '" + parent->DisplayName + "'");
      // Optimizer state is per tensor of the small model; LLaMA Pro and bert2BERT start afresh.
      if (v.KeepOptimizer && v.Grow)
        Ctx.report(DiagCode::BadValue, o->Range,
                   "optimizer = \"keep\" needs the tensors to stay the same, but '" + d.Name + "' grows the model");
    }
    const Value *at = effective(d, stage, v.Labels, "after", "at");
    if (!at)
      return true;
    auto q = Ctx.quantity(*at, {Dim::Tokens, Dim::Steps, Dim::Fraction}, Dim::Tokens,
                          "a point such as \"1B\", \"500 steps\" or \"50%\"");
    if (!q)
      return false;
    double tokens = q->Dim == Dim::Steps       ? q->Value * static_cast<double>(parent->batchTokens())
                    : q->Dim == Dim::Fraction ? q->Value * static_cast<double>(parent->Tokens)
                                              : q->Value;
    if (tokens <= 0 || (tokens > static_cast<double>(parent->Tokens) && parent->LengthKnown)) {
      Ctx.report(DiagCode::BadValue, at->Range,
                 llvm::formatv("branch point {0} tokens is outside '{1}', which trains {2} tokens",
                               shortNumber(tokens), parent->DisplayName, formatCount(parent->Tokens))
                     .str());
      return false;
    }
    // Branch at an optimizer-step boundary of the parent, rounding up like tokens -> steps.
    uint64_t perStep = parent->batchTokens();
    uint64_t step = static_cast<uint64_t>(std::ceil(tokens / static_cast<double>(perStep)));
    v.BranchTokens = std::min(step * perStep, parent->Tokens);
    return true;
  }

  /// `after = { tokenizer, init_new }`: the tokenizer the variant trains with from its edge on.
  bool resolveVocabularyExtension(const StageDecl &d, const StageSpec &stage, StageVariant &v,
                                  const StageVariant &parent) {
    v.Tokenizer = parent.Tokenizer;
    v.TokenizerRange = parent.TokenizerRange;
    const Value *tok = effective(d, stage, v.Labels, "after", "tokenizer");
    const Value *init = effective(d, stage, v.Labels, "after", "init_new");
    if (init && !tok) {
      Ctx.report(DiagCode::BadValue, init->Range,
                 "init_new starts the rows of new tokens: it needs a vocabulary extension, after = { tokenizer = "
                 "\"hf:PATH\" }");
      return false;
    }
    if (!tok || tok->Kind != ValueKind::String)
      return true;
    if (!llvm::StringRef(tok->String).startswith("hf:") || tok->String.size() <= 3) {
      Ctx.report(DiagCode::BadValue, tok->Range,
                 "a vocabulary extension moves the model to a tokenizer.json: tokenizer = \"hf:PATH\"");
      return false;
    }
    if (!llvm::StringRef(parent.Tokenizer).startswith("hf:")) {
      Ctx.report(DiagCode::BadValue, tok->Range,
                 "a vocabulary extension extends a Hugging Face tokenizer, but '" + parent.DisplayName +
                     "' trains with the byte tokenizer; set [model] tokenizer = \"hf:PATH\"");
      return false;
    }
    v.Tokenizer = tok->String;
    v.TokenizerRange = tok->Range;
    v.ExtendVocabulary = plan::NewTokenInit::Mean;
    if (init && init->Kind == ValueKind::String) // the schema checked the name
      v.ExtendVocabulary = plan::enumFromName<plan::NewTokenInit>(init->String).value_or(plan::NewTokenInit::Mean);
    // Lint: data the new embedding rows could learn from must exist somewhere.
    const bool tokenized = llvm::any_of(Recipe.Streams, [&](const StreamSpec &s) {
      return !s.Tokenizer.empty() && normalTokenizer(s.Tokenizer) == normalTokenizer(v.Tokenizer);
    });
    if (!tokenized) {
      Ctx.report(DiagCode::TokenizerMismatch, tok->Range,
                 "vocabulary extension to '" + v.Tokenizer +
                     "', but no stream was tokenized with it: declare tokenizer = \"" + v.Tokenizer +
                     "\" on the streams '" + d.Name + "' trains on");
      return false;
    }
    return true;
  }

  /// Every stream of the variant's mixture holds ids of the tokenizer it trains with.
  void checkMixtureTokenizer(const StageVariant &v, const Value *mix) {
    if (!mix)
      return;
    // Without an extension the streams' own check against [model] has spoken.
    const bool extended = normalTokenizer(v.Tokenizer) != normalTokenizer(Recipe.Model.Tokenizer);
    if (!extended)
      return;
    for (const std::string &name : v.Mixture.Streams) {
      const StreamSpec *spec = Recipe.stream(name);
      const StreamSpec *root = spec ? Recipe.stream(spec->Root) : nullptr;
      if (!root)
        continue;
      Diagnostic *diag = nullptr;
      if (!root->Tokenizer.empty() &&
          normalTokenizer(root->Tokenizer) != normalTokenizer(v.Tokenizer))
        diag = Ctx.report(DiagCode::TokenizerMismatch, mix->Range,
                          llvm::formatv("stream '{0}' was tokenized with '{1}' but '{2}' trains with '{3}'", name,
                                        root->Tokenizer, v.DisplayName, v.Tokenizer)
                              .str());
      else if (root->Tokenizer.empty())
        diag = Ctx.report(DiagCode::TokenizerMismatch, mix->Range,
                          llvm::formatv("'{0}' trains with '{1}' (a vocabulary extension), but stream '{2}' does not "
                                        "say its tokenizer: set tokenizer = \"{1}\" on stream '{3}'",
                                        v.DisplayName, v.Tokenizer, name, root->Name)
                              .str());
      if (diag && v.TokenizerRange.isValid())
        DiagnosticEngine::addNote(*diag, v.TokenizerRange, "the vocabulary extension is here");
    }
  }

  /// `after.grow`: its sizes, checked against the parent's model where [model] says its
  /// sizes (plan::growArchitecture); a checkpoint's are known when planning, which checks them.
  void resolveGrow(const StageDecl &d, const StageSpec &stage, StageVariant &v) {
    const Value *grow = effective(d, stage, v.Labels, "after", "grow");
    if (!grow || grow->Kind != ValueKind::Table)
      return;
    GrowSpec g;
    g.Range = grow->Range;
    auto size = [&](llvm::StringRef key, uint64_t &out, llvm::SMRange &range) {
      const Value *s = grow->get(key);
      if (!s || s->Kind != ValueKind::Integer)
        return;
      if (s->Integer <= 0)
        Ctx.report(DiagCode::BadValue, s->Range, key.str() + " must be a positive integer");
      else
        out = static_cast<uint64_t>(s->Integer);
      range = s->Range;
    };
    size("layers", g.Layers, g.LayersRange);
    size("d_model", g.DModel, g.DModelRange);
    if (const Value *n = grow->get("noise"); n && n->isNumber()) {
      if (n->number() < 0)
        Ctx.report(DiagCode::BadValue, n->Range, "noise must not be negative");
      g.Noise = n->number();
    }
    v.Grow = g;
    if (!g.Layers && !g.DModel) {
      Ctx.report(DiagCode::MissingKey, grow->Range, "grow needs 'layers' or 'd_model': the size it grows to");
      return;
    }
    if (!v.Layers || !v.DModel) {
      v.Layers = g.Layers;
      v.DModel = g.DModel;
      return;
    }
    plan::Architecture from;
    from.Layers = v.Layers;
    from.DModel = v.DModel;
    plan::GrownArchitecture grown = plan::growArchitecture(from, g.Layers, g.DModel);
    if (!grown.Problem.empty()) {
      Ctx.report(DiagCode::BadValue, g.rangeOf(grown.Key), "stage '" + d.Name + "' cannot grow: " + grown.Problem);
      return;
    }
    v.Layers = grown.Model.Layers;
    v.DModel = grown.Model.DModel;
  }

  /// The index in recipe.Streams of stream `name`, if there is one.
  std::optional<size_t> streamIndex(llvm::StringRef name) const {
    const StreamSpec *spec = Recipe.stream(name);
    return spec ? std::optional<size_t>(spec - Recipe.Streams.data()) : std::nullopt;
  }

  llvm::SmallBitVector pretrainingData() const {
    llvm::SmallBitVector seen(Recipe.Streams.size());
    for (const std::string &s : Recipe.Model.PretrainedOn)
      if (std::optional<size_t> i = streamIndex(s))
        seen.set(*i);
    return seen;
  }

  llvm::SmallBitVector withMixture(llvm::SmallBitVector seen, const StageVariant &v) const {
    for (const std::string &s : v.Mixture.Streams)
      if (std::optional<size_t> i = streamIndex(s))
        seen.set(*i);
    return seen;
  }

  /// At a stage's start: a rewarm onto new data without replay, or an LR jump that is not
  /// written as a rewarm. A first stage is checked against the init's pretraining data.
  void checkEdgeLints(const StageDecl &d, const StageVariant &v, const StageVariant *parent) {
    const Value *lrValue = lrValueOf(d, v);
    if (!lrValue || v.LR.Phases.empty())
      return;
    const plan::Phase &first = v.LR.Phases.front();
    llvm::SMRange firstRange = lrValue->location().range(v.LRPhaseRanges.front().Begin, v.LRPhaseRanges.front().End);
    if (first.Shape == schedule::Shape::Warmup) {
      checkRewarmReplay(v, parent ? TrainedOn[OutIndex[d.Parent]][v.ParentVariant] : pretrainingData(),
                        firstRange);
      return;
    }
    if (!parent || !parent->LengthKnown)
      return;
    double before = plan::learningRate(parent->LR, static_cast<double>(v.BranchTokens));
    double after = plan::learningRate(v.LR, 0);
    double scale = std::max(std::abs(before), std::abs(after));
    if (scale > 0 && std::abs(after - before) > kLrJumpTolerance * scale)
      Ctx.report(DiagCode::LrJump, firstRange,
                 llvm::formatv("LR jumps from {0} to {1} at the edge from '{2}' without a warmup; write a rise as "
                               "a rewarm, warmup(...) then ..., and a drop as a decay from {0} "
                               "(Ibrahim et al. 2024)",
                               shortNumber(before), shortNumber(after), parent->DisplayName)
                     .str());
  }

  /// A sequence length 4x its parent's (a first stage: the model's) or more, with the RoPE
  /// base unchanged or with long documents only.
  void checkContextExtension(const StageDecl &d, const StageVariant &v, const StageVariant *parent) {
    uint64_t before = parent ? parent->SeqLen : Recipe.Model.SeqLen;
    if (v.SeqLen < kContextExtensionFactor * before)
      return;
    std::vector<std::string> problems;
    double thetaBefore = parent ? parent->RopeTheta : Recipe.Model.RopeTheta;
    if (Recipe.Model.Family != Family::GPT2 && v.RopeTheta == thetaBefore)
      problems.push_back(llvm::formatv("rope_theta stays {0} (raise it, e.g. Xiong et al. 2023)",
                                       shortNumber(v.RopeTheta)));
    plan::Predicate shortDocuments;
    shortDocuments.addCompare(plan::Predicate::Op::Lt, plan::kLengthColumn, static_cast<double>(before));
    if (llvm::all_of(v.Mixture.Streams, [&](const std::string &stream) {
          return plan::provablyDisjoint(Recipe.filtersOf(stream), shortDocuments);
        }))
      problems.push_back(llvm::formatv("every stream holds only documents of {0} tokens or more (keep short "
                                       "data in the mix, Gao et al. 2024)",
                                       before));
    if (problems.empty())
      return;
    const Value *seqLen = d.Table->get("seq_len");
    Ctx.report(DiagCode::ContextExtension, seqLen ? seqLen->Range : d.NameRange,
               llvm::formatv("'{0}' extends the context from {1} to {2} tokens, but {3}", v.DisplayName, before,
                             v.SeqLen, llvm::join(problems, "; and "))
                   .str());
  }

  void checkPeakLR(const StageDecl &d, const StageVariant &v) {
    double peak = 0;
    for (const plan::Phase &p : v.LR.Phases)
      peak = std::max({peak, p.From, p.To});
    const Value *lrValue = lrValueOf(d, v);
    if (peak > kAbsurdPeakLR && lrValue)
      Ctx.report(DiagCode::LrPeak, lrValue->Range,
                 llvm::formatv("the learning rate reaches {0}: AdamW trains language models at 1e-5 to 1e-2, and "
                               "this one will diverge within steps",
                               shortNumber(peak))
                     .str());
  }

  const Value *lrValueOf(const StageDecl &d, const StageVariant &v) const {
    for (const SweepAxis &axis : Recipe.Axes)
      if (axis.Stage == d.Name && axis.Key == "lr" && axis.Subkey.empty()) {
        size_t a = &axis - Recipe.Axes.data();
        return AxisValues[a][v.Labels.at(static_cast<unsigned>(a))];
      }
    return d.Table->get("lr");
  }

  /// `earlier`: the streams trained on before this variant. A stream replays them when it
  /// may share documents with one (a slice of a corpus disjoint from the slice trained on,
  /// "year >= 2021" after "year <= 2019", is new data).
  void checkRewarmReplay(const StageVariant &v, const llvm::SmallBitVector &earlier, llvm::SMRange at) {
    std::vector<std::string> fresh, replayed;
    for (const std::string &stream : v.Mixture.Streams) {
      std::optional<size_t> i = streamIndex(stream);
      if (!i)
        continue;
      bool seen = false;
      for (int e : earlier.set_bits()) {
        auto [it, fresh] = SharesDocuments.try_emplace({*i, e});
        if (fresh)
          it->second = Recipe.mayShareDocuments(stream, Recipe.Streams[e].Name);
        if ((seen = it->second))
          break;
      }
      (seen ? replayed : fresh).push_back(stream);
    }
    if (fresh.empty() || !replayed.empty() || earlier.none())
      return;
    std::vector<std::string> earlierNames;
    for (int i : earlier.set_bits())
      earlierNames.push_back(Recipe.Streams[i].Name);
    llvm::sort(earlierNames);
    Ctx.report(
        DiagCode::RewarmNoReplay, at,
        llvm::formatv("'{0}' rewarms the LR onto new data ({1}) with no replay of earlier data ({2}): expect "
                      "forgetting; Ibrahim et al. 2024 replay ~5% of it",
                      v.DisplayName, llvm::join(fresh, ", "), llvm::join(earlierNames, ", "))
            .str());
  }

  void checkUnusedStreams() {
    // Streams no mixture, eval or ablation names, and that no used stream derives from.
    std::set<std::string> used;
    for (const StageSpec &s : Recipe.Stages)
      for (const StageVariant &v : s.Variants)
        used.insert(v.Mixture.Streams.begin(), v.Mixture.Streams.end());
    auto mention = [&](const Value *section, llvm::StringRef key) {
      if (!section || section->Kind != ValueKind::Array)
        return;
      for (const auto &item : section->Items)
        if (const Value *v = item->get(key)) {
          if (v->Kind == ValueKind::String)
            used.insert(llvm::StringRef(v->String).split('.').first.str());
          for (const auto &s : v->Items)
            used.insert(llvm::StringRef(s->String).split('.').first.str());
          if (v->Kind == ValueKind::Table)
            if (const Value *stream = v->get("stream"))
              used.insert(stream->String);
          for (const Field &f : v->Fields)
            if (f.Key == "mix" && f.Value->Kind == ValueKind::String)
              if (const MixtureSpec *spec = Ctx.mixture(*f.Value))
                for (const auto &[name, range] : streamRefs(*spec))
                  used.insert(name);
        }
    };
    mention(Ctx.Root.get("eval"), "streams");
    mention(Ctx.Root.get("ablation"), "units");
    mention(Ctx.Root.get("ablation"), "train");
    for (const std::string &s : Recipe.Model.PretrainedOn)
      used.insert(s);
    const Value *streams = Ctx.Root.get("streams");
    if (!streams || Ctx.hasErrors())
      return; // with errors (a derivation cycle, say) "unused" would be noise
    std::set<std::string> closure = used;
    for (const std::string &name : used)
      for (const StreamSpec *s = Recipe.stream(name); s && !s->Parent.empty(); s = Recipe.stream(s->Parent))
        closure.insert(s->Parent);
    for (const Field &f : streams->Fields)
      if (!closure.count(f.Key))
        Ctx.report(DiagCode::UnusedStream, f.KeyRange,
                   "stream '" + f.Key + "' is not used by any stage, eval or ablation");
  }
};

} // namespace

void sema::checkStages(Context &ctx) { StageChecker(ctx).run(); }
