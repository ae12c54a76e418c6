//===- SynthTest.cpp - the embedded synthetic corpus ----------------------===//
#include "DataTestSupport.h"

#include "mixtape/data/Dataset.h"
#include "mixtape/data/Synth.h"

#include "llvm/ADT/StringSet.h"

using namespace mixtape;
using namespace mixtape::data;
using namespace mixtape::data::test;

namespace {

std::vector<std::string> checksums(const std::vector<Manifest> &manifests) {
  std::vector<std::string> out;
  for (const Manifest &m : manifests)
    for (const FileDigest &f : m.Files)
      out.push_back(f.Name + " " + formatChecksum(f.Xxh3));
  return out;
}

TEST(SynthTest, DeterministicPerSeed) {
  TempDir a, b, c;
  SynthOptions options;
  options.DocumentsPerDomain = 50;
  auto first = take(synthesizeCorpus(a.Path, options));
  auto second = take(synthesizeCorpus(b.Path, options));
  ASSERT_EQ(first.size(), 4u);
  EXPECT_EQ(checksums(first), checksums(second));
  EXPECT_EQ(readBytes(a / "facts.bin"), readBytes(b / "facts.bin"));
  options.Seed = 2;
  auto other = take(synthesizeCorpus(c.Path, options));
  for (size_t i = 0; i < first.size(); ++i)
    EXPECT_NE(first[i].Files[0].Xxh3, other[i].Files[0].Xxh3) << first[i].Files[0].Name;
}

TEST(SynthTest, OpensAndVerifies) {
  TempDir dir;
  SynthOptions options;
  options.DocumentsPerDomain = 20;
  options.Domains = {"arith", "code"};
  auto manifests = take(synthesizeCorpus(dir.Path, options));
  ASSERT_EQ(manifests.size(), 2u);
  auto dataset = take(Dataset::open(dir / "code"));
  ASSERT_TRUE(dataset);
  EXPECT_FALSE(dataset->verifyChecksums());
  EXPECT_FALSE(dataset->tokens().checkTokenRange(dataset->manifest()->VocabSize));
  const MetadataTable *meta = dataset->metadata();
  ASSERT_TRUE(meta);
  for (const char *column : {"quality", "overall_score", "coherence", "semantic_density", "domain", "source"})
    EXPECT_TRUE(meta->findColumn(column)) << column;
  EXPECT_EQ(meta->string(*meta->findColumn("domain"), 0), "code");
  EXPECT_FALSE(llvm::sys::fs::exists(dir / "prose.bin"));
  EXPECT_FALSE(synthesizeCorpus(dir.Path, SynthOptions{1, 1, {"poetry"}}));
}

TEST(SynthTest, DocumentsArePrefixStable) {
  for (llvm::StringRef domain : synthDomains())
    EXPECT_EQ(synthDocument(domain, 7, 3).Text, synthDocument(domain, 7, 3).Text);
  EXPECT_NE(synthDocument("prose", 7, 3).Text, synthDocument("prose", 7, 4).Text);
}

TEST(SynthTest, ArithmeticIsCorrect) {
  for (uint64_t i = 0; i < 200; ++i) {
    SynthDocument doc = synthDocument("arith", 1, i);
    llvm::SmallVector<llvm::StringRef, 32> lines;
    llvm::StringRef(doc.Text).split(lines, '\n', -1, /*KeepEmpty=*/false);
    ASSERT_FALSE(lines.empty());
    for (llvm::StringRef line : lines) {
      auto [lhs, rhs] = line.split(" = ");
      int64_t expected = 0, a = 0, b = 0, c = 0;
      ASSERT_FALSE(rhs.getAsInteger(10, expected)) << line.str();
      llvm::SmallVector<llvm::StringRef, 8> parts;
      lhs.split(parts, ' ');
      auto num = [](llvm::StringRef s) {
        int64_t v = 0;
        EXPECT_FALSE(s.trim("()").getAsInteger(10, v)) << s.str();
        return v;
      };
      int64_t actual = 0;
      if (parts.size() == 3) {
        a = num(parts[0]);
        b = num(parts[2]);
        actual = parts[1] == "+" ? a + b : parts[1] == "-" ? a - b : a * b;
      } else {
        ASSERT_EQ(parts.size(), 5u) << line.str();
        a = num(parts[0]);
        b = num(parts[2]);
        c = num(parts[4]);
        actual = parts[0].startswith("(") ? (a + b) * c : a * b + c;
      }
      EXPECT_EQ(actual, expected) << line.str();
    }
  }
}

TEST(SynthTest, FactsComeFromTheKnowledgeBase) {
  std::vector<Fact> kb = knowledgeBase(1);
  llvm::StringSet<> entities;
  for (size_t i = 0; i < kb.size(); i += 4)
    EXPECT_TRUE(entities.insert(kb[i].Entity).second) << kb[i].Entity;
  EXPECT_EQ(entities.size(), kb.size() / 4);
  EXPECT_NE(knowledgeBase(2)[0].Entity, kb[0].Entity);
  // Clean documents state only facts of the knowledge base.
  int checked = 0;
  for (uint64_t i = 0; i < 100; ++i) {
    SynthDocument doc = synthDocument("facts", 1, i);
    if (doc.Quality != 5 || doc.Source != "declarative")
      continue;
    for (const Fact &f : kb)
      if (f.Attribute == "capital" && doc.Text.find("The capital of " + f.Entity + " is ") != std::string::npos) {
        EXPECT_NE(doc.Text.find("The capital of " + f.Entity + " is " + f.Value + "."), std::string::npos);
        ++checked;
      }
  }
  EXPECT_GT(checked, 0);
}

TEST(SynthTest, DomainsDifferAndRatingsAreInRange) {
  // Domains differ: the byte distributions of prose and code are far apart.
  SynthDocument prose = synthDocument("prose", 1, 0), code = synthDocument("code", 1, 0);
  EXPECT_EQ(prose.Text.find("def "), std::string::npos);
  EXPECT_NE(code.Text.find("def "), std::string::npos);
  for (uint64_t i = 0; i < 50; ++i) {
    SynthDocument doc = synthDocument("prose", 1, i);
    EXPECT_GE(doc.Quality, 1);
    EXPECT_LE(doc.Quality, 5);
    EXPECT_GE(doc.SemanticDensity, 0.0f);
    EXPECT_LE(doc.SemanticDensity, 1.0f);
  }
}

} // namespace
