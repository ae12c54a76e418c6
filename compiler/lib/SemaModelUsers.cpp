//===- SemaModelUsers.cpp - merges, ablations and evals -------------------===//
//
// Everything that uses finished models: references such as "adapt", "anneal[*]" or
// "anneal[replay=r5]" are bound to stage variants, merges, ablations or the init. A swept
// stage must be selected: "[*]" for all of its variants, or labels for one.
//
//===----------------------------------------------------------------------===//
#include "SemaContext.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace mixtape;
using namespace mixtape::sema;

namespace {

class ModelUserChecker {
public:
  explicit ModelUserChecker(Context &ctx) : Ctx(ctx), Recipe(ctx.Recipe) {}

  void run() {
    collectNames();
    if (const Value *merges = Ctx.Root.get("merge"); merges && merges->Kind == ValueKind::Array)
      for (const auto &m : merges->Items)
        checkMerge(*m);
    checkMergeCycles();
    if (const Value *ablations = Ctx.Root.get("ablation"); ablations && ablations->Kind == ValueKind::Array)
      for (const auto &a : ablations->Items)
        checkAblation(*a);
    if (const Value *evals = Ctx.Root.get("eval"); evals && evals->Kind == ValueKind::Array)
      for (const auto &e : evals->Items)
        checkEval(*e);
  }

private:
  Context &Ctx;
  CheckedRecipe &Recipe;
  /// Every model name: stages, merges, ablations, in one namespace.
  std::map<std::string, std::pair<ModelRef::RefKind, llvm::SMRange>> Names;
  std::vector<std::string> MergeNames, AblationNames;
  std::vector<const Value *> MergeTables; ///< parallel to recipe.Merges
  std::vector<std::string> EvalNames;

  void collectNames() {
    if (const Value *stages = Ctx.Root.get("stage"); stages && stages->Kind == ValueKind::Array)
      for (const auto &s : stages->Items)
        if (const Value *n = s->get("name"); n && n->Kind == ValueKind::String) {
          Names.emplace(n->String, std::make_pair(ModelRef::Stage, n->Range));
          if (n->String == "init")
            Ctx.report(DiagCode::DuplicateName, n->Range, "'init' names the model's initial weights");
        }
    auto collect = [&](llvm::StringRef section, ModelRef::RefKind kind, std::vector<std::string> &list) {
      const Value *items = Ctx.Root.get(section);
      if (!items || items->Kind != ValueKind::Array)
        return;
      for (const auto &item : items->Items) {
        const Value *n = item->get("name");
        if (!n || n->Kind != ValueKind::String)
          continue;
        auto [it, fresh] = Names.emplace(n->String, std::make_pair(kind, n->Range));
        if (!fresh || n->String == "init") {
          Diagnostic *d = Ctx.report(DiagCode::DuplicateName, n->Range,
                                     n->String == "init" ? "'init' names the model's initial weights"
                                                         : "a model named '" + n->String + "' already exists");
          if (d && !fresh)
            DiagnosticEngine::addNote(*d, it->second.second, "first defined here");
          continue;
        }
        list.push_back(n->String);
      }
    };
    collect("merge", ModelRef::Merge, MergeNames);
    collect("ablation", ModelRef::Ablation, AblationNames);
    if (const Value *evals = Ctx.Root.get("eval"); evals && evals->Kind == ValueKind::Array)
      for (const auto &e : evals->Items)
        if (const Value *n = e->get("name"); n && n->Kind == ValueKind::String) {
          if (llvm::is_contained(EvalNames, n->String))
            Ctx.report(DiagCode::DuplicateName, n->Range, "an eval named '" + n->String + "' already exists");
          EvalNames.push_back(n->String);
        }
  }

  std::vector<std::string> modelNames(bool withInit) const {
    std::vector<std::string> out;
    for (const auto &[name, info] : Names)
      out.push_back(name);
    if (withInit)
      out.push_back("init");
    return out;
  }

  /// Bind one reference string. `many`: a selector may stand for several variants.
  bool bind(const Value &v, bool many, bool allowInit, std::vector<ModelRef> &out) {
    const Expr *e = Ctx.expr(v);
    if (!e)
      return false;
    const StringLocation &loc = v.location();
    auto at = [&](TextRange r) { return loc.range(r.Begin, r.End); };
    // "<stage>.ema": a stage's moving average, the second model of its nodes.
    const Expr *averaged = nullptr;
    if (e->Kind == ExprKind::Member) {
      if (e->Name != "ema") {
        Ctx.report(DiagCode::BadValue, at(e->NameRange),
                   "'." + e->Name + "': a stage's second model is its moving average, '.ema'");
        return false;
      }
      averaged = e;
      e = e->Operands.front().get();
    }
    const size_t first = out.size();
    if (!bindTarget(v, e, many, allowInit, out))
      return false;
    if (!averaged)
      return true;
    for (size_t i = first; i < out.size(); ++i) {
      ModelRef &ref = out[i];
      const bool hasAverage =
          ref.Kind == ModelRef::Stage && Recipe.Stages[ref.Index].Variants[ref.Variant].Ema.has_value();
      if (!hasAverage) {
        Ctx.report(DiagCode::UnknownRef, at(averaged->Range),
                   "'" + (ref.Kind == ModelRef::Stage ? Recipe.Stages[ref.Index].Variants[ref.Variant].DisplayName
                                                      : e->Name) +
                       "' keeps no moving average: only a stage with `ema` has '.ema'");
        return false;
      }
      ref.Average = true;
    }
    return true;
  }

  /// Bind a reference without its member: a name, or a stage with a selector.
  bool bindTarget(const Value &v, const Expr *e, bool many, bool allowInit, std::vector<ModelRef> &out) {
    const StringLocation &loc = v.location();
    auto at = [&](TextRange r) { return loc.range(r.Begin, r.End); };
    if (e->Kind != ExprKind::Ident && e->Kind != ExprKind::Select) {
      Ctx.report(DiagCode::BadValue, at(e->Range),
                 "expected a model: a stage, merge or ablation name, optionally with a selector");
      return false;
    }
    const std::string &name = e->Name;
    if (name == "init" && allowInit && e->Kind == ExprKind::Ident) {
      if (!Recipe.Sizes.empty()) {
        Ctx.report(DiagCode::BadValue, at(e->Range),
                   "a sweep over model sizes gives each size its own init: name a stage's variants instead");
        return false;
      }
      out.push_back(ModelRef{});
      return true;
    }
    auto it = Names.find(name);
    if (it == Names.end()) {
      Diagnostic *d = Ctx.report(DiagCode::UnknownRef, at(e->NameRange), "unknown model '" + name + "'");
      Ctx.suggest(d, name, modelNames(allowInit), at(e->NameRange));
      return false;
    }
    ModelRef::RefKind kind = it->second.first;
    if (kind != ModelRef::Stage) {
      if (e->Kind == ExprKind::Select) {
        Ctx.report(DiagCode::Selector, at(e->Range), "'" + name + "' is not swept: it takes no selector");
        return false;
      }
      ModelRef ref;
      ref.Kind = kind;
      const auto &list = kind == ModelRef::Merge ? MergeNames : AblationNames;
      ref.Index = static_cast<unsigned>(llvm::find(list, name) - list.begin());
      out.push_back(ref);
      return true;
    }
    int stageIndex = Recipe.stageIndex(name);
    if (stageIndex < 0)
      return false; // the stage itself is broken; reported there
    const StageSpec &stage = Recipe.Stages[stageIndex];
    std::vector<unsigned> chosen;
    if (e->Kind == ExprKind::Ident) {
      if (stage.Variants.size() > 1) {
        std::vector<std::string> axes;
        for (unsigned a : stage.Axes)
          axes.push_back(Recipe.Axes[a].Name);
        Diagnostic *d = Ctx.report(
            DiagCode::UnqualifiedSweep, at(e->Range),
            llvm::formatv("'{0}' has {1} variants (swept by {2}); select {3}", name, stage.Variants.size(),
                          llvm::join(axes, ", "), many ? "them with '" + name + "[*]' or pick labels" : "one")
                .str());
        if (d) {
          DiagnosticEngine::addNote(*d, at(e->Range), "e.g. '" + stage.Variants.front().DisplayName + "'");
          if (many)
            DiagnosticEngine::addFixIt(*d, at(e->Range), name + "[*]");
        }
        return false;
      }
      chosen.push_back(0);
    } else if (!selectVariants(v, *e, stage, chosen)) {
      return false;
    }
    if (!many && chosen.size() > 1) {
      Ctx.report(DiagCode::UnqualifiedSweep, at(e->Range),
                 llvm::formatv("'{0}' selects {1} variants where one model is needed; give a label for every "
                               "axis",
                               printSelection(*e), chosen.size())
                     .str());
      return false;
    }
    for (unsigned c : chosen) {
      ModelRef ref;
      ref.Kind = ModelRef::Stage;
      ref.Index = static_cast<unsigned>(stageIndex);
      ref.Variant = c;
      out.push_back(ref);
    }
    return true;
  }

  static std::string printSelection(const Expr &e) {
    std::string s = e.Name + "[";
    if (e.SelectAll)
      return s + "*]";
    for (size_t i = 0; i < e.Selectors.size(); ++i)
      s += (i ? "," : "") + e.Selectors[i].Axis + "=" + e.Selectors[i].Label;
    return s + "]";
  }

  bool selectVariants(const Value &v, const Expr &e, const StageSpec &stage, std::vector<unsigned> &chosen) {
    const StringLocation &loc = v.location();
    auto at = [&](TextRange r) { return loc.range(r.Begin, r.End); };
    VariantLabels wanted;
    bool ok = true;
    for (const Expr::SelectorItem &item : e.Selectors) {
      std::vector<std::string> axisNames;
      int axis = -1;
      for (unsigned a : stage.Axes) {
        axisNames.push_back(Recipe.Axes[a].Name);
        if (Recipe.Axes[a].Name == item.Axis)
          axis = static_cast<int>(a);
      }
      if (axis < 0) {
        Diagnostic *d = Ctx.report(
            DiagCode::Selector, at(item.AxisRange),
            axisNames.empty() ? "'" + e.Name + "' is not swept: it has no axis '" + item.Axis + "'"
                              : "'" + e.Name + "' is not swept by '" + item.Axis + "'; its axes: " +
                                    llvm::join(axisNames, ", "));
        Ctx.suggest(d, item.Axis, axisNames, at(item.AxisRange));
        ok = false;
        continue;
      }
      const std::vector<std::string> &labels = Recipe.Axes[axis].Labels;
      auto label = llvm::find(labels, item.Label);
      if (label == labels.end()) {
        Diagnostic *d = Ctx.report(DiagCode::Selector, at(item.LabelRange),
                                   "axis '" + item.Axis + "' has no label '" + item.Label + "'; its labels: " +
                                       llvm::join(labels, ", "));
        Ctx.suggest(d, item.Label, labels, at(item.LabelRange));
        ok = false;
        continue;
      }
      wanted[static_cast<unsigned>(axis)] = static_cast<unsigned>(label - labels.begin());
    }
    if (!ok)
      return false;
    for (size_t i = 0; i < stage.Variants.size(); ++i) {
      bool match = llvm::all_of(wanted, [&](const auto &w) { return stage.Variants[i].Labels.at(w.first) == w.second; });
      if (match)
        chosen.push_back(static_cast<unsigned>(i));
    }
    return true;
  }

  /// A list or a single string of references; `hfCheckpoints`: "hf:PATH" items too (merges).
  bool bindAll(const Value &v, bool hfCheckpoints, std::vector<ModelRef> &out) {
    auto one = [&](const Value &item) {
      return hfCheckpoints ? bindMergeInput(item, /*many=*/true, out) : bind(item, /*many=*/true, /*allowInit=*/true, out);
    };
    if (v.Kind == ValueKind::String)
      return one(v);
    bool ok = true;
    for (const auto &item : v.Items)
      ok &= item->Kind == ValueKind::String && one(*item);
    return ok;
  }

  /// A merge's input: a model reference, or "hf:PATH", a Hugging Face checkpoint outside the
  /// recipe (its sizes are checked against the other inputs' when planning reads its config).
  bool bindMergeInput(const Value &v, bool many, std::vector<ModelRef> &out) {
    llvm::StringRef path(v.String);
    if (!path.consume_front("hf:"))
      return bind(v, many, /*allowInit=*/true, out);
    if (path.trim().empty()) {
      Ctx.report(DiagCode::BadValue, v.Range, "\"hf:\" needs a path: a Hugging Face checkpoint directory");
      return false;
    }
    ModelRef ref;
    ref.HfPath = path.str();
    ref.Range = v.Range;
    out.push_back(std::move(ref));
    return true;
  }

  /// Settings that must agree for a merge to mean something: RoPE base and sequence length.
  struct Shape {
    double RopeTheta = 0;
    uint64_t SeqLen = 0;
    std::string Name;
  };
  std::optional<Shape> shapeOf(const ModelRef &ref) const {
    if (ref.Kind == ModelRef::Stage) {
      const StageVariant &v = Recipe.Stages[ref.Index].Variants[ref.Variant];
      return Shape{v.RopeTheta, v.SeqLen, v.DisplayName};
    }
    if (ref.Kind == ModelRef::Init && ref.HfPath.empty())
      return Shape{Recipe.Model.RopeTheta, Recipe.Model.SeqLen, "init"};
    return std::nullopt;
  }

  void checkMerge(const Value &m) {
    MergeTables.push_back(&m);
    MergeSpec spec;
    if (const Value *n = m.get("name"))
      spec.Name = n->String;
    if (const Value *method = m.get("method")) // the schema checked the name
      spec.Method = plan::enumFromName<plan::MergeMethod>(method->String).value_or(plan::MergeMethod::Linear);
    spec.Seed = Recipe.Seed;
    bool ok = true;
    if (const Value *of = m.get("of"))
      ok &= bindAll(*of, /*hfCheckpoints=*/true, spec.Models);
    const Value *baseValue = m.get("base");
    if (baseValue && baseValue->Kind == ValueKind::String) {
      std::vector<ModelRef> base;
      if (bindMergeInput(*baseValue, /*many=*/false, base))
        spec.Base = base.front();
      else
        ok = false;
    }
    const Value *of = m.get("of");
    auto need = [&](bool cond, llvm::SMRange range, const std::string &message) {
      if (!cond) {
        Ctx.report(DiagCode::BadValue, range, message);
        ok = false;
      }
    };
    llvm::SMRange where = m.get("method") ? m.get("method")->Range : m.Range;
    using plan::MergeMethod;
    const std::string method = plan::enumName(spec.Method).str();
    bool dare = spec.Method == MergeMethod::DareLinear || spec.Method == MergeMethod::DareTies;
    bool taskVectors = spec.Method == MergeMethod::TaskArithmetic || spec.Method == MergeMethod::Ties || dare;
    if (ok && of) {
      need(!spec.Models.empty(), of->Range, "a merge needs at least one model");
      need(spec.Method != MergeMethod::Slerp || spec.Models.size() == 2, of->Range,
           llvm::formatv("slerp merges exactly two models, not {0}", spec.Models.size()).str());
      need(!taskVectors || spec.Base, where, "'" + method + "' merges task vectors: it needs a 'base'");
      need(taskVectors || !spec.Base, baseValue ? baseValue->Range : where,
           "'" + method + "' averages the models themselves: it takes no 'base'");
    }
    if (const Value *w = m.get("weights"); w && w->Kind == ValueKind::Array) {
      for (const auto &x : w->Items)
        spec.Weights.push_back(x->number());
      need(!ok || spec.Weights.size() == spec.Models.size(), w->Range,
           llvm::formatv("{0} weights for {1} models", spec.Weights.size(), spec.Models.size()).str());
    }
    if (const Value *d = m.get("density"); d && d->isNumber()) {
      spec.Density = d->number();
      need(spec.Density > 0 && spec.Density <= 1, d->Range, "density must be in (0, 1]");
      need(taskVectors && spec.Method != MergeMethod::TaskArithmetic, d->Range,
           "density applies to ties and dare_* merges");
    } else if (spec.Method == MergeMethod::Ties || dare) {
      need(false, where, "'" + method + "' needs a 'density' (the fraction of each task vector kept)");
    }
    if (const Value *t = m.get("t"); t && t->isNumber()) {
      spec.T = t->number();
      need(t->number() >= 0 && t->number() <= 1, t->Range, "t must be in [0, 1]");
      need(spec.Method == MergeMethod::Slerp, t->Range, "t applies to slerp merges");
    }
    if (const Value *n = m.get("normalize"); n && n->Kind == ValueKind::Bool) {
      spec.Normalize = n->Boolean;
      need(spec.Method != MergeMethod::Slerp, n->Range,
           "normalize applies to linear, task_arithmetic, ties and dare_* merges");
    }
    if (const Value *s = m.get("seed"); s && s->Kind == ValueKind::Integer)
      spec.Seed = static_cast<uint64_t>(s->Integer);
    if (ok)
      warnConfigMismatch(spec, of ? of->Range : m.Range);
    if (ok)
      checkSameSize(spec, of ? of->Range : m.Range);
    Recipe.Merges.push_back(std::move(spec));
  }

  /// Parameters of different shapes have no average: a merge's stage variants share a size.
  void checkSameSize(const MergeSpec &spec, llvm::SMRange at) {
    const StageVariant *first = nullptr;
    for (const ModelRef &ref : spec.Models) {
      if (ref.Kind != ModelRef::Stage)
        continue;
      const StageVariant &v = Recipe.Stages[ref.Index].Variants[ref.Variant];
      if (!first) {
        first = &v;
      } else if (v.Size != first->Size) {
        Ctx.report(DiagCode::BadValue, at,
                   "merging models of different sizes: '" + first->DisplayName + "' (" +
                       Recipe.Sizes[first->Size].Suffix + ") and '" + v.DisplayName + "' (" +
                       Recipe.Sizes[v.Size].Suffix + ")");
        return;
      }
    }
  }

  void warnConfigMismatch(const MergeSpec &spec, llvm::SMRange at) {
    std::vector<ModelRef> all = spec.Models;
    if (spec.Base)
      all.push_back(*spec.Base);
    std::optional<Shape> first;
    for (const ModelRef &ref : all) {
      std::optional<Shape> s = shapeOf(ref);
      if (!s)
        continue;
      if (!first) {
        first = s;
        continue;
      }
      std::string what;
      if (s->RopeTheta != first->RopeTheta)
        what = llvm::formatv("rope_theta {0} vs {1}", shortNumber(first->RopeTheta), shortNumber(s->RopeTheta));
      else if (s->SeqLen != first->SeqLen)
        what = llvm::formatv("seq_len {0} vs {1}", first->SeqLen, s->SeqLen);
      if (what.empty())
        continue;
      Ctx.report(DiagCode::MergeConfig, at,
                 llvm::formatv("merging models whose configs differ: '{0}' and '{1}' ({2}); the merged model "
                               "takes {3}'s config",
                               first->Name, s->Name, what, spec.Base ? "the base" : "the first model")
                     .str());
      return;
    }
  }

  void checkMergeCycles() {
    // A merge may use another merge; follow those uses looking for a way back.
    for (size_t start = 0; start < Recipe.Merges.size(); ++start) {
      std::vector<size_t> stack{start};
      std::set<size_t> seen;
      while (!stack.empty()) {
        size_t cur = stack.back();
        stack.pop_back();
        for (const ModelRef &r : Recipe.Merges[cur].Models) {
          if (r.Kind != ModelRef::Merge)
            continue;
          if (r.Index == start) {
            Ctx.report(DiagCode::Cycle, MergeTables[start]->Range,
                       "merge '" + Recipe.Merges[start].Name + "' depends on itself through its models");
            stack.clear();
            break;
          }
          if (seen.insert(r.Index).second)
            stack.push_back(r.Index);
        }
      }
    }
  }

  void checkAblation(const Value &a) {
    AblationSpec spec;
    if (const Value *n = a.get("name"))
      spec.Name = n->String;
    std::vector<ModelRef> from;
    const Value *fromValue = a.get("from");
    if (fromValue && fromValue->Kind == ValueKind::String && bind(*fromValue, false, false, from))
      spec.From = from.front();
    const StageVariant *seed = spec.From.Kind == ModelRef::Stage && !from.empty()
                                   ? &Recipe.Stages[spec.From.Index].Variants[spec.From.Variant]
                                   : nullptr;
    std::vector<std::string> streamNames;
    for (const StreamSpec &s : Recipe.Streams)
      streamNames.push_back(s.Name);
    if (const Value *units = a.get("units"); units && units->Kind == ValueKind::Table) {
      if (const Value *s = units->get("stream"); s && s->Kind == ValueKind::String) {
        spec.Stream = s->String;
        if (!Recipe.stream(s->String))
          Ctx.suggest(Ctx.report(DiagCode::UnknownRef, s->Range, "unknown stream '" + s->String + "'"), s->String,
                      streamNames, s->location().range(0, s->String.size()));
      }
      const Value *split = units->get("split");
      const Value *by = units->get("by");
      if ((split != nullptr) == (by != nullptr))
        Ctx.report(DiagCode::BadValue, units->Range,
                   "units need either 'split' (K equal random units) or 'by' (a metadata column)");
      if (split && split->Kind == ValueKind::Integer) {
        if (split->Integer < 2)
          Ctx.report(DiagCode::BadValue, split->Range, "split needs at least 2 units");
        else
          spec.Split = static_cast<uint64_t>(split->Integer);
      }
      if (by && by->Kind == ValueKind::String) {
        spec.By = by->String;
        spec.ByRange = by->location().range(0, by->String.size());
      }
    }
    if (const Value *train = a.get("train"); train && train->Kind == ValueKind::Table)
      checkAblationTrain(*train, spec, seed, streamNames);
    if (const Value *combine = a.get("combine"))
      checkCombine(*combine, spec);
    Recipe.Ablations.push_back(std::move(spec));
  }

  void checkAblationTrain(const Value &train, AblationSpec &spec, const StageVariant *seed,
                          std::vector<std::string> streamNames) {
    spec.SeqLen = seed ? seed->SeqLen : Recipe.Model.SeqLen;
    spec.BatchSequences = seed ? seed->BatchSequences : 0;
    if (const Value *b = train.get("batch")) {
      if (auto q = Ctx.quantity(*b, {Dim::Tokens, Dim::Sequences}, Dim::Number, "a batch such as \"512 sequences\"")) {
        if (auto n = Ctx.count(*b, *q, "a batch")) {
          if (q->Dim == Dim::Sequences)
            spec.BatchSequences = *n;
          else if (*n % spec.SeqLen)
            Ctx.report(DiagCode::BatchShape, b->Range,
                       llvm::formatv("a batch of {0} tokens is not a whole number of {1}-token sequences",
                                     formatCount(*n), spec.SeqLen)
                           .str());
          else
            spec.BatchSequences = *n / spec.SeqLen;
        }
      }
    }
    uint64_t perStep = spec.BatchSequences * spec.SeqLen;
    if (const Value *t = train.get("tokens")) {
      if (auto q = Ctx.quantity(*t, {Dim::Tokens}, Dim::Tokens, "a number of tokens such as \"100M\""))
        if (auto n = Ctx.count(*t, *q, "tokens"))
          spec.Tokens = perStep ? (*n + perStep - 1) / perStep * perStep : *n;
    }
    if (const Value *mix = train.get("mix"); mix && mix->Kind == ValueKind::String) {
      if (const MixtureSpec *m = Ctx.mixture(*mix)) {
        streamNames.push_back("unit");
        bool ok = true;
        for (const auto &[name, range] : streamRefs(*m)) {
          if (name == "unit" || Recipe.stream(name))
            continue;
          llvm::SMRange r = mix->location().range(range.Begin, range.End);
          Ctx.suggest(Ctx.report(DiagCode::UnknownRef, r, "unknown stream '" + name + "'"), name, streamNames, r);
          ok = false;
        }
        if (ok && spec.Tokens) {
          ExprDiags list;
          if (auto resolved = resolveMixture(*m, static_cast<double>(spec.Tokens), list))
            spec.Mixture = std::move(*resolved);
          Ctx.reportExpr(*mix, list);
        }
      }
    }
    if (const Value *lr = train.get("lr"); lr && lr->Kind == ValueKind::String && spec.Tokens) {
      if (const schedule::ScheduleSpec *s = Ctx.scheduleSpec(*lr)) {
        ExprDiags list;
        if (auto resolved = schedule::resolve(*s, static_cast<double>(spec.Tokens), list))
          spec.LR = std::move(resolved->Schedule);
        Ctx.reportExpr(*lr, list);
      }
    }
  }

  void checkCombine(const Value &combine, AblationSpec &spec) {
    if (combine.Kind == ValueKind::Array) {
      for (const auto &group : combine.Items) {
        if (group->Kind != ValueKind::Array || group->Items.empty()) {
          Ctx.report(DiagCode::BadValue, group->Range, "each combination is a non-empty list of units");
          continue;
        }
        std::vector<std::string> units;
        for (const auto &u : group->Items)
          units.push_back(u->Kind == ValueKind::Integer ? std::to_string(u->Integer) : u->String);
        spec.Combinations.push_back(std::move(units));
      }
      return;
    }
    const Expr *e = Ctx.expr(combine);
    if (!e)
      return;
    const StringLocation &loc = combine.location();
    if (e->Kind != ExprKind::Call || e->Name != "subsets") {
      Diagnostic *d = Ctx.report(DiagCode::UnknownFunction, loc.range(e->Range.Begin, e->Range.End),
                                 "combine is \"subsets(max = K)\" or a list of unit lists");
      if (e->Kind == ExprKind::Call)
        Ctx.suggest(d, e->Name, {"subsets"}, loc.range(e->NameRange.Begin, e->NameRange.End));
      return;
    }
    if (e->Operands.size() != 1 || e->ArgNames[0] != "max" || e->operand(0).Kind != ExprKind::Number ||
        !e->operand(0).Number.asCount() || *e->operand(0).Number.asCount() == 0) {
      Ctx.report(DiagCode::BadArgument, loc.range(e->Range.Begin, e->Range.End),
                 "subsets takes one argument: max = K, a whole number above 0");
      return;
    }
    spec.MaxSubset = *e->operand(0).Number.asCount();
    if (spec.Split && spec.MaxSubset > spec.Split)
      Ctx.report(DiagCode::BadArgument, loc.range(e->operand(0).Range.Begin, e->operand(0).Range.End),
                 llvm::formatv("subsets of up to {0} units, but there are only {1}", spec.MaxSubset, spec.Split)
                     .str());
  }

  void checkEval(const Value &e) {
    EvalSpec spec;
    if (const Value *n = e.get("name"))
      spec.Name = n->String;
    std::vector<std::string> streamNames;
    for (const StreamSpec &s : Recipe.Streams)
      streamNames.push_back(s.Name);
    if (const Value *streams = e.get("streams"); streams && streams->Kind == ValueKind::Array)
      for (const auto &item : streams->Items) {
        auto [name, split] = llvm::StringRef(item->String).split('.');
        llvm::SMRange nameRange = item->location().range(0, name.size());
        const StreamSpec *s = Recipe.stream(name);
        if (!s) {
          Ctx.suggest(Ctx.report(DiagCode::UnknownRef, nameRange, "unknown stream '" + name.str() + "'"), name,
                      streamNames, nameRange);
          continue;
        }
        if (split != "val" && split != "train") {
          llvm::SMRange r = item->location().range(name.size() + 1, item->String.size());
          Diagnostic *d = Ctx.report(DiagCode::BadValue, split.empty() ? item->Range : r,
                                     "name a split: '" + name.str() + ".val' or '" + name.str() + ".train'");
          if (!split.empty())
            Ctx.suggest(d, split, {"val", "train"}, r);
          continue;
        }
        if (split == "val" && s->Val == 0) {
          Ctx.report(DiagCode::BadValue, item->Range,
                     "stream '" + name.str() + "' holds out no documents: set val = \"1%\" on '" + s->Root + "'");
          continue;
        }
        spec.Splits.push_back({name.str(), split == "val" ? plan::SplitKind::Val : plan::SplitKind::Train});
      }
    if (const Value *tasks = e.get("tasks"); tasks && tasks->Kind == ValueKind::Array) {
      std::vector<std::string> known;
      for (const auto &[name, task] : Recipe.Tasks)
        known.push_back(name);
      for (const auto &item : tasks->Items) {
        if (!Recipe.Tasks.count(item->String)) {
          Diagnostic *d = Ctx.report(DiagCode::UnknownRef, item->Range,
                                     "unknown task '" + item->String + "': define it as [tasks." + item->String + "]");
          Ctx.suggest(d, item->String, known, item->Range);
        } else if (llvm::is_contained(spec.Tasks, item->String)) {
          Ctx.report(DiagCode::DuplicateName, item->Range, "task '" + item->String + "' is listed twice");
        } else {
          spec.Tasks.push_back(item->String);
        }
      }
    }
    if (!e.get("streams") && !e.get("tasks"))
      Ctx.report(DiagCode::MissingKey, e.Range, "an eval needs 'streams' (splits to score) or 'tasks', or both");
    if (const Value *m = e.get("max_tokens"))
      if (auto q = Ctx.quantity(*m, {Dim::Tokens}, Dim::Tokens, "a number of tokens such as \"5M\""))
        spec.MaxTokens = Ctx.count(*m, *q, "max_tokens").value_or(0);
    if (const Value *d = e.get("during"); d && d->Kind == ValueKind::Table)
      if (const Value *every = d->get("every"))
        if (auto q = Ctx.quantity(*every, {Dim::Tokens}, Dim::Tokens, "a number of tokens such as \"100M\""))
          spec.DuringEvery = Ctx.count(*every, *q, "an eval interval").value_or(0);
    if (const Value *on = e.get("on"))
      bindAll(*on, /*hfCheckpoints=*/false, spec.On);
    Recipe.Evals.push_back(std::move(spec));
  }
};

} // namespace

void sema::checkModelUsers(Context &ctx) { ModelUserChecker(ctx).run(); }
