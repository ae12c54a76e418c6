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
    if (k.section == section && k.name == name)
      return &k;
  return nullptr;
}

std::vector<std::string> mixtape::keyNames(SectionId section) {
  std::vector<std::string> names;
  for (const KeyInfo &k : kKeys)
    if (k.section == section)
      names.push_back(k.name.str());
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
  case ValueType::OnNonFinite: return planNames<plan::NonFiniteAction>();
  case ValueType::MergeMethod: return planNames<plan::MergeMethod>();
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
  case ValueType::Transform: return "a transform such as \"untie_knots(chunks = {1: 0.7, 3: 0.3})\"";
  case ValueType::Combine: return "\"subsets(max = 3)\" or a list of unit lists";
  case ValueType::Init: return "\"random\" or \"hf:PATH\"";
  case ValueType::Tokenizer: return "\"bytes\" or \"hf:PATH\"";
  case ValueType::CodeList: return "a list of diagnostic codes";
  case ValueType::NameList: return "a list of names";
  case ValueType::EvalStreams: return "a list of splits such as [\"web.val\"]";
  case ValueType::SweepKey: return "a setting path such as \"adapt.mix\"";
  case ValueType::Labels: return "a table of labelled values";
  case ValueType::ModelRef: return "a model such as \"adapt\" or \"anneal[replay=r5]\"";
  case ValueType::ModelRefs: return "models: a list or a selector such as \"anneal[*]\"";
  case ValueType::Edge: return "a stage name or { stage, at, optimizer }";
  case ValueType::Optimizer: return "a table { kind, betas, eps, weight_decay }";
  case ValueType::Checkpoint: return "a table { every, keep }";
  case ValueType::Units: return "a table { stream, split } or { stream, by }";
  case ValueType::AblationTrain: return "a table { tokens, lr, mix }";
  case ValueType::During: return "a table { every }";
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
  return v.kind == Value::Array &&
         llvm::all_of(v.items, [](const auto &i) { return i->kind == Value::String; });
}

static bool acceptsKind(ValueType type, const Value &v) {
  switch (type) {
  case ValueType::Integer:
  case ValueType::Count: return v.kind == Value::Integer;
  case ValueType::Real: return v.isNumber();
  case ValueType::Bool: return v.kind == Value::Bool;
  case ValueType::Reals:
  case ValueType::Betas:
    return v.kind == Value::Array && llvm::all_of(v.items, [](const auto &i) { return i->isNumber(); });
  case ValueType::Tokens:
  case ValueType::Batch:
  case ValueType::SeqLen:
  case ValueType::Position: return v.kind == Value::String || v.kind == Value::Integer;
  case ValueType::Fraction: return v.kind == Value::String || v.isNumber();
  case ValueType::CodeList:
  case ValueType::NameList:
  case ValueType::EvalStreams: return isStringArray(v);
  case ValueType::ModelRefs: return v.kind == Value::String || isStringArray(v);
  case ValueType::Combine: return v.kind == Value::String || v.kind == Value::Array;
  case ValueType::Edge: return v.kind == Value::String || v.kind == Value::Table;
  case ValueType::Labels:
  case ValueType::Optimizer:
  case ValueType::Checkpoint:
  case ValueType::Units:
  case ValueType::AblationTrain:
  case ValueType::During: return v.kind == Value::Table;
  default: return v.kind == Value::String;
  }
}

namespace {
class SchemaChecker {
public:
  explicit SchemaChecker(DiagnosticEngine &diags) : diags(diags) {}

  void checkTable(SectionId section, const Value &table, llvm::StringRef where) {
    for (const Field &f : table.fields) {
      const KeyInfo *key = findKey(section, f.key);
      if (!key) {
        unknownKey(section, f, where);
        continue;
      }
      checkValue(*key, *f.value, where);
    }
    for (const KeyInfo &k : allKeys())
      if (k.section == section && k.flags == KeyFlags::Required && !table.get(k.name))
        diags.report(DiagCode::MissingKey, table.range,
                     llvm::formatv("{0} needs '{1}' ({2})", where, k.name, k.doc).str());
  }

  void checkValue(const KeyInfo &key, const Value &v, llvm::StringRef where) {
    if (!acceptsKind(key.type, v)) {
      diags.report(DiagCode::WrongType, v.range,
                   llvm::formatv("'{0}' must be {1}, not {2} {3}", key.name, describeType(key.type),
                                 v.kind == Value::Integer ? "an" : "a", v.kindName())
                       .str());
      return;
    }
    if (key.type == ValueType::Name && !isName(v.string)) {
      diags.report(DiagCode::BadValue, v.range,
                   "'" + v.string + "' is not a name: names are letters, digits, '_' and '-', starting with a "
                   "letter or '_', so that expressions can refer to them");
      return;
    }
    if (auto sub = subsection(key.type); sub && v.kind == Value::Table)
      checkTable(*sub, v, (where + "." + key.name).str());
    auto choices = enumChoices(key.type);
    if (!choices.empty() && !llvm::is_contained(choices, v.string)) {
      std::vector<std::string> names(choices.begin(), choices.end());
      Diagnostic &d = diags.report(
          DiagCode::BadValue, v.range,
          llvm::formatv("'{0}' is not {1}", v.string, describeType(key.type)).str());
      DiagnosticEngine::suggest(d, v.string, names, v.location().range(0, v.string.size()));
    }
  }

  void unknownKey(SectionId section, const Field &f, llvm::StringRef where) {
    Diagnostic &d = diags.report(DiagCode::UnknownKey, f.keyRange,
                                 llvm::formatv("unknown key '{0}' in {1}", f.key, where).str());
    DiagnosticEngine::suggest(d, f.key, keyNames(section), f.keyRange);
  }

  void checkRoot(const Value &root) {
    std::vector<std::string> sectionNames;
    for (const SectionInfo &s : allSections())
      if (!s.path.contains('.'))
        sectionNames.push_back(s.path.str());
    for (const Field &f : root.fields) {
      const SectionInfo *info = nullptr;
      for (const SectionInfo &s : allSections())
        if (s.path == f.key)
          info = &s;
      if (!info) {
        Diagnostic &d = diags.report(DiagCode::UnknownKey, f.keyRange,
                                     llvm::formatv("unknown section '{0}'", f.key).str());
        DiagnosticEngine::suggest(d, f.key, sectionNames, f.keyRange);
        continue;
      }
      checkSection(*info, f);
    }
  }

  void checkSection(const SectionInfo &info, const Field &f) {
    const Value &v = *f.value;
    switch (info.kind) {
    case SectionKind::Table:
      if (v.kind != Value::Table)
        return wrongSection(info, f, "a table: [" + info.path.str() + "]");
      return checkTable(info.id, v, "[" + info.path.str() + "]");
    case SectionKind::TableOfTables:
      if (v.kind != Value::Table)
        return wrongSection(info, f, "a table of named tables: [" + info.path.str() + ".NAME]");
      for (const Field &entry : v.fields) {
        // [sweep] also holds `zip`, which pairs axes instead of crossing them.
        if (info.id == SectionId::Sweep && entry.key == "zip") {
          checkZip(*entry.value);
          continue;
        }
        if (entry.value->kind != Value::Table) {
          diags.report(DiagCode::WrongType, entry.value->range,
                       llvm::formatv("'{0}.{1}' must be a table", info.path, entry.key).str());
          continue;
        }
        checkTable(info.id, *entry.value, "[" + info.path.str() + "." + entry.key + "]");
      }
      return;
    case SectionKind::ArrayOfTables:
      if (v.kind != Value::Array ||
          !llvm::all_of(v.items, [](const auto &i) { return i->kind == Value::Table; }))
        return wrongSection(info, f, "an array of tables: [[" + info.path.str() + "]]");
      for (const auto &item : v.items)
        checkTable(info.id, *item, "[[" + info.path.str() + "]]");
      return;
    }
  }

  void checkZip(const Value &v) {
    auto isGroup = [](const Value &g) { return isStringArray(g) && g.items.size() >= 2; };
    bool ok = isGroup(v) || (v.kind == Value::Array && !v.items.empty() &&
                             llvm::all_of(v.items, [&](const auto &g) { return isGroup(*g); }));
    if (!ok)
      diags.report(DiagCode::WrongType, v.range,
                   "'zip' must list axis names to pair, [\"a\", \"b\"], or several such lists");
  }

  void wrongSection(const SectionInfo &info, const Field &f, const std::string &expected) {
    diags.report(DiagCode::WrongType, f.value->range,
                 llvm::formatv("'{0}' must be {1}", info.path, expected).str());
  }

private:
  DiagnosticEngine &diags;
};
} // namespace

void mixtape::checkSchema(const Value &root, DiagnosticEngine &diags) {
  SchemaChecker(diags).checkRoot(root);
}
