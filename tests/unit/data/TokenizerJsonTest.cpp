//===- TokenizerJsonTest.cpp ----------------------------------------------===//
//
// The stages of a tokenizer.json around the BPE model, one by one, on small files written
// here, with expectations derived by hand from `tokenizers`' source (the regex pieces from
// Python's `regex` module, 2026.5.9; NFC from Python's unicodedata). The real files of Llama
// 3, Qwen 3 and Llama 2 are compared with Hugging Face's own implementation in
// tests/data/tokenizer_reference_test.py.
//
//===----------------------------------------------------------------------===//
#include "DataTestSupport.h"

#include "mixtape/data/BpeTokenizer.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

#include <set>

using namespace mixtape::data;
using namespace mixtape::data::test;
namespace json = llvm::json;

namespace {
constexpr const char *Llama3Regex = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char *Qwen2Regex = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

/// A SentencePiece-style (not byte-level) BPE file whose vocabulary is "<unk>" (0),
/// "</s>" (1), `tokens`, the characters in them and those of `alphabet`, with
/// ignore_merges: a word that is a token encodes to it, any other word to its characters.
/// `edit` sets the stages.
std::string tokenizerJson(const std::vector<std::string> &tokens, const std::function<void(json::Object &)> &edit,
                          llvm::StringRef alphabet = "") {
  std::set<std::string> vocab;
  std::vector<std::string> all = tokens;
  all.push_back(alphabet.str());
  for (const std::string &token : all) {
    if (token != alphabet)
      vocab.insert(token);
    for (size_t i = 0; i < token.size();) {
      size_t len = 1;
      while (i + len < token.size() && (token[i + len] & 0xC0) == 0x80)
        ++len;
      vocab.insert(token.substr(i, len));
      i += len;
    }
  }
  json::Object ids{{"<unk>", 0}, {"</s>", 1}};
  for (const std::string &token : vocab)
    if (!ids.get(token))
      ids[token] = static_cast<int64_t>(ids.size());
  json::Object root{
      {"model", json::Object{{"type", "BPE"}, {"vocab", std::move(ids)}, {"merges", json::Array{}},
                             {"ignore_merges", true}, {"unk_token", "<unk>"}}},
      {"added_tokens", json::Array{json::Object{{"id", 1}, {"content", "</s>"}, {"special", true}}}}};
  edit(root);
  return llvm::formatv("{0}", json::Value(std::move(root))).str();
}

std::unique_ptr<BpeTokenizer> load(const std::string &contents) {
  return take(BpeTokenizer::fromTokenizerJson("tokenizer.json", contents));
}

/// The tokens `text` encodes to, each as the vocabulary writes it.
std::vector<std::string> tokensOf(const BpeTokenizer &tokenizer, llvm::StringRef text) {
  std::vector<std::string> out;
  for (uint32_t id : tokenizer.encode(text))
    out.push_back(tokenizer.decode({id}));
  return out;
}

/// The words a pre_tokenizer cuts `text` into, when `words` holds those of two characters
/// or more.
std::vector<std::string> wordsOf(json::Object preTokenizer, llvm::StringRef text, const std::vector<std::string> &words) {
  std::unique_ptr<BpeTokenizer> tokenizer = load(
      tokenizerJson(words, [&](json::Object &root) { root["pre_tokenizer"] = std::move(preTokenizer); }, text));
  return tokenizer ? tokensOf(*tokenizer, text) : std::vector<std::string>{"(no tokenizer)"};
}

json::Object split(json::Object pattern, llvm::StringRef behavior, bool invert = false) {
  return json::Object{{"type", "Split"}, {"pattern", std::move(pattern)}, {"behavior", behavior}, {"invert", invert}};
}

std::string errorOf(const std::function<void(json::Object &)> &edit) {
  return errorText(BpeTokenizer::fromTokenizerJson("tokenizer.json", tokenizerJson({"ab"}, edit)));
}

using Words = std::vector<std::string>;
} // namespace

TEST(TokenizerJsonTest, SplitBehaviors) {
  // "a-b--c-": a, [-], b, [-], [-], c, [-] (matches in brackets).
  json::Object dash{{"String", "-"}};
  EXPECT_EQ(wordsOf(split(dash, "Removed"), "a-b--c-", {}), (Words{"a", "b", "c"}));
  EXPECT_EQ(wordsOf(split(dash, "Isolated"), "a-b--c-", {}), (Words{"a", "-", "b", "-", "-", "c", "-"}));
  EXPECT_EQ(wordsOf(split(dash, "MergedWithPrevious"), "a-b--c-", {"a-", "b-", "c-"}),
            (Words{"a-", "b-", "-", "c-"}));
  EXPECT_EQ(wordsOf(split(dash, "MergedWithNext"), "a-b--c-", {"-b", "-c"}), (Words{"a", "-b", "-", "-c", "-"}));
  EXPECT_EQ(wordsOf(split(dash, "Contiguous"), "a-b--c-", {"--"}), (Words{"a", "-", "b", "--", "c", "-"}));
  // invert: the letters are the matches.
  EXPECT_EQ(wordsOf(split(dash, "Removed", true), "a-b--c-", {"--"}), (Words{"-", "-", "-", "-"}));
  EXPECT_EQ(wordsOf(split(dash, "MergedWithPrevious", true), "a-b--c-", {"-b", "-c", "--"}),
            (Words{"a", "-b", "-", "-c", "-"}));
  // A string pattern is literal: "." is no wildcard.
  EXPECT_EQ(wordsOf(split(json::Object{{"String", "."}}, "Removed"), "a.b", {"a.b"}), (Words{"a", "b"}));
}

TEST(TokenizerJsonTest, SplitRegexesOfLlama3AndQwen2) {
  std::string text = "I'M 12345 (ok) \n\n  x  y\t!\r\n?  ";
  EXPECT_EQ(wordsOf(split(json::Object{{"Regex", Llama3Regex}}, "Isolated"), text,
                    {"'M", "123", "45", " (", "ok", " \n\n", " x", " y", "!\r\n", "  "}),
            (Words{"I", "'M", " ", "123", "45", " (", "ok", ")", " \n\n", " ", " x", " ", " y", "\t", "!\r\n", "?", "  "}));
  EXPECT_EQ(wordsOf(split(json::Object{{"Regex", Qwen2Regex}}, "Isolated"), text,
                    {"'M", " (", "ok", " \n\n", " x", " y", "!\r\n", "  "}),
            (Words{"I", "'M", " ", "1", "2", "3", "4", "5", " (", "ok", ")", " \n\n", " ", " x", " ", " y", "\t",
                   "!\r\n", "?", "  "}));
  // (?i:'ll), a symbol run that takes its line break, a letter run after a symbol.
  EXPECT_EQ(wordsOf(split(json::Object{{"Regex", Llama3Regex}}, "Isolated"), "HE'LL go...\n  (done",
                    {"HE", "'LL", " go", "...\n", " (", "done"}),
            (Words{"HE", "'LL", " go", "...\n", " ", " (", "done"}));
}

TEST(TokenizerJsonTest, Digits) {
  json::Object individual{{"type", "Digits"}, {"individual_digits", true}};
  json::Object runs{{"type", "Digits"}, {"individual_digits", false}};
  EXPECT_EQ(wordsOf(std::move(individual), "ab12c3", {"ab"}), (Words{"ab", "1", "2", "c", "3"}));
  EXPECT_EQ(wordsOf(std::move(runs), "ab12c3", {"ab", "12"}), (Words{"ab", "12", "c", "3"}));
}

TEST(TokenizerJsonTest, MetaspaceSchemes) {
  auto metaspace = [](llvm::StringRef scheme, bool split) {
    return json::Object{{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", scheme}, {"split", split}};
  };
  Words words{"\u2581a", "\u2581b", "\u2581c", "\u2581d", "c", "\u2581a\u2581b"};
  auto wordsAround = [&](json::Object pre) {
    // "<x>" is an added token: the text after it does not start the text ("first").
    std::unique_ptr<BpeTokenizer> tokenizer = load(tokenizerJson(words, [&](json::Object &root) {
      root["pre_tokenizer"] = std::move(pre);
      int64_t id = root.getObject("model")->getObject("vocab")->size();
      root.getArray("added_tokens")->push_back(json::Object{{"id", id}, {"content", "<x>"}, {"special", true}});
    }));
    return tokenizer ? tokensOf(*tokenizer, "a b<x>c d") : Words{};
  };
  EXPECT_EQ(wordsAround(metaspace("always", true)), (Words{"\u2581a", "\u2581b", "<x>", "\u2581c", "\u2581d"}));
  EXPECT_EQ(wordsAround(metaspace("first", true)), (Words{"\u2581a", "\u2581b", "<x>", "c", "\u2581d"}));
  EXPECT_EQ(wordsAround(metaspace("never", true)), (Words{"a", "\u2581b", "<x>", "c", "\u2581d"}));
  EXPECT_EQ(wordsAround(metaspace("always", false)), (Words{"\u2581a\u2581b", "<x>", "\u2581", "c", "\u2581", "d"}));
}

TEST(TokenizerJsonTest, NfcAndLlama2Normalizers) {
  std::unique_ptr<BpeTokenizer> nfc = load(tokenizerJson({"\u00e9", "\u1e0d\u0307", "\uac01"}, [](json::Object &root) {
    root["normalizer"] = json::Object{{"type", "NFC"}};
  }));
  ASSERT_TRUE(nfc);
  EXPECT_EQ(tokensOf(*nfc, "e\u0301"), Words{"\u00e9"});
  // Canonical order first: the dot below (class 220) goes before the dot above (230).
  EXPECT_EQ(tokensOf(*nfc, "\u1e0b\u0323"), Words{"\u1e0d\u0307"});
  EXPECT_EQ(tokensOf(*nfc, "\u1100\u1161\u11a8"), Words{"\uac01"}); // Hangul by arithmetic

  // Llama 2: Prepend "▁" then Replace " " -> "▁", each piece between added tokens.
  std::unique_ptr<BpeTokenizer> llama2 = load(tokenizerJson({"\u2581a\u2581b", "\u2581\u2581c"}, [](json::Object &root) {
    root["normalizer"] = json::Object{
        {"type", "Sequence"},
        {"normalizers", json::Array{json::Object{{"type", "Prepend"}, {"prepend", "\u2581"}},
                                    json::Object{{"type", "Replace"}, {"pattern", json::Object{{"String", " "}}},
                                                 {"content", "\u2581"}}}}};
  }));
  ASSERT_TRUE(llama2);
  EXPECT_EQ(tokensOf(*llama2, "a b</s> c"), (Words{"\u2581a\u2581b", "</s>", "\u2581\u2581c"}));
}

TEST(TokenizerJsonTest, ByteFallbackAndUnknown) {
  auto withModel = [](bool byteFallback, bool fuse) {
    return load(tokenizerJson({"<0xC3>", "<0xA9>", "a"}, [&](json::Object &root) {
      (*root.getObject("model"))["byte_fallback"] = byteFallback;
      (*root.getObject("model"))["fuse_unk"] = fuse;
      root["decoder"] = json::Object{{"type", "Sequence"},
                                     {"decoders", json::Array{json::Object{{"type", "ByteFallback"}},
                                                              json::Object{{"type", "Fuse"}}}}};
    }));
  };
  std::unique_ptr<BpeTokenizer> fallback = withModel(true, false);
  ASSERT_TRUE(fallback);
  // "é" is no token: its bytes C3 A9 are; "ü" (C3 BC) has no <0xBC>, so it is unknown.
  std::vector<uint32_t> ids = fallback->encode("a\u00e9\u00fc");
  EXPECT_EQ(ids, (std::vector<uint32_t>{*fallback->tokenId("a"), *fallback->tokenId("<0xC3>"),
                                        *fallback->tokenId("<0xA9>"), 0}));
  EXPECT_EQ(fallback->decode(ids), "a\u00e9<unk>");
  // A byte sequence that is not UTF-8 decodes to one U+FFFD per byte.
  EXPECT_EQ(fallback->decode({*fallback->tokenId("<0xC3>"), *fallback->tokenId("<0xC3>"), *fallback->tokenId("a")}),
            "\ufffd\ufffda");

  std::unique_ptr<BpeTokenizer> unfused = withModel(false, false), fused = withModel(false, true);
  ASSERT_TRUE(unfused && fused);
  EXPECT_EQ(unfused->encode("\u00e9\u00e9a\u00e9"), (std::vector<uint32_t>{0, 0, *unfused->tokenId("a"), 0}));
  EXPECT_EQ(fused->encode("\u00e9\u00e9a\u00e9"), (std::vector<uint32_t>{0, *fused->tokenId("a"), 0}));
}

TEST(TokenizerJsonTest, Decoders) {
  auto decoderOf = [](json::Array steps) {
    return load(tokenizerJson({"\u2581a", "\u2581\u2581b", "c"}, [&](json::Object &root) {
      root["decoder"] = json::Object{{"type", "Sequence"}, {"decoders", std::move(steps)}};
    }));
  };
  // Llama 2's: Replace, ByteFallback, Fuse, then Strip one leading space.
  std::unique_ptr<BpeTokenizer> llama2 = decoderOf(json::Array{
      json::Object{{"type", "Replace"}, {"pattern", json::Object{{"String", "\u2581"}}}, {"content", " "}},
      json::Object{{"type", "ByteFallback"}}, json::Object{{"type", "Fuse"}},
      json::Object{{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}});
  ASSERT_TRUE(llama2);
  std::vector<uint32_t> ids{*llama2->tokenId("\u2581a"), *llama2->tokenId("\u2581\u2581b"), *llama2->tokenId("c")};
  EXPECT_EQ(llama2->decode(ids), "a  bc");
  // Metaspace: the first token loses its replacement characters, the others turn them into spaces.
  std::unique_ptr<BpeTokenizer> metaspace = decoderOf(json::Array{
      json::Object{{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}}});
  ASSERT_TRUE(metaspace);
  EXPECT_EQ(metaspace->decode(ids), "a  bc");
  EXPECT_EQ(metaspace->decode({ids[1], ids[0]}), "b a");
  // Without a decoder `tokenizers` joins tokens with spaces.
  std::unique_ptr<BpeTokenizer> none = load(tokenizerJson({"\u2581a", "c"}, [](json::Object &) {}));
  ASSERT_TRUE(none);
  EXPECT_EQ(none->decode({*none->tokenId("\u2581a"), *none->tokenId("c")}), "\u2581a c");
}

TEST(TokenizerJsonTest, TemplateProcessingBos) {
  auto withPost = [](json::Value post) {
    return tokenizerJson({"<s>"}, [&](json::Object &root) { root["post_processor"] = std::move(post); });
  };
  auto templateOf = [](json::Array single) {
    return json::Object{{"type", "TemplateProcessing"},
                        {"single", std::move(single)},
                        {"special_tokens", json::Object{{"<s>", json::Object{{"id", "<s>"}, {"ids", json::Array{5}}}},
                                                        {"</s>", json::Object{{"id", "</s>"}, {"ids", json::Array{1}}}}}}};
  };
  json::Value bos = json::Object{{"SpecialToken", json::Object{{"id", "<s>"}, {"type_id", 0}}}};
  json::Value eos = json::Object{{"SpecialToken", json::Object{{"id", "</s>"}, {"type_id", 0}}}};
  json::Value a = json::Object{{"Sequence", json::Object{{"id", "A"}, {"type_id", 0}}}};

  std::unique_ptr<BpeTokenizer> llama2 = load(withPost(templateOf(json::Array{bos, a})));
  ASSERT_TRUE(llama2);
  EXPECT_EQ(llama2->bos(), 5u);
  EXPECT_EQ(llama2->encode("s"), std::vector<uint32_t>{5}); // the template adds nothing to encode()
  // Meta's Llama 3 file: Sequence[ByteLevel, TemplateProcessing]; an end-of-text after the text is fine.
  std::unique_ptr<BpeTokenizer> llama3 = load(withPost(json::Object{
      {"type", "Sequence"},
      {"processors", json::Array{json::Object{{"type", "ByteLevel"}, {"add_prefix_space", true}},
                                 templateOf(json::Array{bos, a, eos})}}}));
  ASSERT_TRUE(llama3);
  EXPECT_EQ(llama3->bos(), 5u);
  std::unique_ptr<BpeTokenizer> plain = load(withPost(json::Object{{"type", "ByteLevel"}}));
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->bos(), std::nullopt);

  EXPECT_EQ(errorText(BpeTokenizer::fromTokenizerJson("tokenizer.json", withPost(templateOf(json::Array{bos, bos, a})))),
            "tokenizer.json: post_processor.single: adds 2 tokens before the text; only one (a BOS) is supported");
  EXPECT_EQ(errorText(BpeTokenizer::fromTokenizerJson("tokenizer.json", withPost(templateOf(json::Array{a, bos})))),
            "tokenizer.json: post_processor.single: adds tokens after the text; only the end-of-text token (id 1) "
            "is supported there");
  EXPECT_EQ(errorText(BpeTokenizer::fromTokenizerJson(
                "tokenizer.json", withPost(json::Object{{"type", "Sequence"},
                                                        {"processors", json::Array{json::Object{
                                                                           {"type", "RobertaProcessing"}}}}}))),
            "tokenizer.json: post_processor.processors[0].type: 'RobertaProcessing' is not supported");
}

TEST(TokenizerJsonTest, SingleWordAddedTokens) {
  std::unique_ptr<BpeTokenizer> tokenizer = load(tokenizerJson(
      {"ab"},
      [](json::Object &root) {
        int64_t id = root.getObject("model")->getObject("vocab")->size();
        root.getArray("added_tokens")->push_back(json::Object{{"id", id}, {"content", "<w>"}, {"single_word", true}});
      },
      "<w>. _\u00e9"));
  ASSERT_TRUE(tokenizer);
  EXPECT_EQ(tokensOf(*tokenizer, "ab <w>."), (Words{"a", "b", " ", "<w>", "."}));
  // Beside a word character (letters, digits, "_") it is no match.
  EXPECT_EQ(tokensOf(*tokenizer, "ab<w>"), (Words{"a", "b", "<", "w", ">"}));
  EXPECT_EQ(tokensOf(*tokenizer, "<w>_"), (Words{"<", "w", ">", "_"}));
  EXPECT_EQ(tokensOf(*tokenizer, "\u00e9<w>"), (Words{"\u00e9", "<", "w", ">"}));
}

TEST(TokenizerJsonTest, UnsupportedStagesNameTheirJsonPath) {
  EXPECT_EQ(errorOf([](json::Object &root) {
              root["pre_tokenizer"] =
                  json::Object{{"type", "Sequence"},
                               {"pretokenizers", json::Array{json::Object{{"type", "Digits"}},
                                                             json::Object{{"type", "Whitespace"}}}}};
            }),
            "tokenizer.json: pre_tokenizer.pretokenizers[1].type: 'Whitespace' is not supported");
  EXPECT_EQ(errorOf([](json::Object &root) { root["pre_tokenizer"] = split(json::Object{{"Regex", "\\w+"}}, "Isolated"); }),
            "tokenizer.json: pre_tokenizer.pattern.Regex: the regex \"\\\\w+\" is not supported (Mixtape knows the "
            "pre-tokenization regexes of GPT-2, Llama 3 and Qwen 2, and string patterns)");
  EXPECT_EQ(errorOf([](json::Object &root) { root["pre_tokenizer"] = split(json::Object{{"String", "x"}}, "Joined"); }),
            "tokenizer.json: pre_tokenizer.behavior: 'Joined' is not one of Removed, Isolated, MergedWithPrevious, "
            "MergedWithNext, Contiguous");
  EXPECT_EQ(errorOf([](json::Object &root) {
              root["pre_tokenizer"] = json::Object{
                  {"type", "Sequence"},
                  {"pretokenizers", json::Array{json::Object{{"type", "ByteLevel"}}, json::Object{{"type", "Digits"}}}}};
            }),
            "tokenizer.json: pre_tokenizer.pretokenizers[1]: 'Digits' after ByteLevel is not supported (ByteLevel must "
            "come last)");
  EXPECT_EQ(errorOf([](json::Object &root) {
              root["normalizer"] = json::Object{
                  {"type", "Sequence"},
                  {"normalizers", json::Array{json::Object{{"type", "Replace"},
                                                           {"pattern", json::Object{{"Regex", " +"}}},
                                                           {"content", " "}}}}};
            }),
            "tokenizer.json: normalizer.normalizers[0].pattern.Regex: the regex \" +\" is not supported (only string "
            "patterns)");
  EXPECT_EQ(errorOf([](json::Object &root) { root["pre_tokenizer"] = split(json::Object{{"String", ""}}, "Isolated"); }),
            "tokenizer.json: pre_tokenizer.pattern.String: an empty pattern is not supported");
  EXPECT_EQ(errorOf([](json::Object &root) { root["normalizer"] = json::Object{{"type", "Lowercase"}}; }),
            "tokenizer.json: normalizer.type: 'Lowercase' is not supported");
  EXPECT_EQ(errorOf([](json::Object &root) {
              root["decoder"] = json::Object{{"type", "Sequence"},
                                             {"decoders", json::Array{json::Object{{"type", "Fuse"}},
                                                                      json::Object{{"type", "WordPiece"}}}}};
            }),
            "tokenizer.json: decoder.decoders[1].type: 'WordPiece' is not supported");
  EXPECT_EQ(errorOf([](json::Object &root) {
              root["pre_tokenizer"] = json::Object{{"type", "Metaspace"}, {"replacement", "ab"}};
            }),
            "tokenizer.json: pre_tokenizer.replacement: expected one character, got \"ab\"");
  EXPECT_EQ(errorOf([](json::Object &root) { (*root.getObject("model"))["unk_token"] = "<oov>"; }),
            "tokenizer.json: model.unk_token: \"<oov>\" is not in the vocabulary");
}
