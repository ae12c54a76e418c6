// docs/plan-format.md documents every key of PlanKeys.def, its presence, and every enum
// value. The page's convention (stated at its end): each struct has a section whose heading
// ends with "(StructName)" and whose table lists exactly its keys, in table order, as
// "| `key` | type | required or optional | meaning |"; each enum has a row of the Enums
// table, "| EnumName | `value`, `value` | meaning |", with exactly its values in order.
#include "mixtape/plan/Plan.h"

#include "llvm/ADT/StringExtras.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

using namespace mixtape::plan;

namespace {

const char *const kDoc = "docs/plan-format.md";

std::vector<std::string> docLines() {
  std::ifstream in(std::string(MIXTAPE_SOURCE_DIR) + "/" + kDoc);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  return lines;
}

/// The cells of a table row "| a | b |", trimmed; empty for any other line.
std::vector<std::string> cells(llvm::StringRef line) {
  line = line.trim();
  if (!line.consume_front("|") || !line.consume_back("|"))
    return {};
  llvm::SmallVector<llvm::StringRef, 4> parts;
  line.split(parts, '|');
  std::vector<std::string> out;
  for (llvm::StringRef p : parts)
    out.push_back(p.trim().str());
  return out;
}

/// The words in backticks of `text`, in order.
std::vector<std::string> backticked(llvm::StringRef text) {
  std::vector<std::string> out;
  llvm::SmallVector<llvm::StringRef, 8> parts;
  text.split(parts, '`');
  for (size_t i = 1; i < parts.size(); i += 2)
    out.push_back(parts[i].str());
  return out;
}

/// The struct and presence of every key, straight from the table (allPlanKeys has no presence).
struct Declared {
  const char *Struct, *Key;
  bool Required;
};
const Declared kDeclared[] = {
#define PLAN_FIELD(TYPE, MEMBER, KEY, CPPTYPE, PRESENCE, ROLE, DOC) {#TYPE, KEY, PRESENCE == Required},
#include "mixtape/plan/PlanKeys.def"
};
const char *const kStructs[] = {
#define PLAN_STRUCT(TYPE, DOC) #TYPE,
#include "mixtape/plan/PlanKeys.def"
};

TEST(PlanDocs, EveryStructsKeysAreDocumentedInTableOrder) {
  const std::vector<std::string> lines = docLines();
  ASSERT_FALSE(lines.empty()) << kDoc << " is missing";
  ASSERT_EQ(std::size(kDeclared), allPlanKeys().size());

  std::map<std::string, std::vector<const KeyInfo *>> keysOf;
  for (const KeyInfo &k : allPlanKeys())
    keysOf[k.Struct.str()].push_back(&k);
  for (const char *structName : kStructs) {
    // Its section: from the heading ending in "(Struct)" to the next heading.
    const std::string suffix = "(" + std::string(structName) + ")";
    auto heading = std::find_if(lines.begin(), lines.end(), [&](const std::string &l) {
      return llvm::StringRef(l).startswith("#") && llvm::StringRef(l).trim().endswith(suffix);
    });
    if (heading == lines.end()) {
      ADD_FAILURE() << kDoc << " has no section for struct " << structName << " (a heading ending in '" << suffix
                    << "')";
      continue;
    }
    std::vector<std::string> documented;
    std::map<std::string, std::string> presence;
    for (auto l = heading + 1; l != lines.end() && !llvm::StringRef(*l).startswith("#"); ++l) {
      std::vector<std::string> row = cells(*l);
      if (row.size() < 4 || row[0].size() < 3 || row[0].front() != '`' || row[0].back() != '`')
        continue;
      documented.push_back(row[0].substr(1, row[0].size() - 2));
      presence[documented.back()] = row[2];
    }

    std::vector<std::string> declared;
    for (const KeyInfo *k : keysOf[structName])
      declared.push_back(k->Key.str());
    for (const std::string &key : declared)
      if (!llvm::is_contained(documented, key))
        ADD_FAILURE() << kDoc << " does not document key `" << key << "` of " << structName << " (" << *heading
                      << ")";
    for (const std::string &key : documented)
      if (!llvm::is_contained(declared, key))
        ADD_FAILURE() << kDoc << " documents key `" << key << "` under " << structName
                      << ", which PlanKeys.def does not declare there";
    if (llvm::all_of(declared, [&](const std::string &k) { return llvm::is_contained(documented, k); }) &&
        documented.size() == declared.size()) {
      EXPECT_EQ(llvm::join(documented, ", "), llvm::join(declared, ", "))
          << kDoc << ": the keys of " << structName << " are not in PlanKeys.def's order";
    }

    for (const Declared &d : kDeclared) {
      if (d.Struct != llvm::StringRef(structName) || !presence.count(d.Key))
        continue;
      const char *want = d.Required ? "required" : "optional";
      EXPECT_EQ(presence[d.Key], want) << kDoc << ": key `" << d.Key << "` of " << structName << " is " << want;
    }
  }
}

TEST(PlanDocs, EveryEnumValueIsDocumented) {
  const std::vector<std::string> lines = docLines();
  ASSERT_FALSE(lines.empty()) << kDoc << " is missing";
  for (const EnumInfo &e : allPlanEnums()) {
    auto row = std::find_if(lines.begin(), lines.end(), [&](const std::string &l) {
      std::vector<std::string> c = cells(l);
      return c.size() >= 3 && c[0] == e.Enum;
    });
    if (row == lines.end()) {
      ADD_FAILURE() << kDoc << " has no row '| " << e.Enum.str() << " | ... |' in its Enums table";
      continue;
    }
    std::vector<std::string> documented = backticked(cells(*row)[1]);
    for (llvm::StringRef name : e.Names)
      if (!llvm::is_contained(documented, name.str()))
        ADD_FAILURE() << kDoc << " does not document value `" << name.str() << "` of enum " << e.Enum.str();
    for (const std::string &name : documented)
      if (!llvm::is_contained(e.Names, llvm::StringRef(name)))
        ADD_FAILURE() << kDoc << " documents `" << name << "` as a value of enum " << e.Enum.str()
                      << ", which PlanKeys.def does not declare";
  }
}

} // namespace
