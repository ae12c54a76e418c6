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
  llvm::SourceMgr SM;
  DiagnosticEngine Diags{SM};
  std::unique_ptr<Value> Root;
  explicit Parsed(llvm::StringRef text) { Root = parseRecipeText(text, "t.toml", Diags); }
};

TEST(RecipeAST, KeepsSourceOrderAndRanges) {
  Parsed p("[b]\nz = 1\na = \"x\"\n[a]\n");
  ASSERT_TRUE(p.Root);
  ASSERT_EQ(p.Root->Fields.size(), 2u);
  EXPECT_EQ(p.Root->Fields[0].Key, "b");
  const Value *b = p.Root->get("b");
  ASSERT_EQ(b->Fields.size(), 2u);
  EXPECT_EQ(b->Fields[0].Key, "z"); // TOML++ sorts keys; the AST restores source order
  auto lc = p.Diags.lineCol(b->get("a")->Range.Start);
  EXPECT_EQ(lc.Line, 3u);
  EXPECT_EQ(lc.Column, 5u);
}

TEST(RecipeAST, ColumnsCountBytesAfterMultiByteCharacters) {
  // TOML++ counts code points; diagnostics count bytes, as clang does.
  Parsed p("k = \"é\"\nx = \"ab\"\ny = [\"é\", \"c\"]\n");
  ASSERT_TRUE(p.Root);
  const Value *y = p.Root->get("y");
  EXPECT_EQ(*y->Items[1]->Range.Start.getPointer(), '"');
  EXPECT_EQ(p.Diags.lineCol(y->Items[1]->Range.Start).Column, 12u);
}

TEST(RecipeAST, SyntaxErrorsAreDiagnostics) {
  Parsed p("a = = 1\n");
  EXPECT_FALSE(p.Root);
  ASSERT_EQ(p.Diags.errorCount(), 1u);
  EXPECT_EQ(p.Diags.diagnostics()[0].Code, DiagCode::TomlSyntax);
  EXPECT_EQ(p.Diags.lineCol(p.Diags.diagnostics()[0].Range.Start).Line, 1u);
}

TEST(RecipeAST, InvalidUtf8IsReportedAtTheByte) {
  Parsed p("a = \"\xff\"\n");
  EXPECT_FALSE(p.Root);
  ASSERT_EQ(p.Diags.errorCount(), 1u);
  EXPECT_EQ(p.Diags.lineCol(p.Diags.diagnostics()[0].Range.Start).Column, 6u);
}

TEST(DiagnosticEngine, PrintsClangFormWithCodeCaretAndFixIt) {
  Parsed p("mix = \"0.95 medd\"\n");
  const Value *mix = p.Root->get("mix");
  Diagnostic &d = p.Diags.report(DiagCode::UnknownRef, mix->location().range(5, 9), "unknown stream 'medd'");
  DiagnosticEngine::addNote(d, mix->location().range(5, 9), "did you mean 'med'?");
  DiagnosticEngine::addFixIt(d, mix->location().range(5, 9), "med");
  std::string out;
  llvm::raw_string_ostream os(out);
  p.Diags.print(os);
  EXPECT_NE(out.find("t.toml:1:13: error: unknown stream 'medd' [unknown-ref]"), std::string::npos) << out;
  EXPECT_NE(out.find("            ^~~~"), std::string::npos) << out;
  EXPECT_NE(out.find("t.toml:1:13: note: did you mean 'med'?"), std::string::npos) << out;
}

// print(os, true) colors whatever `os` is (--color into a pipe or a file), and print(os)
// never does, not even on a terminal.
TEST(DiagnosticEngine, ColorIsWhatTheCallerDecided) {
  Parsed p("mix = \"0.95 medd\"\n");
  const Value *mix = p.Root->get("mix");
  Diagnostic &d = p.Diags.report(DiagCode::UnknownRef, mix->location().range(5, 9), "unknown stream 'medd'");
  DiagnosticEngine::addNote(d, mix->location().range(5, 9), "did you mean 'med'?");
  std::string plain, colored;
  llvm::raw_string_ostream plainOs(plain), coloredOs(colored);
  p.Diags.print(plainOs);
  p.Diags.print(coloredOs, true);
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
  Diagnostic &d = p.Diags.report(DiagCode::UnknownKey, p.Root->Fields[0].KeyRange, "unknown key 'x'");
  DiagnosticEngine::addFixIt(d, p.Root->Fields[0].KeyRange, "y");
  std::vector<llvm::json::Value> all = p.Diags.toJSON();
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
  p.Diags.disable(DiagCode::UnusedStream);
  p.Diags.report(DiagCode::UnusedStream, p.Root->Fields[0].KeyRange, "silenced");
  EXPECT_EQ(p.Diags.diagnostics().size(), 0u);
  p.Diags.report(DiagCode::LrJump, p.Root->Fields[0].KeyRange, "a warning");
  EXPECT_EQ(p.Diags.warningCount(), 1u);
  p.Diags.setWarningsAsErrors(true);
  p.Diags.report(DiagCode::LrJump, p.Root->Fields[0].KeyRange, "now an error");
  EXPECT_EQ(p.Diags.errorCount(), 1u);
}

TEST(ClosestMatch, FindsTyposButNotStrangers) {
  std::vector<std::string> names = {"med", "web", "med_hq"};
  EXPECT_EQ(closestMatch("medd", names), "med");
  EXPECT_EQ(closestMatch("wb", names), "web");
  EXPECT_FALSE(closestMatch("books", names));
}

} // namespace
