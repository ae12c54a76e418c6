//===- BpeTokenizerTest.cpp -----------------------------------------------===//
//
// Byte-level BPE against the ids Hugging Face `tokenizers` produced
// (tests/fixtures/bpe-bytelevel), the GPT-2 regex against Python's `regex` module, and
// hostile tokenizer files against the errors they must give.
//
//===----------------------------------------------------------------------===//
#include "DataTestSupport.h"
#include "Fixtures.h"

#include "mixtape/data/BpeTokenizer.h"
#include "mixtape/data/Random.h"

#include "llvm/Support/ConvertUTF.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

using namespace mixtape::data;
using namespace mixtape::data::test;
namespace json = llvm::json;

namespace {
const std::string FixtureDir = mixtape::test::fixturesDir() + "/bpe-bytelevel";

std::string readText(const std::string &path) {
  std::vector<uint8_t> bytes = readBytes(path);
  return std::string(bytes.begin(), bytes.end());
}

void writeText(const std::string &path, llvm::StringRef text) {
  writeBytes(path, std::vector<uint8_t>(text.bytes_begin(), text.bytes_end()));
}

class BpeFixtureTest : public ::testing::Test {
protected:
  void SetUp() override { MIXTAPE_REQUIRE_FIXTURES(FixtureDir + "/tokenizer.json"); }

  std::unique_ptr<Tokenizer> open(const std::string &path) {
    std::unique_ptr<Tokenizer> tokenizer = take(createTokenizer("hf:" + path));
    EXPECT_TRUE(tokenizer) << path;
    return tokenizer;
  }

  struct Sample {
    std::string Text;
    std::vector<uint32_t> Ids;
  };
  std::vector<Sample> samples() {
    llvm::Expected<json::Value> root = json::parse(readText(FixtureDir + "/expected.json"));
    EXPECT_TRUE(!!root);
    std::vector<Sample> out;
    for (const json::Value &sample : *root->getAsObject()->getArray("samples")) {
      const json::Object &o = *sample.getAsObject();
      Sample s{o.getString("text")->str(), {}};
      for (const json::Value &id : *o.getArray("ids"))
        s.Ids.push_back(static_cast<uint32_t>(*id.getAsUINT64()));
      out.push_back(std::move(s));
    }
    EXPECT_EQ(out.size(), 10u);
    return out;
  }

  void expectMatchesHuggingFace(const Tokenizer &tokenizer) {
    for (const Sample &sample : samples()) {
      EXPECT_EQ(tokenizer.encode(sample.Text), sample.Ids) << sample.Text;
      EXPECT_EQ(tokenizer.decode(sample.Ids), sample.Text);
      // Again, now from the pre-token cache.
      EXPECT_EQ(tokenizer.encode(sample.Text), sample.Ids) << sample.Text;
    }
  }

  /// The fixture's tokenizer.json, changed by `edit`, written to the test's folder.
  void writeEditedJson(const std::function<void(json::Object &)> &edit) {
    llvm::Expected<json::Value> root = json::parse(readText(FixtureDir + "/tokenizer.json"));
    ASSERT_TRUE(!!root);
    edit(*root->getAsObject());
    writeText(Dir / "tokenizer.json", llvm::formatv("{0:2}", *root).str());
  }

  /// The error loading the edited file gives, with the folder's path replaced by "DIR".
  std::string errorOfEditedJson(const std::function<void(json::Object &)> &edit) {
    writeEditedJson(edit);
    return errorIn(createTokenizer("hf:" + Dir.Path));
  }

  std::string errorIn(llvm::Expected<std::unique_ptr<Tokenizer>> tokenizer) {
    std::string text = errorText(tokenizer.takeError());
    for (size_t at; (at = text.find(Dir.Path)) != std::string::npos;)
      text.replace(at, Dir.Path.size(), "DIR");
    return text;
  }

  json::Object &model(json::Object &root) { return *root.getObject("model"); }

  TempDir Dir;
};
} // namespace

TEST_F(BpeFixtureTest, TokenizerJsonMatchesHuggingFace) {
  std::unique_ptr<Tokenizer> tokenizer = open(FixtureDir + "/tokenizer.json");
  ASSERT_TRUE(tokenizer);
  EXPECT_EQ(tokenizer->vocabSize(), 1000u);
  EXPECT_EQ(tokenizer->eot(), 0u);
  EXPECT_EQ(tokenizer->knot(), std::nullopt);
  EXPECT_TRUE(llvm::StringRef(tokenizer->id()).startswith("bpe:"));
  EXPECT_EQ(tokenizer->id().size(), 4u + 16u);
  expectMatchesHuggingFace(*tokenizer);
}

TEST_F(BpeFixtureTest, VocabAndMergesMatchHuggingFace) {
  llvm::sys::fs::copy_file(FixtureDir + "/vocab.json", Dir / "vocab.json");
  llvm::sys::fs::copy_file(FixtureDir + "/merges.txt", Dir / "merges.txt");
  std::unique_ptr<Tokenizer> tokenizer = open(Dir.Path);
  ASSERT_TRUE(tokenizer);
  EXPECT_EQ(tokenizer->vocabSize(), 1000u);
  EXPECT_EQ(tokenizer->eot(), 0u);
  expectMatchesHuggingFace(*tokenizer);
}

TEST_F(BpeFixtureTest, MergesAsStringsMatchHuggingFace) {
  // Older tokenizer.json files write each merge as "left right".
  writeEditedJson([](json::Object &root) {
    for (json::Value &merge : *root.getObject("model")->getArray("merges")) {
      const json::Array &pair = *merge.getAsArray();
      merge = (*pair[0].getAsString() + " " + *pair[1].getAsString()).str();
    }
  });
  std::unique_ptr<Tokenizer> tokenizer = open(Dir / "tokenizer.json");
  ASSERT_TRUE(tokenizer);
  expectMatchesHuggingFace(*tokenizer);
}

TEST_F(BpeFixtureTest, RoundTripsEveryByteAndRandomText) {
  std::unique_ptr<Tokenizer> tokenizer = open(FixtureDir + "/tokenizer.json");
  ASSERT_TRUE(tokenizer);
  for (unsigned b = 0; b < 256; ++b) {
    std::string text(1, static_cast<char>(b));
    std::vector<uint32_t> ids = tokenizer->encode(text);
    ASSERT_EQ(ids.size(), 1u) << b;
    EXPECT_EQ(tokenizer->decode(ids), text) << b;
  }
  SplitMix64 rng(8);
  // Code points from ASCII, Latin-1, CJK, emoji and the rest, with some stray bytes.
  const uint32_t ranges[][2] = {{0x20, 0x7E}, {0x09, 0x0D}, {0xA0, 0x17F}, {0x2000, 0x206F},
                                {0x3000, 0x30FF}, {0x4E00, 0x9FFF}, {0x1F600, 0x1F64F}, {0x80, 0x10FFFF}};
  for (int round = 0; round < 500; ++round) {
    std::string text;
    for (uint64_t n = rng.below(60); n > 0; --n) {
      if (rng.below(50) == 0) {
        text.push_back(static_cast<char>(rng.below(256)));
        continue;
      }
      const uint32_t *range = ranges[rng.below(std::size(ranges))];
      uint32_t cp = static_cast<uint32_t>(rng.between(range[0], range[1]));
      if (cp >= 0xD800 && cp <= 0xDFFF)
        cp = ' ';
      char utf8[UNI_MAX_UTF8_BYTES_PER_CODE_POINT], *end = utf8;
      ASSERT_TRUE(llvm::ConvertCodePointToUTF8(cp, end));
      text.append(utf8, end);
    }
    std::vector<uint32_t> ids = tokenizer->encode(text);
    ASSERT_EQ(tokenizer->decode(ids), text);
    for (uint32_t id : ids)
      ASSERT_LT(id, tokenizer->vocabSize());
  }
}

TEST_F(BpeFixtureTest, LongWordsMergeLikeShortOnes) {
  std::unique_ptr<Tokenizer> tokenizer = open(FixtureDir + "/tokenizer.json");
  ASSERT_TRUE(tokenizer);
  // Past the cached length, and long enough that quadratic merging would show.
  std::string word;
  for (int i = 0; i < 20000; ++i)
    word += "the";
  std::vector<uint32_t> ids = tokenizer->encode(word);
  EXPECT_EQ(tokenizer->decode(ids), word);
  std::vector<uint32_t> some = tokenizer->encode(std::string(200, ' '));
  EXPECT_EQ(tokenizer->decode(some), std::string(200, ' '));
  EXPECT_LT(some.size(), 60u);
}

TEST_F(BpeFixtureTest, SpecialTokensStayWhole) {
  std::unique_ptr<Tokenizer> tokenizer = open(FixtureDir + "/tokenizer.json");
  ASSERT_TRUE(tokenizer);
  auto concat = [&](std::initializer_list<std::vector<uint32_t>> parts) {
    std::vector<uint32_t> all;
    for (const std::vector<uint32_t> &part : parts)
      all.insert(all.end(), part.begin(), part.end());
    return all;
  };
  std::vector<uint32_t> eot{tokenizer->eot()};
  EXPECT_EQ(tokenizer->encode("one<|endoftext|>two"),
            concat({tokenizer->encode("one"), eot, tokenizer->encode("two")}));
  EXPECT_EQ(tokenizer->encode("<|endoftext|><|endoftext|>"), concat({eot, eot}));
  // The split comes first: "  " before it is a whole whitespace run, not " " + " <|".
  EXPECT_EQ(tokenizer->encode("a  <|endoftext|>"), concat({tokenizer->encode("a  "), eot}));
  EXPECT_EQ(tokenizer->encode("<|endoftext|"), concat({tokenizer->encode("<|"), tokenizer->encode("endoftext|")}));
  EXPECT_EQ(tokenizer->decode({tokenizer->eot(), 5000}), "<|endoftext|><|5000|>");
}

TEST(BpePretokensTest, MatchPythonRegexModule) {
  // Expected pieces from Python's `regex` module (2026.5.9) with the GPT-2 pattern.
  const std::pair<const char *, std::vector<std::string>> cases[] = {
      {"Hello, world!", {"Hello", ",", " world", "!"}},
      {"It's I'M we'll 'sup ''s", {"It", "'s", " I", "'", "M", " we", "'ll", " '", "sup", " ''", "s"}},
      {"a  b   c\t\td \n\n", {"a", " ", " b", "  ", " c", "\t", "\t", "d", " \n\n"}},
      {"  leading", {" ", " leading"}},
      {"trailing  ", {"trailing", "  "}},
      {"x \u00a0y", {"x", " ", "\u00a0", "y"}},
      {" nbsp and \r\n crlf", {" nbsp", " and", " \r\n", " crlf"}},
      {"3.14159 + 2x\u00b2\u00bd", {"3", ".", "14159", " +", " 2", "x", "\u00b2\u00bd"}},
      {"\u65e5\u672c\u8a9e \u30c6\u30ad\u30b9\u30c8", {"\u65e5\u672c\u8a9e", " \u30c6\u30ad\u30b9\u30c8"}},
      {"emoji \U0001F600\U0001F600 ok", {"emoji", " \U0001F600\U0001F600", " ok"}},
      {"snake_case camelCase", {"snake", "_", "case", " camelCase"}},
      {"!!'s?'ll", {"!!'", "s", "?'", "ll"}},
      {" 's", {" '", "s"}},
      {"a\u2003\u2003b", {"a", "\u2003", "\u2003", "b"}},
      {"\u3000\u3000", {"\u3000\u3000"}},
      {"tab\t", {"tab", "\t"}},
      {"'", {"'"}},
      {"don't CAN'T x'", {"don", "'t", " CAN", "'", "T", " x", "'"}},
      {"a'\u00e9", {"a", "'", "\u00e9"}},
  };
  for (const auto &[text, pieces] : cases) {
    std::vector<std::string> got;
    for (llvm::StringRef piece : gpt2Pretokens(text))
      got.push_back(piece.str());
    EXPECT_EQ(got, pieces) << text;
  }
  // Invalid UTF-8: each stray byte is one symbol character.
  EXPECT_EQ(gpt2Pretokens("a\xff\xfe b"), (std::vector<llvm::StringRef>{"a", "\xff\xfe", " b"}));
  EXPECT_EQ(gpt2Pretokens("\xe6\x97 x"), (std::vector<llvm::StringRef>{"\xe6\x97", " x"}));
  EXPECT_EQ(unicodeTablesVersion(), "14.0.0");
}

//===----------------------------------------------------------------------===//
// Hostile files
//===----------------------------------------------------------------------===//

TEST_F(BpeFixtureTest, HostileTokenizerJson) {
  EXPECT_EQ(errorOfEditedJson([&](json::Object &root) { root.erase("model"); }),
            "DIR/tokenizer.json: model: missing");
  EXPECT_EQ(errorOfEditedJson([&](json::Object &root) { model(root).erase("vocab"); }),
            "DIR/tokenizer.json: model.vocab: missing");
  EXPECT_EQ(errorOfEditedJson([&](json::Object &root) { (*model(root).getObject("vocab"))["zz"] = 5000; }),
            "DIR/tokenizer.json: model.vocab[\"zz\"]: id 5000 is out of range: 1001 tokens have ids 0 to 1000 "
            "(id 1000 is not used)");
  EXPECT_EQ(errorOfEditedJson([&](json::Object &root) { (*model(root).getObject("vocab"))["zz"] = 7; }),
            "DIR/tokenizer.json: model.vocab: id 7 is given to both \"'\" and \"zz\"");
  EXPECT_EQ(errorOfEditedJson([&](json::Object &root) { (*model(root).getObject("vocab"))["zz"] = -1; }),
            "DIR/tokenizer.json: model.vocab[\"zz\"]: expected a non-negative integer id");
  EXPECT_EQ(errorOfEditedJson([&](json::Object &root) { model(root).getObject("vocab")->erase("\xc4\x8a"); }),
            "DIR/tokenizer.json: model.vocab[\"mented\"]: id 999 is out of range: 999 tokens have ids 0 to 998 "
            "(id 199 is not used)");
  EXPECT_EQ(errorOfEditedJson([&](json::Object &root) {
              model(root).getArray("merges")->push_back(json::Array{"zz", "a"});
            }),
            "DIR/tokenizer.json: model.merges[743]: \"zz\" is not in the vocabulary");
  EXPECT_EQ(errorOfEditedJson([&](json::Object &root) {
              model(root).getArray("merges")->push_back(json::Array{"x", "q"});
            }),
            "DIR/tokenizer.json: model.merges[743]: \"xq\" is not in the vocabulary");
  EXPECT_EQ(errorOfEditedJson([&](json::Object &root) { model(root).getArray("merges")->push_back("a b c"); }),
            "DIR/tokenizer.json: model.merges[743]: expected two tokens separated by a space, got \"a b c\"");
  EXPECT_EQ(errorOfEditedJson([&](json::Object &root) { model(root).getArray("merges")->push_back(3); }),
            "DIR/tokenizer.json: model.merges[743]: expected \"left right\" or [\"left\", \"right\"]");
  EXPECT_EQ(errorOfEditedJson([&](json::Object &root) { model(root)["type"] = "WordPiece"; }),
            "DIR/tokenizer.json: model.type: 'WordPiece' is not supported (only BPE)");
  EXPECT_EQ(errorOfEditedJson([&](json::Object &root) { root["normalizer"] = json::Object{{"type", "NFKD"}}; }),
            "DIR/tokenizer.json: normalizer.type: 'NFKD' is not supported");
  EXPECT_EQ(errorOfEditedJson([&](json::Object &root) { root["pre_tokenizer"] = json::Object{{"type", "Whitespace"}}; }),
            "DIR/tokenizer.json: pre_tokenizer.type: 'Whitespace' is not supported");
  EXPECT_EQ(errorOfEditedJson([&](json::Object &root) {
              (*root.getArray("added_tokens"))[0].getAsObject()->operator[]("id") = 1;
            }),
            "DIR/tokenizer.json: added_tokens[0]: \"<|endoftext|>\" has id 1 but id 0 in the vocabulary");
  EXPECT_EQ(errorOfEditedJson([&](json::Object &root) {
              root.getArray("added_tokens")->push_back(json::Object{{"id", 5}, {"content", "<|knot|>"}});
            }),
            "DIR/tokenizer.json: added_tokens[1]: id 5 of \"<|knot|>\" is already \"%\"'s");
  EXPECT_EQ(errorOfEditedJson([&](json::Object &root) {
              root.getArray("added_tokens")->push_back(json::Object{{"id", 1002}, {"content", "<|knot|>"}});
            }),
            "DIR/tokenizer.json: added_tokens[1]: id 1002 is out of range (1000 tokens and 2 added, so ids below 1002)");
  EXPECT_EQ(errorOfEditedJson([&](json::Object &root) {
              root.getArray("added_tokens")->push_back(json::Object{{"id", 1000}, {"content", "<|endoftext|>"}});
            }),
            "DIR/tokenizer.json: added_tokens[1]: \"<|endoftext|>\" has id 1000 but id 0 in the vocabulary");
  EXPECT_EQ(errorOfEditedJson([&](json::Object &root) {
              root.getArray("added_tokens")->push_back(json::Object{{"content", "<|knot|>"}});
            }),
            "DIR/tokenizer.json: added_tokens[1].id: missing");

  writeText(Dir / "tokenizer.json", "{\"model\": {\"vocab\": {\"\xff\": 0}}}");
  EXPECT_EQ(errorIn(createTokenizer("hf:" + Dir.Path)),
            "DIR/tokenizer.json: byte 22: invalid JSON: Invalid UTF-8 sequence");
  writeText(Dir / "tokenizer.json", std::string(100000, '['));
  EXPECT_EQ(errorIn(createTokenizer("hf:" + Dir.Path)),
            "DIR/tokenizer.json: byte 512: JSON nested deeper than 512 levels");
  writeText(Dir / "tokenizer.json", "[]");
  EXPECT_EQ(errorIn(createTokenizer("hf:" + Dir.Path)), "DIR/tokenizer.json: expected a JSON object");
}

TEST_F(BpeFixtureTest, AddedTokensLoadAndSplit) {
  writeEditedJson([&](json::Object &root) {
    root.getArray("added_tokens")->push_back(json::Object{{"id", 1000}, {"content", "<|knot|>"}, {"special", true}});
    root.getArray("added_tokens")
        ->push_back(json::Object{{"id", 1001}, {"content", "[MASK]"}, {"lstrip", true}, {"rstrip", true}});
  });
  std::unique_ptr<Tokenizer> tokenizer = open(Dir.Path);
  ASSERT_TRUE(tokenizer);
  EXPECT_EQ(tokenizer->vocabSize(), 1002u);
  EXPECT_EQ(tokenizer->knot(), 1000u);
  std::vector<uint32_t> expected = tokenizer->encode("a");
  expected.push_back(1001);
  for (uint32_t id : tokenizer->encode("b"))
    expected.push_back(id);
  EXPECT_EQ(tokenizer->encode("a \t[MASK]  b"), expected); // lstrip and rstrip take the spaces
  EXPECT_EQ(tokenizer->encode("<|knot|>"), std::vector<uint32_t>{1000});
  EXPECT_EQ(tokenizer->decode({1000, 1001}), "<|knot|>[MASK]");
}

TEST_F(BpeFixtureTest, HostileVocabAndMerges) {
  std::string vocab = readText(FixtureDir + "/vocab.json");
  std::string merges = readText(FixtureDir + "/merges.txt");
  auto errorOf = [&](const std::string &v, const std::string &m) {
    writeText(Dir / "vocab.json", v);
    writeText(Dir / "merges.txt", m);
    return errorIn(createTokenizer(Dir.Path));
  };
  EXPECT_EQ(errorOf(vocab, merges + "zz a\n"), "DIR/merges.txt: line 745: \"zz\" is not in the vocabulary");
  EXPECT_EQ(errorOf(vocab, merges + "a\n"),
            "DIR/merges.txt: line 745: expected two tokens separated by a space, got \"a\"");
  EXPECT_EQ(errorOf(vocab, "#version: 0.2\n\n"),
            "DIR/merges.txt: line 2: expected two tokens separated by a space, got \"\"");
  EXPECT_EQ(errorOf(vocab, merges + "\xc3 a\n"), "DIR/merges.txt: line 745: not valid UTF-8");
  EXPECT_EQ(errorOf("{\"a\": 0}", merges), "DIR/vocab.json: byte 0x0 has no token (\"\\xC4\\x80\"): a byte-level "
                                           "vocabulary has all 256");
  EXPECT_EQ(errorOf("{\"a\": 1}", merges), "DIR/vocab.json: [\"a\"]: id 1 is out of range: 1 tokens have ids 0 to 0 (id 0 is "
                                           "not used)");
  EXPECT_EQ(errorOf("{\"a\": \"1\"}", merges), "DIR/vocab.json: [\"a\"]: expected a non-negative integer id");
  EXPECT_EQ(errorOf("{\"a\": ", merges), "DIR/vocab.json: byte 6: invalid JSON: Unexpected EOF");
  // Without merges.txt beside it, vocab.json is not a tokenizer.
  llvm::sys::fs::remove(Dir / "merges.txt");
  EXPECT_EQ(errorIn(createTokenizer(Dir.Path)),
            "DIR: no tokenizer.json, nor vocab.json and merges.txt, in this directory");
  EXPECT_EQ(errorIn(createTokenizer("hf:" + Dir / "missing.json")),
            "DIR/missing.json: cannot open: No such file or directory");
}

TEST_F(BpeFixtureTest, PreTokenizersBeforeByteLevel) {
  std::unique_ptr<Tokenizer> original = open(FixtureDir + "/tokenizer.json");
  ASSERT_TRUE(original);
  auto concatOf = [&](std::initializer_list<llvm::StringRef> pieces) {
    std::vector<uint32_t> ids;
    for (llvm::StringRef piece : pieces)
      for (uint32_t id : original->encode(piece))
        ids.push_back(id);
    return ids;
  };
  auto withPreTokenizers = [&](json::Array steps) {
    writeEditedJson([&](json::Object &root) {
      root["pre_tokenizer"] = json::Object{{"type", "Sequence"}, {"pretokenizers", std::move(steps)}};
    });
    return open(Dir.Path);
  };
  // Split off the dashes, then ByteLevel puts a space before each piece (GPT-2's regex off).
  std::unique_ptr<Tokenizer> split = withPreTokenizers(json::Array{
      json::Object{{"type", "Split"}, {"pattern", json::Object{{"String", "-"}}}, {"behavior", "Removed"}},
      json::Object{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", false}}});
  ASSERT_TRUE(split);
  EXPECT_EQ(split->encode("ab-cd e"), concatOf({" ab", " cd e"}));
  // StarCoder's: every digit alone, then GPT-2's regex.
  std::unique_ptr<Tokenizer> digits = withPreTokenizers(json::Array{
      json::Object{{"type", "Digits"}, {"individual_digits", true}},
      json::Object{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}});
  ASSERT_TRUE(digits);
  EXPECT_EQ(digits->encode("x 2024 y"), concatOf({"x ", "2", "0", "2", "4", " y"}));
}
