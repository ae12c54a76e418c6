//===- Schema.cpp - keys, types and the schema pass -----------------------===//
#include "mixtape/compiler/Schema.h"
#include "mixtape/plan/Plan.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mixtape;

static const SectionInfo kSections[] = {
#define SECTION(ID, PATH, KIND, DOC) {SectionId::ID, PATH, SectionKind::KIND, DOC},
#include "keys.def"
};

static const KeyInfo kKeys[] = {
#define KEY(SECTION, NAME, TYPE, FLAGS, DOC)                                                       \
  {SectionId::SECTION, NAME, ValueType::TYPE, KeyFlags::FLAGS, DOC},
#include "keys.def"
};

static const DefaultInfo kDefaults[] = {
#define DEFAULT(SECTION, KEY, NAME, CPPTYPE, VALUE) {SectionId::SECTION, KEY, #VALUE},
#include "keys.def"
};

const SectionInfo &mixtape::sectionInfo(SectionId id) { return kSections[static_cast<size_t>(id)]; }
llvm::ArrayRef<SectionInfo> mixtape::allSections() { return kSections; }
llvm::ArrayRef<KeyInfo> mixtape::allKeys() { return kKeys; }
llvm::ArrayRef<DefaultInfo> mixtape::allDefaults() { return kDefaults; }

const KeyInfo *mixtape::findKey(SectionId section, llvm::StringRef name) {
  for (const KeyInfo &k : kKeys)
    if (k.Section == section && k.Name == name)
      return &k;
  return nullptr;
}

std::vector<std::string> mixtape::keyNames(SectionId section) {
  std::vector<std::string> names;
  for (const KeyInfo &k : kKeys)
    if (k.Section == section)
      names.push_back(k.Name.str());
  return names;
}

/// The names of a plan enum: the recipe spells these settings as the plan does.
template <typename E> static llvm::ArrayRef<llvm::StringRef> planNames() {
  static const std::vector<llvm::StringRef> names(std::begin(plan::EnumNames<E>::Names),
                                                  std::end(plan::EnumNames<E>::Names));
  return names;
}

llvm::ArrayRef<llvm::StringRef> mixtape::enumChoices(ValueType type) {
  switch (type) {
  case ValueType::Family: return planNames<plan::ModelFamily>();
  case ValueType::Attention: return planNames<plan::AttentionMask>();
  case ValueType::ShardFormat: return planNames<plan::ShardFormat>();
  case ValueType::Eod: return planNames<plan::EodMode>();
  case ValueType::OptimizerKind: return planNames<plan::OptimizerKind>();
  case ValueType::OptimizerEdge: return planNames<plan::OptimizerStart>();
  case ValueType::NewTokenInit: return planNames<plan::NewTokenInit>();
  case ValueType::OnNonFinite: return planNames<plan::NonFiniteAction>();
  case ValueType::Objective: return planNames<plan::Objective>();
  case ValueType::Shard: return planNames<plan::ShardMode>();
  case ValueType::MergeMethod: return planNames<plan::MergeMethod>();
  case ValueType::TaskKind: return planNames<plan::TaskKind>();
  case ValueType::DistillKind: return planNames<plan::DistillKind>();
  default: return {};
  }
}

std::optional<SectionId> mixtape::subsection(ValueType type) {
  switch (type) {
  case ValueType::Edge: return SectionId::Edge;
  case ValueType::Optimizer: return SectionId::Optimizer;
  case ValueType::Checkpoint: return SectionId::Checkpoint;
  case ValueType::Units: return SectionId::Units;
  case ValueType::AblationTrain: return SectionId::AblationTrain;
  case ValueType::During: return SectionId::During;
  case ValueType::Lora: return SectionId::Lora;
  case ValueType::Grow: return SectionId::Grow;
  case ValueType::Distill: return SectionId::Distill;
  default: return std::nullopt;
  }
}

std::string mixtape::describeType(ValueType type) {
  switch (type) {
  case ValueType::Name: return "a name";
  case ValueType::Text: return "a string";
  case ValueType::Path: return "a path or glob";
  case ValueType::Integer: return "an integer";
  case ValueType::Count: return "a positive integer";
  case ValueType::Real: return "a number";
  case ValueType::Bool: return "true or false";
  case ValueType::Reals: return "a list of numbers";
  case ValueType::Betas: return "two numbers, [beta1, beta2]";
  case ValueType::Tokens: return "a number of tokens such as \"2B\" or \"200M tokens\"";
  case ValueType::Batch: return "a batch such as \"1Mi tokens\" or \"512 sequences\"";
  case ValueType::SeqLen: return "a sequence length such as 4096 or \"16Ki\"";
  case ValueType::Position: return "a point such as \"1B\", \"500 steps\" or \"50%\"";
  case ValueType::Fraction: return "a fraction such as \"1%\" or 0.01";
  case ValueType::Mixture: return "a mixture such as \"0.95 med + 0.05 web\"";
  case ValueType::Schedule: return "a schedule such as \"warmup(20M, peak = 3e-4) then cosine(final = 3e-5)\"";
  case ValueType::Predicate: return "a predicate such as \"quality >= 4 and domain == 'Medicine'\"";
  case ValueType::Transform:
    return "a transform such as \"untie_knots(chunks = {1: 0.7, 3: 0.3})\" or \"control_tokens(good = '<|good|>')\"";
  case ValueType::Combine: return "\"subsets(max = 3)\" or a list of unit lists";
  case ValueType::Init: return "\"random\" or \"hf:PATH\"";
  case ValueType::Tokenizer: return "\"bytes\" or \"hf:PATH\"";
  case ValueType::CodeList: return "a list of diagnostic codes";
  case ValueType::NameList: return "a list of names";
  case ValueType::Texts: return "a list of strings";
  case ValueType::EvalStreams: return "a list of splits such as [\"web.val\"]";
  case ValueType::SweepKey: return "a setting path such as \"adapt.mix\"";
  case ValueType::Labels: return "a table of labelled values";
  case ValueType::ModelRef: return "a model such as \"adapt\" or \"anneal[replay=r5]\"";
  case ValueType::ModelRefs: return "models: a list or a selector such as \"anneal[*]\"";
  case ValueType::Edge: return "a stage name or { stage, at, optimizer, tokenizer, init_new, grow }";
  case ValueType::Optimizer: return "a table { kind, betas, eps, weight_decay }";
  case ValueType::Checkpoint: return "a table { every, keep }";
  case ValueType::Units: return "a table { stream, split } or { stream, by }";
  case ValueType::AblationTrain: return "a table { tokens, lr, mix }";
  case ValueType::During: return "a table { every }";
  case ValueType::ActivationCheckpointing: return "\"none\", \"full\" or \"every N\"";
  case ValueType::ByteSize: return "a byte size such as \"80GiB\" or \"80GB\"";
  case ValueType::Lora: return "a table { rank, alpha, targets, dropout }";
  case ValueType::Grow: return "a table { layers, d_model, noise }";
  case ValueType::Distill: return "a table { teacher, weight, temperature, kind }";
  case ValueType::GroupScales: return "a table of parameter groups and numbers such as { embeddings = 0.1 }";
  default: break;
  }
  std::string choices;
  for (llvm::StringRef c : enumChoices(type))
    choices += (choices.empty() ? "" : " | ") + c.str();
  return "one of " + choices;
}

/// The identifiers of grammar/expr.ebnf: what a mixture, selector or reference can name.
static bool isName(llvm::StringRef s) {
  if (s.empty() || !(llvm::isAlpha(s.front()) || s.front() == '_') || s.back() == '-')
    return false;
  return llvm::all_of(s, [](char c) { return llvm::isAlnum(c) || c == '_' || c == '-'; });
}

static bool isStringArray(const Value &v) {
  return v.Kind == ValueKind::Array &&
         llvm::all_of(v.Items, [](const auto &i) { return i->Kind == ValueKind::String; });
}

static bool acceptsKind(ValueType type, const Value &v) {
  switch (type) {
  case ValueType::Integer:
  case ValueType::Count: return v.Kind == ValueKind::Integer;
  case ValueType::Real: return v.isNumber();
  case ValueType::Bool: return v.Kind == ValueKind::Bool;
  case ValueType::Reals:
  case ValueType::Betas:
    return v.Kind == ValueKind::Array && llvm::all_of(v.Items, [](const auto &i) { return i->isNumber(); });
  case ValueType::Tokens:
  case ValueType::Batch:
  case ValueType::SeqLen:
  case ValueType::Position:
  case ValueType::ByteSize: return v.Kind == ValueKind::String || v.Kind == ValueKind::Integer;
  case ValueType::Fraction: return v.Kind == ValueKind::String || v.isNumber();
  case ValueType::CodeList:
  case ValueType::NameList:
  case ValueType::Texts:
  case ValueType::EvalStreams: return isStringArray(v);
  case ValueType::ModelRefs: return v.Kind == ValueKind::String || isStringArray(v);
  case ValueType::Combine: return v.Kind == ValueKind::String || v.Kind == ValueKind::Array;
  case ValueType::Edge: return v.Kind == ValueKind::String || v.Kind == ValueKind::Table;
  case ValueType::GroupScales:
    return v.Kind == ValueKind::Table && llvm::all_of(v.Fields, [](const Field &f) { return f.Value->isNumber(); });
  case ValueType::Labels:
  case ValueType::Lora:
  case ValueType::Grow:
  case ValueType::Distill:
  case ValueType::Optimizer:
  case ValueType::Checkpoint:
  case ValueType::Units:
  case ValueType::AblationTrain:
  case ValueType::During: return v.Kind == ValueKind::Table;
  default: return v.Kind == ValueKind::String;
  }
}

namespace {
class SchemaChecker {
public:
  explicit SchemaChecker(DiagnosticEngine &diags) : Diags(diags) {}

  void checkTable(SectionId section, const Value &table, llvm::StringRef where) {
    for (const Field &f : table.Fields) {
      const KeyInfo *key = findKey(section, f.Key);
      if (!key) {
        unknownKey(section, f, where);
        continue;
      }
      checkValue(*key, *f.Value, where);
    }
    for (const KeyInfo &k : allKeys())
      if (k.Section == section && k.Flags == KeyFlags::Required && !table.get(k.Name))
        Diags.report(DiagCode::MissingKey, table.Range,
                     llvm::formatv("{0} needs '{1}' ({2})", where, k.Name, k.Doc).str());
  }

  void checkValue(const KeyInfo &key, const Value &v, llvm::StringRef where) {
    if (!acceptsKind(key.Type, v)) {
      Diags.report(DiagCode::WrongType, v.Range,
                   llvm::formatv("'{0}' must be {1}, not {2} {3}", key.Name, describeType(key.Type),
                                 v.Kind == ValueKind::Integer ? "an" : "a", v.kindName())
                       .str());
      return;
    }
    if (key.Type == ValueType::Name && !isName(v.String)) {
      Diags.report(DiagCode::BadValue, v.Range,
                   "'" + v.String + "' is not a name: names are letters, digits, '_' and '-', starting with a "
                   "letter or '_', so that expressions can refer to them");
      return;
    }
    if (auto sub = subsection(key.Type); sub && v.Kind == ValueKind::Table)
      checkTable(*sub, v, (where + "." + key.Name).str());
    auto choices = enumChoices(key.Type);
    if (!choices.empty() && !llvm::is_contained(choices, v.String)) {
      std::vector<std::string> names(choices.begin(), choices.end());
      Diagnostic &d = Diags.report(
          DiagCode::BadValue, v.Range,
          llvm::formatv("'{0}' is not {1}", v.String, describeType(key.Type)).str());
      DiagnosticEngine::suggest(d, v.String, names, v.location().range(0, v.String.size()));
    }
  }

  void unknownKey(SectionId section, const Field &f, llvm::StringRef where) {
    Diagnostic &d = Diags.report(DiagCode::UnknownKey, f.KeyRange,
                                 llvm::formatv("unknown key '{0}' in {1}", f.Key, where).str());
    DiagnosticEngine::suggest(d, f.Key, keyNames(section), f.KeyRange);
  }

  void checkRoot(const Value &root) {
    std::vector<std::string> sectionNames;
    for (const SectionInfo &s : allSections())
      if (!s.Path.contains('.'))
        sectionNames.push_back(s.Path.str());
    for (const Field &f : root.Fields) {
      const SectionInfo *info = nullptr;
      for (const SectionInfo &s : allSections())
        if (s.Path == f.Key)
          info = &s;
      if (!info) {
        Diagnostic &d = Diags.report(DiagCode::UnknownKey, f.KeyRange,
                                     llvm::formatv("unknown section '{0}'", f.Key).str());
        DiagnosticEngine::suggest(d, f.Key, sectionNames, f.KeyRange);
        continue;
      }
      checkSection(*info, f);
    }
  }

  void checkSection(const SectionInfo &info, const Field &f) {
    const Value &v = *f.Value;
    switch (info.Kind) {
    case SectionKind::Table:
      if (v.Kind != ValueKind::Table)
        return wrongSection(info, f, "a table: [" + info.Path.str() + "]");
      return checkTable(info.Id, v, "[" + info.Path.str() + "]");
    case SectionKind::TableOfTables:
      if (v.Kind != ValueKind::Table)
        return wrongSection(info, f, "a table of named tables: [" + info.Path.str() + ".NAME]");
      for (const Field &entry : v.Fields) {
        // [sweep] also holds `zip`, which pairs axes instead of crossing them.
        if (info.Id == SectionId::Sweep && entry.Key == "zip") {
          checkZip(*entry.Value);
          continue;
        }
        if (entry.Value->Kind != ValueKind::Table) {
          Diags.report(DiagCode::WrongType, entry.Value->Range,
                       llvm::formatv("'{0}.{1}' must be a table", info.Path, entry.Key).str());
          continue;
        }
        checkTable(info.Id, *entry.Value, "[" + info.Path.str() + "." + entry.Key + "]");
      }
      return;
    case SectionKind::ArrayOfTables:
      if (v.Kind != ValueKind::Array ||
          !llvm::all_of(v.Items, [](const auto &i) { return i->Kind == ValueKind::Table; }))
        return wrongSection(info, f, "an array of tables: [[" + info.Path.str() + "]]");
      for (const auto &item : v.Items)
        checkTable(info.Id, *item, "[[" + info.Path.str() + "]]");
      return;
    }
  }

  void checkZip(const Value &v) {
    auto isGroup = [](const Value &g) { return isStringArray(g) && g.Items.size() >= 2; };
    bool ok = isGroup(v) || (v.Kind == ValueKind::Array && !v.Items.empty() &&
                             llvm::all_of(v.Items, [&](const auto &g) { return isGroup(*g); }));
    if (!ok)
      Diags.report(DiagCode::WrongType, v.Range,
                   "'zip' must list axis names to pair, [\"a\", \"b\"], or several such lists");
  }

  void wrongSection(const SectionInfo &info, const Field &f, const std::string &expected) {
    Diags.report(DiagCode::WrongType, f.Value->Range,
                 llvm::formatv("'{0}' must be {1}", info.Path, expected).str());
  }

private:
  DiagnosticEngine &Diags;
};
} // namespace

void mixtape::checkSchema(const Value &root, DiagnosticEngine &diags) {
  SchemaChecker(diags).checkRoot(root);
}
