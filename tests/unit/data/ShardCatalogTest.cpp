//===- ShardCatalogTest.cpp - stream stats and leakage for the planner ----===//
#include "mixtape/data/ShardCatalog.h"
#include "mixtape/data/Dataset.h"
#include "mixtape/data/Tokenizer.h"

#include "DataTestSupport.h"

#include <fstream>

using namespace mixtape;
using namespace mixtape::data;
using namespace mixtape::data::test;

namespace {

using Op = plan::Predicate::Op;

plan::Predicate atLeast(llvm::StringRef column, double value) {
  plan::Predicate p;
  p.addCompare(Op::Ge, column, value);
  return p;
}

plan::Stream rootStream(std::string name, std::string shards, double val) {
  plan::Stream s;
  s.Root = std::move(name);
  s.Shards = std::move(shards);
  s.Val = val;
  return s;
}

plan::Stream derived(const plan::Plan &p, std::string parent, plan::Predicate where) {
  plan::Stream s = p.Streams.at(parent);
  s.From = std::move(parent);
  s.Where = std::move(where);
  return s;
}

/// A plan holding only streams: what planning asks the catalog about.
plan::Plan streams(const std::string &dir, uint64_t seed) {
  plan::Plan p;
  p.RecipeDir = dir;
  p.Seed = seed;
  return p;
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
  plan::Plan p = streams(dir.Path, 3);
  p.Streams["prose"] = rootStream("prose", "synth:prose", 0.05);
  p.Streams["hq"] = derived(p, "prose", atLeast("quality", 4));
  p.Streams["top"] = derived(p, "hq", atLeast("overall_score", 3));
  p.Streams["missing"] = rootStream("missing", "data/none-*.idx", 0.0);
  ShardCatalog catalog(dir / "cache");
  plan::StreamStats prose = *ok(catalog.streamStats(p, "prose"));
  plan::StreamStats hq = *ok(catalog.streamStats(p, "hq"));
  plan::StreamStats top = *ok(catalog.streamStats(p, "top"));
  EXPECT_EQ(prose.Tokenizer, "bytes-v1");
  EXPECT_EQ(prose.VocabSize, ByteTokenizer::VocabSize);
  EXPECT_EQ(prose.Fingerprint.size(), 16u);
  EXPECT_EQ(hq.Fingerprint, prose.Fingerprint);
  EXPECT_EQ(prose.TrainDocuments + prose.ValDocuments, 1000u);
  EXPECT_GT(prose.ValDocuments, 20u);
  EXPECT_LT(hq.TrainDocuments, prose.TrainDocuments);
  EXPECT_LT(hq.ValDocuments, prose.ValDocuments + 1);
  EXPECT_LE(top.TrainDocuments, hq.TrainDocuments);
  // The filters of a derived stream are its ancestors' and its own, root first.
  std::optional<NodeStream> topStream = *ok(nodeStream(p, "top"));
  ASSERT_TRUE(topStream);
  ASSERT_EQ(topStream->Selection.Where.size(), 2u);
  EXPECT_EQ(topStream->Selection.Where[0].canonical(), "(quality >= 4)");
  EXPECT_EQ(topStream->Selection.Where[1].canonical(), "(overall_score >= 3)");
  EXPECT_FALSE(ok(catalog.streamStats(p, "missing")).has_value());

  // The seed changes the embedded corpus, and so the fingerprint.
  plan::Plan other = p;
  other.Seed = 4;
  EXPECT_NE(ok(catalog.streamStats(other, "prose"))->Fingerprint, prose.Fingerprint);

  // A filter that keeps nothing is stats of nothing: planning reports it (empty-filter).
  p.Streams["none"] = derived(p, "prose", atLeast("quality", 99));
  plan::StreamStats none = *ok(catalog.streamStats(p, "none"));
  EXPECT_EQ(none.TrainDocuments, 0u);
  EXPECT_EQ(none.TrainTokens, 0u);

  // A column that no dataset has is a typo (or a missing sidecar), not "every value missing".
  p.Streams["typo"] = derived(p, "prose", atLeast("qualty", 4));
  std::string err = errorText(catalog.streamStats(p, "typo"));
  EXPECT_EQ(err.rfind("stream 'typo': the filter '(qualty >= 4)' reads column 'qualty', which no dataset of "
                      "stream 'prose' has; did you mean 'quality'? (its columns: ",
                      0),
            0u)
      << err;
}

TEST(ShardCatalogTest, GlobsAndLeakage) {
  TempDir dir;
  plan::Plan p = streams(dir.Path, 3);
  p.Streams["prose"] = rootStream("prose", "synth:prose", 0.1);
  p.Streams["copy"] = rootStream("copy", "data/part-*.idx", 0.0);
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

  plan::StreamStats copy = *ok(catalog.streamStats(p, "copy"));
  EXPECT_EQ(copy.TrainDocuments, 12u);
  EXPECT_EQ(*ok(catalog.leakedDocuments(p, "prose", "copy")), 7u);
  EXPECT_EQ(*ok(catalog.leakedDocuments(p, "prose", "prose")), 0u);
}

TEST(ShardCatalogTest, GroupByAColumnWithMissingValues) {
  TempDir dir;
  plan::Plan p = streams(dir.Path, 3);
  p.Streams["web"] = rootStream("web", "data/web-*.idx", 0.0);
  p.Streams["absent"] = rootStream("absent", "data/none-*.idx", 0.0);
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
  plan::ColumnGroups lang = *ok(catalog.groupBy(p, "web", "lang"));
  EXPECT_EQ(lang.Columns, (std::vector<std::string>{"lang", "score"}));
  ASSERT_EQ(lang.Groups.size(), 3u);
  // Missing first (3 unset in web-0, both of web-1), then the strings in order.
  EXPECT_EQ(lang.Groups[0].Value.ValueKind, plan::MetadataValue::Kind::Missing);
  EXPECT_EQ(lang.Groups[0].TrainDocuments, 5u);
  EXPECT_EQ(lang.Groups[1].Value.String, "de");
  EXPECT_EQ(lang.Groups[1].TrainDocuments, 3u);
  EXPECT_EQ(lang.Groups[2].Value.String, "en");
  EXPECT_EQ(lang.Groups[2].TrainTokens, 3u * (bytes.encode("document 0").size() + 1));

  // The runtime selects the same documents for each unit, the missing one included.
  DataSources sources(3, dir / "cache");
  RootSpec web{"web", *ok(expandShards("data/web-*.idx", dir.Path)), 0.0};
  uint64_t total = 0;
  for (const plan::ColumnGroup &g : lang.Groups) {
    const StreamView &unit = *ok(sources.view(web, "unit", {{}, AblationUnit{0, 0, "lang", g.Value}}));
    EXPECT_EQ(unit.trainDocuments(), g.TrainDocuments) << g.Value.label();
    total += unit.trainDocuments();
  }
  EXPECT_EQ(total, 11u);

  EXPECT_EQ(ok(catalog.groupBy(p, "web", "score"))->Groups.size(), 9u); // 0..8
  EXPECT_TRUE(ok(catalog.groupBy(p, "web", "langs"))->Groups.empty());
  EXPECT_FALSE(ok(catalog.groupBy(p, "absent", "lang")).has_value());
}

TEST(ShardCatalogTest, TaskStatsAndLeakage) {
  TempDir dir;
  plan::Plan p = streams(dir.Path, 3);
  p.Model.Tokenizer = "bytes";
  p.Model.MaxPositions = 64;
  p.Streams["web"] = rootStream("web", "data/web", 0.0);
  ByteTokenizer bytes;
  // Trained documents: item 0's context alone, item 1 with its answer, and other text.
  auto writer = ok(DatasetWriter::create(dir / "data/web", ShardFormat::Megatron, bytes));
  for (const char *text : {"Q: one?\nA:", "Q: two?\nA: b", "unrelated"})
    ASSERT_FALSE(writer->addDocument(bytes.encode(text)));
  ASSERT_TRUE(!!writer->finish());
  std::ofstream(dir / "task.jsonl") << R"({"context": "Q: one?\nA:", "choices": ["a", "b"], "gold": 0})" "\n"
                                    << R"({"context": "Q: two?\nA:", "choices": ["a", "b"], "gold": 1})" "\n"
                                    << R"({"context": "Q: three?\nA:", "choices": ["a", "bb"], "gold": 0})" "\n";
  plan::Task task;
  task.Path = "task.jsonl";
  task.TargetDelimiter = " ";
  ShardCatalog catalog(dir / "cache");
  plan::TaskStats stats = *ok(catalog.taskStats(p, task));
  EXPECT_EQ(stats.Items, 3u);
  // Bytes: a pass reads context + " " + choice without its last token: 10 + 2 - 1 per
  // choice of the first two items; 12 + 2 - 1 and 12 + 3 - 1 for the third's.
  EXPECT_EQ(stats.Tokens, 4 * 11u + 13u + 14u);
  EXPECT_TRUE(llvm::StringRef(stats.Fingerprint).startswith("sha256:"));
  EXPECT_EQ(*ok(catalog.taskLeakage(p, task, "web")), 2u);
  task.Limit = 1;
  EXPECT_EQ(*ok(catalog.taskLeakage(p, task, "web")), 1u);
  task.Path = "absent.jsonl";
  EXPECT_FALSE(ok(catalog.taskStats(p, task)).has_value());
}

TEST(ShardCatalogTest, SharedDocumentsAndTheLengthColumn) {
  TempDir dir;
  plan::Plan p = streams(dir.Path, 3);
  p.Streams["prose"] = rootStream("prose", "synth:prose", 0.05);
  p.Streams["clean"] = derived(p, "prose", atLeast("quality", 4));
  plan::Predicate noisy;
  noisy.addCompare(Op::Le, "quality", 2);
  p.Streams["noisy"] = derived(p, "prose", noisy);
  p.Streams["long"] = derived(p, "prose", atLeast(plan::kLengthColumn, 400));
  ShardCatalog catalog(dir / "cache");
  plan::StreamStats prose = *ok(catalog.streamStats(p, "prose"));
  plan::StreamStats clean = *ok(catalog.streamStats(p, "clean"));
  plan::StreamStats longDocs = *ok(catalog.streamStats(p, "long"));
  auto shared = [&](llvm::StringRef name, std::vector<std::string> others) {
    std::optional<plan::SharedDocuments> s = ok(catalog.sharedDocuments(p, name, others));
    EXPECT_TRUE(s) << name.str();
    return s.value_or(plan::SharedDocuments{});
  };
  // A slice's documents are all the root's: the root replays exactly the slice (prose
  // documents are long enough that two never share a hash).
  EXPECT_EQ(shared("prose", {"clean"}).Documents, clean.TrainDocuments);
  EXPECT_EQ(shared("prose", {"clean"}).Tokens, clean.TrainTokens);
  EXPECT_EQ(shared("clean", {"prose"}).Tokens, clean.TrainTokens);
  EXPECT_EQ(shared("clean", {"noisy"}).Documents, 0u);
  EXPECT_EQ(shared("prose", {"clean", "noisy"}).Documents,
            clean.TrainDocuments + ok(catalog.streamStats(p, "noisy"))->TrainDocuments);
  p.Streams["absent"] = rootStream("absent", "data/none-*.idx", 0.0);
  EXPECT_FALSE(ok(catalog.sharedDocuments(p, "prose", {"absent"})).has_value());

  // `length` is every document's token count (without its end-of-text): recount it.
  DataSources sources(3, dir / "cache");
  const RootStream &root = *ok(sources.root({"prose", {"synth:prose"}, 0.05}));
  uint64_t documents = 0, tokens = 0;
  for (uint32_t d : root.trainDocuments())
    if (root.length(d) >= 400) {
      ++documents;
      tokens += root.length(d) + 1;
    }
  EXPECT_GT(documents, 0u);
  EXPECT_LT(documents, prose.TrainDocuments);
  EXPECT_EQ(longDocs.TrainDocuments, documents);
  EXPECT_EQ(longDocs.TrainTokens, tokens);
}
