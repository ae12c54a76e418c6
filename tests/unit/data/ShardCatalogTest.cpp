//===- ShardCatalogTest.cpp - stream stats and leakage for the planner ----===//
#include "mixtape/data/ShardCatalog.h"
#include "mixtape/data/Dataset.h"
#include "mixtape/data/Tokenizer.h"

#include "DataTestSupport.h"

using namespace mixtape::data;
using namespace mixtape::data::test;

namespace {

mixtape::Predicate predicate(llvm::StringRef text) {
  mixtape::ParseResult parsed = mixtape::parseExpr(text);
  mixtape::ExprDiags diags;
  std::optional<mixtape::Predicate> p = mixtape::interpretPredicate(*parsed.expr, diags);
  EXPECT_TRUE(p.has_value()) << text.str();
  return std::move(*p);
}

mixtape::StreamSpec rootStream(std::string name, std::string shards, double val) {
  mixtape::StreamSpec s;
  s.name = s.root = std::move(name);
  s.shards = std::move(shards);
  s.val = val;
  return s;
}

mixtape::StreamSpec derived(std::string name, std::string parent, std::string root, llvm::StringRef where) {
  mixtape::StreamSpec s;
  s.name = std::move(name);
  s.parent = std::move(parent);
  s.root = std::move(root);
  s.where = predicate(where);
  return s;
}

template <typename T> T ok(llvm::Expected<T> value) {
  if (!value) {
    ADD_FAILURE() << llvm::toString(value.takeError());
    std::abort();
  }
  return std::move(*value);
}

} // namespace

TEST(ShardCatalogTest, StatsOfRootAndDerivedStreams) {
  TempDir dir;
  mixtape::CheckedRecipe recipe;
  recipe.seed = 3;
  recipe.baseDir = dir.Path;
  recipe.streams = {rootStream("prose", "synth:prose", 0.05), derived("hq", "prose", "prose", "quality >= 4"),
                    derived("top", "hq", "prose", "overall_score >= 3"),
                    rootStream("missing", "data/none-*.idx", 0.0)};
  ShardCatalog catalog(dir / "cache");
  mixtape::StreamStats prose = *ok(catalog.stats(recipe.streams[0], recipe));
  mixtape::StreamStats hq = *ok(catalog.stats(recipe.streams[1], recipe));
  mixtape::StreamStats top = *ok(catalog.stats(recipe.streams[2], recipe));
  EXPECT_EQ(prose.tokenizer, "bytes-v1");
  EXPECT_EQ(prose.vocabSize, ByteTokenizer::VocabSize);
  EXPECT_EQ(prose.fingerprint.size(), 16u);
  EXPECT_EQ(hq.fingerprint, prose.fingerprint);
  EXPECT_EQ(prose.trainDocuments + prose.valDocuments, 1000u);
  EXPECT_GT(prose.valDocuments, 20u);
  EXPECT_LT(hq.trainDocuments, prose.trainDocuments);
  EXPECT_LT(hq.valDocuments, prose.valDocuments + 1);
  EXPECT_LE(top.trainDocuments, hq.trainDocuments);
  EXPECT_EQ(streamFilters(recipe.streams[2], recipe),
            (std::vector<std::string>{"(quality >= 4)", "(overall_score >= 3)"}));
  EXPECT_FALSE(ok(catalog.stats(recipe.streams[3], recipe)).has_value());

  // The seed changes the embedded corpus, and so the fingerprint.
  mixtape::CheckedRecipe other = recipe;
  other.seed = 4;
  EXPECT_NE(ok(catalog.stats(other.streams[0], other))->fingerprint, prose.fingerprint);

  recipe.streams.push_back(derived("none", "prose", "prose", "quality > 99"));
  std::string err = errorText(catalog.stats(recipe.streams.back(), recipe));
  EXPECT_NE(err.find("stream 'none'"), std::string::npos) << err;

  // A column that no dataset has is a typo (or a missing sidecar), not "every value missing".
  recipe.streams.push_back(derived("typo", "prose", "prose", "qualty >= 4"));
  err = errorText(catalog.stats(recipe.streams.back(), recipe));
  EXPECT_EQ(err.rfind("stream 'typo': the filter '(qualty >= 4)' reads column 'qualty', which no dataset of "
                      "stream 'prose' has; did you mean 'quality'? (its columns: ",
                      0),
            0u)
      << err;
}

TEST(ShardCatalogTest, GlobsAndLeakage) {
  TempDir dir;
  mixtape::CheckedRecipe recipe;
  recipe.seed = 3;
  recipe.baseDir = dir.Path;
  recipe.streams = {rootStream("prose", "synth:prose", 0.1), rootStream("copy", "data/part-*.idx", 0.0)};
  ShardCatalog catalog(dir / "cache");
  DataSources sources(3, dir / "cache");
  const RootStream &prose = *ok(sources.root({"prose", {"synth:prose"}, 0.1}));
  // Two datasets: the first holds 7 of prose's held-out documents, the second 5 trained ones.
  ByteTokenizer bytes;
  for (auto [name, docs] : {std::pair{"part-0", &prose.valDocuments()}, {"part-1", &prose.trainDocuments()}}) {
    auto writer = ok(DatasetWriter::create(dir / ("data/" + std::string(name)), ShardFormat::Megatron, bytes));
    for (size_t i = 0; i < (docs == &prose.valDocuments() ? 7u : 5u); ++i)
      ASSERT_FALSE(writer->addDocument(prose.tokens((*docs)[i]).toVector()));
    ASSERT_TRUE(!!writer->finish());
  }
  auto prefixes = *ok(expandShards("data/part-*.idx", dir.Path));
  EXPECT_EQ(prefixes, (std::vector<std::string>{dir / "data/part-0", dir / "data/part-1"}));
  EXPECT_EQ(*ok(expandShards("data/part-1", dir.Path)), std::vector<std::string>{dir / "data/part-1"});
  EXPECT_FALSE(ok(expandShards("data/other-*.bin", dir.Path)).has_value());

  mixtape::StreamStats copy = *ok(catalog.stats(recipe.streams[1], recipe));
  EXPECT_EQ(copy.trainDocuments, 12u);
  EXPECT_EQ(*ok(catalog.leakedDocuments(recipe.streams[0], recipe.streams[1], recipe)), 7u);
  EXPECT_EQ(*ok(catalog.leakedDocuments(recipe.streams[0], recipe.streams[0], recipe)), 0u);
}

TEST(ShardCatalogTest, GroupByAColumnWithMissingValues) {
  TempDir dir;
  mixtape::CheckedRecipe recipe;
  recipe.seed = 3;
  recipe.baseDir = dir.Path;
  recipe.streams = {rootStream("web", "data/web-*.idx", 0.0), rootStream("absent", "data/none-*.idx", 0.0)};
  // web-0: lang is "en", "de" or unset; web-1 has no lang column at all.
  ByteTokenizer bytes;
  auto first = ok(DatasetWriter::create(dir / "data/web-0", ShardFormat::Megatron, bytes));
  for (int i = 0; i < 9; ++i) {
    ASSERT_FALSE(first->addDocument(bytes.encode("document " + std::to_string(i))));
    if (i % 3 != 2) {
      ASSERT_FALSE(first->setString("lang", i % 3 ? "de" : "en"));
    }
    ASSERT_FALSE(first->setNumber("score", i));
  }
  ASSERT_TRUE(!!first->finish());
  auto second = ok(DatasetWriter::create(dir / "data/web-1", ShardFormat::Megatron, bytes));
  for (int i = 0; i < 2; ++i) {
    ASSERT_FALSE(second->addDocument(bytes.encode("other " + std::to_string(i))));
    ASSERT_FALSE(second->setNumber("score", i));
  }
  ASSERT_TRUE(!!second->finish());

  ShardCatalog catalog(dir / "cache");
  mixtape::ColumnGroups lang = *ok(catalog.groupBy(recipe.streams[0], "lang", recipe));
  EXPECT_EQ(lang.columns, (std::vector<std::string>{"lang", "score"}));
  ASSERT_EQ(lang.groups.size(), 3u);
  // Missing first (3 unset in web-0, both of web-1), then the strings in order.
  EXPECT_EQ(lang.groups[0].value.kind, mixtape::MetadataValue::Kind::Missing);
  EXPECT_EQ(lang.groups[0].trainDocuments, 5u);
  EXPECT_EQ(lang.groups[1].value.string, "de");
  EXPECT_EQ(lang.groups[1].trainDocuments, 3u);
  EXPECT_EQ(lang.groups[2].value.string, "en");
  EXPECT_EQ(lang.groups[2].trainTokens, 3u * (bytes.encode("document 0").size() + 1));

  // The runtime selects the same documents for each unit, the missing one included.
  DataSources sources(3, dir / "cache");
  RootSpec web{"web", *ok(expandShards("data/web-*.idx", dir.Path)), 0.0};
  uint64_t total = 0;
  for (const mixtape::ColumnGroup &g : lang.groups) {
    const StreamView &unit = *ok(sources.view(web, "unit", {{}, AblationUnit{0, 0, "lang", g.value}}));
    EXPECT_EQ(unit.trainDocuments(), g.trainDocuments) << g.value.label();
    total += unit.trainDocuments();
  }
  EXPECT_EQ(total, 11u);

  EXPECT_EQ(ok(catalog.groupBy(recipe.streams[0], "score", recipe))->groups.size(), 9u); // 0..8
  EXPECT_TRUE(ok(catalog.groupBy(recipe.streams[0], "langs", recipe))->groups.empty());
  EXPECT_FALSE(ok(catalog.groupBy(recipe.streams[1], "lang", recipe)).has_value());
}
