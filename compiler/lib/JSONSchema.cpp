//===- JSONSchema.cpp - keys.def as a JSON schema, for editors ------------===//
//
// Even Better TOML and taplo complete and check a TOML file against a JSON schema (draft-07
// is what they read). This one says what checkSchema checks: the sections, their keys, the
// TOML type of each value and the choices of enumerated ones; what an expression means is
// the compiler's (a string here).
//
//===----------------------------------------------------------------------===//
#include "mixtape/compiler/Schema.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/JSON.h"

using namespace mixtape;

namespace {

/// The identifiers of grammar/expr.ebnf, as Schema.cpp's isName accepts them.
constexpr const char *kNamePattern = "^[A-Za-z_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$";

class SchemaWriter {
public:
  explicit SchemaWriter(llvm::raw_ostream &os) : J(os, 2) {}

  void root() {
    J.object([&] {
      J.attribute("$schema", "http://json-schema.org/draft-07/schema#");
      J.attribute("title", "Mixtape recipe");
      J.attribute("description", "A recipe of continual pre-training (docs/language.md); generated from "
                                 "grammar/keys.def by `mixtape schema`.");
      J.attribute("type", "object");
      J.attributeObject("properties", [&] {
        for (const SectionInfo &s : allSections())
          if (!s.Path.contains('.'))
            J.attributeObject(s.Path, [&] { section(s); });
      });
      J.attribute("additionalProperties", false);
    });
  }

private:
  void section(const SectionInfo &s) {
    J.attribute("description", s.Doc);
    switch (s.Kind) {
    case SectionKind::Table:
      return table(s.Id);
    case SectionKind::TableOfTables:
      J.attribute("type", "object");
      if (s.Id == SectionId::Sweep)
        J.attributeObject("properties", [&] { J.attributeObject("zip", [&] { zip(); }); });
      J.attributeObject("additionalProperties", [&] { table(s.Id); });
      return;
    case SectionKind::ArrayOfTables:
      J.attribute("type", "array");
      J.attributeObject("items", [&] { table(s.Id); });
      return;
    }
  }

  /// The keys of a section; checkSchema rejects any other.
  void table(SectionId id) {
    J.attribute("type", "object");
    J.attributeObject("properties", [&] {
      for (const KeyInfo &k : allKeys())
        if (k.Section == id)
          J.attributeObject(k.Name, [&] {
            J.attribute("description", k.Doc);
            value(k.Type);
            defaultOf(k);
          });
    });
    auto isRequired = [&](const KeyInfo &k) { return k.Section == id && k.Flags == KeyFlags::Required; };
    if (llvm::any_of(allKeys(), isRequired))
      J.attributeArray("required", [&] {
        for (const KeyInfo &k : allKeys())
          if (isRequired(k))
            J.value(k.Name);
      });
    J.attribute("additionalProperties", false);
  }

  /// The key's DEFAULT rows of keys.def, which editors show, as written there (a number or
  /// a boolean, which JSON spells alike): one value, or the list of them (betas has a row
  /// per beta).
  void defaultOf(const KeyInfo &k) {
    std::vector<std::string> spellings;
    for (const DefaultInfo &d : allDefaults())
      if (d.Section == k.Section && d.Key == k.Name)
        spellings.push_back(d.Spelling.str());
    if (spellings.empty())
      return;
    J.attributeBegin("default");
    J.rawValue(spellings.size() == 1 ? spellings[0] : "[" + llvm::join(spellings, ", ") + "]");
    J.attributeEnd();
  }

  /// [sweep]'s `zip`: axis names to pair, or several such lists (Schema.cpp's checkZip).
  void zip() {
    J.attribute("description", "axes to pair instead of crossing: [\"a\", \"b\"], or several such lists");
    J.attributeArray("anyOf", [&] {
      J.object([&] { group(); });
      J.object([&] {
        J.attribute("type", "array");
        J.attribute("minItems", 1);
        J.attributeObject("items", [&] { group(); });
      });
    });
  }

  void group() {
    J.attribute("type", "array");
    J.attribute("minItems", 2);
    J.attributeObject("items", [&] { J.attribute("type", "string"); });
  }

  void arrayOf(llvm::StringRef itemType) {
    J.attribute("type", "array");
    J.attributeObject("items", [&] { J.attribute("type", itemType); });
  }

  /// `type` with more than one TOML kind: a quantity written as a number or a string.
  void eitherOf(llvm::StringRef first, llvm::StringRef second) {
    J.attributeArray("type", [&] {
      J.value(first);
      J.value(second);
    });
  }

  /// The TOML kinds acceptsKind (Schema.cpp) takes for `type`.
  void value(ValueType type) {
    if (auto sub = subsection(type)) {
      if (type != ValueType::Edge)
        return table(*sub);
      // A parent stage's name, or the table that says more about the edge.
      J.attributeArray("anyOf", [&] {
        J.object([&] { name(); });
        J.object([&] { table(*sub); });
      });
      return;
    }
    llvm::ArrayRef<llvm::StringRef> choices = enumChoices(type);
    if (!choices.empty()) {
      J.attribute("type", "string");
      J.attributeArray("enum", [&] {
        for (llvm::StringRef c : choices)
          J.value(c);
      });
      return;
    }
    switch (type) {
    case ValueType::Name: return name();
    case ValueType::Integer:
    case ValueType::Count: return J.attribute("type", "integer");
    case ValueType::Real: return J.attribute("type", "number");
    case ValueType::Bool: return J.attribute("type", "boolean");
    case ValueType::Reals: return arrayOf("number");
    case ValueType::Betas:
      arrayOf("number");
      J.attribute("minItems", 2);
      J.attribute("maxItems", 2);
      return;
    case ValueType::Tokens:
    case ValueType::Batch:
    case ValueType::SeqLen:
    case ValueType::Position:
    case ValueType::ByteSize: return eitherOf("string", "integer");
    case ValueType::Fraction: return eitherOf("string", "number");
    case ValueType::CodeList:
    case ValueType::NameList:
    case ValueType::Texts:
    case ValueType::EvalStreams: return arrayOf("string");
    case ValueType::ModelRefs:
      J.attributeArray("anyOf", [&] {
        J.object([&] { J.attribute("type", "string"); });
        J.object([&] { arrayOf("string"); });
      });
      return;
    case ValueType::Combine: return eitherOf("string", "array");
    case ValueType::Labels: return J.attribute("type", "object");
    case ValueType::ActivationCheckpointing:
      J.attribute("type", "string");
      J.attribute("pattern", "^(none|full|every [1-9][0-9]*)$");
    case ValueType::GroupScales:
      J.attribute("type", "object");
      J.attributeObject("additionalProperties", [&] { J.attribute("type", "number"); });
      return;
    default: return J.attribute("type", "string"); // text, paths and expressions
    }
  }

  void name() {
    J.attribute("type", "string");
    J.attribute("pattern", kNamePattern);
  }

  llvm::json::OStream J;
};

} // namespace

void mixtape::writeJSONSchema(llvm::raw_ostream &os) {
  SchemaWriter(os).root();
  os << "\n";
}
