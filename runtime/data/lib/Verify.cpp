//===- Verify.cpp - shards checked against their manifests before training -===//
#include "mixtape/data/Verify.h"

#include "mixtape/support/Checksum.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <type_traits>

using namespace mixtape;
using namespace mixtape::data;
namespace fs = llvm::sys::fs;
namespace json = llvm::json;

static constexpr int64_t kCacheFormatVersion = 1;

std::string mixtape::data::verificationCacheFile(llvm::StringRef manifestCacheDir) {
  return joinPath(manifestCacheDir, "verified-files.json");
}

template <typename T> static uint64_t maxIdOf(const TokenShard &tokens) {
  T hi = 0, lo = 0;
  for (uint64_t d = 0, n = tokens.numDocuments(); d < n; ++d) {
    llvm::ArrayRef<T> ids = tokens.document(d).as<T>();
    const T *p = ids.data();
    size_t i = 0, size = ids.size();
    // Blocks of a fixed size vectorize at -O2, as in Stream.cpp's convert().
    for (; i + 64 <= size; i += 64)
      for (unsigned j = 0; j < 64; ++j) {
        hi = std::max(hi, p[i + j]);
        if constexpr (std::is_signed_v<T>)
          lo = std::min(lo, p[i + j]);
      }
    for (; i < size; ++i) {
      hi = std::max(hi, p[i]);
      if constexpr (std::is_signed_v<T>)
        lo = std::min(lo, p[i]);
    }
  }
  return lo < 0 ? UINT64_MAX : static_cast<uint64_t>(hi);
}

uint64_t mixtape::data::maxTokenId(const TokenShard &tokens) {
  switch (tokens.dtype()) {
  case DType::UInt8: return maxIdOf<uint8_t>(tokens);
  case DType::Int8: return maxIdOf<int8_t>(tokens);
  case DType::Int16: return maxIdOf<int16_t>(tokens);
  case DType::UInt16: return maxIdOf<uint16_t>(tokens);
  case DType::Int32: return maxIdOf<int32_t>(tokens);
  case DType::Int64: return maxIdOf<int64_t>(tokens);
  case DType::Float32:
  case DType::Float64: break;
  }
  llvm_unreachable("shards reject float dtypes when they open");
}

/// Position and value of the first id of `doc` outside [0, vocabSize).
template <typename T>
static std::optional<std::pair<uint64_t, int64_t>> firstOutside(const TokenSpan &doc, uint64_t vocabSize) {
  llvm::ArrayRef<T> ids = doc.as<T>();
  for (size_t i = 0; i < ids.size(); ++i)
    if (static_cast<int64_t>(ids[i]) < 0 || static_cast<uint64_t>(ids[i]) >= vocabSize)
      return std::make_pair(uint64_t(i), static_cast<int64_t>(ids[i]));
  return std::nullopt;
}

/// The first id outside the vocabulary (maxTokenId said there is one): its file, byte,
/// document and position.
static llvm::Error outOfVocabulary(const TokenShard &tokens, uint64_t vocabSize) {
  for (uint64_t d = 0, n = tokens.numDocuments(); d < n; ++d) {
    TokenSpan doc = tokens.document(d);
    std::optional<std::pair<uint64_t, int64_t>> bad;
    switch (doc.dtype()) {
    case DType::UInt8: bad = firstOutside<uint8_t>(doc, vocabSize); break;
    case DType::Int8: bad = firstOutside<int8_t>(doc, vocabSize); break;
    case DType::Int16: bad = firstOutside<int16_t>(doc, vocabSize); break;
    case DType::UInt16: bad = firstOutside<uint16_t>(doc, vocabSize); break;
    case DType::Int32: bad = firstOutside<int32_t>(doc, vocabSize); break;
    case DType::Int64: bad = firstOutside<int64_t>(doc, vocabSize); break;
    case DType::Float32:
    case DType::Float64: llvm_unreachable("shards reject float dtypes when they open");
    }
    if (bad)
      return fileError(tokens.path(), doc.byteOffset() + bad->first * dtypeSize(doc.dtype()),
                       "token " + llvm::Twine(bad->first) + " of document " + llvm::Twine(d) + " is id " +
                           llvm::Twine(bad->second) + ", not below the model's vocabulary of " +
                           llvm::Twine(vocabSize));
  }
  llvm_unreachable("maxTokenId found an id outside the vocabulary");
}

void DataVerifier::load() {
  if (Loaded || Options.CacheFile.empty())
    return;
  Loaded = true;
  // Anything that does not parse is no entry: the files are hashed again.
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer = llvm::MemoryBuffer::getFile(Options.CacheFile);
  if (!buffer)
    return;
  llvm::Expected<json::Value> parsed = json::parse((*buffer)->getBuffer());
  if (!parsed) {
    llvm::consumeError(parsed.takeError());
    return;
  }
  const json::Object *root = parsed->getAsObject();
  const json::Array *files = root ? root->getArray("files") : nullptr;
  if (!files || root->getInteger("format_version") != kCacheFormatVersion)
    return;
  for (const json::Value &value : *files) {
    const json::Object *o = value.getAsObject();
    if (!o)
      continue;
    auto path = o->getString("path"), hex = o->getString("xxh3_64");
    auto bytes = o->getInteger("bytes"), mtime = o->getInteger("mtime_ns"), inode = o->getInteger("inode"),
         maxToken = o->getInteger("max_token");
    Entry e;
    if (!path || !hex || !bytes || !mtime || !inode || hex->size() != 16 || hex->getAsInteger(16, e.Xxh3))
      continue;
    e.Bytes = static_cast<uint64_t>(*bytes);
    e.MtimeNs = static_cast<uint64_t>(*mtime);
    e.Inode = static_cast<uint64_t>(*inode);
    if (maxToken)
      e.MaxToken = static_cast<uint64_t>(*maxToken);
    Entries.emplace(path->str(), e);
  }
}

void DataVerifier::save() {
  if (Options.CacheFile.empty())
    return;
  // Another process may have verified other files since: keep its entries, ours win.
  std::map<std::string, Entry> ours = std::move(Entries);
  Entries.clear();
  Loaded = false;
  load();
  for (auto &[path, entry] : ours)
    Entries[path] = entry;
  json::Array files;
  for (const auto &[path, e] : Entries) {
    json::Object o{{"path", path},
                   {"bytes", static_cast<int64_t>(e.Bytes)},
                   {"mtime_ns", static_cast<int64_t>(e.MtimeNs)},
                   {"inode", static_cast<int64_t>(e.Inode)},
                   {"xxh3_64", formatChecksum(e.Xxh3)}};
    if (e.MaxToken != UINT64_MAX)
      o["max_token"] = static_cast<int64_t>(e.MaxToken);
    files.push_back(std::move(o));
  }
  std::string text;
  llvm::raw_string_ostream(text) << json::Value(json::Object{{"format_version", kCacheFormatVersion},
                                                              {"files", std::move(files)}})
                                 << "\n";
  llvm::Error err = llvm::errorCodeToError(fs::create_directories(llvm::sys::path::parent_path(Options.CacheFile)));
  if (!err)
    err = writeFileDurably(Options.CacheFile, text);
  // Losing the cache costs a rehash next time, nothing else.
  if (err && Notes)
    *Notes << "mixtape: warning: cannot write " << Options.CacheFile << ": " << llvm::toString(std::move(err))
           << "; the data will be hashed again next time\n";
  llvm::consumeError(std::move(err));
}

llvm::Expected<std::pair<std::string, DataVerifier::Entry>> DataVerifier::stamp(llvm::StringRef path) {
  llvm::SmallString<256> absolute(path);
  if (std::error_code ec = fs::make_absolute(absolute))
    return fileError(path, "cannot make the path absolute: " + ec.message());
  // The stamp is taken before hashing: a write while hashing changes it, so the entry
  // would not match the file afterwards.
  fs::file_status status;
  if (std::error_code ec = fs::status(path, status))
    return fileError(path, "cannot read its size and time: " + ec.message());
  Entry now;
  now.Bytes = status.getSize();
  now.MtimeNs = static_cast<uint64_t>(status.getLastModificationTime().time_since_epoch().count());
  now.Inode = status.getUniqueID().getFile();
  return std::make_pair(std::string(absolute), now);
}

bool DataVerifier::sameFile(const Entry &a, const Entry &b) {
  return a.Bytes == b.Bytes && a.MtimeNs == b.MtimeNs && a.Inode == b.Inode;
}

llvm::Expected<uint64_t> DataVerifier::checksum(llvm::StringRef path) {
  load();
  llvm::Expected<std::pair<std::string, Entry>> stamped = stamp(path);
  if (!stamped)
    return stamped.takeError();
  auto &[absolute, now] = *stamped;
  auto it = Entries.find(absolute);
  if (Options.Mode == VerifyMode::Cached && it != Entries.end() && sameFile(it->second, now)) {
    Cached += now.Bytes;
    return it->second.Xxh3;
  }
  auto start = std::chrono::steady_clock::now();
  llvm::Expected<FileDigest> digest = digestFile(path);
  if (!digest)
    return digest.takeError();
  Hashed += digest->Bytes;
  if (Notes) {
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double mb = static_cast<double>(digest->Bytes) / 1e6;
    *Notes << "mixtape: " << path << ": hashed " << llvm::format("%.1f", mb) << " MB at "
           << llvm::format("%.0f", mb / std::max(seconds, 1e-6)) << " MB/s (once; then cached)\n";
  }
  now.Xxh3 = digest->Xxh3;
  Entries[absolute] = now;
  save();
  return now.Xxh3;
}

llvm::Error DataVerifier::verify(llvm::ArrayRef<std::unique_ptr<Dataset>> datasets) {
  bool changed = false;
  llvm::Error err = llvm::Error::success();
  for (const std::unique_ptr<Dataset> &dataset : datasets)
    if ((err = verifyOne(*dataset, changed)))
      break;
  // What passed before a failure stays verified.
  if (changed)
    save();
  return err;
}

llvm::Error DataVerifier::verify(const Dataset &dataset) {
  bool changed = false;
  llvm::Error err = verifyOne(dataset, changed);
  if (changed)
    save();
  return err;
}

llvm::Error DataVerifier::verifyOne(const Dataset &dataset, bool &changed) {
  const Manifest *manifest = dataset.manifest();
  if (!manifest)
    return llvm::Error::success();
  load();
  auto start = std::chrono::steady_clock::now();
  const TokenShard &tokens = dataset.tokens();
  llvm::StringRef tokenFile = llvm::sys::path::filename(tokens.path());
  uint64_t hashedBefore = Hashed, maxToken = 0;
  for (const FileDigest &listed : manifest->Files) {
    std::string path = dataset.filePath(listed);
    llvm::Expected<std::pair<std::string, Entry>> stamped = stamp(path);
    if (!stamped)
      return stamped.takeError();
    auto &[absolute, now] = *stamped;
    now.Xxh3 = listed.Xxh3;
    bool isTokens = listed.Name == tokenFile;
    auto it = Entries.find(absolute);
    if (Options.Mode == VerifyMode::Cached && it != Entries.end() && sameFile(it->second, now) &&
        it->second.Xxh3 == now.Xxh3 && (!isTokens || it->second.MaxToken != UINT64_MAX || Options.VocabSize == 0)) {
      Cached += now.Bytes;
      if (isTokens)
        maxToken = it->second.MaxToken;
      continue;
    }
    llvm::Expected<FileDigest> actual = digestFile(path);
    if (!actual)
      return actual.takeError();
    if (llvm::Error err = dataset.checkDigest(listed, *actual))
      return err;
    Hashed += actual->Bytes;
    if (isTokens)
      now.MaxToken = maxToken = maxTokenId(tokens);
    Entries[absolute] = now;
    changed = true;
  }
  if (Notes && Hashed > hashedBefore) {
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double mb = static_cast<double>(Hashed - hashedBefore) / 1e6;
    *Notes << "mixtape: " << dataset.prefix() << ": verified against " << dataset.manifestPath() << " ("
           << llvm::format("%.1f", mb) << " MB hashed at " << llvm::format("%.0f", mb / std::max(seconds, 1e-6))
           << " MB/s)\n";
  }
  if (Options.VocabSize && maxToken >= Options.VocabSize)
    return outOfVocabulary(tokens, Options.VocabSize);
  return llvm::Error::success();
}
