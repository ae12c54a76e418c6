//===- Stream.cpp ---------------------------------------------------------===//
#include "mixtape/data/Stream.h"

#include "mixtape/data/Synth.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/Suggest.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/bit.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/FileSystem.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

using namespace mixtape;
using namespace mixtape::data;
namespace fs = llvm::sys::fs;

bool mixtape::data::isHeldOut(uint64_t documentHash, double val) {
  if (!(val > 0))
    return false;
  if (val >= 1)
    return true;
  // val * 2^64 < 2^64 converts exactly (truncating) to uint64.
  return splitmix64(documentHash) < static_cast<uint64_t>(std::ldexp(val, 64));
}

/// The fingerprint text's lines, sorted.
static std::string fingerprintOf(std::vector<std::string> lines) {
  llvm::sort(lines);
  std::string text = llvm::join(lines, "");
  return formatChecksum(XXH3_64bits(text.data(), text.size()));
}

static std::string fileLine(const FileDigest &f) { return f.Name + "\t" + formatChecksum(f.Xxh3) + "\n"; }

std::string mixtape::data::streamFingerprint(llvm::ArrayRef<FileDigest> files) {
  std::vector<std::string> lines;
  for (const FileDigest &f : files)
    lines.push_back(fileLine(f));
  return fingerprintOf(std::move(lines));
}

std::string mixtape::data::streamFingerprint(llvm::ArrayRef<std::unique_ptr<Dataset>> datasets) {
  std::vector<std::string> lines;
  for (const std::unique_ptr<Dataset> &dataset : datasets) {
    const Manifest &m = *dataset->manifest();
    // A sidecar without columns holds only document hashes, a function of the token files
    // already listed: without it, `mixtape data manifest` keeps the derived fingerprint.
    const MetadataTable *meta = dataset->metadata();
    bool hashesOnly = !m.Metadata.empty() && meta && meta->numColumns() == 0;
    for (const FileDigest &f : m.Files)
      if (!(hashesOnly && f.Name == m.Metadata))
        lines.push_back(fileLine(f));
    if (m.EodPresent)
      lines.push_back(m.Files.front().Name + "\teod-present\n");
  }
  return fingerprintOf(std::move(lines));
}

uint64_t mixtape::data::epochSeed(uint64_t recipeSeed, uint64_t fingerprintSeed, uint64_t epoch) {
  return mixSeed(mixSeed(recipeSeed, fingerprintSeed), epoch);
}

uint64_t mixtape::data::valSeed(uint64_t recipeSeed, uint64_t fingerprintSeed) {
  return mixSeed(mixSeed(recipeSeed, fingerprintSeed), XXH3_64bits("val", 3));
}

uint64_t mixtape::data::trainEvalSeed(uint64_t recipeSeed, uint64_t fingerprintSeed) {
  return mixSeed(mixSeed(recipeSeed, fingerprintSeed), XXH3_64bits("train-eval", 10));
}

//===----------------------------------------------------------------------===//
// The embedded corpus
//===----------------------------------------------------------------------===//

llvm::Expected<std::string> mixtape::data::resolveSynth(llvm::StringRef domain, uint64_t seed,
                                                        llvm::StringRef cacheDir, llvm::StringRef tokenizer) {
  if (!llvm::is_contained(synthDomains(), domain))
    return fileError("synth:" + domain, "unknown domain; the embedded corpus has " +
                                            llvm::join(synthDomains(), ", "));
  std::string dir = joinPath(cacheDir, "synth-v" + std::to_string(kSynthVersion) + "-" + std::to_string(seed));
  std::unique_ptr<Tokenizer> tokens;
  if (!tokenizer.empty() && tokenizer != "bytes") {
    llvm::Expected<std::unique_ptr<Tokenizer>> made = createTokenizer(tokenizer);
    if (!made)
      return fileError("synth:" + domain, "tokenizer '" + tokenizer + "': " + llvm::toString(made.takeError()));
    tokens = std::move(*made);
    std::string id = tokens->id().str();
    std::replace(id.begin(), id.end(), ':', '-');
    dir += "-" + id;
  }
  std::string prefix = joinPath(dir, domain);
  if (fs::exists(prefix + ".manifest.json"))
    return prefix;

  if (std::error_code ec = fs::create_directories(dir))
    return fileError(dir, "cannot create the directory: " + ec.message());
  // A private directory per writer; the finished files are renamed into place, the
  // manifest last, so a reader never sees a manifest without its files. Writers racing
  // produce identical bytes, so whichever rename wins is right.
  llvm::SmallString<256> work;
  if (std::error_code ec = fs::createUniqueDirectory(joinPath(dir, ".tmp-" + domain.str()), work))
    return fileError(dir, "cannot create a temporary directory: " + ec.message());
  auto cleanup = llvm::make_scope_exit([&] { fs::remove_directories(work); });
  SynthOptions options;
  options.Seed = seed;
  options.Domains = {domain.str()};
  options.Tokens = tokens.get();
  if (llvm::Expected<std::vector<Manifest>> written = synthesizeCorpus(work, options); !written)
    return written.takeError();
  for (const char *suffix : {".bin", ".idx", ".meta", ".manifest.json"}) {
    std::string from = joinPath(work, (domain + suffix).str()), to = prefix + suffix;
    if (std::error_code ec = fs::rename(from, to))
      return fileError(to, "cannot rename " + from + " into place: " + ec.message());
  }
  return prefix;
}

//===----------------------------------------------------------------------===//
// Root streams
//===----------------------------------------------------------------------===//

/// `span` without its last token.
static TokenSpan withoutLast(const TokenSpan &span) {
  return TokenSpan(span.bytes().data(), span.size() - 1, span.dtype(), span.byteOffset());
}

llvm::Expected<std::unique_ptr<RootStream>> RootStream::open(llvm::StringRef name,
                                                             llvm::ArrayRef<std::string> prefixes,
                                                             double val, const DataDeclaration &declared,
                                                             ManifestCache &manifestCache) {
  std::unique_ptr<RootStream> root(new RootStream());
  root->Name = name.str();
  root->Val = val;
  if (prefixes.empty())
    return fileError("stream '" + name + "'", "no datasets");
  std::unique_ptr<Tokenizer> tokenizer;
  if (!declared.Tokenizer.empty()) {
    llvm::Expected<std::unique_ptr<Tokenizer>> made = createTokenizer(declared.Tokenizer);
    if (!made)
      return fileError("stream '" + name + "'", "tokenizer '" + declared.Tokenizer + "': " +
                                                    llvm::toString(made.takeError()));
    tokenizer = std::move(*made);
  }
  root->DatasetBegin.push_back(0);
  for (const std::string &prefix : prefixes) {
    llvm::Expected<std::unique_ptr<Dataset>> dataset = manifestCache.open(prefix, tokenizer.get(), declared.Eod);
    if (!dataset)
      return dataset.takeError();
    if (declared.Format && (*dataset)->format() != *declared.Format)
      return fileError(prefix, "stream '" + name + "' says format = \"" + shardFormatName(*declared.Format) +
                                   "\", but this dataset is " + shardFormatName((*dataset)->format()) +
                                   ((*dataset)->manifestPath().empty()
                                        ? llvm::Twine("")
                                        : " (" + (*dataset)->manifestPath() + ")"));
    const Manifest *m = (*dataset)->manifest();
    if (root->Datasets.empty()) {
      root->TokenizerId = m->Tokenizer;
      root->VocabSize = m->VocabSize;
      root->Eot = m->Eot;
    } else if (m->Tokenizer != root->TokenizerId || m->Eot != root->Eot) {
      return fileError((*dataset)->manifestPath(),
                       "tokenizer " + m->Tokenizer + " (eot " + llvm::Twine(m->Eot) + ") but " +
                           prefixes.front() + " has " + root->TokenizerId + " (eot " + llvm::Twine(root->Eot) +
                           "): a stream's datasets must share a tokenizer");
    }
    const TokenShard &tokens = (*dataset)->tokens();
    const MetadataTable *meta = (*dataset)->metadata();
    for (uint64_t d = 0, n = tokens.numDocuments(); d < n; ++d) {
      if (meta) {
        root->Hashes.push_back(meta->documentHash(d));
        continue;
      }
      // Hashing reads every token anyway: check the end-of-text the manifest promises (Dataset::open
      // has checked that no such document is empty).
      TokenSpan doc = tokens.document(d);
      if (m->EodPresent && doc[doc.size() - 1] != m->Eot)
        return fileError(tokens.path(), doc.byteOffset() + doc.bytes().size(),
                         "document " + llvm::Twine(d) + " does not end with the end-of-text id " + llvm::Twine(m->Eot) +
                             " (" + (*dataset)->manifestPath() + " records eod present)");
      root->Hashes.push_back(mixtape::data::documentHash(m->EodPresent ? withoutLast(doc) : doc));
    }
    root->EodPresent.push_back(m->EodPresent);
    root->DatasetBegin.push_back(root->Hashes.size());
    root->Datasets.push_back(std::move(*dataset));
  }
  if (root->Hashes.size() >= (uint64_t(1) << 32))
    return fileError("stream '" + name + "'", "more than 2^32 documents");
  root->Fingerprint = streamFingerprint(root->Datasets);
  root->FingerprintSeed = XXH3_64bits(root->Fingerprint.data(), root->Fingerprint.size());
  root->HeldOut.resize(root->Hashes.size());
  for (uint32_t d = 0; d < root->Hashes.size(); ++d) {
    bool held = isHeldOut(root->Hashes[d], val);
    root->HeldOut[d] = held;
    (held ? root->HeldOutDocs : root->Train).push_back(d);
  }
  return root;
}

std::pair<size_t, uint64_t> RootStream::locate(uint32_t doc) const {
  size_t k = std::upper_bound(DatasetBegin.begin(), DatasetBegin.end(), uint64_t(doc)) - DatasetBegin.begin() - 1;
  return {k, doc - DatasetBegin[k]};
}

std::vector<std::string> RootStream::columns() const {
  std::set<std::string> names;
  for (const std::unique_ptr<Dataset> &dataset : Datasets)
    if (const MetadataTable *table = dataset->metadata())
      for (size_t c = 0; c < table->numColumns(); ++c)
        names.insert(table->columnName(c).str());
  return {names.begin(), names.end()};
}

TokenSpan RootStream::tokens(uint32_t doc) const {
  auto [k, local] = locate(doc);
  TokenSpan span = Datasets[k]->tokens().document(local);
  return EodPresent[k] ? withoutLast(span) : span;
}

//===----------------------------------------------------------------------===//
// Selections
//===----------------------------------------------------------------------===//

namespace {
plan::MetadataValue valueOf(const MetadataTable *table, std::optional<size_t> column, uint64_t row) {
  if (!table || !column)
    return plan::MetadataValue::missing();
  if (table->columnKind(*column) == ColumnKind::Number) {
    float v = table->number(*column, row);
    return std::isnan(v) ? plan::MetadataValue::missing() : plan::MetadataValue::ofNumber(v);
  }
  llvm::StringRef s = table->string(*column, row);
  return s.empty() ? plan::MetadataValue::missing() : plan::MetadataValue::ofString(s);
}
} // namespace

llvm::Expected<std::unique_ptr<StreamView>> StreamView::create(llvm::StringRef name, const RootStream &root,
                                                                const StreamSelection &selection,
                                                                uint64_t seed) {
  std::unique_ptr<StreamView> view(new StreamView(name.str(), root, seed));
  const std::vector<std::string> known = selection.Where.empty() ? std::vector<std::string>() : root.columns();
  for (const plan::Predicate &filter : selection.Where) {
    // A column that no dataset has is a typo or a missing sidecar, never a filter that means
    // "every value missing".
    for (const std::string &column : filter.columnNames()) {
      bool stored = std::binary_search(known.begin(), known.end(), column);
      if (column == plan::kLengthColumn && stored)
        return fileError("stream '" + name + "'",
                         "the filter '" + filter.canonical() + "' reads '" + column +
                             "', which is built in (tokens per document), but a dataset of stream '" +
                             root.name() + "' has a metadata column of that name too: rename that column");
      if (stored || column == plan::kLengthColumn)
        continue;
      std::optional<std::string> closest = closestMatch(column, known);
      return fileError("stream '" + name + "'",
                       "the filter '" + filter.canonical() + "' reads column '" + column +
                           "', which no dataset of stream '" + root.name() + "' has" +
                           (closest ? "; did you mean '" + *closest + "'?" : "") +
                           (known.empty() ? " (its data has no metadata columns: Megatron data without a "
                                            "sidecar has none; docs/data-format.md)"
                                          : " (its columns: " + llvm::join(known, ", ") + ")"));
    }
    view->Selection += (view->Selection.empty() ? "" : " and ") + filter.canonical();
  }
  if (selection.Unit)
    view->Selection += (view->Selection.empty() ? "" : " and ") +
                       (selection.Unit->Units ? "unit " + std::to_string(selection.Unit->Index) + " of " +
                                                    std::to_string(selection.Unit->Units)
                                              : selection.Unit->By + " == '" + selection.Unit->Value.label() + "'");

  if (!selection.Where.empty() || selection.Unit) {
    view->Keep.assign(root.numDocuments(), true);
    std::vector<plan::MetadataValue> row;
    for (size_t k = 0; k < root.datasets().size(); ++k) {
      const Dataset &dataset = *root.datasets()[k];
      const MetadataTable *table = dataset.metadata();
      auto column = [&](llvm::StringRef c) { return table ? table->findColumn(c) : std::nullopt; };
      // Per filter column: its index in the dataset's table, or nullopt for a missing one.
      std::vector<std::vector<std::optional<size_t>>> columns;
      std::vector<std::vector<bool>> isLength; // the built-in column, read from the tokens
      for (const plan::Predicate &filter : selection.Where) {
        columns.emplace_back();
        isLength.emplace_back();
        for (const std::string &c : filter.columnNames()) {
          columns.back().push_back(column(c));
          isLength.back().push_back(c == plan::kLengthColumn);
        }
      }
      // A dataset without the column holds no value of it: its documents are the missing unit's.
      std::optional<size_t> byColumn = selection.Unit ? column(selection.Unit->By) : std::nullopt;
      uint64_t first = root.firstDocument(k);
      for (uint64_t d = 0, n = dataset.tokens().numDocuments(); d < n; ++d) {
        bool keep = true;
        for (size_t f = 0; keep && f < selection.Where.size(); ++f) {
          row.clear();
          for (size_t c = 0; c < columns[f].size(); ++c)
            row.push_back(isLength[f][c] ? plan::MetadataValue::ofNumber(static_cast<double>(root.length(first + d)))
                                         : valueOf(table, columns[f][c], d));
          keep = selection.Where[f].eval(row);
        }
        if (keep && selection.Unit) {
          const AblationUnit &unit = *selection.Unit;
          keep = unit.Units ? splitmix64(root.documentHash(first + d) ^ seed) % unit.Units == unit.Index
                            : unit.Value.matches(valueOf(table, byColumn, d));
        }
        view->Keep[first + d] = keep;
      }
    }
  }

  if (selection.Control)
    if (llvm::Error err = view->setPrefixes(*selection.Control))
      return err;

  for (uint32_t d : root.trainDocuments())
    if (view->selected(d)) {
      ++view->TrainDocs;
      view->TrainTokens += view->documentTokens(d);
    }
  for (uint32_t d : root.valDocuments())
    if (view->selected(d)) {
      ++view->ValDocs;
      view->ValTokens += view->documentTokens(d);
    }
  return view;
}

llvm::Error StreamView::setPrefixes(const plan::ControlTokens &control) {
  auto fail = [&](const llvm::Twine &message) { return fileError("stream '" + Name + "'", message); };
  for (const std::optional<plan::ControlToken> &token : {control.Good, control.Bad})
    if (token && Root.vocabSize() && token->Id >= Root.vocabSize())
      return fail("control token '" + token->Text + "' is id " + llvm::Twine(token->Id) +
                  ", beyond the vocabulary of " + llvm::Twine(Root.vocabSize()) + " of tokenizer '" +
                  Root.tokenizer() + "'");
  if (!control.Column) {
    const plan::ControlToken &every = control.Good ? *control.Good : *control.Bad;
    Prefixes.assign(Root.numDocuments(), static_cast<uint32_t>(every.Id));
    return llvm::Error::success();
  }
  if (!control.Good || !control.Bad || !control.Above)
    return fail("control_tokens by column '" + *control.Column + "' needs above, good and bad");
  const std::vector<std::string> known = Root.columns();
  if (!std::binary_search(known.begin(), known.end(), *control.Column)) {
    std::optional<std::string> closest = closestMatch(*control.Column, known);
    return fail("control_tokens reads column '" + *control.Column + "', which no dataset of stream '" +
                Root.name() + "' has" + (closest ? "; did you mean '" + *closest + "'?" : "") +
                (known.empty() ? " (its data has no metadata columns)" : " (its columns: " + llvm::join(known, ", ") + ")"));
  }
  // Good where the filter `column > above` would hold; a document without a number gets no prefix.
  Prefixes.assign(Root.numDocuments(), kNoPrefix);
  for (size_t k = 0; k < Root.datasets().size(); ++k) {
    const MetadataTable *table = Root.datasets()[k]->metadata();
    std::optional<size_t> column = table ? table->findColumn(*control.Column) : std::nullopt;
    uint64_t first = Root.firstDocument(k);
    for (uint64_t d = 0, n = Root.datasets()[k]->tokens().numDocuments(); d < n; ++d) {
      plan::MetadataValue value = valueOf(table, column, d);
      if (value.ValueKind == plan::MetadataValue::Kind::Number)
        Prefixes[first + d] = static_cast<uint32_t>(value.Number > *control.Above ? control.Good->Id : control.Bad->Id);
    }
  }
  return llvm::Error::success();
}

llvm::Error StreamView::noDocuments() const {
  return fileError("stream '" + Name + "'",
                   Selection.empty() ? llvm::Twine("no training documents")
                                     : "no training document of " + llvm::Twine(Root.trainDocuments().size()) +
                                           " passes the filter: " + Selection);
}

DocumentOrder StreamView::order(const std::vector<uint32_t> &documents, uint64_t shuffleSeed) const {
  std::vector<uint32_t> permuted = documents;
  SplitMix64 rng(shuffleSeed);
  for (size_t i = permuted.size(); i > 1; --i)
    std::swap(permuted[i - 1], permuted[rng.below(i)]);
  DocumentOrder out;
  if (!Keep.empty())
    llvm::erase_if(permuted, [&](uint32_t d) { return !Keep[d]; });
  out.Documents = std::move(permuted);
  out.Ends.reserve(out.Documents.size());
  uint64_t total = 0;
  for (uint32_t d : out.Documents)
    out.Ends.push_back(total += documentTokens(d));
  return out;
}

DocumentOrder StreamView::epoch(uint64_t e) const {
  return order(Root.trainDocuments(), epochSeed(Seed, Root.fingerprintSeed(), e));
}

DocumentOrder StreamView::valOrder() const {
  return order(Root.valDocuments(), valSeed(Seed, Root.fingerprintSeed()));
}

DocumentOrder StreamView::evalOrder(plan::SplitKind split) const {
  if (split == plan::SplitKind::Val)
    return valOrder();
  return order(Root.trainDocuments(), trainEvalSeed(Seed, Root.fingerprintSeed()));
}

std::vector<plan::ColumnGroup> StreamView::groupBy(llvm::StringRef column) const {
  std::map<plan::ColumnValue, plan::ColumnGroup> groups;
  std::vector<std::optional<size_t>> columns; // per dataset
  bool found = false;
  for (const std::unique_ptr<Dataset> &dataset : Root.datasets()) {
    const MetadataTable *table = dataset->metadata();
    columns.push_back(table ? table->findColumn(column) : std::nullopt);
    found |= columns.back().has_value();
  }
  if (!found)
    return {};
  auto valueOfDocument = [&](uint32_t doc) {
    auto [k, local] = Root.locate(doc);
    return plan::ColumnValue::of(valueOf(Root.datasets()[k]->metadata(), columns[k], local));
  };
  for (uint32_t d : Root.trainDocuments())
    if (selected(d)) {
      plan::ColumnGroup &g = groups[valueOfDocument(d)];
      ++g.TrainDocuments;
      g.TrainTokens += documentTokens(d);
    }
  // Held-out documents count towards the units that training defines, and make none.
  for (uint32_t d : Root.valDocuments())
    if (selected(d))
      if (auto it = groups.find(valueOfDocument(d)); it != groups.end()) {
        ++it->second.ValDocuments;
        it->second.ValTokens += documentTokens(d);
      }
  std::vector<plan::ColumnGroup> out;
  for (auto &[value, group] : groups) {
    group.Value = value;
    out.push_back(std::move(group));
  }
  return out;
}

//===----------------------------------------------------------------------===//
// Shared sources
//===----------------------------------------------------------------------===//

DataSources::~DataSources() = default;

void DataSources::verifyData(VerifyOptions options) {
  std::lock_guard<std::recursive_mutex> guard(Lock);
  Verifier = std::make_unique<DataVerifier>(std::move(options), Notes);
}

static std::string rootKey(const RootSpec &spec) {
  return llvm::join(spec.Shards, "\x1f") + "\x1e" + llvm::utohexstr(llvm::bit_cast<uint64_t>(spec.Val)) + "\x1e" +
         spec.Declared.Tokenizer + "\x1e" + plan::enumName(spec.Declared.Eod).str() + "\x1e" +
         (spec.Declared.Format ? shardFormatName(*spec.Declared.Format) : "auto").str();
}

llvm::Expected<const RootStream *> DataSources::root(const RootSpec &spec) {
  std::lock_guard<std::recursive_mutex> guard(Lock);
  llvm::Expected<const RootStream *> root = open(spec);
  // The epoch order and the split are seeded by the fingerprint: other data, another order.
  if (root && !spec.Fingerprint.empty() && (*root)->fingerprint() != spec.Fingerprint)
    return fileError("stream '" + spec.Name + "'", "its data changed since the plan was made (plan fingerprint " +
                                                       spec.Fingerprint + ", data " + (*root)->fingerprint() +
                                                       "); plan again");
  return root;
}

llvm::Expected<const RootStream *> DataSources::open(const RootSpec &spec) {
  std::string key = rootKey(spec);
  if (auto it = Roots.find(key); it != Roots.end())
    return it->second.get();
  std::vector<std::string> prefixes;
  for (const std::string &shard : spec.Shards) {
    if (llvm::StringRef(shard).startswith("synth:")) {
      llvm::Expected<std::string> prefix = resolveSynth(llvm::StringRef(shard).drop_front(6), Seed, CacheDir,
                                                               spec.Declared.Tokenizer);
      if (!prefix)
        return prefix.takeError();
      prefixes.push_back(std::move(*prefix));
    } else {
      prefixes.push_back(shard);
    }
  }
  llvm::Expected<std::unique_ptr<RootStream>> opened = RootStream::open(spec.Name, prefixes, spec.Val, spec.Declared, Manifests);
  if (!opened)
    return opened.takeError();
  if (Verifier)
    if (llvm::Error err = Verifier->verify((*opened)->datasets()))
      return prefixError("stream '" + spec.Name + "'", std::move(err));
  return (Roots[key] = std::move(*opened)).get();
}

llvm::Expected<const StreamView *> DataSources::view(const RootSpec &rootSpec, llvm::StringRef name,
                                                     const StreamSelection &selection) {
  std::lock_guard<std::recursive_mutex> guard(Lock);
  llvm::Expected<const RootStream *> root = this->root(rootSpec);
  if (!root)
    return root.takeError();
  std::string key = rootKey(rootSpec) + "\x1d";
  for (const plan::Predicate &filter : selection.Where)
    key += filter.canonical() + "\x1f";
  if (selection.Unit)
    key += "\x1d" + std::to_string(selection.Unit->Units) + "/" + std::to_string(selection.Unit->Index) + "/" +
           selection.Unit->By + "=" + std::to_string(static_cast<int>(selection.Unit->Value.ValueKind)) + ":" +
           llvm::utohexstr(llvm::bit_cast<uint64_t>(selection.Unit->Value.Number)) + ":" +
           selection.Unit->Value.String;
  if (const std::optional<plan::ControlTokens> &control = selection.Control) {
    auto id = [](const std::optional<plan::ControlToken> &t) { return t ? std::to_string(t->Id) : "-"; };
    key += "\x1d" + control->Column.value_or("") + ">" +
           llvm::utohexstr(llvm::bit_cast<uint64_t>(control->Above.value_or(0))) + "?" + id(control->Good) + ":" +
           id(control->Bad);
  }
  if (auto it = Views.find(key); it != Views.end())
    return it->second.get();
  llvm::Expected<std::unique_ptr<StreamView>> view = StreamView::create(name, **root, selection, Seed);
  if (!view)
    return view.takeError();
  return (Views[key] = std::move(*view)).get();
}

//===----------------------------------------------------------------------===//
// Reading tokens
//===----------------------------------------------------------------------===//

template <typename T>
__attribute__((always_inline)) inline static void convert(const uint8_t *data, uint64_t count, uint32_t *out) {
  const T *in = reinterpret_cast<const T *>(data);
  uint64_t i = 0;
  // Blocks of a fixed size vectorize at -O2 (GCC's cheap cost model rejects a loop that
  // needs a remainder); this is the hot loop of every training sample.
  for (; i + 32 <= count; i += 32)
    for (unsigned j = 0; j < 32; ++j)
      out[i + j] = static_cast<uint32_t>(in[i + j]);
  for (; i < count; ++i)
    out[i] = static_cast<uint32_t>(in[i]);
}

// uint16 is what most token files hold (vocabularies below 65536): widen it with AVX2
// where the CPU has it, chosen once at load time.
__attribute__((target_clones("avx2", "default"))) static void widenUInt16(const uint8_t *data, uint64_t count,
                                                                           uint32_t *out) {
  convert<uint16_t>(data, count, out);
}

void mixtape::data::copyTokens(const TokenSpan &span, uint64_t from, uint64_t count, uint32_t *out) {
  const uint8_t *p = span.bytes().data() + from * dtypeSize(span.dtype());
  switch (span.dtype()) {
  case DType::UInt16: return widenUInt16(p, count, out);
  case DType::UInt8: return convert<uint8_t>(p, count, out);
  case DType::Int8: return convert<int8_t>(p, count, out);
  case DType::Int16: return convert<int16_t>(p, count, out);
  case DType::Int32: std::memcpy(out, p, count * 4); return;
  case DType::Int64: return convert<int64_t>(p, count, out);
  case DType::Float32:
  case DType::Float64: break;
  }
  llvm_unreachable("shards reject float dtypes when they open");
}
