//===- Sema.cpp - the semantic driver, the model and the streams ----------===//
#include "mixtape/compiler/Sema.h"

#include "SemaContext.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

#include <cstdio>

using namespace mixtape;
using namespace mixtape::sema;

std::string sema::shortNumber(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

const StreamSpec *CheckedRecipe::stream(llvm::StringRef name) const {
  for (const StreamSpec &s : streams)
    if (s.name == name)
      return &s;
  return nullptr;
}

int CheckedRecipe::stageIndex(llvm::StringRef name) const {
  for (size_t i = 0; i < stages.size(); ++i)
    if (stages[i].name == name)
      return static_cast<int>(i);
  return -1;
}

//===----------------------------------------------------------------------===//
// Context
//===----------------------------------------------------------------------===//

Diagnostic *Context::report(DiagCode code, llvm::SMRange range, const std::string &message) {
  if (!reported.emplace(code, range.Start.getPointer(), message).second)
    return nullptr;
  return &diags.report(code, range, message);
}

void Context::reportExpr(const Value &v, const ExprDiags &list) {
  const StringLocation &loc = v.location();
  for (const ExprDiag &e : list) {
    Diagnostic *d = report(e.code, loc.range(e.range.begin, e.range.end), e.message);
    if (!d)
      continue;
    for (const ExprDiag::Note &n : e.notes)
      DiagnosticEngine::addNote(*d, loc.range(n.range.begin, n.range.end), n.message);
    if (!e.fixit.empty())
      DiagnosticEngine::addFixIt(*d, loc.range(e.range.begin, e.range.end), e.fixit);
  }
}

void Context::suggest(Diagnostic *d, llvm::StringRef word, const std::vector<std::string> &candidates,
                      llvm::SMRange replace) {
  if (d)
    DiagnosticEngine::suggest(*d, word, candidates, replace);
}

const Expr *Context::expr(const Value &v) {
  auto it = exprs.find(&v);
  if (it == exprs.end()) {
    it = exprs.emplace(&v, parseExpr(v.string)).first;
    reportExpr(v, it->second.errors);
  }
  return it->second.expr.get();
}

std::optional<Quantity> Context::quantity(const Value &v, std::initializer_list<Dim> allowed, Dim bare,
                                          llvm::StringRef what) {
  Quantity q;
  if (v.kind == Value::Integer || v.kind == Value::Float) {
    q.value = v.number();
    q.dim = bare;
  } else if (v.kind == Value::String) {
    const Expr *e = expr(v);
    if (!e)
      return std::nullopt;
    if (e->kind != ExprKind::Number) {
      report(DiagCode::BadValue, v.location().range(e->range.begin, e->range.end),
             llvm::formatv("expected {0}", what).str());
      return std::nullopt;
    }
    q = e->number;
    if (q.dim == Dim::Number)
      q.dim = bare;
  } else {
    return std::nullopt; // a TOML type the key does not take: the schema pass reported it
  }
  if (!llvm::is_contained(allowed, q.dim)) {
    std::string expected;
    for (Dim d : allowed)
      if (d != Dim::Number)
        expected += (expected.empty() ? "" : " or ") + dimName(d).str();
    if (q.dim == Dim::Number)
      report(DiagCode::Units, v.range,
             llvm::formatv("'{0}' needs a unit: {1}", v.kind == Value::String ? v.string : shortNumber(q.value),
                           expected)
                 .str());
    else
      report(DiagCode::Units, v.range,
             llvm::formatv("expected {0}, found {1}", expected, dimName(q.dim)).str());
    return std::nullopt;
  }
  return q;
}

std::optional<uint64_t> Context::count(const Value &v, const Quantity &q, llvm::StringRef what) {
  std::optional<uint64_t> n = q.asCount();
  if (!n || *n == 0) {
    report(DiagCode::BadValue, v.range,
           llvm::formatv("{0} must be a whole number above 0, not {1}", what, shortNumber(q.value)).str());
    return std::nullopt;
  }
  return n;
}

const MixtureSpec *Context::mixture(const Value &v) {
  auto it = mixtures.find(&v);
  if (it == mixtures.end()) {
    std::optional<MixtureSpec> spec;
    if (const Expr *e = expr(v)) {
      ExprDiags list;
      spec = interpretMixture(*e, list);
      reportExpr(v, list);
    }
    it = mixtures.emplace(&v, std::move(spec)).first;
  }
  return it->second ? &*it->second : nullptr;
}

const schedule::ScheduleSpec *Context::scheduleSpec(const Value &v) {
  auto it = schedules.find(&v);
  if (it == schedules.end()) {
    std::optional<schedule::ScheduleSpec> spec;
    if (const Expr *e = expr(v)) {
      ExprDiags list;
      spec = schedule::interpretSchedule(*e, list);
      reportExpr(v, list);
    }
    it = schedules.emplace(&v, std::move(spec)).first;
  }
  return it->second ? &*it->second : nullptr;
}

//===----------------------------------------------------------------------===//
// [model]
//===----------------------------------------------------------------------===//

static std::optional<uint64_t> positiveInt(Context &ctx, const Value *v, llvm::StringRef what) {
  if (!v || v->kind != Value::Integer)
    return std::nullopt;
  if (v->integer <= 0) {
    ctx.report(DiagCode::BadValue, v->range, llvm::formatv("{0} must be positive", what).str());
    return std::nullopt;
  }
  return static_cast<uint64_t>(v->integer);
}

static std::optional<uint64_t> seqLen(Context &ctx, const Value *v) {
  if (!v)
    return std::nullopt;
  auto q = ctx.quantity(*v, {Dim::Number, Dim::Tokens}, Dim::Number, "a sequence length such as 4096 or \"16Ki\"");
  if (!q)
    return std::nullopt;
  return ctx.count(*v, *q, "a sequence length");
}

/// A `tokenizer` value: "bytes" or "hf:PATH"; reports anything else.
static std::optional<std::string> tokenizerRef(Context &ctx, const Value &v) {
  if (v.kind != Value::String)
    return std::nullopt;
  llvm::StringRef tok = v.string;
  if (tok != "bytes" && !(tok.startswith("hf:") && tok.size() > 3)) {
    ctx.suggest(ctx.report(DiagCode::BadValue, v.range, "tokenizer must be \"bytes\" or \"hf:PATH\" (a tokenizer.json)"),
                tok, {"bytes"}, v.location().range(0, tok.size()));
    return std::nullopt;
  }
  return tok.str();
}

/// "hf:a/./b.json" and "hf:a/b.json" name the same tokenizer.
static std::string normalTokenizer(llvm::StringRef ref) {
  if (!ref.consume_front("hf:"))
    return ref.str();
  llvm::SmallString<256> path(ref);
  llvm::sys::path::remove_dots(path, /*remove_dot_dot=*/true);
  return "hf:" + std::string(path);
}

void sema::checkModel(Context &ctx) {
  ModelSpec &m = ctx.recipe.model;
  const Value *model = ctx.root.get("model");
  if (!model || model->kind != Value::Table) {
    ctx.report(DiagCode::MissingKey, ctx.root.range, "the recipe needs a [model] section");
    return;
  }
  if (const Value *f = model->get("family")) {
    if (f->string == "gpt2")
      m.family = Family::GPT2;
    else if (f->string == "gpt_neox")
      m.family = Family::GPTNeoX;
  }
  if (const Value *v = model->get("init"); v && v->kind == Value::String) {
    llvm::StringRef init = v->string;
    if (init != "random" && !(init.startswith("hf:") && init.size() > 3))
      ctx.suggest(ctx.report(DiagCode::BadValue, v->range,
                             "init must be \"random\" or \"hf:PATH\" (a Hugging Face checkpoint directory)"),
                  init, {"random"}, v->location().range(0, init.size()));
    m.init = init.str();
  }
  if (const Value *v = model->get("tokenizer"))
    if (std::optional<std::string> tok = tokenizerRef(ctx, *v))
      m.tokenizer = *tok;
  m.layers = positiveInt(ctx, model->get("layers"), "layers").value_or(0);
  m.dModel = positiveInt(ctx, model->get("d_model"), "d_model").value_or(0);
  m.heads = positiveInt(ctx, model->get("heads"), "heads").value_or(0);
  m.kvHeads = positiveInt(ctx, model->get("kv_heads"), "kv_heads").value_or(m.heads);
  m.ffn = positiveInt(ctx, model->get("ffn"), "ffn").value_or(0);
  m.vocab = positiveInt(ctx, model->get("vocab"), "vocab").value_or(0);
  for (const char *key : {"layers", "d_model", "heads", "kv_heads", "ffn", "vocab", "max_positions", "rotary_pct"})
    if (const Value *v = model->get(key))
      m.writtenSizes.emplace_back(key, v->range);
  if (m.init == "random")
    for (llvm::StringRef key : {"layers", "d_model", "heads"})
      if (!model->get(key))
        ctx.report(DiagCode::MissingKey, model->range,
                   llvm::formatv("a model with init = \"random\" needs '{0}'", key).str());
  // Where a model setting is written, or the [model] header when it is a default.
  auto at = [&](llvm::StringRef key) { return model->get(key) ? model->get(key)->range : model->range; };
  if (m.heads && m.dModel && m.dModel % m.heads)
    ctx.report(DiagCode::BadValue, at("heads"),
               llvm::formatv("d_model {0} is not divisible by heads {1}", m.dModel, m.heads).str());
  if (m.heads && m.kvHeads && m.heads % m.kvHeads)
    ctx.report(DiagCode::BadValue, at("kv_heads"),
               llvm::formatv("heads {0} is not a multiple of kv_heads {1}", m.heads, m.kvHeads).str());
  if (m.family == Family::GPT2 && m.kvHeads != m.heads)
    ctx.report(DiagCode::BadValue, at("kv_heads"),
               "gpt2 has no grouped-query attention: kv_heads must equal heads");
  if (m.ffn == 0 && m.dModel)
    m.ffn = m.family == Family::Llama ? (m.dModel * 8 / 3 + 63) / 64 * 64 : 4 * m.dModel;

  m.seqLen = seqLen(ctx, model->get("seq_len")).value_or(defaults::SeqLen);
  m.maxPositions = seqLen(ctx, model->get("max_positions")).value_or(m.seqLen);
  if (const Value *v = model->get("max_positions"); v && m.family != Family::GPT2)
    ctx.report(DiagCode::BadValue, v->range,
               "max_positions is gpt2's learned position table; this family uses RoPE (rope_theta)");
  if (m.family == Family::GPT2 && m.seqLen > m.maxPositions)
    ctx.report(DiagCode::Positions, at("seq_len"),
               llvm::formatv("seq_len {0} is beyond the learned position table of {1}", m.seqLen, m.maxPositions)
                   .str());
  if (const Value *v = model->get("rope_theta")) {
    if (m.family == Family::GPT2)
      ctx.report(DiagCode::BadValue, v->range, "gpt2 uses learned positions: rope_theta does not apply");
    else if (v->isNumber() && v->number() <= 0)
      ctx.report(DiagCode::BadValue, v->range, "rope_theta must be positive");
    else if (v->isNumber()) {
      m.ropeTheta = v->number();
      m.ropeThetaWritten = true;
    }
  }
  if (const Value *v = model->get("rotary_pct")) {
    if (m.family != Family::GPTNeoX)
      ctx.report(DiagCode::BadValue, v->range, "rotary_pct applies to gpt_neox only");
    else if (v->isNumber() && (v->number() <= 0 || v->number() > 1))
      ctx.report(DiagCode::BadValue, v->range, "rotary_pct must be in (0, 1]");
    else if (v->isNumber())
      m.rotaryPct = v->number();
  }
  if (const Value *v = model->get("attention"); v && v->string == "within_document")
    m.attention = Attention::WithinDocument;
  if (const Value *v = model->get("pretrained_on"); v && v->kind == Value::Array)
    for (const auto &item : v->items)
      m.pretrainedOn.push_back(item->string); // checked against the streams in checkStreams
}

//===----------------------------------------------------------------------===//
// [streams.NAME]
//===----------------------------------------------------------------------===//

static std::optional<plan::UntieKnots> untieKnots(Context &ctx, const Value &v) {
  const Expr *e = ctx.expr(v);
  if (!e)
    return std::nullopt;
  const StringLocation &loc = v.location();
  auto at = [&](const TextRange &r) { return loc.range(r.begin, r.end); };
  if (e->kind != ExprKind::Call || e->name != "untie_knots") {
    Diagnostic *d = ctx.report(DiagCode::UnknownFunction, at(e->nameRange.end ? e->nameRange : e->range),
                               "unknown transform; the transforms are: untie_knots");
    if (e->kind == ExprKind::Call || e->kind == ExprKind::Ident)
      ctx.suggest(d, e->name, {"untie_knots"}, at(e->nameRange));
    return std::nullopt;
  }
  plan::UntieKnots t;
  bool sawChunks = false;
  for (size_t i = 0; i < e->operands.size(); ++i) {
    const std::string &name = e->argNames[i];
    const Expr &arg = e->operand(i);
    if (name == "chunks") {
      sawChunks = true;
      if (arg.kind != ExprKind::Dict) {
        ctx.report(DiagCode::BadArgument, at(arg.range),
                   "chunks must map chunk counts to probabilities: {1: 0.7, 3: 0.3}");
        return std::nullopt;
      }
      double sum = 0;
      for (size_t k = 0; k + 1 < arg.operands.size(); k += 2) {
        const Expr &key = arg.operand(k), &p = arg.operand(k + 1);
        std::optional<uint64_t> n = key.kind == ExprKind::Number ? key.number.asCount() : std::nullopt;
        if (!n || *n == 0 || key.number.dim != Dim::Number) {
          ctx.report(DiagCode::BadArgument, at(key.range), "a chunk count must be a whole number above 0");
          return std::nullopt;
        }
        if (p.kind != ExprKind::Number || p.number.dim != Dim::Number || p.number.value <= 0 ||
            p.number.value > 1) {
          ctx.report(DiagCode::BadArgument, at(p.range), "a chunk probability must be in (0, 1]");
          return std::nullopt;
        }
        if (!t.Chunks.emplace(*n, p.number.value).second) {
          ctx.report(DiagCode::BadArgument, at(key.range), "chunk count " + std::to_string(*n) + " is given twice");
          return std::nullopt;
        }
        sum += p.number.value;
      }
      if (t.Chunks.empty() || std::abs(sum - 1) > 1e-9) {
        ctx.report(DiagCode::BadArgument, at(arg.range),
                   llvm::formatv("chunk probabilities sum to {0}, not 1", shortNumber(sum)).str());
        return std::nullopt;
      }
    } else if (name == "keep_order") {
      if (arg.kind != ExprKind::Bool) {
        ctx.report(DiagCode::BadArgument, at(arg.range), "keep_order must be true or false");
        return std::nullopt;
      }
      t.KeepOrder = arg.boolean;
    } else {
      TextRange r = name.empty() ? arg.range : e->argNameRanges[i];
      Diagnostic *d = ctx.report(DiagCode::BadArgument, at(r),
                                 name.empty() ? "untie_knots takes named arguments: chunks, keep_order"
                                              : "untie_knots has no argument '" + name + "'");
      if (!name.empty())
        ctx.suggest(d, name, {"chunks", "keep_order"}, at(r));
      return std::nullopt;
    }
  }
  if (!sawChunks) {
    ctx.report(DiagCode::BadArgument, at(e->range), "untie_knots needs chunks = {count: probability, ...}");
    return std::nullopt;
  }
  return t;
}

/// Where a stream says what it derives from.
static llvm::SMRange fromRange(const Field *stream) {
  const Value *from = stream->value->get("from");
  return from ? from->range : stream->keyRange;
}

void sema::checkStreams(Context &ctx) {
  const Value *streams = ctx.root.get("streams");
  if (!streams || streams->kind != Value::Table)
    return;
  std::vector<std::string> names;
  for (const Field &f : streams->fields)
    names.push_back(f.key);
  std::map<std::string, const Field *> byName;
  for (const Field &f : streams->fields) {
    byName[f.key] = &f;
    if (f.value->kind != Value::Table)
      continue;
    const Value &s = *f.value;
    StreamSpec spec;
    spec.name = f.key;
    if (const Value *v = s.get("shards"))
      spec.shards = v->string;
    // The schema checked both names.
    if (const Value *v = s.get("format"))
      spec.format = plan::enumFromName<plan::ShardFormat>(v->string).value_or(plan::ShardFormat::Auto);
    if (const Value *v = s.get("eod"))
      spec.eod = plan::enumFromName<plan::EodMode>(v->string).value_or(plan::EodMode::Auto);
    const Value *from = s.get("from");
    if (from)
      spec.parent = from->string;
    for (const char *key : {"tokenizer", "eod"})
      if (const Value *v = s.get(key); v && from)
        ctx.report(DiagCode::BadValue, v->range,
                   llvm::formatv("a derived stream reads its parent's datasets: set '{0}' on the root stream", key)
                       .str());
    if (const Value *v = s.get("tokenizer")) {
      if (std::optional<std::string> tok = tokenizerRef(ctx, *v)) {
        spec.tokenizer = *tok;
        // The model embeds the ids the data holds: one tokenizer for both.
        const Value *model = ctx.root.get("model");
        const Value *modelTok = model ? model->get("tokenizer") : nullptr;
        if (normalTokenizer(*tok) != normalTokenizer(ctx.recipe.model.tokenizer)) {
          Diagnostic *d = ctx.report(
              DiagCode::TokenizerMismatch, v->range,
              llvm::formatv("stream '{0}' was tokenized with '{1}' but the model's tokenizer is '{2}'{3}", f.key, *tok,
                            ctx.recipe.model.tokenizer, modelTok ? "" : " (the default)")
                  .str());
          if (d && modelTok)
            DiagnosticEngine::addNote(*d, modelTok->range, "the model's tokenizer is set here");
        }
      }
    }
    if (from && s.get("shards"))
      ctx.report(DiagCode::BadValue, s.get("shards")->range,
                 "a derived stream views its parent's documents: it cannot also have shards");
    if (!from && !s.get("shards"))
      ctx.report(DiagCode::MissingKey, f.keyRange,
                 llvm::formatv("stream '{0}' needs 'shards' (its data) or 'from' (a stream it derives from)",
                               f.key)
                     .str());
    if (from && s.get("val"))
      ctx.report(DiagCode::BadValue, s.get("val")->range,
                 "a derived stream shares its parent's val split; set 'val' on the root stream");
    if (from && !byName.count(from->string) && !llvm::is_contained(names, from->string))
      ctx.suggest(ctx.report(DiagCode::UnknownRef, from->range, "unknown stream '" + from->string + "'"),
                  from->string, names, from->location().range(0, from->string.size()));
    if (const Value *v = s.get("val")) {
      if (auto q = ctx.quantity(*v, {Dim::Fraction}, Dim::Fraction, "a fraction such as \"1%\"")) {
        if (q->value < 0 || q->value >= 1)
          ctx.report(DiagCode::BadValue, v->range, "val must be a fraction in [0, 1)");
        else
          spec.val = q->value;
      }
    }
    if (const Value *v = s.get("where")) {
      spec.whereRange = v->range;
      if (const Expr *e = ctx.expr(*v)) {
        ExprDiags list;
        spec.where = interpretPredicate(*e, list);
        ctx.reportExpr(*v, list);
      }
    }
    if (const Value *v = s.get("transform"))
      spec.transform = untieKnots(ctx, *v);
    ctx.recipe.streams.push_back(std::move(spec));
  }
  // Roots, derivation cycles (reported once, at the cycle's first stream in the file) and
  // inherited val splits.
  std::set<std::string> inCycle;
  for (StreamSpec &spec : ctx.recipe.streams) {
    std::vector<std::string> chain{spec.name};
    const StreamSpec *cur = &spec;
    while (cur && !cur->parent.empty()) {
      if (llvm::is_contained(chain, cur->parent)) {
        if (cur->parent == spec.name && inCycle.insert(spec.name).second) {
          inCycle.insert(chain.begin(), chain.end());
          ctx.report(DiagCode::Cycle, fromRange(byName[spec.name]),
                     "stream '" + spec.name + "' derives from itself: " + llvm::join(chain, " -> ") + " -> " +
                         cur->parent);
        }
        cur = nullptr;
        break;
      }
      chain.push_back(cur->parent);
      cur = ctx.recipe.stream(cur->parent);
    }
    if (cur) {
      spec.root = cur->name;
      spec.val = cur->val;
    }
  }
  for (const std::string &name : ctx.recipe.model.pretrainedOn)
    if (!ctx.recipe.stream(name)) {
      const Value *list = ctx.root.get("model")->get("pretrained_on");
      ctx.suggest(ctx.report(DiagCode::UnknownRef, list->range, "unknown stream '" + name + "'"), name, names,
                  list->range);
    }
}

std::unique_ptr<CheckedRecipe> mixtape::checkRecipe(const Value &root, DiagnosticEngine &diags) {
  // Warnings a recipe silences for itself apply before anything is reported.
  if (const Value *lint = root.get("lint"); lint && lint->kind == Value::Table)
    if (const Value *allow = lint->get("allow"); allow && allow->kind == Value::Array)
      for (const auto &item : allow->items) {
        if (item->kind != Value::String)
          continue;
        auto code = diagCodeFromName(item->string);
        if (!code || defaultSeverity(*code) != Severity::Warning) {
          std::vector<std::string> warnings;
          for (DiagCode c : allDiagCodes())
            if (defaultSeverity(c) == Severity::Warning)
              warnings.push_back(diagCodeName(c).str());
          Diagnostic &d = diags.report(DiagCode::BadValue, item->range,
                                       "'" + item->string + "' is not a warning code; only warnings can be allowed");
          if (auto m = closestMatch(item->string, warnings)) {
            DiagnosticEngine::addNote(d, item->range, "did you mean '" + *m + "'?");
            DiagnosticEngine::addFixIt(d, item->location().range(0, item->string.size()), *m);
          }
          continue;
        }
        diags.disable(*code);
      }
  checkSchema(root, diags);
  Context ctx(root, diags);
  if (const Value *recipe = root.get("recipe"); recipe && recipe->kind == Value::Table) {
    if (const Value *v = recipe->get("name"))
      ctx.recipe.name = v->string;
    if (const Value *v = recipe->get("seed"); v && v->kind == Value::Integer) {
      if (v->integer < 0)
        ctx.report(DiagCode::BadValue, v->range, "seed must not be negative");
      ctx.recipe.seed = static_cast<uint64_t>(v->integer);
    }
  } else if (!root.get("recipe")) {
    ctx.report(DiagCode::MissingKey, root.range, "the recipe needs a [recipe] section with a name");
  }
  checkModel(ctx);
  checkStreams(ctx);
  checkStages(ctx);
  checkModelUsers(ctx);
  if (diags.errorCount())
    return nullptr;
  return std::make_unique<CheckedRecipe>(std::move(ctx.recipe));
}

std::unique_ptr<CheckedRecipe> mixtape::loadRecipe(llvm::StringRef path, DiagnosticEngine &diags) {
  std::unique_ptr<Value> root = parseRecipeFile(path, diags);
  if (!root)
    return nullptr;
  std::unique_ptr<CheckedRecipe> recipe = checkRecipe(*root, diags);
  if (recipe) {
    llvm::SmallString<256> dir(llvm::sys::path::parent_path(path));
    if (dir.empty())
      dir = ".";
    recipe->baseDir = std::string(dir);
    recipe->file = path.str();
  }
  return recipe;
}
