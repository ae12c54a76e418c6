//===- ManifestTest.cpp ---------------------------------------------------===//
#include "DataTestSupport.h"

#include "mixtape/data/Manifest.h"

using namespace mixtape::data;
using namespace mixtape::data::test;

namespace {

Manifest sample() {
  Manifest m;
  m.Format = ShardFormat::Megatron;
  m.Tokenizer = "bytes-v1";
  m.VocabSize = 264;
  m.Dtype = DType::UInt16;
  m.Eot = 256;
  m.Tokens = 1000;
  m.Documents = 10;
  m.Metadata = "web.meta";
  m.Files = {{"web.bin", 2000, 0x0123456789abcdefULL},
             {"web.idx", 300, 1},
             {"web.meta", 120, 0xffffffffffffffffULL}};
  return m;
}

std::string withField(llvm::StringRef key, llvm::StringRef from, llvm::StringRef to) {
  std::string text = formatManifest(sample());
  std::string needle = ("\"" + key + "\": " + from).str();
  size_t at = text.find(needle);
  EXPECT_NE(at, std::string::npos) << needle;
  return text.replace(at, needle.size(), ("\"" + key + "\": " + to).str());
}

TEST(ManifestTest, RoundTrip) {
  std::string text = formatManifest(sample());
  EXPECT_NE(text.find("\"xxh3_64\": \"0123456789abcdef\""), std::string::npos) << text;
  Manifest m = take(parseManifest(text, "web.manifest.json"));
  EXPECT_EQ(formatManifest(m), text);
  EXPECT_EQ(m.VocabSize, 264u);
  EXPECT_EQ(m.Files[2].Xxh3, 0xffffffffffffffffULL);
  ASSERT_TRUE(m.findFile("web.idx"));
  EXPECT_EQ(m.findFile("web.idx")->Bytes, 300u);
}

TEST(ManifestTest, DTypeTooSmallForTheVocabulary) {
  EXPECT_EQ(errorText(parseManifest(withField("dtype", "\"uint16\"", "\"uint8\""),
                                    "web.manifest.json")),
            "web.manifest.json: dtype: dtype uint8 holds token ids below 256 but vocab_size is 264");
  std::string text = withField("vocab_size", "264", "300");
  text = text.replace(text.find("\"uint16\""), 8, "\"uint8\"");
  EXPECT_EQ(errorText(parseManifest(text, "m.json")),
            "m.json: dtype: dtype uint8 holds token ids below 256 but vocab_size is 300");
}

TEST(ManifestTest, InvalidJsonNamesTheByte) {
  // llvm::json reports the offset just after the offending character (the second comma).
  EXPECT_EQ(errorText(parseManifest("{\"format_version\": 1,,}", "m.json")),
            "m.json: byte 22: invalid JSON: Expected object key");
  // A hundred thousand levels once overflowed the parser's stack.
  EXPECT_EQ(errorText(parseManifest(std::string(100000, '['), "m.json")),
            "m.json: byte 512: JSON nested deeper than 512 levels");
}

TEST(ManifestTest, FieldProblems) {
  EXPECT_EQ(errorText(parseManifest(withField("format_version", "1", "2"), "m.json")),
            "m.json: format_version: version 2 is not supported (this build reads version 1)");
  EXPECT_EQ(errorText(parseManifest(withField("tokens", "1000", "-1"), "m.json")),
            "m.json: tokens: expected a non-negative integer");
  EXPECT_EQ(errorText(parseManifest(withField("eot", "256", "264"), "m.json")),
            "m.json: eot: 264 is outside the vocabulary of 264");
  EXPECT_EQ(errorText(parseManifest(withField("name", "\"web.idx\"", "\"../etc/passwd\""), "m.json")),
            "m.json: files[1].name: '../etc/passwd' is not a plain file name next to the manifest");
  EXPECT_EQ(errorText(parseManifest(withField("xxh3_64", "\"0000000000000001\"", "\"xyz\""), "m.json")),
            "m.json: files[1].xxh3_64: expected 16 hex digits, got 'xyz'");
  std::string flat = withField("format", "\"megatron\"", "\"flat\"");
  flat = flat.replace(flat.find("\"uint16\""), 8, "\"int32\"");
  EXPECT_EQ(errorText(parseManifest(flat, "m.json")),
            "m.json: dtype: flat .bin files hold uint16 tokens, not int32");
  EXPECT_EQ(errorText(parseManifest("[]", "m.json")), "m.json: byte 0: a manifest is a JSON object");
  EXPECT_EQ(errorText(parseManifest("{}", "m.json")), "m.json: format_version: missing");
}

} // namespace
