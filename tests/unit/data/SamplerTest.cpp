//===- SamplerTest.cpp - streams, train nodes, validation sets, UtK -------===//
#include "mixtape/data/Sampler.h"
#include "mixtape/data/Stream.h"
#include "mixtape/data/Synth.h"
#include "mixtape/data/Tokenizer.h"

#include "DataTestSupport.h"

#include <algorithm>
#include <map>
#include <set>

using namespace mixtape;
using namespace mixtape::data;
using namespace mixtape::data::test;

namespace {

constexpr uint64_t Seed = 7;

/// The embedded corpus in a temporary cache, shared by every test of the suite.
class SamplerTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() { Cache = new TempDir(); }
  static void TearDownTestSuite() { delete Cache; }

  static NodeStream stream(const std::string &name, const std::string &domain, double val = 0.05) {
    NodeStream s;
    s.Name = name;
    s.Root = {domain, {"synth:" + domain}, val};
    return s;
  }
  static plan::Mixture mixture(std::vector<std::string> streams, std::vector<double> weights) {
    plan::Mixture m;
    m.Streams = std::move(streams);
    m.Positions = {0};
    m.Weights = {std::move(weights)};
    return m;
  }
  /// prose 0.5, code 0.3, arith 0.2.
  static TrainNodeData threeStreams(uint64_t begin, uint64_t end, uint64_t seqLen = 64) {
    TrainNodeData node;
    node.SeqLen = seqLen;
    node.Mixture = mixture({"arith", "code", "prose"}, {0.2, 0.3, 0.5});
    node.Begin = begin;
    node.End = end;
    node.Streams = {stream("arith", "arith"), stream("code", "code"), stream("prose", "prose")};
    return node;
  }
  DataSources sources() { return DataSources(Seed, Cache->Path); }

  /// A stream's token sequence over epochs [0, epochs), built from the orders directly.
  static std::vector<uint32_t> sequence(const StreamView &view, uint64_t epochs) {
    std::vector<uint32_t> out;
    for (uint64_t e = 0; e < epochs; ++e)
      for (uint32_t d : view.epoch(e).Documents) {
        view.root().tokens(d).appendTo(out);
        out.push_back(view.root().eot());
      }
    return out;
  }
  static std::vector<uint32_t> slice(const std::vector<uint32_t> &seq, uint64_t at, uint64_t n) {
    EXPECT_LE(at + n, seq.size());
    return std::vector<uint32_t>(seq.begin() + at, seq.begin() + at + n);
  }

  static TempDir *Cache;
};
TempDir *SamplerTest::Cache = nullptr;

template <typename T> T ok(llvm::Expected<T> value) {
  if (!value) {
    ADD_FAILURE() << llvm::toString(value.takeError());
    std::abort();
  }
  return std::move(*value);
}

bool sameSample(const Sample &a, const Sample &b) {
  return a.Tokens == b.Tokens && a.LossMask == b.LossMask && a.DocumentStarts == b.DocumentStarts &&
         a.Stream == b.Stream && a.Cursor == b.Cursor;
}

} // namespace

TEST_F(SamplerTest, ResolveSynthIsIdempotent) {
  std::string first = ok(resolveSynth("prose", Seed, Cache->Path));
  EXPECT_EQ(first, *Cache / ("synth-v" + std::to_string(kSynthVersion) + "-" + std::to_string(Seed) + "/prose"));
  std::vector<uint8_t> bytes = readBytes(first + ".bin");
  EXPECT_EQ(ok(resolveSynth("prose", Seed, Cache->Path)), first);
  EXPECT_EQ(readBytes(first + ".bin"), bytes);
  EXPECT_NE(errorText(resolveSynth("poetry", Seed, Cache->Path)).find("unknown domain"), std::string::npos);
}

TEST_F(SamplerTest, FingerprintIsTheSortedChecksumList) {
  FileDigest a{"a.bin", 10, 0x1234}, b{"b.idx", 20, 0xabcd};
  EXPECT_EQ(streamFingerprint(std::vector<FileDigest>{a, b}), streamFingerprint(std::vector<FileDigest>{b, a}));
  FileDigest changed = b;
  changed.Xxh3 ^= 1;
  EXPECT_NE(streamFingerprint(std::vector<FileDigest>{a, b}), streamFingerprint(std::vector<FileDigest>{a, changed}));
  EXPECT_EQ(streamFingerprint(std::vector<FileDigest>{a}).size(), 16u);
}

TEST_F(SamplerTest, ProportionsAreExactAndWindowsReadTheStreams) {
  DataSources src = sources();
  TrainNodeData node = threeStreams(0, 600);
  auto samples = ok(TrainSamples::open(node, src));
  ASSERT_EQ(samples->size(), 600u);
  std::vector<double> weights = node.Mixture.Weights[0];
  std::vector<uint64_t> counts(3, 0);
  std::vector<std::vector<uint32_t>> seqs;
  for (size_t s = 0; s < 3; ++s)
    seqs.push_back(sequence(samples->view(s), 1));
  Sample sample;
  for (uint64_t i = 0; i < samples->size(); ++i) {
    samples->read(i, sample);
    uint32_t s = sample.Stream;
    EXPECT_EQ(sample.Cursor, counts[s] * node.SeqLen);
    EXPECT_EQ(sample.Tokens, slice(seqs[s], sample.Cursor, node.SeqLen + 1)) << "sample " << i;
    ++counts[s];
    for (size_t t = 0; t < 3; ++t) // every prefix within one sample of its target
      EXPECT_LE(std::abs(double(counts[t]) - weights[t] * double(i + 1)), 1.0) << "prefix " << i + 1;
  }
  EXPECT_EQ(counts, samples->streamSamples());
  EXPECT_EQ(counts, (std::vector<uint64_t>{120, 180, 300}));
}

TEST_F(SamplerTest, WindowsCarryDocumentStartsAndAFullMask) {
  DataSources src = sources();
  auto samples = ok(TrainSamples::open(threeStreams(0, 50), src));
  Sample sample;
  for (uint64_t i = 0; i < samples->size(); ++i) {
    samples->read(i, sample);
    ASSERT_EQ(sample.Tokens.size(), 65u);
    EXPECT_EQ(sample.LossMask, std::vector<uint8_t>(64, 1));
    std::vector<uint32_t> expected{0};
    for (uint32_t t = 0; t + 1 < sample.Tokens.size(); ++t)
      if (sample.Tokens[t] == ByteTokenizer::EndOfText)
        expected.push_back(t + 1);
    EXPECT_EQ(sample.DocumentStarts, expected);
  }
}

TEST_F(SamplerTest, SameSampleAcrossOpens) {
  DataSources a = sources(), b = sources();
  auto first = ok(TrainSamples::open(threeStreams(100, 300), a));
  auto second = ok(TrainSamples::open(threeStreams(100, 300), b));
  for (uint64_t i = 0; i < first->size(); i += 7)
    EXPECT_TRUE(sameSample(first->read(i), second->read(i))) << "sample " << i;
}

TEST_F(SamplerTest, ASplitNodeReadsLikeTheWholeNode) {
  DataSources src = sources();
  TrainNodeData whole = threeStreams(0, 500);
  TrainNodeData head = threeStreams(0, 180), tail = threeStreams(180, 500);
  // The tail's cursors are what the plan computes: Blender counts times seq_len.
  plan::Blender blender(whole.Mixture, whole.SeqLen);
  blender.skipTo(180);
  for (size_t s = 0; s < 3; ++s)
    tail.Streams[s].Cursor = blender.counts()[s] * whole.SeqLen;
  auto all = ok(TrainSamples::open(whole, src));
  auto first = ok(TrainSamples::open(head, src));
  auto second = ok(TrainSamples::open(tail, src));
  EXPECT_EQ(first->endCursors(), std::vector<uint64_t>({tail.Streams[0].Cursor, tail.Streams[1].Cursor,
                                                        tail.Streams[2].Cursor}));
  for (uint64_t i = 0; i < all->size(); ++i) {
    Sample expected = all->read(i);
    Sample got = i < 180 ? first->read(i) : second->read(i - 180);
    EXPECT_TRUE(sameSample(expected, got)) << "sample " << i;
  }
}

TEST_F(SamplerTest, ANextStageContinuesWhereTheLastStopped) {
  DataSources src = sources();
  auto first = ok(TrainSamples::open(threeStreams(0, 300), src));
  // A new stage reading only code continues code's sequence from first's end cursor.
  TrainNodeData next;
  next.SeqLen = 64;
  next.Mixture = mixture({"code"}, {1.0});
  next.Begin = 0;
  next.End = 20;
  next.Streams = {stream("code", "code")};
  next.Streams[0].Cursor = first->endCursors()[1];
  auto second = ok(TrainSamples::open(next, src));
  std::vector<uint32_t> seq = sequence(second->view(0), 1);
  for (uint64_t i = 0; i < second->size(); ++i) {
    Sample s = second->read(i);
    EXPECT_EQ(s.Cursor, first->endCursors()[1] + i * 64);
    EXPECT_EQ(s.Tokens, slice(seq, s.Cursor, 65));
  }
}

TEST_F(SamplerTest, ACursorPastAnEpochReadsTheNextEpochsOrder) {
  DataSources src = sources();
  TrainNodeData node;
  node.SeqLen = 256;
  node.Mixture = mixture({"arith"}, {1.0});
  node.Begin = 0;
  node.End = 40;
  node.Streams = {stream("arith", "arith")};
  const StreamView &view = *ok(src.view(node.Streams[0].Root, "arith", {}));
  uint64_t epoch = view.trainTokens();
  node.Streams[0].Cursor = epoch - 10 * 256 - 17; // the 11th window straddles the epochs
  auto samples = ok(TrainSamples::open(node, src));
  EXPECT_NE(view.epoch(0).Documents, view.epoch(1).Documents);
  EXPECT_EQ(view.epoch(0).tokens(), view.epoch(1).tokens());
  std::vector<uint32_t> seq = sequence(view, 2);
  ASSERT_EQ(seq.size(), 2 * epoch);
  for (uint64_t i = 0; i < samples->size(); ++i) {
    Sample s = samples->read(i);
    EXPECT_EQ(s.Tokens, slice(seq, s.Cursor, 257)) << "sample " << i;
  }
  // Epoch 1's first document starts 17 tokens into the 11th window.
  Sample straddling = samples->read(10);
  EXPECT_TRUE(llvm::is_contained(straddling.DocumentStarts, 17u));
  std::vector<uint32_t> firstOfEpoch1 = view.root().tokens(view.epoch(1).Documents[0]).toVector();
  EXPECT_TRUE(std::equal(firstOfEpoch1.begin(), firstOfEpoch1.begin() + 10, straddling.Tokens.begin() + 17));
}

TEST_F(SamplerTest, RanksOfAnyWorldSizeSeeTheSameGlobalOrder) {
  DataSources src = sources();
  auto samples = ok(TrainSamples::open(threeStreams(0, 120), src));
  std::vector<Sample> global;
  for (uint64_t i = 0; i < samples->size(); ++i)
    global.push_back(samples->read(i));
  for (uint64_t world : {2, 3, 8}) {
    for (uint64_t rank = 0; rank < world; ++rank) {
      DataSources own = sources(); // each rank opens on its own
      auto mine = ok(TrainSamples::open(threeStreams(0, 120), own));
      for (uint64_t i = rank; i < mine->size(); i += world)
        EXPECT_TRUE(sameSample(mine->read(i), global[i])) << "world " << world << " rank " << rank;
    }
  }
}

/// One comparison, as the plan carries a stream's `where`.
plan::Predicate compare(plan::Predicate::Op op, llvm::StringRef column, double value) {
  plan::Predicate p;
  p.addCompare(op, column, value);
  return p;
}

TEST_F(SamplerTest, FiltersCountTheSurvivingDocuments) {
  using Op = plan::Predicate::Op;
  DataSources src = sources();
  RootSpec prose{"prose", {"synth:prose"}, 0.05};
  const RootStream &root = *ok(src.root(prose));
  const StreamView &hq = *ok(src.view(prose, "prose_hq", {{compare(Op::Ge, "quality", 4)}, std::nullopt}));
  const MetadataTable &meta = *root.datasets()[0]->metadata();
  size_t quality = *meta.findColumn("quality");
  uint64_t docs = 0, tokens = 0;
  for (uint32_t d : root.trainDocuments())
    if (meta.number(quality, d) >= 4) {
      ++docs;
      tokens += root.length(d) + 1;
    }
  EXPECT_GT(docs, 0u);
  EXPECT_LT(docs, root.trainDocuments().size());
  EXPECT_EQ(hq.trainDocuments(), docs);
  EXPECT_EQ(hq.trainTokens(), tokens);
  for (uint32_t d : hq.epoch(3).Documents)
    EXPECT_GE(meta.number(quality, d), 4);

  // A derived stream's epoch order is its root's, filtered.
  const StreamView &all = *ok(src.view(prose, "prose", {}));
  std::vector<uint32_t> filtered;
  for (uint32_t d : all.epoch(2).Documents)
    if (meta.number(quality, d) >= 4)
      filtered.push_back(d);
  EXPECT_EQ(hq.epoch(2).Documents, filtered);

  // A filter that keeps nothing makes an empty view (planning reports it, empty-filter);
  // reading it is an error naming the stream and the filter.
  const StreamView &none = *ok(src.view(prose, "prose_none", {{compare(Op::Gt, "quality", 100)}, std::nullopt}));
  EXPECT_EQ(none.trainDocuments(), 0u);
  std::string err = errorText(none.noDocuments());
  EXPECT_NE(err.find("stream 'prose_none'"), std::string::npos) << err;
  EXPECT_NE(err.find("(quality > 100)"), std::string::npos) << err;
  TrainNodeData node;
  node.SeqLen = 64;
  node.Mixture = mixture({"prose_none"}, {1});
  node.End = 4;
  NodeStream empty = stream("prose_none", "prose");
  empty.Selection.Where = {compare(Op::Gt, "quality", 100)};
  node.Streams = {empty};
  EXPECT_EQ(errorText(TrainSamples::open(node, src)), err);
}

TEST_F(SamplerTest, SplitIsDisjointAndDerivedStreamsKeepTheirRootsSplit) {
  DataSources src = sources();
  RootSpec code{"code", {"synth:code"}, 0.1};
  const RootStream &root = *ok(src.root(code));
  std::set<uint64_t> train, val;
  for (uint32_t d : root.trainDocuments())
    train.insert(root.documentHash(d));
  for (uint32_t d : root.valDocuments())
    val.insert(root.documentHash(d));
  EXPECT_EQ(root.trainDocuments().size() + root.valDocuments().size(), root.numDocuments());
  EXPECT_GT(val.size(), 50u);
  EXPECT_LT(val.size(), 150u);
  for (uint64_t h : val)
    EXPECT_FALSE(train.count(h));
  for (uint32_t d = 0; d < root.numDocuments(); ++d)
    EXPECT_EQ(root.heldOut(d), isHeldOut(root.documentHash(d), 0.1));

  using Op = plan::Predicate::Op;
  const StreamView &derived = *ok(
      src.view(code, "code_hq", {{compare(Op::Ge, "quality", 3), compare(Op::Le, "quality", 4)}, std::nullopt}));
  for (uint32_t d : derived.valOrder().Documents)
    EXPECT_TRUE(val.count(root.documentHash(d))); // derived val within root val
  for (uint64_t e = 0; e < 3; ++e)
    for (uint32_t d : derived.epoch(e).Documents)
      EXPECT_FALSE(val.count(root.documentHash(d))); // no val document is ever trained on
  EXPECT_EQ(derived.epoch(0).Documents.size(), derived.trainDocuments());
}

TEST_F(SamplerTest, AblationUnitsPartitionTheDocuments) {
  DataSources src = sources();
  RootSpec facts{"facts", {"synth:facts"}, 0.05};
  const StreamView &all = *ok(src.view(facts, "facts", {}));
  uint64_t docs = 0;
  std::set<uint32_t> seen;
  for (uint64_t k = 0; k < 4; ++k) {
    const StreamView &unit = *ok(src.view(facts, "facts", {{}, AblationUnit{4, k, "", {}}}));
    docs += unit.trainDocuments();
    for (uint32_t d : unit.epoch(0).Documents)
      EXPECT_TRUE(seen.insert(d).second);
  }
  EXPECT_EQ(docs, all.trainDocuments());
}

TEST_F(SamplerTest, UnitsByAColumnPartitionTheFilteredDocuments) {
  DataSources src = sources();
  RootSpec code{"code", {"synth:code"}, 0.1};
  std::vector<plan::Predicate> where(1);
  where[0].addCompare(plan::Predicate::Op::Ge, "quality", 3.0);
  const StreamView &parent = *ok(src.view(code, "code_hq", {where, std::nullopt}));
  const MetadataTable &meta = *parent.root().datasets()[0]->metadata();
  for (auto [column, kind] : {std::pair{"source", plan::MetadataValue::Kind::String},
                              {"quality", plan::MetadataValue::Kind::Number}}) {
    SCOPED_TRACE(column);
    std::vector<plan::ColumnGroup> groups = parent.groupBy(column);
    ASSERT_GE(groups.size(), 2u);
    size_t c = *meta.findColumn(column);
    std::set<uint32_t> trained;
    uint64_t tokens = 0, valDocs = 0;
    for (const plan::ColumnGroup &g : groups) {
      EXPECT_EQ(g.Value.ValueKind, kind);
      const StreamView &unit = *ok(src.view(code, "unit", {where, AblationUnit{0, 0, column, g.Value}}));
      EXPECT_EQ(unit.trainDocuments(), g.TrainDocuments);
      EXPECT_EQ(unit.trainTokens(), g.TrainTokens);
      EXPECT_EQ(unit.valDocuments(), g.ValDocuments);
      EXPECT_EQ(unit.valTokens(), g.ValTokens);
      // Every epoch of a unit is its parent's, restricted to the documents holding its value.
      std::vector<uint32_t> want;
      for (uint32_t d : parent.epoch(1).Documents)
        if (kind == plan::MetadataValue::Kind::String ? meta.string(c, d) == g.Value.String
                                                         : meta.number(c, d) == g.Value.Number)
          want.push_back(d);
      EXPECT_EQ(unit.epoch(1).Documents, want);
      for (uint32_t d : unit.epoch(0).Documents)
        EXPECT_TRUE(trained.insert(d).second) << "document " << d << " is in two units";
      tokens += unit.trainTokens();
      valDocs += unit.valDocuments();
    }
    // Disjoint (above), and together every training document of the parent.
    EXPECT_EQ(trained.size(), parent.trainDocuments());
    EXPECT_EQ(tokens, parent.trainTokens());
    EXPECT_EQ(valDocs, parent.valDocuments());
    EXPECT_TRUE(std::is_sorted(groups.begin(), groups.end(),
                               [](const auto &a, const auto &b) { return a.Value < b.Value; }));
  }
  EXPECT_TRUE(parent.groupBy("no_such_column").empty());
}

TEST_F(SamplerTest, UntieTheKnotsKeepsTheTokensAndMasksTheKnots) {
  DataSources src = sources();
  TrainNodeData plain;
  plain.SeqLen = 512;
  plain.Mixture = mixture({"prose"}, {1.0});
  plain.Begin = 0;
  plain.End = 30;
  plain.Streams = {stream("prose", "prose")};
  TrainNodeData knotted = plain;
  knotted.Streams[0].Transform = plan::UntieKnots{{{1, 0.2}, {3, 0.5}, {6, 0.3}}, false};
  auto source = ok(TrainSamples::open(plain, src));
  auto knots = ok(TrainSamples::open(knotted, src));
  uint64_t totalKnots = 0;
  for (uint64_t i = 0; i < knots->size(); ++i) {
    Sample before = source->read(i), after = knots->read(i);
    ASSERT_EQ(after.Tokens.size(), 513u);
    ASSERT_EQ(after.LossMask.size(), 512u);
    EXPECT_EQ(after.DocumentStarts, std::vector<uint32_t>{0});
    uint64_t count = llvm::count(after.Tokens, ByteTokenizer::Knot);
    totalKnots += count;
    // The non-knot tokens are the window's first 513 - knots source tokens, reordered.
    std::multiset<uint32_t> kept, expected(before.Tokens.begin(), before.Tokens.end() - count);
    for (uint32_t t : after.Tokens)
      if (t != ByteTokenizer::Knot)
        kept.insert(t);
    EXPECT_EQ(kept, expected) << "sample " << i;
    for (uint32_t t = 0; t < 512; ++t)
      EXPECT_EQ(after.LossMask[t], after.Tokens[t + 1] == ByteTokenizer::Knot ? 0 : 1);
    EXPECT_TRUE(sameSample(after, knots->read(i))); // deterministic
  }
  EXPECT_GT(totalKnots, 30u);
  // One chunk per document only shuffles whole document pieces: no knots, and a window of
  // one piece is unchanged. keep_order keeps a document's chunks in their order.
  knotted.Streams[0].Transform = plan::UntieKnots{{{1, 1.0}}, true};
  auto whole = ok(TrainSamples::open(knotted, src));
  for (uint64_t i = 0; i < whole->size(); ++i) {
    Sample before = source->read(i), after = whole->read(i);
    EXPECT_EQ(llvm::count(after.Tokens, ByteTokenizer::Knot), 0);
    EXPECT_EQ(std::multiset<uint32_t>(after.Tokens.begin(), after.Tokens.end()),
              std::multiset<uint32_t>(before.Tokens.begin(), before.Tokens.end()));
    if (before.DocumentStarts.size() == 1) {
      EXPECT_EQ(after.Tokens, before.Tokens);
    }
  }
  knotted.Streams[0].Transform = plan::UntieKnots{{{4, 1.0}}, true};
  auto ordered = ok(TrainSamples::open(knotted, src));
  uint64_t onePiece = 0;
  for (uint64_t i = 0; i < ordered->size(); ++i) {
    Sample before = source->read(i), after = ordered->read(i);
    if (before.DocumentStarts.size() != 1)
      continue;
    ++onePiece;
    std::vector<uint32_t> unknotted;
    for (uint32_t t : after.Tokens)
      if (t != ByteTokenizer::Knot)
        unknotted.push_back(t);
    EXPECT_EQ(unknotted, slice(before.Tokens, 0, unknotted.size()));
  }
  EXPECT_GT(onePiece, 0u);
}

TEST_F(SamplerTest, ValSetsTakeTheHeldOutDocumentsUpToTheBudget) {
  DataSources src = sources();
  NodeStream prose = stream("prose", "prose", 0.05);
  const StreamView &view = *ok(src.view(prose.Root, "prose", {}));
  auto whole = ok(ValSet::open(prose, plan::SplitKind::Val, 128, 0, src));
  EXPECT_EQ(whole->targetTokens(), view.valTokens() - 1);
  EXPECT_EQ(whole->size(), (view.valTokens() - 1 + 127) / 128);
  std::vector<uint32_t> seq;
  for (uint32_t d : view.valOrder().Documents) {
    view.root().tokens(d).appendTo(seq);
    seq.push_back(view.root().eot());
  }
  Sample s;
  uint64_t masked = 0;
  for (uint64_t i = 0; i < whole->size(); ++i) {
    whole->sample(i, s);
    uint64_t n = std::min<uint64_t>(129, seq.size() - i * 128);
    EXPECT_EQ(std::vector<uint32_t>(s.Tokens.begin(), s.Tokens.begin() + n), slice(seq, i * 128, n));
    masked += llvm::count(s.LossMask, 1);
  }
  EXPECT_EQ(masked, whole->targetTokens());

  auto budget = ok(ValSet::open(prose, plan::SplitKind::Val, 128, 1000, src));
  EXPECT_EQ(budget->size(), 8u);
  EXPECT_EQ(budget->targetTokens(), 1000u);
  budget->sample(7, s);
  EXPECT_EQ(llvm::count(s.LossMask, 1), 1000 - 7 * 128);
  std::string err = errorText(ValSet::open(stream("prose", "prose", 0), plan::SplitKind::Val, 128, 0, src));
  EXPECT_NE(err.find("no held-out documents"), std::string::npos) << err;
}

// An eval of the train split reads the training documents in an order of its own: a sample
// of the split however much of it was trained, never a held-out document.
TEST_F(SamplerTest, TrainSplitEvalsReadTheTrainingDocuments) {
  DataSources src = sources();
  NodeStream prose = stream("prose", "prose", 0.05);
  const StreamView &view = *ok(src.view(prose.Root, "prose", {}));
  auto set = ok(ValSet::open(prose, plan::SplitKind::Train, 64, 4096, src));
  EXPECT_EQ(set->targetTokens(), 4096u);
  DocumentOrder order = view.evalOrder(plan::SplitKind::Train);
  EXPECT_EQ(order.Documents.size(), view.trainDocuments());
  EXPECT_NE(order.Documents, view.epoch(0).Documents);
  const std::vector<uint32_t> val = view.valOrder().Documents;
  const std::set<uint32_t> heldOut(val.begin(), val.end());
  std::vector<uint32_t> seq;
  for (uint32_t d : order.Documents) {
    EXPECT_FALSE(heldOut.count(d));
    view.root().tokens(d).appendTo(seq);
    seq.push_back(view.root().eot());
    if (seq.size() > 4200)
      break;
  }
  Sample s;
  for (uint64_t i = 0; i < set->size(); ++i) {
    set->sample(i, s);
    EXPECT_EQ(s.Tokens, slice(seq, i * 64, 65)) << "window " << i;
  }
}

// Control tokens (Korbak et al. 2023): each document is read as its token, its tokens, the
// end-of-text; the token is good iff the document's quality is above 3. The reference
// sequence is built here from the epoch orders and the metadata table directly.
TEST_F(SamplerTest, ControlTokensPrefixEachDocumentByItsColumn) {
  constexpr uint32_t Good = 259, Bad = 260;
  DataSources src = sources();
  NodeStream plain = stream("prose", "prose");
  NodeStream control = stream("prose_ctl", "prose");
  control.Selection.Control =
      plan::ControlTokens{"quality", 3.0, plan::ControlToken{"<|good|>", Good}, plan::ControlToken{"<|bad|>", Bad}};
  const StreamView &bare = *ok(src.view(plain.Root, "prose", {}));
  const StreamView &view = *ok(src.view(control.Root, control.Name, control.Selection));
  const RootStream &root = view.root();
  const MetadataTable &meta = *root.datasets()[0]->metadata();
  const size_t quality = *meta.findColumn("quality");
  auto expectedPrefix = [&](uint32_t d) { return meta.number(quality, d) > 3 ? Good : Bad; };

  // Every synthetic document has a quality: each is one token longer, in every count.
  EXPECT_EQ(view.trainDocuments(), bare.trainDocuments());
  EXPECT_EQ(view.trainTokens(), bare.trainTokens() + bare.trainDocuments());
  EXPECT_EQ(view.valTokens(), bare.valTokens() + bare.valDocuments());

  // Two epochs of the stream, and where its control tokens sit.
  std::vector<uint32_t> seq;
  std::set<uint64_t> prefixAt;
  uint64_t good = 0, bad = 0;
  for (uint64_t e = 0; e < 2; ++e) {
    DocumentOrder order = view.epoch(e);
    EXPECT_EQ(order.Documents, bare.epoch(e).Documents); // the same order, longer documents
    for (uint32_t d : order.Documents) {
      prefixAt.insert(seq.size());
      seq.push_back(expectedPrefix(d));
      (seq.back() == Good ? good : bad)++;
      root.tokens(d).appendTo(seq);
      seq.push_back(root.eot());
    }
    EXPECT_EQ(order.tokens(), view.trainTokens());
  }
  EXPECT_GT(good, 0u);
  EXPECT_GT(bad, 0u);

  // Samples across the first epoch's end: the tokens are the reference's, and the loss
  // skips exactly the targets that are control tokens.
  TrainNodeData node;
  node.SeqLen = 128;
  node.Mixture = mixture({"prose_ctl"}, {1.0});
  node.End = 40;
  control.Cursor = (view.trainTokens() / 128 - 20) * 128;
  node.Streams = {control};
  auto samples = ok(TrainSamples::open(node, src));
  uint64_t prefixesSeen = 0;
  for (uint64_t i = 0; i < samples->size(); ++i) {
    Sample s = samples->read(i);
    ASSERT_EQ(s.Tokens, slice(seq, s.Cursor, 129)) << "sample " << i;
    for (uint32_t t = 0; t < 128; ++t)
      EXPECT_EQ(s.LossMask[t], prefixAt.count(s.Cursor + t + 1) ? 0 : 1) << "sample " << i << " target " << t;
    // Every document that starts in the window (after its first position, which is 0 in
    // DocumentStarts whatever it holds) starts with its control token.
    for (uint32_t start : s.DocumentStarts)
      if (start > 0) {
        EXPECT_TRUE(prefixAt.count(s.Cursor + start)) << "sample " << i << " at " << start;
        ++prefixesSeen;
      }
  }
  EXPECT_GT(prefixesSeen, 10u);

  // Resume: a node that starts at the end cursor of the first half reads the same samples.
  TrainNodeData head = node, tail = node;
  head.End = 17;
  tail.Begin = 17;
  auto first = ok(TrainSamples::open(head, src));
  tail.Streams[0].Cursor = first->endCursors()[0];
  auto second = ok(TrainSamples::open(tail, src));
  for (uint64_t i = 17; i < 40; ++i)
    EXPECT_TRUE(sameSample(samples->read(i), second->read(i - 17))) << "sample " << i;

  // An eval reads the held-out documents with their prefixes and scores all but the prefixes:
  // every document's but the first, which is window position 0 and never a target.
  auto val = ok(ValSet::open(control, plan::SplitKind::Val, 128, 0, src));
  EXPECT_EQ(val->targetTokens(), (view.valTokens() - 1) - (view.valDocuments() - 1));
  Sample first0;
  val->sample(0, first0);
  EXPECT_EQ(first0.Tokens[0], expectedPrefix(view.valOrder().Documents[0]));

  // Without a column, every document gets the one token given.
  NodeStream asGood = stream("prose_good", "prose");
  asGood.Selection.Control = plan::ControlTokens{std::nullopt, std::nullopt, plan::ControlToken{"<|good|>", Good},
                                                 std::nullopt};
  const StreamView &allGood = *ok(src.view(asGood.Root, asGood.Name, asGood.Selection));
  for (uint32_t d : allGood.valOrder().Documents)
    EXPECT_EQ(allGood.prefix(d), std::optional<uint32_t>(Good));

  // A document without a number in the column gets no prefix: `domain` holds strings.
  const StreamView &byString = *ok(src.view(
      plain.Root, "prose_by_domain",
      {{}, std::nullopt, plan::ControlTokens{"domain", 0.0, plan::ControlToken{"<|good|>", Good},
                                             plan::ControlToken{"<|bad|>", Bad}}}));
  EXPECT_EQ(byString.trainTokens(), bare.trainTokens());
  EXPECT_FALSE(byString.prefix(byString.epoch(0).Documents[0]));

  // A column no dataset has is an error with the closest one; so is an id beyond the vocabulary.
  std::string err = errorText(src.view(plain.Root, "prose_typo",
                                       {{}, std::nullopt,
                                        plan::ControlTokens{"qualty", 3.0, plan::ControlToken{"<|good|>", Good},
                                                            plan::ControlToken{"<|bad|>", Bad}}}));
  EXPECT_NE(err.find("stream 'prose_typo'"), std::string::npos) << err;
  EXPECT_NE(err.find("column 'qualty'"), std::string::npos) << err;
  EXPECT_NE(err.find("did you mean 'quality'?"), std::string::npos) << err;
  err = errorText(src.view(plain.Root, "prose_far",
                           {{}, std::nullopt,
                            plan::ControlTokens{std::nullopt, std::nullopt, plan::ControlToken{"<|x|>", 264},
                                                std::nullopt}}));
  EXPECT_NE(err.find("control token '<|x|>' is id 264, beyond the vocabulary of 264"), std::string::npos) << err;
}
