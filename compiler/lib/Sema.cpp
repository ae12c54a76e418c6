//===- Sema.cpp - the semantic driver, the model and the streams ----------===//
#include "mixtape/compiler/Sema.h"

#include "SemaContext.h"

#include "mixtape/compiler/Quantity.h"
#include "mixtape/plan/Environment.h"
#include "mixtape/support/Format.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

#include <cstdio>
#include <set>

using namespace mixtape;
using namespace mixtape::sema;

std::string sema::shortNumber(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

const StreamSpec *CheckedRecipe::stream(llvm::StringRef name) const {
  for (const StreamSpec &s : Streams)
    if (s.Name == name)
      return &s;
  return nullptr;
}

bool CheckedRecipe::inModelTokenizer(llvm::StringRef name) const {
  const StreamSpec *s = stream(name);
  const StreamSpec *root = s ? stream(s->Root) : nullptr;
  return !root || root->Tokenizer.empty() || normalTokenizer(root->Tokenizer) == normalTokenizer(Model.Tokenizer);
}

const std::string &CheckedRecipe::tokenizerOf(llvm::StringRef name) const {
  const StreamSpec *s = stream(name);
  const StreamSpec *root = s ? stream(s->Root) : nullptr;
  return root && !root->Tokenizer.empty() ? root->Tokenizer : Model.Tokenizer;
}

std::vector<plan::Predicate> CheckedRecipe::filtersOf(llvm::StringRef name) const {
  std::vector<plan::Predicate> filters;
  // Sema has refused cycles of `from`; the bound only guards a hand-built recipe.
  const StreamSpec *s = stream(name);
  for (size_t depth = 0; s && depth < Streams.size(); ++depth, s = stream(s->Parent))
    if (s->Where)
      filters.push_back(*s->Where);
  return filters;
}

bool CheckedRecipe::mayShareDocuments(llvm::StringRef a, llvm::StringRef b) const {
  const StreamSpec *sa = stream(a), *sb = stream(b);
  return sa && sb && sa->Root == sb->Root && !plan::provablyDisjoint(filtersOf(a), filtersOf(b));
}

double ModelSpec::size(llvm::StringRef key) const {
  return key == "layers"          ? Layers
         : key == "d_model"       ? DModel
         : key == "heads"         ? Heads
         : key == "kv_heads"      ? KVHeads
         : key == "ffn"           ? Ffn
         : key == "vocab"         ? Vocab
         : key == "max_positions" ? MaxPositions
                                  : RotaryPct;
}

double ModelSpec::parameters() const {
  plan::Architecture m;
  m.Family = Family;
  m.Vocab = Vocab;
  return plan::parameterCount(withSizes(m));
}

plan::Architecture ModelSpec::withSizes(plan::Architecture a) const {
  a.Layers = Layers;
  a.DModel = DModel;
  a.Heads = Heads;
  a.KVHeads = KVHeads;
  a.Ffn = Ffn;
  return a;
}

std::string ModelSpec::sizeProblem() const {
  double n = parameters();
  if (n <= kMaxParameters)
    return "";
  return llvm::formatv("the model has {0} parameters (layers {1}, d_model {2}, ffn {3}{4}), more than the limit of "
                       "{5}: no machine holds it",
                       shortNumber(n), Layers, DModel, Ffn, Vocab ? ", vocab " + std::to_string(Vocab) : "",
                       shortNumber(kMaxParameters))
      .str();
}

llvm::SMRange ModelSpec::largestWrittenSize() const {
  llvm::SMRange at;
  double largest = -1;
  for (const auto &[key, range] : WrittenSizes)
    if (size(key) > largest) {
      largest = size(key);
      at = range;
    }
  return at;
}

int CheckedRecipe::stageIndex(llvm::StringRef name) const {
  for (size_t i = 0; i < Stages.size(); ++i)
    if (Stages[i].Name == name)
      return static_cast<int>(i);
  return -1;
}

//===----------------------------------------------------------------------===//
// Context
//===----------------------------------------------------------------------===//

Diagnostic *Context::report(DiagCode code, llvm::SMRange range, const std::string &message) {
  if (!Reported.emplace(code, range.Start.getPointer(), message).second)
    return nullptr;
  return &Diags.report(code, range, message);
}

void Context::reportExpr(const Value &v, const ExprDiags &list) {
  const StringLocation &loc = v.location();
  for (const ExprDiag &e : list) {
    Diagnostic *d = report(e.Code, loc.range(e.Range.Begin, e.Range.End), e.Message);
    if (!d)
      continue;
    for (const ExprDiag::Note &n : e.Notes)
      DiagnosticEngine::addNote(*d, loc.range(n.Range.Begin, n.Range.End), n.Message);
    if (!e.Fixit.empty())
      DiagnosticEngine::addFixIt(*d, loc.range(e.Range.Begin, e.Range.End), e.Fixit);
  }
}

void Context::suggest(Diagnostic *d, llvm::StringRef word, const std::vector<std::string> &candidates,
                      llvm::SMRange replace) {
  if (d)
    DiagnosticEngine::suggest(*d, word, candidates, replace);
}

const Expr *Context::expr(const Value &v) {
  auto it = Exprs.find(&v);
  if (it == Exprs.end()) {
    it = Exprs.emplace(&v, parseExpr(v.String)).first;
    reportExpr(v, it->second.Errors);
  }
  return it->second.Expr.get();
}

/// A number as the recipe wrote it: a TOML integer exactly (also beyond 2^53, where a
/// double has gaps), any other in the shortest form that reads back as the same double.
static std::string writtenNumber(const Value &v, const Quantity &q) {
  return v.Kind == ValueKind::Integer ? std::to_string(v.Integer) : formatNumber(q.Value);
}

std::optional<Quantity> Context::quantity(const Value &v, std::initializer_list<Dim> allowed, Dim bare,
                                          llvm::StringRef what) {
  Quantity q;
  if (v.Kind == ValueKind::Integer || v.Kind == ValueKind::Float) {
    q.Value = v.number();
    q.Dim = bare;
  } else if (v.Kind == ValueKind::String) {
    const Expr *e = expr(v);
    if (!e)
      return std::nullopt;
    if (e->Kind != ExprKind::Number) {
      report(DiagCode::BadValue, v.location().range(e->Range.Begin, e->Range.End),
             llvm::formatv("expected {0}", what).str());
      return std::nullopt;
    }
    q = e->Number;
    if (q.Dim == Dim::Number)
      q.Dim = bare;
  } else {
    return std::nullopt; // a TOML type the key does not take: the schema pass reported it
  }
  if (!llvm::is_contained(allowed, q.Dim)) {
    std::string expected;
    for (Dim d : allowed)
      if (d != Dim::Number)
        expected += (expected.empty() ? "" : " or ") + dimName(d).str();
    if (q.Dim == Dim::Number)
      report(DiagCode::Units, v.Range,
             llvm::formatv("'{0}' needs a unit: {1}", v.Kind == ValueKind::String ? v.String : writtenNumber(v, q),
                           expected)
                 .str());
    else
      report(DiagCode::Units, v.Range,
             llvm::formatv("expected {0}, found {1}", expected, dimName(q.Dim)).str());
    return std::nullopt;
  }
  return q;
}

std::optional<uint64_t> Context::count(const Value &v, const Quantity &q, llvm::StringRef what) {
  std::optional<uint64_t> n = q.asCount();
  if (!n || *n == 0) {
    report(DiagCode::BadValue, v.Range,
           llvm::formatv("{0} must be a whole number above 0, not {1}", what, writtenNumber(v, q)).str());
    return std::nullopt;
  }
  return n;
}

const MixtureSpec *Context::mixture(const Value &v) {
  auto it = Mixtures.find(&v);
  if (it == Mixtures.end()) {
    std::optional<MixtureSpec> spec;
    if (const Expr *e = expr(v)) {
      ExprDiags list;
      spec = interpretMixture(*e, list);
      reportExpr(v, list);
    }
    it = Mixtures.emplace(&v, std::move(spec)).first;
  }
  return it->second ? &*it->second : nullptr;
}

const StreamSizes *Context::streamSizes() {
  if (!Sizer)
    return nullptr;
  if (!Sizes)
    Sizes = Sizer(Recipe);
  return &*Sizes;
}

const schedule::ScheduleSpec *Context::scheduleSpec(const Value &v) {
  auto it = Schedules.find(&v);
  if (it == Schedules.end()) {
    std::optional<schedule::ScheduleSpec> spec;
    if (const Expr *e = expr(v)) {
      ExprDiags list;
      spec = schedule::interpretSchedule(*e, list);
      reportExpr(v, list);
    }
    it = Schedules.emplace(&v, std::move(spec)).first;
  }
  return it->second ? &*it->second : nullptr;
}

//===----------------------------------------------------------------------===//
// [model]
//===----------------------------------------------------------------------===//

static std::optional<uint64_t> positiveInt(Context &ctx, const Value *v, llvm::StringRef what) {
  if (!v || v->Kind != ValueKind::Integer)
    return std::nullopt;
  if (v->Integer <= 0) {
    ctx.report(DiagCode::BadValue, v->Range, llvm::formatv("{0} must be positive", what).str());
    return std::nullopt;
  }
  return static_cast<uint64_t>(v->Integer);
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
  if (v.Kind != ValueKind::String)
    return std::nullopt;
  llvm::StringRef tok = v.String;
  if (tok != "bytes" && !(tok.startswith("hf:") && tok.size() > 3)) {
    ctx.suggest(ctx.report(DiagCode::BadValue, v.Range, "tokenizer must be \"bytes\" or \"hf:PATH\" (a tokenizer.json)"),
                tok, {"bytes"}, v.location().range(0, tok.size()));
    return std::nullopt;
  }
  return tok.str();
}

std::string mixtape::normalTokenizer(llvm::StringRef ref) {
  if (!ref.consume_front("hf:"))
    return ref.str();
  llvm::SmallString<256> path(ref);
  llvm::sys::path::remove_dots(path, /*remove_dot_dot=*/true);
  return "hf:" + std::string(path);
}

//===----------------------------------------------------------------------===//
// [resources]
//===----------------------------------------------------------------------===//

void sema::checkResources(Context &ctx) {
  const Value *section = ctx.Root.get("resources");
  if (!section || section->Kind != ValueKind::Table)
    return;
  ResourcesSpec &r = ctx.Recipe.Resources;
  r.Range = section->Range;
  r.Gpus = positiveInt(ctx, section->get("gpus"), "gpus").value_or(0);
  if (const Value *m = section->get("gpu_memory")) {
    std::optional<uint64_t> bytes = m->Kind != ValueKind::Integer ? parseByteSize(m->String)
                                    : m->Integer > 0                ? std::optional<uint64_t>(m->Integer)
                                                                    : std::nullopt;
    if (!bytes || *bytes == 0)
      ctx.report(DiagCode::BadValue, m->Range, "gpu_memory must be a byte size such as \"80GiB\" or \"80GB\"");
    else
      r.GpuMemory = static_cast<double>(*bytes);
  }
  if (const Value *b = section->get("interconnect_gbps"); b && b->isNumber()) {
    if (!(b->number() > 0))
      ctx.report(DiagCode::BadValue, b->Range, "interconnect_gbps must be a positive number of gigabits per second");
    else
      r.InterconnectGbps = b->number();
  }
}

void sema::checkModel(Context &ctx) {
  ModelSpec &m = ctx.Recipe.Model;
  // The defaults stand even without a [model] to rename them (the streams check against them).
  for (const plan::ByteControlToken &c : plan::kByteControlTokens)
    m.ByteControlTokens.push_back({c.Text.str(), c.Id});
  const Value *model = ctx.Root.get("model");
  if (!model || model->Kind != ValueKind::Table) {
    ctx.report(DiagCode::MissingKey, ctx.Root.Range, "the recipe needs a [model] section");
    return;
  }
  if (const Value *f = model->get("family")) {
    if (f->String == "gpt2")
      m.Family = Family::GPT2;
    else if (f->String == "gpt_neox")
      m.Family = Family::GPTNeoX;
  }
  if (const Value *v = model->get("init"); v && v->Kind == ValueKind::String) {
    llvm::StringRef init = v->String;
    if (init != "random" && !(init.startswith("hf:") && init.size() > 3))
      ctx.suggest(ctx.report(DiagCode::BadValue, v->Range,
                             "init must be \"random\" or \"hf:PATH\" (a Hugging Face checkpoint directory)"),
                  init, {"random"}, v->location().range(0, init.size()));
    m.Init = init.str();
  }
  if (const Value *v = model->get("tokenizer"))
    if (std::optional<std::string> tok = tokenizerRef(ctx, *v))
      m.Tokenizer = *tok;
  m.Layers = positiveInt(ctx, model->get("layers"), "layers").value_or(0);
  m.DModel = positiveInt(ctx, model->get("d_model"), "d_model").value_or(0);
  m.Heads = positiveInt(ctx, model->get("heads"), "heads").value_or(0);
  m.KVHeads = positiveInt(ctx, model->get("kv_heads"), "kv_heads").value_or(m.Heads);
  m.Ffn = positiveInt(ctx, model->get("ffn"), "ffn").value_or(0);
  m.Vocab = positiveInt(ctx, model->get("vocab"), "vocab").value_or(0);
  for (const char *key : {"layers", "d_model", "heads", "kv_heads", "ffn", "vocab", "max_positions", "rotary_pct"})
    if (const Value *v = model->get(key))
      m.WrittenSizes.emplace_back(key, v->Range);
  // A size a [sweep] axis varies (key = "model.layers") may be left to the sweep.
  auto swept = [&](llvm::StringRef key) {
    const Value *sweep = ctx.Root.get("sweep");
    if (sweep && sweep->Kind == ValueKind::Table)
      for (const Field &f : sweep->Fields)
        if (const Value *k = f.Value->Kind == ValueKind::Table ? f.Value->get("key") : nullptr;
            k && k->Kind == ValueKind::String && k->String == "model." + key.str())
          return true;
    return false;
  };
  if (m.Init == "random")
    for (llvm::StringRef key : {"layers", "d_model", "heads"})
      if (!model->get(key) && !swept(key))
        ctx.report(DiagCode::MissingKey, model->Range,
                   llvm::formatv("a model with init = \"random\" needs '{0}'", key).str());
  // Where a model setting is written, or the [model] header when it is a default.
  auto at = [&](llvm::StringRef key) { return model->get(key) ? model->get(key)->Range : model->Range; };
  if (m.Heads && m.DModel && m.DModel % m.Heads)
    ctx.report(DiagCode::BadValue, at("heads"),
               llvm::formatv("d_model {0} is not divisible by heads {1}", m.DModel, m.Heads).str());
  if (m.Heads && m.KVHeads && m.Heads % m.KVHeads)
    ctx.report(DiagCode::BadValue, at("kv_heads"),
               llvm::formatv("heads {0} is not a multiple of kv_heads {1}", m.Heads, m.KVHeads).str());
  if (m.Family == Family::GPT2 && m.KVHeads != m.Heads)
    ctx.report(DiagCode::BadValue, at("kv_heads"),
               "gpt2 has no grouped-query attention: kv_heads must equal heads");
  if (m.Ffn == 0 && m.DModel)
    m.Ffn = m.Family == Family::Llama ? (m.DModel * 8 / 3 + 63) / 64 * 64 : 4 * m.DModel;
  if (std::string problem = m.sizeProblem(); !problem.empty())
    ctx.report(DiagCode::BadValue, m.largestWrittenSize(), problem);

  m.SeqLen = seqLen(ctx, model->get("seq_len")).value_or(defaults::SeqLen);
  m.MaxPositions = seqLen(ctx, model->get("max_positions")).value_or(m.SeqLen);
  if (const Value *v = model->get("max_positions"); v && m.Family != Family::GPT2)
    ctx.report(DiagCode::BadValue, v->Range,
               "max_positions is gpt2's learned position table; this family uses RoPE (rope_theta)");
  if (m.Family == Family::GPT2 && m.SeqLen > m.MaxPositions)
    ctx.report(DiagCode::Positions, at("seq_len"),
               llvm::formatv("seq_len {0} is beyond the learned position table of {1}", m.SeqLen, m.MaxPositions)
                   .str());
  if (const Value *v = model->get("rope_theta")) {
    if (m.Family == Family::GPT2)
      ctx.report(DiagCode::BadValue, v->Range, "gpt2 uses learned positions: rope_theta does not apply");
    else if (v->isNumber() && v->number() <= 0)
      ctx.report(DiagCode::BadValue, v->Range, "rope_theta must be positive");
    else if (v->isNumber()) {
      m.RopeTheta = v->number();
      m.RopeThetaWritten = true;
    }
  }
  if (const Value *v = model->get("rotary_pct")) {
    if (m.Family != Family::GPTNeoX)
      ctx.report(DiagCode::BadValue, v->Range, "rotary_pct applies to gpt_neox only");
    else if (v->isNumber() && (v->number() <= 0 || v->number() > 1))
      ctx.report(DiagCode::BadValue, v->Range, "rotary_pct must be in (0, 1]");
    else if (v->isNumber())
      m.RotaryPct = v->number();
  }
  if (const Value *v = model->get("attention"); v && v->String == "within_document")
    m.Attention = Attention::WithinDocument;
  if (const Value *v = model->get("pretrained_on"); v && v->Kind == ValueKind::Array)
    for (const auto &item : v->Items)
      m.PretrainedOn.push_back(item->String); // checked against the streams in checkStreams
  if (const Value *v = model->get("control_tokens"); v && v->Kind == ValueKind::Array) {
    if (normalTokenizer(m.Tokenizer) != "bytes")
      ctx.report(DiagCode::BadValue, v->Range,
                 "control_tokens names the byte tokenizer's reserved ids; a tokenizer.json's control tokens are "
                 "its own tokens (add them to its added_tokens)");
    else if (v->Items.size() > m.ByteControlTokens.size())
      ctx.report(DiagCode::BadValue, v->Range,
                 llvm::formatv("the byte tokenizer reserves {0} ids for control tokens ({1}-{2}), not {3}",
                               m.ByteControlTokens.size(), m.ByteControlTokens.front().Id,
                               m.ByteControlTokens.back().Id, v->Items.size())
                     .str());
    else
      for (size_t i = 0; i < v->Items.size(); ++i) {
        const Value &name = *v->Items[i];
        auto same = [&](const plan::ControlToken &c) { return c.Text == name.String; };
        if (name.String.empty())
          ctx.report(DiagCode::BadValue, name.Range, "a control token needs a name");
        else if (std::any_of(m.ByteControlTokens.begin(), m.ByteControlTokens.begin() + i, same))
          ctx.report(DiagCode::BadValue, name.Range, "control token '" + name.String + "' is named twice");
        else {
          // A default name of a later id stays that id's only if it is not taken here.
          for (size_t j = i + 1; j < m.ByteControlTokens.size(); ++j)
            if (same(m.ByteControlTokens[j]))
              m.ByteControlTokens[j].Text.clear();
          m.ByteControlTokens[i].Text = name.String;
        }
      }
  }
}

//===----------------------------------------------------------------------===//
// [streams.NAME]
//===----------------------------------------------------------------------===//

static std::optional<plan::UntieKnots> untieKnots(Context &ctx, const Value &v, const Expr *e) {
  const StringLocation &loc = v.location();
  auto at = [&](const TextRange &r) { return loc.range(r.Begin, r.End); };
  plan::UntieKnots t;
  bool sawChunks = false;
  for (size_t i = 0; i < e->Operands.size(); ++i) {
    const std::string &name = e->ArgNames[i];
    const Expr &arg = e->operand(i);
    if (name == "chunks") {
      sawChunks = true;
      if (arg.Kind != ExprKind::Dict) {
        ctx.report(DiagCode::BadArgument, at(arg.Range),
                   "chunks must map chunk counts to probabilities: {1: 0.7, 3: 0.3}");
        return std::nullopt;
      }
      double sum = 0;
      for (size_t k = 0; k + 1 < arg.Operands.size(); k += 2) {
        const Expr &key = arg.operand(k), &p = arg.operand(k + 1);
        std::optional<uint64_t> n = key.Kind == ExprKind::Number ? key.Number.asCount() : std::nullopt;
        if (!n || *n == 0 || key.Number.Dim != Dim::Number) {
          ctx.report(DiagCode::BadArgument, at(key.Range), "a chunk count must be a whole number above 0");
          return std::nullopt;
        }
        if (p.Kind != ExprKind::Number || p.Number.Dim != Dim::Number || p.Number.Value <= 0 ||
            p.Number.Value > 1) {
          ctx.report(DiagCode::BadArgument, at(p.Range), "a chunk probability must be in (0, 1]");
          return std::nullopt;
        }
        if (!t.Chunks.emplace(*n, p.Number.Value).second) {
          ctx.report(DiagCode::BadArgument, at(key.Range), "chunk count " + std::to_string(*n) + " is given twice");
          return std::nullopt;
        }
        sum += p.Number.Value;
      }
      if (t.Chunks.empty() || std::abs(sum - 1) > 1e-9) {
        ctx.report(DiagCode::BadArgument, at(arg.Range),
                   llvm::formatv("chunk probabilities sum to {0}, not 1", shortNumber(sum)).str());
        return std::nullopt;
      }
    } else if (name == "keep_order") {
      if (arg.Kind != ExprKind::Bool) {
        ctx.report(DiagCode::BadArgument, at(arg.Range), "keep_order must be true or false");
        return std::nullopt;
      }
      t.KeepOrder = arg.Boolean;
    } else {
      TextRange r = name.empty() ? arg.Range : e->ArgNameRanges[i];
      Diagnostic *d = ctx.report(DiagCode::BadArgument, at(r),
                                 name.empty() ? "untie_knots takes named arguments: chunks, keep_order"
                                              : "untie_knots has no argument '" + name + "'");
      if (!name.empty())
        ctx.suggest(d, name, {"chunks", "keep_order"}, at(r));
      return std::nullopt;
    }
  }
  if (!sawChunks) {
    ctx.report(DiagCode::BadArgument, at(e->Range), "untie_knots needs chunks = {count: probability, ...}");
    return std::nullopt;
  }
  return t;
}

/// control_tokens(column = 'c', above = x, good = '<|good|>', bad = '<|bad|>'), or one of
/// good/bad alone for every document. The tokens' ids come from the tokenizer: the byte
/// tokenizer's here (checkStreams), a tokenizer.json's when planning.
static std::optional<plan::ControlTokens> controlTokens(Context &ctx, const Value &v, const Expr *e,
                                                        StreamSpec &spec) {
  const StringLocation &loc = v.location();
  auto at = [&](const TextRange &r) { return loc.range(r.Begin, r.End); };
  static const std::vector<std::string> kArguments = {"column", "above", "good", "bad"};
  plan::ControlTokens t;
  for (size_t i = 0; i < e->Operands.size(); ++i) {
    const std::string &name = e->ArgNames[i];
    const Expr &arg = e->operand(i);
    auto text = [&]() -> std::optional<std::string> {
      if (arg.Kind == ExprKind::String && !arg.Name.empty())
        return arg.Name;
      ctx.report(DiagCode::BadArgument, at(arg.Range),
                 name + " must be a quoted string, e.g. " + (name == "column" ? "'reward'" : "'<|" + name + "|>'"));
      return std::nullopt;
    };
    if (name == "column") {
      std::optional<std::string> c = text();
      if (!c)
        return std::nullopt;
      t.Column = *c;
    } else if (name == "above") {
      if (arg.Kind != ExprKind::Number || arg.Number.Dim != Dim::Number) {
        ctx.report(DiagCode::BadArgument, at(arg.Range), "above must be a number: good is a value above it");
        return std::nullopt;
      }
      t.Above = arg.Number.Value;
    } else if (name == "good" || name == "bad") {
      std::optional<std::string> token = text();
      if (!token)
        return std::nullopt;
      (name == "good" ? t.Good : t.Bad) = plan::ControlToken{*token, 0};
      (name == "good" ? spec.GoodRange : spec.BadRange) = at({arg.Range.Begin + 1, arg.Range.End - 1}); // unquoted
    } else {
      TextRange r = name.empty() ? arg.Range : e->ArgNameRanges[i];
      Diagnostic *d = ctx.report(DiagCode::BadArgument, at(r),
                                 name.empty() ? "control_tokens takes named arguments: column, above, good, bad"
                                              : "control_tokens has no argument '" + name + "'");
      if (!name.empty())
        ctx.suggest(d, name, kArguments, at(r));
      return std::nullopt;
    }
  }
  if (t.Column && (!t.Above || !t.Good || !t.Bad)) {
    ctx.report(DiagCode::BadArgument, at(e->Range),
               "control_tokens by a column needs above, good and bad: good where the value is above, bad elsewhere");
    return std::nullopt;
  }
  if (!t.Column && t.Above) {
    ctx.report(DiagCode::BadArgument, at(e->Range), "above compares a column's values: name the column");
    return std::nullopt;
  }
  if (!t.Column && t.Good.has_value() == t.Bad.has_value()) {
    ctx.report(DiagCode::BadArgument, at(e->Range),
               "control_tokens without a column prefixes every document with one token: give good or bad, "
               "not both");
    return std::nullopt;
  }
  if (t.Good && t.Bad && t.Good->Text == t.Bad->Text) {
    ctx.report(DiagCode::BadArgument, spec.BadRange, "good and bad are the same token: the prefix would say nothing");
    return std::nullopt;
  }
  return t;
}

/// A stream's `transform`: untie_knots(...) or control_tokens(...).
static std::optional<plan::StreamTransform> streamTransform(Context &ctx, const Value &v, StreamSpec &spec) {
  const Expr *e = ctx.expr(v);
  if (!e)
    return std::nullopt;
  const StringLocation &loc = v.location();
  auto at = [&](const TextRange &r) { return loc.range(r.Begin, r.End); };
  static const std::vector<std::string> kTransforms = {"untie_knots", "control_tokens"};
  plan::StreamTransform t;
  if (e->Kind == ExprKind::Call && e->Name == "untie_knots")
    t.UntieKnots = untieKnots(ctx, v, e);
  else if (e->Kind == ExprKind::Call && e->Name == "control_tokens")
    t.ControlTokens = controlTokens(ctx, v, e, spec);
  else {
    Diagnostic *d = ctx.report(DiagCode::UnknownFunction, at(e->NameRange.End ? e->NameRange : e->Range),
                               "unknown transform; the transforms are: " + llvm::join(kTransforms, ", "));
    if (e->Kind == ExprKind::Call || e->Kind == ExprKind::Ident)
      ctx.suggest(d, e->Name, kTransforms, at(e->NameRange));
  }
  if (!t.UntieKnots && !t.ControlTokens)
    return std::nullopt;
  return t;
}

/// Where a stream says what it derives from.
static llvm::SMRange fromRange(const Field *stream) {
  const Value *from = stream->Value->get("from");
  return from ? from->Range : stream->KeyRange;
}

void sema::checkTasks(Context &ctx) {
  const Value *tasks = ctx.Root.get("tasks");
  if (!tasks || tasks->Kind != ValueKind::Table)
    return;
  for (const Field &f : tasks->Fields) {
    if (f.Value->Kind != ValueKind::Table)
      continue;
    const Value &t = *f.Value;
    plan::Task task;
    task.Shots = defaults::Shots;
    task.FewshotSeed = defaults::FewshotSeed;
    task.MaxNewTokens = defaults::MaxNewTokens;
    task.TargetDelimiter = " ";
    task.FewshotDelimiter = "\n\n";
    // The schema checked types and the kind's name.
    if (const Value *v = t.get("path")) {
      task.Path = v->String;
      if (llvm::StringRef(v->String).trim().empty())
        ctx.report(DiagCode::BadValue, v->Range, "path is blank: name the task's item file (JSON Lines)");
    }
    if (const Value *v = t.get("kind"))
      task.Kind = plan::enumFromName<plan::TaskKind>(v->String).value_or(plan::TaskKind::Choice);
    auto count = [&](const char *key, uint64_t &out) {
      if (const Value *v = t.get(key); v && v->Kind == ValueKind::Integer) {
        if (v->Integer < 0)
          ctx.report(DiagCode::BadValue, v->Range, llvm::formatv("{0} must not be negative", key).str());
        else
          out = static_cast<uint64_t>(v->Integer);
      }
    };
    count("shots", task.Shots);
    count("fewshot_seed", task.FewshotSeed);
    count("max_new_tokens", task.MaxNewTokens);
    count("limit", task.Limit);
    if (const Value *v = t.get("fewshot"))
      task.Fewshot = v->String;
    if (const Value *v = t.get("fewshot"); v && !task.Shots)
      ctx.report(DiagCode::BadValue, v->Range, "a few-shot file without shots: set shots = N");
    if (const Value *v = t.get("target_delimiter"))
      task.TargetDelimiter = v->String;
    if (const Value *v = t.get("fewshot_delimiter"))
      task.FewshotDelimiter = v->String;
    // lm-eval-harness's default stop: the few-shot delimiter, where the next example would start.
    task.Until = {task.FewshotDelimiter};
    if (const Value *v = t.get("until"); v && v->Kind == ValueKind::Array) {
      task.Until.clear();
      for (const auto &item : v->Items) {
        if (item->String.empty())
          ctx.report(DiagCode::BadValue, item->Range, "an empty stop string would stop before the first token");
        task.Until.push_back(item->String);
      }
    }
    if (task.Kind == plan::TaskKind::Choice)
      for (const char *key : {"until", "max_new_tokens"})
        if (const Value *v = t.get(key))
          ctx.report(DiagCode::BadValue, v->Range,
                     llvm::formatv("'{0}' is for kind = \"generate\"; a choice task scores its choices", key).str());
    if (task.Kind == plan::TaskKind::Choice) {
      task.Until.clear();
      task.MaxNewTokens = 0;
    }
    ctx.Recipe.Tasks[f.Key] = std::move(task);
  }
}

void sema::checkStreams(Context &ctx) {
  const Value *streams = ctx.Root.get("streams");
  if (!streams || streams->Kind != ValueKind::Table)
    return;
  std::vector<std::string> names;
  for (const Field &f : streams->Fields)
    names.push_back(f.Key);
  // Tokenizers that vocabulary extensions (`after = { tokenizer }`) move models to.
  std::set<std::string> extensionTokenizers;
  if (const Value *stages = ctx.Root.get("stage"); stages && stages->Kind == ValueKind::Array)
    for (const std::unique_ptr<Value> &stage : stages->Items)
      if (const Value *after = stage->Kind == ValueKind::Table ? stage->get("after") : nullptr;
          after && after->Kind == ValueKind::Table)
        if (const Value *tok = after->get("tokenizer"); tok && tok->Kind == ValueKind::String)
          extensionTokenizers.insert(normalTokenizer(tok->String));
  std::map<std::string, const Field *> byName;
  for (const Field &f : streams->Fields) {
    byName[f.Key] = &f;
    if (f.Value->Kind != ValueKind::Table)
      continue;
    const Value &s = *f.Value;
    StreamSpec spec;
    spec.Name = f.Key;
    if (const Value *v = s.get("shards")) {
      spec.Shards = v->String;
      if (v->Kind == ValueKind::String && llvm::StringRef(v->String).trim().empty())
        ctx.report(DiagCode::BadValue, v->Range,
                   "shards is blank: name a dataset prefix, a folder of datasets or a glob of shard files");
    }
    // The schema checked both names.
    if (const Value *v = s.get("format"))
      spec.Format = plan::enumFromName<plan::ShardFormat>(v->String).value_or(plan::ShardFormat::Auto);
    if (const Value *v = s.get("eod"))
      spec.Eod = plan::enumFromName<plan::EodMode>(v->String).value_or(plan::EodMode::Auto);
    const Value *from = s.get("from");
    if (from)
      spec.Parent = from->String;
    for (const char *key : {"tokenizer", "eod"})
      if (const Value *v = s.get(key); v && from)
        ctx.report(DiagCode::BadValue, v->Range,
                   llvm::formatv("a derived stream reads its parent's datasets: set '{0}' on the root stream", key)
                       .str());
    if (const Value *v = s.get("tokenizer")) {
      if (std::optional<std::string> tok = tokenizerRef(ctx, *v)) {
        spec.Tokenizer = *tok;
        // The model embeds the ids the data holds: one tokenizer for both (the stages check
        // that a stream after a vocabulary extension has the extension's).
        const Value *model = ctx.Root.get("model");
        const Value *modelTok = model ? model->get("tokenizer") : nullptr;
        if (normalTokenizer(*tok) != normalTokenizer(ctx.Recipe.Model.Tokenizer) &&
            !extensionTokenizers.count(normalTokenizer(*tok))) {
          Diagnostic *d = ctx.report(
              DiagCode::TokenizerMismatch, v->Range,
              llvm::formatv("stream '{0}' was tokenized with '{1}' but the model's tokenizer is '{2}'{3}", f.Key, *tok,
                            ctx.Recipe.Model.Tokenizer, modelTok ? "" : " (the default)")
                  .str());
          if (d && modelTok)
            DiagnosticEngine::addNote(*d, modelTok->Range, "the model's tokenizer is set here");
        }
      }
    }
    if (from && s.get("shards"))
      ctx.report(DiagCode::BadValue, s.get("shards")->Range,
                 "a derived stream views its parent's documents: it cannot also have shards");
    if (!from && !s.get("shards"))
      ctx.report(DiagCode::MissingKey, f.KeyRange,
                 llvm::formatv("stream '{0}' needs 'shards' (its data) or 'from' (a stream it derives from)",
                               f.Key)
                     .str());
    if (from && s.get("val"))
      ctx.report(DiagCode::BadValue, s.get("val")->Range,
                 "a derived stream shares its parent's val split; set 'val' on the root stream");
    if (from && !byName.count(from->String) && !llvm::is_contained(names, from->String))
      ctx.suggest(ctx.report(DiagCode::UnknownRef, from->Range, "unknown stream '" + from->String + "'"),
                  from->String, names, from->location().range(0, from->String.size()));
    if (const Value *v = s.get("val")) {
      if (auto q = ctx.quantity(*v, {Dim::Fraction}, Dim::Fraction, "a fraction such as \"1%\"")) {
        if (q->Value < 0 || q->Value >= 1)
          ctx.report(DiagCode::BadValue, v->Range, "val must be a fraction in [0, 1)");
        else
          spec.Val = q->Value;
      }
    }
    if (const Value *v = s.get("where")) {
      spec.WhereRange = v->Range;
      if (const Expr *e = ctx.expr(*v)) {
        ExprDiags list;
        spec.Where = interpretPredicate(*e, list);
        ctx.reportExpr(*v, list);
      }
    }
    if (const Value *v = s.get("transform"))
      spec.Transform = streamTransform(ctx, *v, spec);
    ctx.Recipe.Streams.push_back(std::move(spec));
  }
  // Roots, derivation cycles (reported once, at the cycle's first stream in the file) and
  // inherited val splits.
  std::set<std::string> inCycle;
  for (StreamSpec &spec : ctx.Recipe.Streams) {
    std::vector<std::string> chain{spec.Name};
    const StreamSpec *cur = &spec;
    while (cur && !cur->Parent.empty()) {
      if (llvm::is_contained(chain, cur->Parent)) {
        if (cur->Parent == spec.Name && inCycle.insert(spec.Name).second) {
          inCycle.insert(chain.begin(), chain.end());
          ctx.report(DiagCode::Cycle, fromRange(byName[spec.Name]),
                     "stream '" + spec.Name + "' derives from itself: " + llvm::join(chain, " -> ") + " -> " +
                         cur->Parent);
        }
        cur = nullptr;
        break;
      }
      chain.push_back(cur->Parent);
      cur = ctx.Recipe.stream(cur->Parent);
    }
    if (cur) {
      spec.Root = cur->Name;
      spec.Val = cur->Val;
    }
  }
  // The byte tokenizer's control tokens are known here; a tokenizer.json's when planning.
  for (StreamSpec &spec : ctx.Recipe.Streams)
    if (spec.Transform && spec.Transform->ControlTokens && !spec.Root.empty() &&
        normalTokenizer(ctx.Recipe.tokenizerOf(spec.Name)) == "bytes")
      for (auto [token, range] : {std::pair(&spec.Transform->ControlTokens->Good, spec.GoodRange),
                                  std::pair(&spec.Transform->ControlTokens->Bad, spec.BadRange)}) {
        if (!*token)
          continue;
        const std::vector<plan::ControlToken> &byteTokens = ctx.Recipe.Model.ByteControlTokens;
        auto known = llvm::find_if(byteTokens, [&](const plan::ControlToken &c) {
          return !c.Text.empty() && c.Text == (*token)->Text;
        });
        if (known != byteTokens.end()) {
          (*token)->Id = known->Id;
          continue;
        }
        auto renamed = llvm::find_if(plan::kByteControlTokens,
                                     [&](const plan::ByteControlToken &c) { return c.Text == (*token)->Text; });
        if (renamed != std::end(plan::kByteControlTokens)) {
          ctx.report(DiagCode::BadArgument, range,
                     llvm::formatv("'{0}' is the default name of id {1}, which [model] control_tokens names '{2}'",
                                   (*token)->Text, renamed->Id, byteTokens[renamed - plan::kByteControlTokens].Text)
                         .str());
          continue;
        }
        std::vector<std::string> names;
        for (const plan::ControlToken &c : byteTokens)
          if (!c.Text.empty())
            names.push_back(c.Text);
        ctx.suggest(ctx.report(DiagCode::BadArgument, range,
                               "'" + (*token)->Text + "' is not a control token of the byte tokenizer; its control "
                               "tokens are its reserved ids: " + llvm::join(names, ", ")),
                    (*token)->Text, names, range);
      }
  for (const std::string &name : ctx.Recipe.Model.PretrainedOn)
    if (!ctx.Recipe.stream(name)) {
      const Value *list = ctx.Root.get("model")->get("pretrained_on");
      ctx.suggest(ctx.report(DiagCode::UnknownRef, list->Range, "unknown stream '" + name + "'"), name, names,
                  list->Range);
    }
}

std::unique_ptr<CheckedRecipe> mixtape::checkRecipe(const Value &root, DiagnosticEngine &diags,
                                                   const StreamSizer &sizer, llvm::StringRef baseDir) {
  // Warnings a recipe silences for itself apply before anything is reported.
  if (const Value *lint = root.get("lint"); lint && lint->Kind == ValueKind::Table)
    if (const Value *allow = lint->get("allow"); allow && allow->Kind == ValueKind::Array)
      for (const auto &item : allow->Items) {
        if (item->Kind != ValueKind::String)
          continue;
        auto code = diagCodeFromName(item->String);
        if (!code || defaultSeverity(*code) != Severity::Warning) {
          std::vector<std::string> warnings;
          for (DiagCode c : allDiagCodes())
            if (defaultSeverity(c) == Severity::Warning)
              warnings.push_back(diagCodeName(c).str());
          Diagnostic &d = diags.report(DiagCode::BadValue, item->Range,
                                       "'" + item->String + "' is not a warning code; only warnings can be allowed");
          if (auto m = closestMatch(item->String, warnings)) {
            DiagnosticEngine::addNote(d, item->Range, "did you mean '" + *m + "'?");
            DiagnosticEngine::addFixIt(d, item->location().range(0, item->String.size()), *m);
          }
          continue;
        }
        diags.disable(*code);
      }
  checkSchema(root, diags);
  Context ctx(root, diags);
  ctx.Sizer = sizer;
  ctx.Recipe.BaseDir = baseDir.str();
  if (const Value *recipe = root.get("recipe"); recipe && recipe->Kind == ValueKind::Table) {
    if (const Value *v = recipe->get("name")) {
      ctx.Recipe.Name = v->String;
      if (v->Kind == ValueKind::String && llvm::StringRef(v->String).trim().empty())
        ctx.report(DiagCode::BadValue, v->Range, "the recipe's name is blank: it names the run directory runs/<name>");
    }
    if (const Value *v = recipe->get("seed"); v && v->Kind == ValueKind::Integer) {
      if (v->Integer < 0)
        ctx.report(DiagCode::BadValue, v->Range, "seed must not be negative");
      ctx.Recipe.Seed = static_cast<uint64_t>(v->Integer);
    }
  } else if (!root.get("recipe")) {
    ctx.report(DiagCode::MissingKey, root.Range, "the recipe needs a [recipe] section with a name");
  }
  checkModel(ctx);
  checkResources(ctx);
  checkStreams(ctx);
  checkTasks(ctx);
  checkStages(ctx);
  checkModelUsers(ctx);
  if (diags.errorCount())
    return nullptr;
  return std::make_unique<CheckedRecipe>(std::move(ctx.Recipe));
}

std::unique_ptr<CheckedRecipe> mixtape::loadRecipe(llvm::StringRef path, DiagnosticEngine &diags,
                                                  const StreamSizer &sizer) {
  std::unique_ptr<Value> root = parseRecipeFile(path, diags);
  if (!root)
    return nullptr;
  llvm::SmallString<256> dir(llvm::sys::path::parent_path(path));
  if (dir.empty())
    dir = ".";
  std::unique_ptr<CheckedRecipe> recipe = checkRecipe(*root, diags, sizer, dir);
  if (recipe) {
    recipe->BaseDir = std::string(dir);
    recipe->File = path.str();
  }
  return recipe;
}
