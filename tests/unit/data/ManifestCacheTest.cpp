//===- ManifestCacheTest.cpp - Megatron/NeMo datasets without a manifest ---===//
#include "mixtape/data/ManifestCache.h"
#include "mixtape/data/IndexedDataset.h"
#include "mixtape/data/ShardCatalog.h"
#include "mixtape/data/Stream.h"
#include "mixtape/data/Tokenizer.h"

#include "DataTestSupport.h"

#include "llvm/Support/Process.h"

#include <chrono>
#include <fstream>

using namespace mixtape;
using namespace mixtape::data;
using namespace mixtape::data::test;

namespace {

constexpr uint32_t Eot = ByteTokenizer::EndOfText;

/// A Megatron pair as preprocess_data.py leaves it: .bin + .idx, no manifest, no sidecar.
void writePair(const std::string &prefix, const std::vector<std::vector<uint32_t>> &docs, DType dtype = DType::UInt16) {
  std::unique_ptr<IndexedDatasetWriter> writer = take(IndexedDatasetWriter::create(prefix, dtype));
  for (const std::vector<uint32_t> &doc : docs)
    ASSERT_FALSE(writer->addDocument(doc));
  take(writer->finish());
}

std::vector<std::vector<uint32_t>> corpus(unsigned n, bool withEod) {
  std::vector<std::vector<uint32_t>> docs;
  for (unsigned i = 0; i < n; ++i) {
    std::vector<uint32_t> doc;
    for (unsigned t = 0; t < 3 + i % 7; ++t)
      doc.push_back((i * 31 + t * 7) % 256);
    if (withEod)
      doc.push_back(Eot);
    docs.push_back(std::move(doc));
  }
  return docs;
}

/// Moves a file's modification time one second on, as an edit in place would.
void touch(const std::string &path) {
  int fd = -1;
  ASSERT_FALSE(llvm::sys::fs::openFileForWrite(path, fd, llvm::sys::fs::CD_OpenExisting, llvm::sys::fs::OF_Append));
  llvm::sys::fs::file_status status;
  ASSERT_FALSE(llvm::sys::fs::status(fd, status));
  ASSERT_FALSE(llvm::sys::fs::setLastAccessAndModificationTime(
      fd, status.getLastModificationTime() + std::chrono::seconds(1)));
  ASSERT_FALSE(llvm::sys::Process::SafelyCloseFileDescriptor(fd));
}

std::vector<std::string> entries(const std::string &dir, llvm::StringRef suffix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec; it.increment(ec))
    if (llvm::StringRef(it->path()).endswith(suffix))
      out.push_back(it->path());
  return out;
}

} // namespace

TEST(ManifestCacheTest, DerivedManifestIsWhatPrepareWouldWrite) {
  TempDir dir;
  ByteTokenizer bytes;
  std::vector<std::vector<uint32_t>> docs = corpus(40, false);
  std::unique_ptr<DatasetWriter> writer = take(DatasetWriter::create(dir / "ours", ShardFormat::Megatron, bytes));
  for (const auto &doc : docs)
    ASSERT_FALSE(writer->addDocument(doc));
  Manifest ours = take(writer->finish());
  writePair(dir / "theirs", docs);

  DerivedManifest derived = take(deriveManifest(dir / "theirs", bytes, EodMode::Auto));
  const Manifest &m = derived.Manifest;
  EXPECT_EQ(m.Tokenizer, "bytes-v1");
  EXPECT_EQ(m.VocabSize, ours.VocabSize);
  EXPECT_EQ(m.Dtype, ours.Dtype);
  EXPECT_EQ(m.Tokens, ours.Tokens);
  EXPECT_EQ(m.Documents, 40u);
  EXPECT_FALSE(m.EodPresent);
  ASSERT_EQ(m.Files.size(), 2u);
  for (size_t i = 0; i < 2; ++i) { // same bytes, so the same checksums (.bin in the scan's single pass)
    EXPECT_EQ(m.Files[i].Xxh3, ours.Files[i].Xxh3) << m.Files[i].Name;
    EXPECT_EQ(m.Files[i].Bytes, ours.Files[i].Bytes);
  }
  // The document hashes are the sidecar's.
  FileDigest meta = take(derived.Hashes.write(dir / "derived.meta"));
  std::unique_ptr<MetadataTable> theirs = take(MetadataTable::open(dir / "derived.meta"));
  std::unique_ptr<MetadataTable> expected = take(MetadataTable::open(dir / "ours.meta"));
  ASSERT_EQ(theirs->numRows(), 40u);
  for (uint64_t d = 0; d < 40; ++d)
    EXPECT_EQ(theirs->documentHash(d), expected->documentHash(d));
  EXPECT_GT(meta.Bytes, 0u);
}

TEST(ManifestCacheTest, HitMissOnChangeAndCorruptEntriesIgnored) {
  TempDir dir;
  ByteTokenizer bytes;
  std::string prefix = dir / "pile_text_document";
  writePair(prefix, corpus(25, true));
  ManifestCache cache(dir / "cache");

  std::unique_ptr<Dataset> first = take(cache.open(prefix, &bytes, EodMode::Auto));
  ASSERT_TRUE(first && first->manifest());
  EXPECT_TRUE(first->manifestDerived());
  EXPECT_TRUE(first->manifest()->EodPresent);
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_FALSE(llvm::sys::fs::exists(prefix + ".manifest.json")) << "nothing is written next to the data";
  ASSERT_EQ(entries(dir / "cache", ".json").size(), 1u);
  ASSERT_EQ(entries(dir / "cache", ".meta").size(), 1u);
  EXPECT_EQ(first->metadata()->numRows(), 25u);

  // Same files: a hit; through a different spelling of the same path too.
  take(cache.open(prefix, &bytes, EodMode::Auto));
  take(cache.open(dir.Path + "/./pile_text_document", &bytes, EodMode::Auto));
  EXPECT_EQ(cache.hits(), 2u);
  EXPECT_EQ(cache.misses(), 1u);
  // Another tokenizer id or eod mode is another entry.
  take(cache.open(prefix, &bytes, EodMode::Present));
  EXPECT_EQ(cache.misses(), 2u);

  // A new modification time: re-read.
  touch(prefix + ".bin");
  take(cache.open(prefix, &bytes, EodMode::Auto));
  EXPECT_EQ(cache.misses(), 3u);
  take(cache.open(prefix, &bytes, EodMode::Auto));
  EXPECT_EQ(cache.hits(), 3u);

  // The files replaced by others: the new counts, not the cached ones.
  writePair(prefix, corpus(9, false));
  std::unique_ptr<Dataset> changed = take(cache.open(prefix, &bytes, EodMode::Auto));
  EXPECT_EQ(cache.misses(), 4u);
  EXPECT_EQ(changed->manifest()->Documents, 9u);
  EXPECT_FALSE(changed->manifest()->EodPresent);

  // Corrupt entries are recomputed, never trusted and never an error.
  std::string entry;
  for (const std::string &json : entries(dir / "cache", ".json")) {
    std::vector<uint8_t> text = readBytes(json);
    if (std::string(text.begin(), text.end()).find("\"eod\": \"auto\"") != std::string::npos)
      entry = json.substr(0, json.size() - 5);
  }
  ASSERT_FALSE(entry.empty());
  auto corrupt = [&](const std::string &path, auto edit) {
    std::vector<uint8_t> b = readBytes(path);
    edit(b);
    writeBytes(path, b);
    unsigned before = cache.misses();
    std::unique_ptr<Dataset> reopened = take(cache.open(prefix, &bytes, EodMode::Auto));
    EXPECT_EQ(cache.misses(), before + 1) << path;
    EXPECT_EQ(reopened->manifest()->Documents, 9u);
    EXPECT_EQ(reopened->manifest()->Tokens, changed->manifest()->Tokens);
  };
  corrupt(entry + ".json", [](std::vector<uint8_t> &b) { b.resize(b.size() / 2); });
  corrupt(entry + ".meta", [](std::vector<uint8_t> &b) { b[b.size() - 1] ^= 1; });
  // A well-formed entry that lies about the tokens: the dataset does not open against it.
  corrupt(entry + ".json", [](std::vector<uint8_t> &b) {
    std::string text(b.begin(), b.end());
    size_t at = text.find("\"tokens\": ");
    text.insert(at + 10, "1");
    b.assign(text.begin(), text.end());
  });
  corrupt(entry + ".json", [](std::vector<uint8_t> &b) { b.assign({'{', '}'}); });
}

TEST(ManifestCacheTest, EodPresentSeparatesWithTheDocumentsOwnToken) {
  TempDir dir;
  ByteTokenizer bytes;
  writePair(dir / "appended", corpus(30, true)); // --append-eod
  writePair(dir / "plain", corpus(30, false));
  ManifestCache cache(dir / "cache");
  std::unique_ptr<RootStream> appended =
      take(RootStream::open("a", {dir / "appended"}, 0.2, DataDeclaration{"bytes", EodMode::Auto}, cache));
  std::unique_ptr<RootStream> plain =
      take(RootStream::open("p", {dir / "plain"}, 0.2, DataDeclaration{"bytes", EodMode::Auto}, cache));
  ASSERT_EQ(appended->numDocuments(), plain->numDocuments());
  for (uint32_t d = 0; d < plain->numDocuments(); ++d) {
    EXPECT_EQ(appended->tokens(d).toVector(), plain->tokens(d).toVector()) << d;
    EXPECT_EQ(appended->documentHash(d), plain->documentHash(d)) << "the same text hashes the same";
  }
  EXPECT_EQ(appended->trainDocuments(), plain->trainDocuments()) << "the split follows the hashes";
  EXPECT_NE(appended->fingerprint(), plain->fingerprint());

  // Appending anyway keeps each document's own token: two separators, as asked.
  std::unique_ptr<RootStream> doubled =
      take(RootStream::open("d", {dir / "appended"}, 0.2, DataDeclaration{"bytes", EodMode::Append}, cache));
  EXPECT_EQ(doubled->length(0), plain->length(0) + 1);
  EXPECT_NE(doubled->fingerprint(), appended->fingerprint());

  EXPECT_EQ(errorText(RootStream::open("p", {dir / "plain"}, 0, DataDeclaration{"bytes", EodMode::Present}, cache)),
            dir / "plain.bin" + ": byte 6: document 0 does not end with the end-of-text id 256 (the stream says eod = "
                                "\"present\")");
}

TEST(ManifestCacheTest, ARecordedEodPresentIsCheckedNotTrusted) {
  TempDir dir;
  ByteTokenizer bytes;
  ManifestCache cache(dir / "cache");
  // A manifest (hand-written, or another tool's) that claims eod present over documents that
  // do not all end with the end-of-text id; with the derived sidecar or without one.
  auto claimPresent = [&](const std::string &prefix, const std::vector<std::vector<uint32_t>> &docs, bool sidecar) {
    writePair(prefix, docs);
    DerivedManifest derived = take(deriveManifest(prefix, bytes, EodMode::Append));
    derived.Manifest.EodPresent = true;
    if (sidecar)
      take(commitManifest(prefix, derived.Manifest, derived.Hashes));
    else
      std::ofstream(prefix + ".manifest.json") << formatManifest(derived.Manifest);
  };
  // Megatron allows an empty document: it has no end-of-text to drop.
  claimPresent(dir / "empty", {{1, Eot}, {}, {2, Eot}}, true);
  EXPECT_EQ(errorText(RootStream::open("e", {dir / "empty"}, 0, DataDeclaration{}, cache)),
            dir / "empty.bin" + ": byte 4: document 1 is empty, but " + dir / "empty.manifest.json" +
                " records eod present (every document ends with its end-of-text id)");
  // A last token that is not the end-of-text would be dropped from the text.
  claimPresent(dir / "unended", {{1, Eot}, {2, 3}}, false);
  EXPECT_EQ(errorText(RootStream::open("u", {dir / "unended"}, 0, DataDeclaration{}, cache)),
            dir / "unended.bin" + ": byte 8: document 1 does not end with the end-of-text id 256 (" +
                dir / "unended.manifest.json" + " records eod present)");
}

TEST(ManifestCacheTest, ErrorsNameTheFileAndTheFix) {
  TempDir dir;
  ByteTokenizer bytes;
  ManifestCache cache(dir / "cache");
  std::string prefix = dir / "web";
  writePair(prefix, {{1, 2, 3}, {4, 300, 5}});

  std::string missing = errorText(cache.open(prefix, nullptr, EodMode::Auto));
  EXPECT_NE(missing.find(prefix + ": no manifest (" + prefix + ".manifest.json), so the stream must say which "
                                                              "tokenizer made these tokens: tokenizer = "),
            std::string::npos)
      << missing;
  EXPECT_NE(missing.find("mixtape data manifest " + prefix), std::string::npos) << missing;

  EXPECT_EQ(errorText(cache.open(prefix, &bytes, EodMode::Auto)),
            prefix + ".bin: byte 8: token 1 of document 1 is outside the vocabulary of 264: is the stream's "
                     "tokenizer (bytes-v1) the one that made these tokens?");
  EXPECT_TRUE(entries(dir / "cache", ".json").empty()) << "no entry for a dataset that failed";

  writePair(prefix, {{1, 2}}, DType::UInt8);
  EXPECT_EQ(errorText(cache.open(prefix, &bytes, EodMode::Auto)),
            prefix + ".idx: byte 17: dtype uint8 holds ids below 256 but tokenizer bytes-v1 has 264: these tokens "
                     "were not made by it");

  // A truncated .idx, and one whose lengths run past the .bin.
  writePair(prefix, {{1, 2}, {3}});
  std::vector<uint8_t> idx = readBytes(prefix + ".idx");
  writeBytes(prefix + ".idx", std::vector<uint8_t>(idx.begin(), idx.begin() + 40));
  std::string truncated = errorText(cache.open(prefix, &bytes, EodMode::Auto));
  EXPECT_EQ(truncated.rfind(prefix + ".idx: byte ", 0), 0u) << truncated;
  idx[34] = 9; // sequence 0: 9 tokens
  writeBytes(prefix + ".idx", idx);
  std::string lying = errorText(cache.open(prefix, &bytes, EodMode::Auto));
  EXPECT_EQ(lying.rfind(prefix + ".", 0), 0u) << lying;
  EXPECT_NE(lying.find("byte"), std::string::npos) << lying;

  EXPECT_EQ(errorText(cache.open(dir / "nothing", &bytes, EodMode::Auto)),
            dir / "nothing" + ": no dataset here: neither " + dir / "nothing" + ".manifest.json nor " + dir / "nothing" +
                ".idx exists");
}

TEST(ManifestCacheTest, DeclaredTokenizerMustMatchARecordedManifest) {
  TempDir dir;
  ByteTokenizer bytes;
  std::unique_ptr<DatasetWriter> writer = take(DatasetWriter::create(dir / "ours", ShardFormat::Megatron, bytes));
  ASSERT_FALSE(writer->addDocument({1, 2}));
  take(writer->finish());
  ManifestCache cache(dir / "cache");
  EXPECT_TRUE(take(cache.open(dir / "ours", &bytes, EodMode::Auto)));
  EXPECT_TRUE(take(cache.open(dir / "ours", nullptr, EodMode::Auto)));
  EXPECT_EQ(errorText(cache.open(dir / "ours", &bytes, EodMode::Present)),
            dir / "ours.manifest.json" + ": records eod append but the stream says eod = \"present\"");
  EXPECT_EQ(cache.misses(), 0u);
}

TEST(ManifestCacheTest, WrittenManifestOpensLikeAPreparedDataset) {
  TempDir dir;
  ByteTokenizer bytes;
  std::string prefix = dir / "pile";
  writePair(prefix, corpus(12, true));
  Manifest written = take(writeManifest(prefix, bytes, EodMode::Auto));
  EXPECT_TRUE(written.EodPresent);
  EXPECT_EQ(written.Metadata, "pile.meta");
  std::unique_ptr<Dataset> dataset = take(Dataset::open(prefix));
  EXPECT_FALSE(dataset->manifestDerived());
  EXPECT_FALSE(dataset->verifyChecksums());
  EXPECT_TRUE(dataset->manifest()->EodPresent);
  EXPECT_EQ(dataset->metadata()->numRows(), 12u);

  // A stream reads it without the cache, each document without its end-of-text.
  ManifestCache cache(dir / "cache");
  std::unique_ptr<RootStream> recorded = take(RootStream::open("r", {prefix}, 0.1, DataDeclaration{}, cache));
  EXPECT_EQ(recorded->length(0), corpus(12, false)[0].size());
  EXPECT_EQ(cache.misses(), 0u);
}

TEST(ManifestCacheTest, WritingAManifestNeverReplacesASidecar) {
  TempDir dir;
  ByteTokenizer bytes;
  std::string prefix = dir / "pile";
  writePair(prefix, corpus(3, true));
  // A sidecar with a metadata column, and no manifest (say, one removed to derive anew).
  MetadataBuilder sidecar;
  for (int d = 0; d < 3; ++d) {
    sidecar.addRow(d);
    ASSERT_FALSE(sidecar.setString("source", "web"));
  }
  FileDigest kept = take(sidecar.write(prefix + ".meta"));
  EXPECT_EQ(errorText(writeManifest(prefix, bytes, EodMode::Auto)),
            prefix + ".meta: the dataset already has a sidecar, which may hold metadata columns; move it aside to "
                     "derive a manifest");
  EXPECT_EQ(take(digestFile(prefix + ".meta")).Xxh3, kept.Xxh3) << "the sidecar is untouched";
  EXPECT_FALSE(llvm::sys::fs::exists(prefix + ".manifest.json"));

  ASSERT_FALSE(llvm::sys::fs::remove(prefix + ".meta"));
  take(writeManifest(prefix, bytes, EodMode::Auto));
  EXPECT_EQ(errorText(writeManifest(prefix, bytes, EodMode::Auto)),
            prefix + ".manifest.json: the dataset already has a manifest (its sidecar may hold metadata); remove it "
                     "to derive a new one");
}

TEST(ManifestCacheTest, AManifestOfDocumentHashesKeepsTheDerivedFingerprint) {
  TempDir dir;
  ByteTokenizer bytes;
  auto fingerprint = [&](const std::string &prefix, llvm::StringRef fromPlan = "") {
    DataSources sources(7, dir / "cache");
    RootSpec spec{"pile", {prefix}, 0.1, DataDeclaration{"bytes", EodMode::Auto}, fromPlan.str()};
    llvm::Expected<const RootStream *> root = sources.root(spec);
    return root ? (*root)->fingerprint() : llvm::toString(root.takeError());
  };
  // A run plans on a Megatron pair without a manifest; `mixtape data manifest` (which the
  // error for a missing tokenizer recommends) must not change the order it resumes in.
  std::string prefix = dir / "pile";
  writePair(prefix, corpus(20, true));
  std::string derived = fingerprint(prefix);
  take(writeManifest(prefix, bytes, EodMode::Auto));
  EXPECT_EQ(fingerprint(prefix, derived), derived);

  // Likewise a prepared dataset without columns; a metadata column is data and counts.
  auto prepared = [&](const std::string &prefix, bool column) {
    ASSERT_FALSE(llvm::sys::fs::create_directories(llvm::sys::path::parent_path(prefix)));
    std::unique_ptr<DatasetWriter> writer = take(DatasetWriter::create(prefix, ShardFormat::Megatron, bytes));
    for (const std::vector<uint32_t> &doc : corpus(20, false)) {
      ASSERT_FALSE(writer->addDocument(doc));
      if (column) {
        ASSERT_FALSE(writer->setString("source", "web"));
      }
    }
    take(writer->finish());
  };
  prepared(dir / "bare/pile", false);
  prepared(dir / "columns/pile", true);
  ASSERT_FALSE(llvm::sys::fs::create_directories(dir / "pair"));
  writePair(dir / "pair/pile", corpus(20, false));
  EXPECT_EQ(fingerprint(dir / "bare/pile"), fingerprint(dir / "pair/pile"));
  EXPECT_NE(fingerprint(dir / "columns/pile"), fingerprint(dir / "pair/pile"));
}

TEST(ManifestCacheTest, DataChangedSinceThePlanFailsToOpen) {
  TempDir dir;
  std::string prefix = dir / "pile";
  writePair(prefix, corpus(20, true));
  RootSpec spec{"pile", {prefix}, 0.1, DataDeclaration{"bytes", EodMode::Auto}};
  std::string planned = take(DataSources(7, dir / "cache").root(spec))->fingerprint();
  writePair(prefix, corpus(21, true));
  DataSources sources(7, dir / "cache");
  std::string now = take(sources.root(spec))->fingerprint();
  ASSERT_NE(now, planned);
  spec.Fingerprint = planned;
  EXPECT_EQ(errorText(sources.root(spec)), "stream 'pile': its data changed since the plan was made (plan "
                                           "fingerprint " + planned + ", data " + now + "); plan again");
  EXPECT_EQ(errorText(sources.view(spec, "pile.train", StreamSelection{})).rfind("stream 'pile': its data changed", 0),
            0u);
}

TEST(ManifestCacheTest, FolderOfPairsIsAStream) {
  TempDir dir;
  ASSERT_FALSE(llvm::sys::fs::create_directories(dir / "data"));
  writePair(dir / "data/a_text_document", corpus(3, false));
  writePair(dir / "data/b_text_document", corpus(4, false));
  std::vector<std::string> prefixes = *take(expandShards("data", dir.Path));
  EXPECT_EQ(prefixes, (std::vector<std::string>{dir / "data/a_text_document", dir / "data/b_text_document"}));

  // A stream as the plan gives it: its root's declarations, paths against the recipe's folder.
  auto declaredBy = [&](std::string tokenizer, plan::EodMode eod, plan::ShardFormat format) {
    plan::Plan p;
    p.RecipeDir = dir.Path;
    plan::Stream web;
    web.Root = "web";
    web.Shards = "data";
    web.Tokenizer = tokenizer;
    web.Eod = eod;
    web.Format = format;
    p.Streams["web"] = web;
    std::optional<NodeStream> s = take(nodeStream(p, "web"));
    EXPECT_TRUE(s);
    return s ? s->Root.Declared : DataDeclaration();
  };
  DataDeclaration declared = declaredBy("hf:tok/tokenizer.json", EodMode::Present, plan::ShardFormat::Auto);
  EXPECT_EQ(declared.Tokenizer, "hf:" + dir / "tok/tokenizer.json");
  EXPECT_EQ(declared.Eod, EodMode::Present);
  EXPECT_EQ(declaredBy("bytes", EodMode::Append, plan::ShardFormat::Auto).Tokenizer, "bytes");
  EXPECT_EQ(declaredBy("hf:/abs/t.json", EodMode::Auto, plan::ShardFormat::Auto).Tokenizer, "hf:/abs/t.json");

  DataSources sources(7, dir / "cache");
  RootSpec spec{"two", prefixes, 0, DataDeclaration{"bytes", EodMode::Auto}};
  const RootStream *root = take(sources.root(spec));
  ASSERT_TRUE(root);
  EXPECT_EQ(root->numDocuments(), 7u);
  EXPECT_EQ(root->tokenizer(), "bytes-v1");
  EXPECT_EQ(sources.manifests().misses(), 2u);
  EXPECT_EQ(entries(dir / "cache/manifests", ".json").size(), 2u);

  // `format` states what the datasets are: megatron passes, flat names the first dataset.
  EXPECT_FALSE(declaredBy("bytes", EodMode::Auto, plan::ShardFormat::Auto).Format);
  EXPECT_EQ(declaredBy("bytes", EodMode::Auto, plan::ShardFormat::Megatron).Format, ShardFormat::Megatron);
  RootSpec megatron{"megatron", prefixes, 0, declaredBy("bytes", EodMode::Auto, plan::ShardFormat::Megatron)};
  EXPECT_EQ(take(sources.root(megatron))->numDocuments(), 7u);
  RootSpec flat{"flat", prefixes, 0, declaredBy("bytes", EodMode::Auto, plan::ShardFormat::Flat)};
  // Megatron data without a sidecar has no columns for a filter to read.
  plan::Predicate quality;
  quality.addCompare(plan::Predicate::Op::Ge, "quality", 4.0);
  EXPECT_EQ(errorText(sources.view(spec, "hq", StreamSelection{{quality}, std::nullopt})),
            "stream 'hq': the filter '(quality >= 4)' reads column 'quality', which no dataset of stream 'two' has "
            "(its data has no metadata columns: Megatron data without a sidecar has none; docs/data-format.md)");
  std::string error = errorText(sources.root(flat));
  EXPECT_EQ(error.rfind(prefixes[0] + ": stream 'flat' says format = \"flat\", but this dataset is megatron", 0), 0u)
      << error;
}

TEST(ManifestCacheTest, DefaultCacheFolder) {
  std::string saved[3];
  const char *names[] = {"MIXTAPE_CACHE_DIR", "XDG_CACHE_HOME", "HOME"};
  for (int i = 0; i < 3; ++i)
    if (const char *v = getenv(names[i]))
      saved[i] = v;
  setenv("MIXTAPE_CACHE_DIR", "/m", 1);
  setenv("XDG_CACHE_HOME", "/x", 1);
  setenv("HOME", "/h", 1);
  EXPECT_EQ(defaultManifestCacheDir("/run/cache"), "/m/manifests");
  unsetenv("MIXTAPE_CACHE_DIR");
  EXPECT_EQ(defaultManifestCacheDir("/run/cache"), "/x/mixtape/manifests");
  unsetenv("XDG_CACHE_HOME");
  EXPECT_EQ(defaultManifestCacheDir("/run/cache"), "/h/.cache/mixtape/manifests");
  unsetenv("HOME");
  EXPECT_EQ(defaultManifestCacheDir("/run/cache"), "/run/cache/manifests");
  for (int i = 0; i < 3; ++i)
    if (saved[i].empty())
      unsetenv(names[i]);
    else
      setenv(names[i], saved[i].c_str(), 1);
}
