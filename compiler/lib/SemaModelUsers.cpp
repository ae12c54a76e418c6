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
  explicit ModelUserChecker(Context &ctx) : ctx(ctx), recipe(ctx.recipe) {}

  void run() {
    collectNames();
    if (const Value *merges = ctx.root.get("merge"); merges && merges->kind == Value::Array)
      for (const auto &m : merges->items)
        checkMerge(*m);
    checkMergeCycles();
    if (const Value *ablations = ctx.root.get("ablation"); ablations && ablations->kind == Value::Array)
      for (const auto &a : ablations->items)
        checkAblation(*a);
    if (const Value *evals = ctx.root.get("eval"); evals && evals->kind == Value::Array)
      for (const auto &e : evals->items)
        checkEval(*e);
  }

private:
  Context &ctx;
  CheckedRecipe &recipe;
  /// Every model name: stages, merges, ablations, in one namespace.
  std::map<std::string, std::pair<ModelRef::Kind, llvm::SMRange>> names;
  std::vector<std::string> mergeNames, ablationNames;
  std::vector<const Value *> mergeTables; ///< parallel to recipe.merges
  std::vector<std::string> evalNames;

  void collectNames() {
    if (const Value *stages = ctx.root.get("stage"); stages && stages->kind == Value::Array)
      for (const auto &s : stages->items)
        if (const Value *n = s->get("name"); n && n->kind == Value::String) {
          names.emplace(n->string, std::make_pair(ModelRef::Stage, n->range));
          if (n->string == "init")
            ctx.report(DiagCode::DuplicateName, n->range, "'init' names the model's initial weights");
        }
    auto collect = [&](llvm::StringRef section, ModelRef::Kind kind, std::vector<std::string> &list) {
      const Value *items = ctx.root.get(section);
      if (!items || items->kind != Value::Array)
        return;
      for (const auto &item : items->items) {
        const Value *n = item->get("name");
        if (!n || n->kind != Value::String)
          continue;
        auto [it, fresh] = names.emplace(n->string, std::make_pair(kind, n->range));
        if (!fresh || n->string == "init") {
          Diagnostic *d = ctx.report(DiagCode::DuplicateName, n->range,
                                     n->string == "init" ? "'init' names the model's initial weights"
                                                         : "a model named '" + n->string + "' already exists");
          if (d && !fresh)
            DiagnosticEngine::addNote(*d, it->second.second, "first defined here");
          continue;
        }
        list.push_back(n->string);
      }
    };
    collect("merge", ModelRef::Merge, mergeNames);
    collect("ablation", ModelRef::Ablation, ablationNames);
    if (const Value *evals = ctx.root.get("eval"); evals && evals->kind == Value::Array)
      for (const auto &e : evals->items)
        if (const Value *n = e->get("name"); n && n->kind == Value::String) {
          if (llvm::is_contained(evalNames, n->string))
            ctx.report(DiagCode::DuplicateName, n->range, "an eval named '" + n->string + "' already exists");
          evalNames.push_back(n->string);
        }
  }

  std::vector<std::string> modelNames(bool withInit) const {
    std::vector<std::string> out;
    for (const auto &[name, info] : names)
      out.push_back(name);
    if (withInit)
      out.push_back("init");
    return out;
  }

  /// Bind one reference string. `many`: a selector may stand for several variants.
  bool bind(const Value &v, bool many, bool allowInit, std::vector<ModelRef> &out) {
    const Expr *e = ctx.expr(v);
    if (!e)
      return false;
    const StringLocation &loc = v.location();
    auto at = [&](TextRange r) { return loc.range(r.begin, r.end); };
    if (e->kind != ExprKind::Ident && e->kind != ExprKind::Select) {
      ctx.report(DiagCode::BadValue, at(e->range),
                 "expected a model: a stage, merge or ablation name, optionally with a selector");
      return false;
    }
    const std::string &name = e->name;
    if (name == "init" && allowInit && e->kind == ExprKind::Ident) {
      out.push_back(ModelRef{});
      return true;
    }
    auto it = names.find(name);
    if (it == names.end()) {
      Diagnostic *d = ctx.report(DiagCode::UnknownRef, at(e->nameRange), "unknown model '" + name + "'");
      ctx.suggest(d, name, modelNames(allowInit), at(e->nameRange));
      return false;
    }
    ModelRef::Kind kind = it->second.first;
    if (kind != ModelRef::Stage) {
      if (e->kind == ExprKind::Select) {
        ctx.report(DiagCode::Selector, at(e->range), "'" + name + "' is not swept: it takes no selector");
        return false;
      }
      ModelRef ref;
      ref.kind = kind;
      const auto &list = kind == ModelRef::Merge ? mergeNames : ablationNames;
      ref.index = static_cast<unsigned>(llvm::find(list, name) - list.begin());
      out.push_back(ref);
      return true;
    }
    int stageIndex = recipe.stageIndex(name);
    if (stageIndex < 0)
      return false; // the stage itself is broken; reported there
    const StageSpec &stage = recipe.stages[stageIndex];
    std::vector<unsigned> chosen;
    if (e->kind == ExprKind::Ident) {
      if (stage.variants.size() > 1) {
        std::vector<std::string> axes;
        for (unsigned a : stage.axes)
          axes.push_back(recipe.axes[a].name);
        Diagnostic *d = ctx.report(
            DiagCode::UnqualifiedSweep, at(e->range),
            llvm::formatv("'{0}' has {1} variants (swept by {2}); select {3}", name, stage.variants.size(),
                          llvm::join(axes, ", "), many ? "them with '" + name + "[*]' or pick labels" : "one")
                .str());
        if (d) {
          DiagnosticEngine::addNote(*d, at(e->range), "e.g. '" + stage.variants.front().displayName + "'");
          if (many)
            DiagnosticEngine::addFixIt(*d, at(e->range), name + "[*]");
        }
        return false;
      }
      chosen.push_back(0);
    } else if (!selectVariants(v, *e, stage, chosen)) {
      return false;
    }
    if (!many && chosen.size() > 1) {
      ctx.report(DiagCode::UnqualifiedSweep, at(e->range),
                 llvm::formatv("'{0}' selects {1} variants where one model is needed; give a label for every "
                               "axis",
                               printSelection(*e), chosen.size())
                     .str());
      return false;
    }
    for (unsigned c : chosen) {
      ModelRef ref;
      ref.kind = ModelRef::Stage;
      ref.index = static_cast<unsigned>(stageIndex);
      ref.variant = c;
      out.push_back(ref);
    }
    return true;
  }

  static std::string printSelection(const Expr &e) {
    std::string s = e.name + "[";
    if (e.selectAll)
      return s + "*]";
    for (size_t i = 0; i < e.selectors.size(); ++i)
      s += (i ? "," : "") + e.selectors[i].axis + "=" + e.selectors[i].label;
    return s + "]";
  }

  bool selectVariants(const Value &v, const Expr &e, const StageSpec &stage, std::vector<unsigned> &chosen) {
    const StringLocation &loc = v.location();
    auto at = [&](TextRange r) { return loc.range(r.begin, r.end); };
    VariantLabels wanted;
    bool ok = true;
    for (const Expr::SelectorItem &item : e.selectors) {
      std::vector<std::string> axisNames;
      int axis = -1;
      for (unsigned a : stage.axes) {
        axisNames.push_back(recipe.axes[a].name);
        if (recipe.axes[a].name == item.axis)
          axis = static_cast<int>(a);
      }
      if (axis < 0) {
        Diagnostic *d = ctx.report(
            DiagCode::Selector, at(item.axisRange),
            axisNames.empty() ? "'" + e.name + "' is not swept: it has no axis '" + item.axis + "'"
                              : "'" + e.name + "' is not swept by '" + item.axis + "'; its axes: " +
                                    llvm::join(axisNames, ", "));
        ctx.suggest(d, item.axis, axisNames, at(item.axisRange));
        ok = false;
        continue;
      }
      const std::vector<std::string> &labels = recipe.axes[axis].labels;
      auto label = llvm::find(labels, item.label);
      if (label == labels.end()) {
        Diagnostic *d = ctx.report(DiagCode::Selector, at(item.labelRange),
                                   "axis '" + item.axis + "' has no label '" + item.label + "'; its labels: " +
                                       llvm::join(labels, ", "));
        ctx.suggest(d, item.label, labels, at(item.labelRange));
        ok = false;
        continue;
      }
      wanted[static_cast<unsigned>(axis)] = static_cast<unsigned>(label - labels.begin());
    }
    if (!ok)
      return false;
    for (size_t i = 0; i < stage.variants.size(); ++i) {
      bool match = llvm::all_of(wanted, [&](const auto &w) { return stage.variants[i].labels.at(w.first) == w.second; });
      if (match)
        chosen.push_back(static_cast<unsigned>(i));
    }
    return true;
  }

  /// A list or a single string of references.
  bool bindAll(const Value &v, bool allowInit, std::vector<ModelRef> &out) {
    if (v.kind == Value::String)
      return bind(v, /*many=*/true, allowInit, out);
    bool ok = true;
    for (const auto &item : v.items)
      ok &= item->kind == Value::String && bind(*item, /*many=*/true, allowInit, out);
    return ok;
  }

  /// Settings that must agree for a merge to mean something: RoPE base and sequence length.
  struct Shape {
    double ropeTheta = 0;
    uint64_t seqLen = 0;
    std::string name;
  };
  std::optional<Shape> shapeOf(const ModelRef &ref) const {
    if (ref.kind == ModelRef::Stage) {
      const StageVariant &v = recipe.stages[ref.index].variants[ref.variant];
      return Shape{v.ropeTheta, v.seqLen, v.displayName};
    }
    if (ref.kind == ModelRef::Init)
      return Shape{recipe.model.ropeTheta, recipe.model.seqLen, "init"};
    return std::nullopt;
  }

  void checkMerge(const Value &m) {
    mergeTables.push_back(&m);
    MergeSpec spec;
    if (const Value *n = m.get("name"))
      spec.name = n->string;
    if (const Value *method = m.get("method")) // the schema checked the name
      spec.method = plan::enumFromName<plan::MergeMethod>(method->string).value_or(plan::MergeMethod::Linear);
    spec.seed = recipe.seed;
    bool ok = true;
    if (const Value *of = m.get("of"))
      ok &= bindAll(*of, /*allowInit=*/true, spec.models);
    const Value *baseValue = m.get("base");
    if (baseValue && baseValue->kind == Value::String) {
      std::vector<ModelRef> base;
      if (llvm::StringRef(baseValue->string).startswith("hf:")) {
        ModelRef ref;
        ref.hfPath = baseValue->string.substr(3);
        spec.base = ref;
      } else if (bind(*baseValue, /*many=*/false, /*allowInit=*/true, base)) {
        spec.base = base.front();
      } else {
        ok = false;
      }
    }
    const Value *of = m.get("of");
    auto need = [&](bool cond, llvm::SMRange range, const std::string &message) {
      if (!cond) {
        ctx.report(DiagCode::BadValue, range, message);
        ok = false;
      }
    };
    llvm::SMRange where = m.get("method") ? m.get("method")->range : m.range;
    using plan::MergeMethod;
    const std::string method = plan::enumName(spec.method).str();
    bool dare = spec.method == MergeMethod::DareLinear || spec.method == MergeMethod::DareTies;
    bool taskVectors = spec.method == MergeMethod::TaskArithmetic || spec.method == MergeMethod::Ties || dare;
    if (ok && of) {
      need(!spec.models.empty(), of->range, "a merge needs at least one model");
      need(spec.method != MergeMethod::Slerp || spec.models.size() == 2, of->range,
           llvm::formatv("slerp merges exactly two models, not {0}", spec.models.size()).str());
      need(!taskVectors || spec.base, where, "'" + method + "' merges task vectors: it needs a 'base'");
      need(taskVectors || !spec.base, baseValue ? baseValue->range : where,
           "'" + method + "' averages the models themselves: it takes no 'base'");
    }
    if (const Value *w = m.get("weights"); w && w->kind == Value::Array) {
      for (const auto &x : w->items)
        spec.weights.push_back(x->number());
      need(!ok || spec.weights.size() == spec.models.size(), w->range,
           llvm::formatv("{0} weights for {1} models", spec.weights.size(), spec.models.size()).str());
    }
    if (const Value *d = m.get("density"); d && d->isNumber()) {
      spec.density = d->number();
      need(spec.density > 0 && spec.density <= 1, d->range, "density must be in (0, 1]");
      need(taskVectors && spec.method != MergeMethod::TaskArithmetic, d->range,
           "density applies to ties and dare_* merges");
    } else if (spec.method == MergeMethod::Ties || dare) {
      need(false, where, "'" + method + "' needs a 'density' (the fraction of each task vector kept)");
    }
    if (const Value *t = m.get("t"); t && t->isNumber()) {
      spec.t = t->number();
      need(t->number() >= 0 && t->number() <= 1, t->range, "t must be in [0, 1]");
      need(spec.method == MergeMethod::Slerp, t->range, "t applies to slerp merges");
    }
    if (const Value *n = m.get("normalize"); n && n->kind == Value::Bool)
      spec.normalize = n->boolean;
    if (const Value *s = m.get("seed"); s && s->kind == Value::Integer)
      spec.seed = static_cast<uint64_t>(s->integer);
    if (ok)
      warnConfigMismatch(spec, of ? of->range : m.range);
    recipe.merges.push_back(std::move(spec));
  }

  void warnConfigMismatch(const MergeSpec &spec, llvm::SMRange at) {
    std::vector<ModelRef> all = spec.models;
    if (spec.base && spec.base->hfPath.empty())
      all.push_back(*spec.base);
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
      if (s->ropeTheta != first->ropeTheta)
        what = llvm::formatv("rope_theta {0} vs {1}", shortNumber(first->ropeTheta), shortNumber(s->ropeTheta));
      else if (s->seqLen != first->seqLen)
        what = llvm::formatv("seq_len {0} vs {1}", first->seqLen, s->seqLen);
      if (what.empty())
        continue;
      ctx.report(DiagCode::MergeConfig, at,
                 llvm::formatv("merging models whose configs differ: '{0}' and '{1}' ({2}); the merged model "
                               "takes {3}'s config",
                               first->name, s->name, what, spec.base ? "the base" : "the first model")
                     .str());
      return;
    }
  }

  void checkMergeCycles() {
    // A merge may use another merge; follow those uses looking for a way back.
    for (size_t start = 0; start < recipe.merges.size(); ++start) {
      std::vector<size_t> stack{start};
      std::set<size_t> seen;
      while (!stack.empty()) {
        size_t cur = stack.back();
        stack.pop_back();
        for (const ModelRef &r : recipe.merges[cur].models) {
          if (r.kind != ModelRef::Merge)
            continue;
          if (r.index == start) {
            ctx.report(DiagCode::Cycle, mergeTables[start]->range,
                       "merge '" + recipe.merges[start].name + "' depends on itself through its models");
            stack.clear();
            break;
          }
          if (seen.insert(r.index).second)
            stack.push_back(r.index);
        }
      }
    }
  }

  void checkAblation(const Value &a) {
    AblationSpec spec;
    if (const Value *n = a.get("name"))
      spec.name = n->string;
    std::vector<ModelRef> from;
    const Value *fromValue = a.get("from");
    if (fromValue && fromValue->kind == Value::String && bind(*fromValue, false, false, from))
      spec.from = from.front();
    const StageVariant *seed = spec.from.kind == ModelRef::Stage && !from.empty()
                                   ? &recipe.stages[spec.from.index].variants[spec.from.variant]
                                   : nullptr;
    std::vector<std::string> streamNames;
    for (const StreamSpec &s : recipe.streams)
      streamNames.push_back(s.name);
    if (const Value *units = a.get("units"); units && units->kind == Value::Table) {
      if (const Value *s = units->get("stream"); s && s->kind == Value::String) {
        spec.stream = s->string;
        if (!recipe.stream(s->string))
          ctx.suggest(ctx.report(DiagCode::UnknownRef, s->range, "unknown stream '" + s->string + "'"), s->string,
                      streamNames, s->location().range(0, s->string.size()));
      }
      const Value *split = units->get("split");
      const Value *by = units->get("by");
      if ((split != nullptr) == (by != nullptr))
        ctx.report(DiagCode::BadValue, units->range,
                   "units need either 'split' (K equal random units) or 'by' (a metadata column)");
      if (split && split->kind == Value::Integer) {
        if (split->integer < 2)
          ctx.report(DiagCode::BadValue, split->range, "split needs at least 2 units");
        else
          spec.split = static_cast<uint64_t>(split->integer);
      }
      if (by && by->kind == Value::String) {
        spec.by = by->string;
        spec.byRange = by->location().range(0, by->string.size());
      }
    }
    if (const Value *train = a.get("train"); train && train->kind == Value::Table)
      checkAblationTrain(*train, spec, seed, streamNames);
    if (const Value *combine = a.get("combine"))
      checkCombine(*combine, spec);
    recipe.ablations.push_back(std::move(spec));
  }

  void checkAblationTrain(const Value &train, AblationSpec &spec, const StageVariant *seed,
                          std::vector<std::string> streamNames) {
    spec.seqLen = seed ? seed->seqLen : recipe.model.seqLen;
    spec.batchSequences = seed ? seed->batchSequences : 0;
    if (const Value *b = train.get("batch")) {
      if (auto q = ctx.quantity(*b, {Dim::Tokens, Dim::Sequences}, Dim::Number, "a batch such as \"512 sequences\"")) {
        if (auto n = ctx.count(*b, *q, "a batch")) {
          if (q->dim == Dim::Sequences)
            spec.batchSequences = *n;
          else if (*n % spec.seqLen)
            ctx.report(DiagCode::BatchShape, b->range,
                       llvm::formatv("a batch of {0} tokens is not a whole number of {1}-token sequences",
                                     formatCount(*n), spec.seqLen)
                           .str());
          else
            spec.batchSequences = *n / spec.seqLen;
        }
      }
    }
    uint64_t perStep = spec.batchSequences * spec.seqLen;
    if (const Value *t = train.get("tokens")) {
      if (auto q = ctx.quantity(*t, {Dim::Tokens}, Dim::Tokens, "a number of tokens such as \"100M\""))
        if (auto n = ctx.count(*t, *q, "tokens"))
          spec.tokens = perStep ? (*n + perStep - 1) / perStep * perStep : *n;
    }
    if (const Value *mix = train.get("mix"); mix && mix->kind == Value::String) {
      if (const MixtureSpec *m = ctx.mixture(*mix)) {
        streamNames.push_back("unit");
        bool ok = true;
        for (const auto &[name, range] : streamRefs(*m)) {
          if (name == "unit" || recipe.stream(name))
            continue;
          llvm::SMRange r = mix->location().range(range.begin, range.end);
          ctx.suggest(ctx.report(DiagCode::UnknownRef, r, "unknown stream '" + name + "'"), name, streamNames, r);
          ok = false;
        }
        if (ok && spec.tokens) {
          ExprDiags list;
          if (auto resolved = resolveMixture(*m, static_cast<double>(spec.tokens), list))
            spec.mixture = std::move(*resolved);
          ctx.reportExpr(*mix, list);
        }
      }
    }
    if (const Value *lr = train.get("lr"); lr && lr->kind == Value::String && spec.tokens) {
      if (const schedule::ScheduleSpec *s = ctx.scheduleSpec(*lr)) {
        ExprDiags list;
        if (auto resolved = schedule::resolve(*s, static_cast<double>(spec.tokens), list))
          spec.lr = std::move(resolved->Schedule);
        ctx.reportExpr(*lr, list);
      }
    }
  }

  void checkCombine(const Value &combine, AblationSpec &spec) {
    if (combine.kind == Value::Array) {
      for (const auto &group : combine.items) {
        if (group->kind != Value::Array || group->items.empty()) {
          ctx.report(DiagCode::BadValue, group->range, "each combination is a non-empty list of units");
          continue;
        }
        std::vector<std::string> units;
        for (const auto &u : group->items)
          units.push_back(u->kind == Value::Integer ? std::to_string(u->integer) : u->string);
        spec.combinations.push_back(std::move(units));
      }
      return;
    }
    const Expr *e = ctx.expr(combine);
    if (!e)
      return;
    const StringLocation &loc = combine.location();
    if (e->kind != ExprKind::Call || e->name != "subsets") {
      Diagnostic *d = ctx.report(DiagCode::UnknownFunction, loc.range(e->range.begin, e->range.end),
                                 "combine is \"subsets(max = K)\" or a list of unit lists");
      if (e->kind == ExprKind::Call)
        ctx.suggest(d, e->name, {"subsets"}, loc.range(e->nameRange.begin, e->nameRange.end));
      return;
    }
    if (e->operands.size() != 1 || e->argNames[0] != "max" || e->operand(0).kind != ExprKind::Number ||
        !e->operand(0).number.asCount() || *e->operand(0).number.asCount() == 0) {
      ctx.report(DiagCode::BadArgument, loc.range(e->range.begin, e->range.end),
                 "subsets takes one argument: max = K, a whole number above 0");
      return;
    }
    spec.maxSubset = *e->operand(0).number.asCount();
    if (spec.split && spec.maxSubset > spec.split)
      ctx.report(DiagCode::BadArgument, loc.range(e->operand(0).range.begin, e->operand(0).range.end),
                 llvm::formatv("subsets of up to {0} units, but there are only {1}", spec.maxSubset, spec.split)
                     .str());
  }

  void checkEval(const Value &e) {
    EvalSpec spec;
    if (const Value *n = e.get("name"))
      spec.name = n->string;
    std::vector<std::string> streamNames;
    for (const StreamSpec &s : recipe.streams)
      streamNames.push_back(s.name);
    if (const Value *streams = e.get("streams"); streams && streams->kind == Value::Array)
      for (const auto &item : streams->items) {
        auto [name, split] = llvm::StringRef(item->string).split('.');
        llvm::SMRange nameRange = item->location().range(0, name.size());
        const StreamSpec *s = recipe.stream(name);
        if (!s) {
          ctx.suggest(ctx.report(DiagCode::UnknownRef, nameRange, "unknown stream '" + name.str() + "'"), name,
                      streamNames, nameRange);
          continue;
        }
        if (split != "val" && split != "train") {
          llvm::SMRange r = item->location().range(name.size() + 1, item->string.size());
          Diagnostic *d = ctx.report(DiagCode::BadValue, split.empty() ? item->range : r,
                                     "name a split: '" + name.str() + ".val' or '" + name.str() + ".train'");
          if (!split.empty())
            ctx.suggest(d, split, {"val", "train"}, r);
          continue;
        }
        if (split == "val" && s->val == 0) {
          ctx.report(DiagCode::BadValue, item->range,
                     "stream '" + name.str() + "' holds out no documents: set val = \"1%\" on '" + s->root + "'");
          continue;
        }
        spec.splits.push_back({name.str(), split == "val" ? plan::SplitKind::Val : plan::SplitKind::Train});
      }
    if (const Value *m = e.get("max_tokens"))
      if (auto q = ctx.quantity(*m, {Dim::Tokens}, Dim::Tokens, "a number of tokens such as \"5M\""))
        spec.maxTokens = ctx.count(*m, *q, "max_tokens").value_or(0);
    if (const Value *d = e.get("during"); d && d->kind == Value::Table)
      if (const Value *every = d->get("every"))
        if (auto q = ctx.quantity(*every, {Dim::Tokens}, Dim::Tokens, "a number of tokens such as \"100M\""))
          spec.duringEvery = ctx.count(*every, *q, "an eval interval").value_or(0);
    if (const Value *on = e.get("on"))
      bindAll(*on, /*allowInit=*/true, spec.on);
    recipe.evals.push_back(std::move(spec));
  }
};

} // namespace

void sema::checkModelUsers(Context &ctx) { ModelUserChecker(ctx).run(); }
