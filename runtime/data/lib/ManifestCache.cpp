//===- ManifestCache.cpp --------------------------------------------------===//
#include "mixtape/data/ManifestCache.h"

#include "AtomicFile.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/data/FlatShard.h"
#include "mixtape/data/IndexedDataset.h"
#include "mixtape/data/Stream.h"
#include "mixtape/support/JSON.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/raw_ostream.h"

#include <xxhash.h>

#include <chrono>

using namespace mixtape;
using namespace mixtape::data;
namespace fs = llvm::sys::fs;
namespace json = llvm::json;

/// Version of the cache entry layout; entries of another version are recomputed.
static constexpr int64_t kEntryVersion = 1;

//===----------------------------------------------------------------------===//
// Deriving a manifest
//===----------------------------------------------------------------------===//

llvm::Expected<DerivedManifest> mixtape::data::deriveManifest(llvm::StringRef prefix, const Tokenizer &tokenizer,
                                                              EodMode eod) {
  DerivedManifest out;
  Manifest &m = out.Manifest;
  m.Tokenizer = tokenizer.id().str();
  m.VocabSize = tokenizer.vocabSize();
  m.Eot = tokenizer.eot();
  std::unique_ptr<TokenShard> shard;
  std::string idx = (prefix + ".idx").str(), bin = (prefix + ".bin").str();
  if (fs::exists(idx)) {
    llvm::Expected<std::unique_ptr<IndexedDataset>> opened = IndexedDataset::open(prefix);
    if (!opened)
      return opened.takeError();
    shard = std::move(*opened);
  } else if (fs::exists(bin)) {
    m.Format = ShardFormat::Flat;
    if (eod == EodMode::Present)
      return fileError(bin, "eod = \"present\" is for Megatron datasets; a flat .bin separates its documents "
                            "with the end-of-text token, so none ends with it");
    llvm::Expected<std::unique_ptr<FlatShard>> opened = FlatShard::open(bin, m.Eot);
    if (!opened)
      return opened.takeError();
    shard = std::move(*opened);
  } else {
    return fileError(prefix, "no dataset here: neither " + idx + " nor " + bin + " exists");
  }
  m.Dtype = shard->dtype();
  if (dtypeTokenCapacity(m.Dtype) < m.VocabSize) {
    std::string what = "dtype " + dtypeName(m.Dtype).str() + " holds ids below " +
                       std::to_string(dtypeTokenCapacity(m.Dtype)) + " but tokenizer " + m.Tokenizer + " has " +
                       std::to_string(m.VocabSize) + ": these tokens were not made by it";
    return m.Format == ShardFormat::Megatron ? fileError(idx, 17, what) : fileError(bin, what);
  }

  // One pass over the tokens: range, document hashes, the end-of-text at each end, and (for
  // Megatron, whose documents cover the .bin contiguously from byte 0) the .bin's XXH3.
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> binHash(XXH3_createState(), XXH3_freeState);
  XXH3_64bits_reset(binHash.get());
  uint64_t documents = shard->numDocuments(), ending = 0;
  std::vector<uint64_t> full, stripped;
  full.reserve(eod == EodMode::Present ? 0 : documents);
  stripped.reserve(eod == EodMode::Append ? 0 : documents);
  std::vector<uint32_t> ids;
  for (uint64_t d = 0; d < documents; ++d) {
    if (llvm::Error err = shard->checkTokenRange(m.VocabSize, d))
      return fileError(llvm::toString(std::move(err)),
                       "is the stream's tokenizer (" + m.Tokenizer + ") the one that made these tokens?");
    TokenSpan span = shard->document(d);
    m.Tokens += span.size();
    if (m.Format == ShardFormat::Megatron) {
      XXH3_64bits_update(binHash.get(), span.bytes().data(), span.bytes().size());
    }
    ids.resize(span.size());
    copyTokens(span, 0, span.size(), ids.data());
    bool ends = !ids.empty() && ids.back() == m.Eot;
    ending += ends;
    if (eod == EodMode::Present && !ends)
      return fileError(shard->path(), span.byteOffset() + span.bytes().size(),
                       "document " + llvm::Twine(d) + " does not end with the end-of-text id " +
                           llvm::Twine(m.Eot) + " (the stream says eod = \"present\")");
    if (eod != EodMode::Present)
      full.push_back(documentHash(ids));
    if (eod != EodMode::Append)
      stripped.push_back(ends ? documentHash(llvm::ArrayRef<uint32_t>(ids).drop_back()) : 0);
  }
  m.Documents = documents;
  m.EodPresent = m.Format == ShardFormat::Megatron &&
                 (eod == EodMode::Present || (eod == EodMode::Auto && documents > 0 && ending == documents));
  for (uint64_t h : m.EodPresent ? stripped : full)
    out.Hashes.addRow(h);

  if (m.Format == ShardFormat::Megatron) {
    uint64_t binBytes = 0;
    if (std::error_code ec = fs::file_size(bin, binBytes))
      return fileError(bin, "cannot read its size: " + ec.message());
    m.Files.push_back({llvm::sys::path::filename(bin).str(), binBytes, XXH3_64bits_digest(binHash.get())});
    llvm::Expected<FileDigest> index = digestFile(idx);
    if (!index)
      return index.takeError();
    m.Files.push_back(std::move(*index));
  } else {
    llvm::Expected<FileDigest> flat = digestFile(bin);
    if (!flat)
      return flat.takeError();
    m.Files.push_back(std::move(*flat));
  }
  return out;
}

llvm::Expected<Manifest> mixtape::data::writeManifest(llvm::StringRef prefix, const Tokenizer &tokenizer,
                                                      EodMode eod) {
  // Checked before the scan, which can read many gigabytes.
  if (std::string manifest = (prefix + ".manifest.json").str(); fs::exists(manifest))
    return fileError(manifest, "the dataset already has a manifest (its sidecar may hold metadata); remove it "
                               "to derive a new one");
  if (std::string sidecar = (prefix + ".meta").str(); fs::exists(sidecar))
    return fileError(sidecar, "the dataset already has a sidecar, which may hold metadata columns; move it "
                              "aside to derive a manifest");
  llvm::Expected<DerivedManifest> derived = deriveManifest(prefix, tokenizer, eod);
  if (!derived)
    return derived.takeError();
  return commitManifest(prefix, std::move(derived->Manifest), derived->Hashes);
}

//===----------------------------------------------------------------------===//
// The cache
//===----------------------------------------------------------------------===//

std::string mixtape::data::defaultManifestCacheDir(llvm::StringRef runCacheDir) {
  llvm::SmallString<256> dir;
  if (llvm::Optional<std::string> own = llvm::sys::Process::GetEnv("MIXTAPE_CACHE_DIR"); own && !own->empty())
    dir = *own;
  else if (llvm::Optional<std::string> xdg = llvm::sys::Process::GetEnv("XDG_CACHE_HOME"); xdg && !xdg->empty())
    llvm::sys::path::append(dir, *xdg, "mixtape");
  else if (llvm::Optional<std::string> home = llvm::sys::Process::GetEnv("HOME"); home && !home->empty())
    llvm::sys::path::append(dir, *home, ".cache", "mixtape");
  else
    dir = runCacheDir;
  llvm::sys::path::append(dir, "manifests");
  return std::string(dir);
}

/// Absolute path, size and modification time (ns) of each token file: what an entry is
/// valid for.
static llvm::Expected<json::Value> stampFiles(llvm::StringRef absolutePrefix) {
  json::Array stamps;
  for (const char *suffix : {".bin", ".idx"}) {
    std::string path = (absolutePrefix + suffix).str();
    fs::file_status status;
    if (std::error_code ec = fs::status(path, status)) {
      if (ec == std::errc::no_such_file_or_directory)
        continue;
      return fileError(path, "cannot read its size and time: " + ec.message());
    }
    stamps.push_back(json::Object{
        {"path", path},
        {"bytes", static_cast<int64_t>(status.getSize())},
        {"mtime_ns", static_cast<int64_t>(status.getLastModificationTime().time_since_epoch().count())}});
  }
  return json::Value(std::move(stamps));
}

std::string ManifestCache::entryPath(llvm::StringRef absolutePrefix, const Tokenizer &tokenizer, EodMode eod) const {
  std::string key = (absolutePrefix + llvm::StringRef("\0", 1) + tokenizer.id() + llvm::StringRef("\0", 1) +
                     plan::enumName(eod))
                        .str();
  llvm::SmallString<256> path(Dir);
  llvm::sys::path::append(path, llvm::sys::path::filename(absolutePrefix) + "-" +
                                    formatChecksum(XXH3_64bits(key.data(), key.size())));
  return std::string(path);
}

std::optional<Manifest> ManifestCache::lookup(llvm::StringRef entry, llvm::StringRef absolutePrefix,
                                              const Tokenizer &tokenizer, EodMode eod) const {
  std::string jsonPath = (entry + ".json").str();
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer = llvm::MemoryBuffer::getFile(jsonPath);
  if (!buffer)
    return std::nullopt;
  llvm::Expected<json::Value> parsed = parseJSON((*buffer)->getBuffer(), jsonPath);
  if (!parsed) {
    llvm::consumeError(parsed.takeError());
    return std::nullopt;
  }
  const json::Object *o = parsed->getAsObject();
  llvm::Expected<json::Value> stamps = stampFiles(absolutePrefix);
  if (!stamps) {
    llvm::consumeError(stamps.takeError());
    return std::nullopt;
  }
  if (!o || o->getInteger("format_version") != kEntryVersion || o->getString("prefix") != absolutePrefix ||
      o->getString("tokenizer") != tokenizer.id() || o->getString("eod") != plan::enumName(eod) ||
      !o->get("files") || *o->get("files") != *stamps)
    return std::nullopt;
  // The hashes file must be the one written with this entry.
  const json::Object *hashes = o->getObject("hashes");
  llvm::Expected<FileDigest> meta = digestFile((entry + ".meta").str());
  if (!meta) {
    llvm::consumeError(meta.takeError());
    return std::nullopt;
  }
  if (!hashes || hashes->getInteger("bytes") != static_cast<int64_t>(meta->Bytes) ||
      hashes->getString("xxh3_64") != llvm::StringRef(formatChecksum(meta->Xxh3)))
    return std::nullopt;
  const json::Value *recorded = o->get("manifest");
  if (!recorded)
    return std::nullopt;
  std::string text;
  llvm::raw_string_ostream os(text);
  os << *recorded;
  llvm::Expected<Manifest> m = parseManifest(os.str(), jsonPath);
  if (!m || m->Tokenizer != tokenizer.id() || m->VocabSize != tokenizer.vocabSize() || m->Eot != tokenizer.eot()) {
    if (!m)
      llvm::consumeError(m.takeError());
    return std::nullopt;
  }
  return std::move(*m);
}

llvm::Expected<std::unique_ptr<Dataset>> ManifestCache::open(llvm::StringRef prefix, const Tokenizer *tokenizer,
                                                             EodMode eod) {
  std::string manifestPath = (prefix + ".manifest.json").str();
  if (fs::exists(manifestPath)) {
    llvm::Expected<std::unique_ptr<Dataset>> dataset = Dataset::open(prefix);
    if (!dataset)
      return dataset.takeError();
    const Manifest &m = *(*dataset)->manifest();
    if (tokenizer && tokenizer->id() != m.Tokenizer)
      return fileError(manifestPath, "records tokenizer " + m.Tokenizer + " but the stream's tokenizer is " +
                                         tokenizer->id());
    if ((eod == EodMode::Present && !m.EodPresent) || (eod == EodMode::Append && m.EodPresent))
      return fileError(manifestPath, llvm::Twine("records eod ") + (m.EodPresent ? "present" : "append") +
                                         " but the stream says eod = \"" + plan::enumName(eod) + "\"");
    return dataset;
  }
  if (!fs::exists(prefix + ".idx") && !fs::exists(prefix + ".bin"))
    return fileError(prefix, "no dataset here: neither " + manifestPath + " nor " + prefix + ".idx exists");
  if (!tokenizer)
    return fileError(prefix, "no manifest (" + manifestPath +
                                 "), so the stream must say which tokenizer made these tokens: tokenizer = "
                                 "\"bytes\" or \"hf:PATH\" (or write one: mixtape data manifest " +
                                 prefix + " --tokenizer ...)");

  llvm::SmallString<256> absolute(prefix);
  if (std::error_code ec = fs::make_absolute(absolute))
    return fileError(prefix, "cannot make the path absolute: " + ec.message());
  llvm::sys::path::remove_dots(absolute, /*remove_dot_dot=*/true);
  std::string entry = entryPath(absolute, *tokenizer, eod);
  DatasetOpenOptions options;
  options.DerivedHashes = entry + ".meta";
  options.DerivedFrom = entry + ".json";
  if (std::optional<Manifest> cached = lookup(entry, absolute, *tokenizer, eod)) {
    options.Derived = std::move(*cached);
    llvm::Expected<std::unique_ptr<Dataset>> dataset = Dataset::open(prefix, options);
    if (dataset) {
      ++Hits;
      return dataset;
    }
    llvm::consumeError(dataset.takeError()); // recomputed below; a real problem shows again
  }

  ++Misses;
  llvm::Expected<json::Value> stamps = stampFiles(absolute);
  if (!stamps)
    return stamps.takeError();
  uint64_t bytes = 0;
  for (const json::Value &s : *stamps->getAsArray())
    bytes += static_cast<uint64_t>(*s.getAsObject()->getInteger("bytes"));
  auto start = std::chrono::steady_clock::now();
  if (Notes)
    *Notes << "mixtape: " << prefix << ": no manifest; deriving one from " << llvm::format("%.1f", bytes / 1e6)
           << " MB of tokens (tokenizer " << tokenizer->id() << ", cached in " << Dir << ")\n";
  llvm::Expected<DerivedManifest> derived = deriveManifest(prefix, *tokenizer, eod);
  if (!derived)
    return derived.takeError();
  if (Notes) {
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    *Notes << "mixtape: " << prefix << ": " << derived->Manifest.Documents << " documents, "
           << derived->Manifest.Tokens << " tokens, eod " << (derived->Manifest.EodPresent ? "present" : "append")
           << llvm::format(" (%.2f s, %.0f MB/s)\n", seconds, seconds > 0 ? bytes / 1e6 / seconds : 0.0);
  }

  // The hashes first, then the entry that vouches for them by checksum.
  if (std::error_code ec = fs::create_directories(Dir))
    return fileError(Dir, "cannot create the manifest cache (set MIXTAPE_CACHE_DIR to a writable folder): " +
                              ec.message());
  llvm::Expected<FileDigest> meta = derived->Hashes.write(options.DerivedHashes);
  if (!meta)
    return meta.takeError();
  json::Value manifestJson = nullptr;
  if (llvm::Expected<json::Value> v = parseJSON(formatManifest(derived->Manifest), "the derived manifest"))
    manifestJson = std::move(*v);
  else
    return v.takeError();
  json::Object record{{"format_version", kEntryVersion},
                      {"prefix", std::string(absolute)},
                      {"tokenizer", tokenizer->id()},
                      {"eod", plan::enumName(eod)},
                      {"files", std::move(*stamps)},
                      {"hashes", json::Object{{"bytes", static_cast<int64_t>(meta->Bytes)},
                                              {"xxh3_64", formatChecksum(meta->Xxh3)}}},
                      {"manifest", std::move(manifestJson)}};
  llvm::Expected<AtomicFile> file = AtomicFile::create(options.DerivedFrom);
  if (!file)
    return file.takeError();
  std::string text;
  llvm::raw_string_ostream(text) << llvm::formatv("{0:2}\n", json::Value(std::move(record)));
  file->write(text);
  if (llvm::Expected<FileDigest> done = file->commit(); !done)
    return done.takeError();
  options.Derived = std::move(derived->Manifest);
  return Dataset::open(prefix, options);
}
