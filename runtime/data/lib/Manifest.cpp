//===- Manifest.cpp -------------------------------------------------------===//
#include "mixtape/data/Manifest.h"

#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/JSON.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <xxhash.h>

using namespace mixtape;
using namespace mixtape::data;
namespace json = llvm::json;

llvm::StringRef mixtape::data::shardFormatName(ShardFormat format) {
  return format == ShardFormat::Megatron ? "megatron" : "flat";
}

std::optional<ShardFormat> mixtape::data::shardFormatFromName(llvm::StringRef name) {
  for (ShardFormat format : {ShardFormat::Megatron, ShardFormat::Flat})
    if (name == shardFormatName(format))
      return format;
  return std::nullopt;
}

const FileDigest *Manifest::findFile(llvm::StringRef name) const {
  for (const FileDigest &file : Files)
    if (file.Name == name)
      return &file;
  return nullptr;
}

namespace {
/// Reads fields of one JSON object, reporting the first problem with its JSON path.
class FieldReader {
public:
  FieldReader(llvm::StringRef fileName, const json::Object &object, std::string where)
      : FileName(fileName), Object(object), Where(std::move(where)) {}

  llvm::Expected<const json::Value *> field(llvm::StringRef key) {
    const json::Value *value = Object.get(key);
    if (!value)
      return error(key, "missing");
    return value;
  }
  llvm::Expected<uint64_t> unsignedField(llvm::StringRef key) {
    llvm::Expected<const json::Value *> value = field(key);
    if (!value)
      return value.takeError();
    if (llvm::Optional<uint64_t> n = (*value)->getAsUINT64())
      return *n;
    return error(key, "expected a non-negative integer");
  }
  llvm::Expected<llvm::StringRef> stringField(llvm::StringRef key) {
    llvm::Expected<const json::Value *> value = field(key);
    if (!value)
      return value.takeError();
    if (llvm::Optional<llvm::StringRef> s = (*value)->getAsString())
      return *s;
    return error(key, "expected a string");
  }
  llvm::Error error(llvm::StringRef key, const llvm::Twine &message) const {
    return fileError(FileName, Where + key + ": " + message);
  }

private:
  llvm::StringRef FileName;
  const json::Object &Object;
  std::string Where;
};
} // namespace

#define TRY_ASSIGN(var, expr)                                                                      \
  auto var##OrErr = (expr);                                                                        \
  if (!var##OrErr)                                                                                 \
    return var##OrErr.takeError();                                                                 \
  auto var = *var##OrErr

/// A file of the dataset must sit next to the manifest: a plain name, never a path.
static bool isPlainFileName(llvm::StringRef name) {
  return !name.empty() && name != "." && name != ".." && !name.contains('/') &&
         !name.contains('\\') && !name.contains('\0');
}

llvm::Expected<Manifest> mixtape::data::parseManifest(llvm::StringRef text,
                                                      llvm::StringRef fileName) {
  llvm::Expected<json::Value> root = parseJSON(text, fileName);
  if (!root)
    return root.takeError();
  const json::Object *object = root->getAsObject();
  if (!object)
    return fileError(fileName, 0, "a manifest is a JSON object");
  FieldReader read(fileName, *object, "");
  Manifest m;

  TRY_ASSIGN(version, read.unsignedField("format_version"));
  if (version != static_cast<uint64_t>(Manifest::Version))
    return read.error("format_version", "version " + llvm::Twine(version) +
                                            " is not supported (this build reads version " +
                                            llvm::Twine(Manifest::Version) + ")");
  TRY_ASSIGN(format, read.stringField("format"));
  std::optional<ShardFormat> known = shardFormatFromName(format);
  if (!known)
    return read.error("format", "unknown format '" + format + "' (megatron or flat)");
  m.Format = *known;
  TRY_ASSIGN(tokenizer, read.stringField("tokenizer"));
  if (tokenizer.empty())
    return read.error("tokenizer", "empty");
  m.Tokenizer = tokenizer.str();
  TRY_ASSIGN(vocab, read.unsignedField("vocab_size"));
  if (vocab == 0 || vocab > (uint64_t(1) << 32))
    return read.error("vocab_size", llvm::Twine(vocab) + " is not in [1, 2^32]");
  m.VocabSize = vocab;
  TRY_ASSIGN(dtypeText, read.stringField("dtype"));
  std::optional<DType> dtype = dtypeFromName(dtypeText);
  if (!dtype)
    return read.error("dtype", "unknown dtype '" + dtypeText + "'");
  m.Dtype = *dtype;
  uint64_t capacity = dtypeTokenCapacity(m.Dtype);
  if (capacity < m.VocabSize)
    return read.error("dtype", "dtype " + dtypeName(m.Dtype) + " holds token ids below " +
                                   llvm::Twine(capacity) + " but vocab_size is " +
                                   llvm::Twine(m.VocabSize));
  if (m.Format == ShardFormat::Flat && m.Dtype != DType::UInt16)
    return read.error("dtype", "flat .bin files hold uint16 tokens, not " + dtypeName(m.Dtype));
  TRY_ASSIGN(eot, read.unsignedField("eot"));
  if (eot >= m.VocabSize)
    return read.error("eot", llvm::Twine(eot) + " is outside the vocabulary of " +
                                 llvm::Twine(m.VocabSize));
  m.Eot = static_cast<uint32_t>(eot);
  TRY_ASSIGN(tokens, read.unsignedField("tokens"));
  m.Tokens = tokens;
  TRY_ASSIGN(documents, read.unsignedField("documents"));
  m.Documents = documents;

  if (const json::Value *eod = object->get("eod")) {
    llvm::Optional<llvm::StringRef> mode = eod->getAsString();
    if (!mode || (*mode != "present" && *mode != "append"))
      return read.error("eod", "expected \"present\" or \"append\"");
    if (*mode == "present" && m.Format == ShardFormat::Flat)
      return read.error("eod", "a flat .bin separates documents; its documents never end with the separator");
    m.EodPresent = *mode == "present";
  }

  TRY_ASSIGN(filesValue, read.field("files"));
  const json::Array *files = filesValue->getAsArray();
  if (!files)
    return read.error("files", "expected an array");
  for (size_t i = 0; i < files->size(); ++i) {
    std::string where = "files[" + std::to_string(i) + "]";
    const json::Object *entry = (*files)[i].getAsObject();
    if (!entry)
      return fileError(fileName, where + ": expected an object");
    FieldReader file(fileName, *entry, where + ".");
    TRY_ASSIGN(name, file.stringField("name"));
    if (!isPlainFileName(name))
      return file.error("name", "'" + name + "' is not a plain file name next to the manifest");
    if (m.findFile(name))
      return file.error("name", "'" + name + "' is listed twice");
    TRY_ASSIGN(bytes, file.unsignedField("bytes"));
    TRY_ASSIGN(hex, file.stringField("xxh3_64"));
    uint64_t hash = 0;
    if (hex.size() != 16 || !llvm::all_of(hex, llvm::isHexDigit) || hex.getAsInteger(16, hash))
      return file.error("xxh3_64", "expected 16 hex digits, got '" + hex + "'");
    m.Files.push_back({name.str(), bytes, hash});
  }

  if (const json::Value *meta = object->get("metadata")) {
    llvm::Optional<llvm::StringRef> name = meta->getAsString();
    if (!name || !isPlainFileName(*name))
      return read.error("metadata", "expected the file name of the metadata sidecar");
    if (!m.findFile(*name))
      return read.error("metadata", "'" + *name + "' is not listed in files");
    m.Metadata = name->str();
  }
  return m;
}

llvm::Expected<Manifest> mixtape::data::readManifest(llvm::StringRef path) {
  llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> buffer = mapFile(path);
  if (!buffer)
    return buffer.takeError();
  return parseManifest((*buffer)->getBuffer(), path);
}

std::string mixtape::data::formatManifest(const Manifest &m) {
  std::string text;
  llvm::raw_string_ostream os(text);
  json::OStream out(os, /*IndentSize=*/2);
  out.object([&] {
    out.attribute("format_version", Manifest::Version);
    out.attribute("format", shardFormatName(m.Format));
    out.attribute("tokenizer", m.Tokenizer);
    out.attribute("vocab_size", m.VocabSize);
    out.attribute("dtype", dtypeName(m.Dtype));
    out.attribute("eot", static_cast<int64_t>(m.Eot));
    out.attribute("tokens", m.Tokens);
    out.attribute("documents", m.Documents);
    if (m.EodPresent)
      out.attribute("eod", "present");
    if (!m.Metadata.empty())
      out.attribute("metadata", m.Metadata);
    out.attributeArray("files", [&] {
      for (const FileDigest &file : m.Files)
        out.object([&] {
          out.attribute("name", file.Name);
          out.attribute("bytes", file.Bytes);
          out.attribute("xxh3_64", formatChecksum(file.Xxh3));
        });
    });
  });
  os << "\n";
  return text;
}
