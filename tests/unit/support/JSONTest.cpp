#include "mixtape/support/JSON.h"

#include <gtest/gtest.h>

#include <string>

using namespace mixtape;

namespace {

std::string errorOf(llvm::StringRef text, uint64_t base = 0) {
  llvm::Expected<llvm::json::Value> value = parseJSON(text, "f.json", base);
  if (value)
    return "parsed";
  return llvm::toString(value.takeError());
}

std::string nested(char open, char close, size_t depth) {
  return std::string(depth, open) + std::string(depth, close);
}

TEST(ParseJSON, ParsesWhatLLVMParses) {
  llvm::Expected<llvm::json::Value> value = parseJSON(R"({"a": [1, {"b": "x"}]})", "f.json");
  ASSERT_TRUE(bool(value)) << llvm::toString(value.takeError());
  EXPECT_EQ(*value->getAsObject()->getArray("a")->front().getAsInteger(), 1);
}

TEST(ParseJSON, RefusesDeepNestingAtTheBracketThatGoesTooDeep) {
  // A hundred thousand levels overflowed llvm::json::parse's stack (SIGSEGV).
  EXPECT_EQ(errorOf(nested('[', ']', 100000)), "f.json: byte 512: JSON nested deeper than 512 levels");
  EXPECT_EQ(errorOf(nested('{', '}', 100000)), "f.json: byte 512: JSON nested deeper than 512 levels");
  EXPECT_EQ(errorOf(" " + std::string(300, '[') + std::string(300, '{')),
            "f.json: byte 513: JSON nested deeper than 512 levels");
  EXPECT_EQ(errorOf(nested('[', ']', 513), 8), "f.json: byte 520: JSON nested deeper than 512 levels");
}

TEST(ParseJSON, AcceptsTheLimit) {
  EXPECT_EQ(errorOf(nested('[', ']', 512)), "parsed");
  // Closed brackets do not add up: a thousand arrays side by side nest one level.
  std::string wide = "[";
  for (int i = 0; i < 1000; ++i)
    wide += (i ? "," : "") + nested('[', ']', 500);
  EXPECT_EQ(errorOf(wide + "]"), "parsed");
}

TEST(ParseJSON, BracketsInStringsDoNotCount) {
  std::string text = "[\"" + std::string(1000, '[') + "\\\"" + std::string(1000, '{') + "\\\\\"]";
  EXPECT_EQ(errorOf(text), "parsed");
  // An escaped quote does not end the string: the brackets after it are still inside it.
  EXPECT_EQ(errorOf("{\"k\\\"" + std::string(1000, '[') + "\": 1}"), "parsed");
}

TEST(ParseJSON, SyntaxErrorsNameTheFileAndByte) {
  EXPECT_EQ(errorOf("{\"a\": "), "f.json: byte 6: invalid JSON: Unexpected EOF");
  EXPECT_EQ(errorOf("[1, 2", 100), "f.json: byte 105: invalid JSON: Expected , or ] after array element");
}

} // namespace

TEST(FormatJSON, SortsKeysAndSpellsFloatsShortest) {
  llvm::json::Value v = llvm::json::Object{{"rms_norm_eps", 1e-6},
                                           {"a", llvm::json::Array{0.1, 10000.0, int64_t(3), nullptr, true}},
                                           {"inf", INFINITY},
                                           {"name", "x"}};
  EXPECT_EQ(mixtape::formatJSON(v, 0),
            "{\"a\":[0.1,10000,3,null,true],\"inf\":null,\"name\":\"x\",\"rms_norm_eps\":1e-6}\n");
  EXPECT_EQ(mixtape::formatJSON(llvm::json::Object{{"b", 2}, {"a", llvm::json::Object{{"c", 0.5}}}}),
            "{\n  \"a\": {\n    \"c\": 0.5\n  },\n  \"b\": 2\n}\n");
}
