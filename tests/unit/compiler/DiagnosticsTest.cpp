// Diagnostics: locations inside TOML strings, printing, JSON, suppression.
#include "mixtape/compiler/Diagnostics.h"
#include "mixtape/compiler/RecipeAST.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

using namespace mixtape;

namespace {

// Column (1-based, bytes) of decoded offset `i` of the string value at the start of `text`.
unsigned columnOf(llvm::StringRef literal, size_t i) {
  StringLocation loc(literal.data(), literal.data() + literal.size());
  return static_cast<unsigned>(loc.at(i).getPointer() - literal.data()) + 1;
}

TEST(StringLocation, PlainStringMapsOneToOne) {
  // "0.95 medd": decoded offset 5 ('m') sits after the opening quote.
  EXPECT_EQ(columnOf("\"0.95 medd\"", 5), 7u);
  EXPECT_EQ(columnOf("'lit'", 0), 2u);
}

TEST(StringLocation, EscapesShiftLaterCharacters) {
  // "a\tb": decoded 'b' is offset 2, written at byte 4 (after the two-byte escape).
  EXPECT_EQ(columnOf("\"a\\tb\"", 2), 5u);
  // \u00e9 decodes to two UTF-8 bytes that both map to the escape.
  EXPECT_EQ(columnOf("\"\\u00e9x\"", 0), 2u);
  EXPECT_EQ(columnOf("\"\\u00e9x\"", 1), 2u);
  EXPECT_EQ(columnOf("\"\\u00e9x\"", 2), 8u);
}

TEST(StringLocation, MultiLineStringsTrimTheFirstNewline) {
  llvm::StringRef text = "\"\"\"\nab\"\"\"";
  StringLocation loc(text.data(), text.data() + text.size());
  EXPECT_EQ(loc.at(0).getPointer(), text.data() + 4);
  // Line-ending backslash drops the newline and leading spaces of the next line.
  llvm::StringRef folded = "\"\"\"a\\\n   b\"\"\"";
  StringLocation f(folded.data(), folded.data() + folded.size());
  EXPECT_EQ(*f.at(1).getPointer(), 'b');
}

struct Parsed {
  llvm::SourceMgr sm;
  DiagnosticEngine diags{sm};
  std::unique_ptr<Value> root;
  explicit Parsed(llvm::StringRef text) { root = parseRecipeText(text, "t.toml", diags); }
};

TEST(RecipeAST, KeepsSourceOrderAndRanges) {
  Parsed p("[b]\nz = 1\na = \"x\"\n[a]\n");
  ASSERT_TRUE(p.root);
  ASSERT_EQ(p.root->fields.size(), 2u);
  EXPECT_EQ(p.root->fields[0].key, "b");
  const Value *b = p.root->get("b");
  ASSERT_EQ(b->fields.size(), 2u);
  EXPECT_EQ(b->fields[0].key, "z"); // TOML++ sorts keys; the AST restores source order
  auto lc = p.diags.lineCol(b->get("a")->range.Start);
  EXPECT_EQ(lc.line, 3u);
  EXPECT_EQ(lc.column, 5u);
}

TEST(RecipeAST, ColumnsCountBytesAfterMultiByteCharacters) {
  // TOML++ counts code points; diagnostics count bytes, as clang does.
  Parsed p("k = \"é\"\nx = \"ab\"\ny = [\"é\", \"c\"]\n");
  ASSERT_TRUE(p.root);
  const Value *y = p.root->get("y");
  EXPECT_EQ(*y->items[1]->range.Start.getPointer(), '"');
  EXPECT_EQ(p.diags.lineCol(y->items[1]->range.Start).column, 12u);
}

TEST(RecipeAST, SyntaxErrorsAreDiagnostics) {
  Parsed p("a = = 1\n");
  EXPECT_FALSE(p.root);
  ASSERT_EQ(p.diags.errorCount(), 1u);
  EXPECT_EQ(p.diags.diagnostics()[0].code, DiagCode::TomlSyntax);
  EXPECT_EQ(p.diags.lineCol(p.diags.diagnostics()[0].range.Start).line, 1u);
}

TEST(RecipeAST, InvalidUtf8IsReportedAtTheByte) {
  Parsed p("a = \"\xff\"\n");
  EXPECT_FALSE(p.root);
  ASSERT_EQ(p.diags.errorCount(), 1u);
  EXPECT_EQ(p.diags.lineCol(p.diags.diagnostics()[0].range.Start).column, 6u);
}

TEST(DiagnosticEngine, PrintsClangFormWithCodeCaretAndFixIt) {
  Parsed p("mix = \"0.95 medd\"\n");
  const Value *mix = p.root->get("mix");
  Diagnostic &d = p.diags.report(DiagCode::UnknownRef, mix->location().range(5, 9), "unknown stream 'medd'");
  DiagnosticEngine::addNote(d, mix->location().range(5, 9), "did you mean 'med'?");
  DiagnosticEngine::addFixIt(d, mix->location().range(5, 9), "med");
  std::string out;
  llvm::raw_string_ostream os(out);
  p.diags.print(os);
  EXPECT_NE(out.find("t.toml:1:13: error: unknown stream 'medd' [unknown-ref]"), std::string::npos) << out;
  EXPECT_NE(out.find("            ^~~~"), std::string::npos) << out;
  EXPECT_NE(out.find("t.toml:1:13: note: did you mean 'med'?"), std::string::npos) << out;
}

// print(os, true) colors whatever `os` is (--color into a pipe or a file), and print(os)
// never does, not even on a terminal.
TEST(DiagnosticEngine, ColorIsWhatTheCallerDecided) {
  Parsed p("mix = \"0.95 medd\"\n");
  const Value *mix = p.root->get("mix");
  Diagnostic &d = p.diags.report(DiagCode::UnknownRef, mix->location().range(5, 9), "unknown stream 'medd'");
  DiagnosticEngine::addNote(d, mix->location().range(5, 9), "did you mean 'med'?");
  std::string plain, colored;
  llvm::raw_string_ostream plainOs(plain), coloredOs(colored);
  p.diags.print(plainOs);
  p.diags.print(coloredOs, true);
  plainOs.flush();
  coloredOs.flush();
  EXPECT_EQ(plain.find('\x1b'), std::string::npos) << plain;
  EXPECT_NE(colored.find('\x1b'), std::string::npos) << colored;
  // The same text once the escapes are taken out.
  std::string stripped;
  for (size_t i = 0; i < colored.size(); ++i) {
    if (colored[i] != '\x1b') {
      stripped += colored[i];
      continue;
    }
    while (i < colored.size() && colored[i] != 'm')
      ++i;
  }
  EXPECT_EQ(stripped, plain);
}

TEST(DiagnosticEngine, JsonHasEveryField) {
  Parsed p("x = 1\n");
  Diagnostic &d = p.diags.report(DiagCode::UnknownKey, p.root->fields[0].keyRange, "unknown key 'x'");
  DiagnosticEngine::addFixIt(d, p.root->fields[0].keyRange, "y");
  std::vector<llvm::json::Value> all = p.diags.toJSON();
  ASSERT_EQ(all.size(), 1u);
  const llvm::json::Object *o = all[0].getAsObject();
  EXPECT_EQ(o->getString("file"), llvm::StringRef("t.toml"));
  EXPECT_EQ(*o->getInteger("line"), 1);
  EXPECT_EQ(*o->getInteger("column"), 1);
  EXPECT_EQ(o->getString("severity"), llvm::StringRef("error"));
  EXPECT_EQ(o->getString("code"), llvm::StringRef("unknown-key"));
  const llvm::json::Array *fixits = o->getArray("fixits");
  ASSERT_EQ(fixits->size(), 1u);
  EXPECT_EQ((*fixits)[0].getAsObject()->getString("replacement"), llvm::StringRef("y"));
}

TEST(DiagnosticEngine, WerrorAndDisable) {
  Parsed p("x = 1\n");
  p.diags.disable(DiagCode::UnusedStream);
  p.diags.report(DiagCode::UnusedStream, p.root->fields[0].keyRange, "silenced");
  EXPECT_EQ(p.diags.diagnostics().size(), 0u);
  p.diags.report(DiagCode::LrJump, p.root->fields[0].keyRange, "a warning");
  EXPECT_EQ(p.diags.warningCount(), 1u);
  p.diags.setWarningsAsErrors(true);
  p.diags.report(DiagCode::LrJump, p.root->fields[0].keyRange, "now an error");
  EXPECT_EQ(p.diags.errorCount(), 1u);
}

TEST(ClosestMatch, FindsTyposButNotStrangers) {
  std::vector<std::string> names = {"med", "web", "med_hq"};
  EXPECT_EQ(closestMatch("medd", names), "med");
  EXPECT_EQ(closestMatch("wb", names), "web");
  EXPECT_FALSE(closestMatch("books", names));
}

} // namespace
