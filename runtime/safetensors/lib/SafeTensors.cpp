//===- SafeTensors.cpp ----------------------------------------------------===//
#include "mixtape/safetensors/SafeTensors.h"

#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/JSON.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>

using namespace mixtape::safetensors;
using mixtape::fileError;
using mixtape::makeError;
using mixtape::prefixError;

namespace {

struct DTypeEntry {
  DType Type;
  llvm::StringLiteral Name;
  unsigned Size;
};

constexpr DTypeEntry DTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1}, {DType::U8, "U8", 1},
    {DType::Bool, "BOOL", 1},
};

/// The keys of the outermost object of a JSON text, duplicates counted: llvm::json::parse
/// keeps the last of duplicate keys silently, which the format forbids.
size_t topLevelKeys(llvm::StringRef json) {
  size_t keys = 0;
  bool keyExpected = false;
  mixtape::walkJSONStructure(json, [&](size_t, char c, size_t depth) {
    if (c == '"' && depth == 1 && keyExpected) {
      ++keys;
      keyExpected = false;
    } else if (c == '[' || c == '{') {
      keyExpected = depth == 1;
    } else if (c == ',' && depth == 1) {
      keyExpected = true;
    }
    return true;
  });
  return keys;
}

} // namespace

llvm::StringRef mixtape::safetensors::dtypeName(DType type) {
  for (const DTypeEntry &e : DTypes)
    if (e.Type == type)
      return e.Name;
  llvm_unreachable("unknown dtype");
}

std::optional<DType> mixtape::safetensors::dtypeFromName(llvm::StringRef name) {
  for (const DTypeEntry &e : DTypes)
    if (e.Name == name)
      return e.Type;
  return std::nullopt;
}

unsigned mixtape::safetensors::dtypeSize(DType type) {
  for (const DTypeEntry &e : DTypes)
    if (e.Type == type)
      return e.Size;
  llvm_unreachable("unknown dtype");
}

std::string mixtape::safetensors::shapeText(llvm::ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

uint64_t TensorInfo::numElements() const {
  uint64_t n = 1;
  for (int64_t d : Shape)
    n *= static_cast<uint64_t>(d); // checked for overflow when the file was read
  return n;
}

uint64_t TensorLayout::byteSize() const {
  uint64_t n = dtypeSize(Dtype);
  for (int64_t d : Shape)
    n *= static_cast<uint64_t>(d);
  return n;
}

File::File(File &&) noexcept = default;
File &File::operator=(File &&) noexcept = default;
File::~File() = default;

const TensorInfo *File::find(llvm::StringRef name) const {
  auto it = ByName.find(name.str());
  return it == ByName.end() ? nullptr : &Tensors[it->second];
}

llvm::Expected<File> File::open(llvm::StringRef path) {
  // Without a required null terminator, MemoryBuffer maps files of 16 KiB or more.
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      llvm::MemoryBuffer::getFile(path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!buffer)
    return fileError(path, "cannot open: " + buffer.getError().message());
  return fromBuffer(std::move(*buffer), path);
}

/// Reads one tensor's entry of the header. `at` is the header's byte offset in the file,
/// for messages about the entry as a whole.
static llvm::Error parseEntry(llvm::StringRef file, uint64_t at, llvm::StringRef name,
                              const llvm::json::Value &value, TensorInfo &out) {
  auto bad = [&](const llvm::Twine &what) {
    return fileError(file, at, "tensor '" + name + "': " + what);
  };
  const llvm::json::Object *entry = value.getAsObject();
  if (!entry)
    return bad("entry is not an object");
  for (const auto &kv : *entry)
    if (kv.first != "dtype" && kv.first != "shape" && kv.first != "data_offsets")
      return bad("unknown field '" + kv.first.str() + "'");

  auto dtype = entry->getString("dtype");
  if (!dtype)
    return bad("missing or non-string 'dtype'");
  std::optional<DType> type = dtypeFromName(*dtype);
  if (!type)
    return bad("unknown dtype '" + *dtype + "'");
  out.Dtype = *type;

  const llvm::json::Array *shape = entry->getArray("shape");
  if (!shape)
    return bad("missing or non-array 'shape'");
  uint64_t bytes = dtypeSize(*type);
  for (const llvm::json::Value &dim : *shape) {
    auto d = dim.getAsInteger();
    if (!d || *d < 0)
      return bad("shape holds something other than a non-negative integer");
    out.Shape.push_back(*d);
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(*d), &bytes))
      return bad("shape's size overflows 64 bits");
  }

  const llvm::json::Array *offsets = entry->getArray("data_offsets");
  if (!offsets || offsets->size() != 2)
    return bad("'data_offsets' is not an array of two integers");
  auto begin = (*offsets)[0].getAsInteger();
  auto end = (*offsets)[1].getAsInteger();
  if (!begin || !end || *begin < 0 || *end < 0)
    return bad("'data_offsets' is not an array of two non-negative integers");
  if (*end < *begin)
    return bad("data_offsets [" + llvm::Twine(*begin) + ", " + llvm::Twine(*end) +
               "] end before they begin");
  out.Begin = static_cast<uint64_t>(*begin);
  out.End = static_cast<uint64_t>(*end);
  if (out.End - out.Begin != bytes)
    return bad("dtype " + *dtype + " x shape needs " + llvm::Twine(bytes) +
               " bytes, but data_offsets [" + llvm::Twine(out.Begin) + ", " +
               llvm::Twine(out.End) + "] hold " + llvm::Twine(out.End - out.Begin));
  return llvm::Error::success();
}

llvm::StringRef File::headerBytes() const { return Buffer->getBuffer().take_front(DataOffset); }

llvm::Expected<File> File::fromBuffer(std::unique_ptr<llvm::MemoryBuffer> buffer,
                                      llvm::StringRef name) {
  File f;
  f.Path = name.str();
  llvm::StringRef file = f.Path;
  llvm::StringRef bytes = buffer->getBuffer();
  if (bytes.size() < 8)
    return fileError(file, 0, "file of " + llvm::Twine(bytes.size()) +
                                  " bytes is too short for the 8-byte header length");
  uint64_t headerLength = llvm::support::endian::read64le(bytes.data());
  if (headerLength > MaxHeaderBytes)
    return fileError(file, 0, "header length " + llvm::Twine(headerLength) +
                                  " exceeds the limit of " + llvm::Twine(MaxHeaderBytes) +
                                  " bytes");
  if (headerLength > bytes.size() - 8)
    return fileError(file, 0, "header length " + llvm::Twine(headerLength) +
                                  " reaches beyond the end of the file (" +
                                  llvm::Twine(bytes.size()) + " bytes)");
  llvm::StringRef header = bytes.substr(8, headerLength);
  if (!header.startswith("{"))
    return fileError(file, 8, "header does not start with '{'");
  size_t badByte = 0;
  if (!llvm::json::isUTF8(header, &badByte))
    return fileError(file, 8 + badByte, "header is not valid UTF-8");
  llvm::Expected<llvm::json::Value> json = parseJSON(header, file, 8);
  if (!json)
    return json.takeError();
  const llvm::json::Object *root = json->getAsObject();
  if (!root)
    return fileError(file, 8, "header is not a JSON object");

  for (const auto &kv : *root) {
    llvm::StringRef key = kv.first;
    if (key == "__metadata__") {
      const llvm::json::Object *meta = kv.second.getAsObject();
      if (!meta)
        return fileError(file, 8, "'__metadata__' is not an object");
      for (const auto &m : *meta) {
        auto value = m.second.getAsString();
        if (!value)
          return fileError(file, 8, "'__metadata__' value of '" + m.first.str() +
                                        "' is not a string");
        f.Metadata[m.first.str()] = value->str();
      }
      continue;
    }
    if (key.empty())
      return fileError(file, 8, "a tensor has an empty name");
    TensorInfo info;
    info.Name = key.str();
    if (llvm::Error err = parseEntry(file, 8, key, kv.second, info))
      return err;
    f.Tensors.push_back(std::move(info));
  }
  if (size_t keys = topLevelKeys(header); keys != root->size())
    return fileError(file, 8, "header names a tensor more than once (" +
                                  llvm::Twine(keys) + " keys, " +
                                  llvm::Twine(root->size()) + " distinct)");

  // The data region must be exactly tiled by the tensors: no gaps, no overlaps, nothing
  // past the end, nothing left over.
  f.DataOffset = 8 + headerLength;
  uint64_t dataSize = bytes.size() - f.DataOffset;
  llvm::sort(f.Tensors, [](const TensorInfo &a, const TensorInfo &b) {
    return std::tie(a.Begin, a.End, a.Name) < std::tie(b.Begin, b.End, b.Name);
  });
  uint64_t cursor = 0;
  for (TensorInfo &t : f.Tensors) {
    if (t.Begin < cursor)
      return fileError(file, f.DataOffset + t.Begin,
                       "tensor '" + t.Name + "' overlaps the tensor before it");
    if (t.Begin > cursor)
      return fileError(file, f.DataOffset + cursor,
                       "gap of " + llvm::Twine(t.Begin - cursor) +
                           " bytes before tensor '" + t.Name + "'");
    if (t.End > dataSize)
      return fileError(file, f.DataOffset + t.Begin,
                       "tensor '" + t.Name + "' ends at data offset " + llvm::Twine(t.End) +
                           ", past the end of the data region (" + llvm::Twine(dataSize) +
                           " bytes)");
    t.Bytes = llvm::ArrayRef<uint8_t>(
        reinterpret_cast<const uint8_t *>(bytes.data() + f.DataOffset + t.Begin),
        t.End - t.Begin);
    cursor = t.End;
  }
  if (cursor != dataSize)
    return fileError(file, f.DataOffset + cursor,
                     llvm::Twine(dataSize - cursor) +
                         " bytes after the last tensor belong to no tensor");
  for (size_t i = 0; i < f.Tensors.size(); ++i)
    f.ByName[f.Tensors[i].Name] = i;
  f.Buffer = std::move(buffer);
  return f;
}

llvm::Expected<std::string>
mixtape::safetensors::formatHeader(llvm::ArrayRef<TensorLayout> tensors,
                                   const std::map<std::string, std::string> &metadata) {
  std::string header;
  llvm::raw_string_ostream os(header);
  llvm::json::OStream json(os);
  llvm::StringSet<> seen;
  uint64_t offset = 0;
  llvm::Error failure = llvm::Error::success();
  json.object([&] {
    if (!metadata.empty())
      json.attributeObject("__metadata__", [&] {
        for (const auto &[key, value] : metadata)
          json.attribute(key, value);
      });
    for (const TensorLayout &t : tensors) {
      if (failure)
        return;
      if (t.Name.empty() || t.Name == "__metadata__" || !seen.insert(t.Name).second) {
        failure = makeError("safetensors: bad or duplicate tensor name '" + t.Name + "'");
        return;
      }
      uint64_t bytes = t.byteSize();
      json.attributeObject(t.Name, [&] {
        json.attribute("dtype", dtypeName(t.Dtype));
        json.attributeArray("shape", [&] {
          for (int64_t d : t.Shape)
            json.value(d);
        });
        json.attributeArray("data_offsets", [&] {
          json.value(static_cast<int64_t>(offset));
          json.value(static_cast<int64_t>(offset + bytes));
        });
      });
      offset += bytes;
    }
  });
  if (failure)
    return failure;
  os.flush();
  // Pad so that the data region (after the 8-byte length) starts 8-aligned.
  header.append((8 - header.size() % 8) % 8, ' ');
  return header;
}

namespace {
TensorLayout layoutOf(const TensorData &t) { return {t.Name, t.Dtype, t.Shape}; }

llvm::Error checkBytes(const TensorData &t) {
  uint64_t bytes = layoutOf(t).byteSize();
  if (bytes == t.Bytes.size())
    return llvm::Error::success();
  return makeError("safetensors: tensor '" + t.Name + "' has " + llvm::Twine(t.Bytes.size()) +
                   " bytes, but its dtype and shape need " + llvm::Twine(bytes));
}
} // namespace

llvm::Expected<std::string>
mixtape::safetensors::formatHeader(llvm::ArrayRef<TensorData> tensors,
                                   const std::map<std::string, std::string> &metadata) {
  std::vector<TensorLayout> layouts;
  for (const TensorData &t : tensors) {
    if (llvm::Error e = checkBytes(t))
      return e;
    layouts.push_back(layoutOf(t));
  }
  return formatHeader(layouts, metadata);
}

/// The file is a DurableFile (support/Files.h), written through a stream of our own on its
/// descriptor so that a write error (a full disk) stops a long streamed merge at the tensor
/// it happens in. Both are reset once the file is committed or abandoned, which removes the
/// temporary file of one that was not committed.
struct Writer::Impl {
  std::string Path;
  std::optional<mixtape::DurableFile> File;
  std::unique_ptr<llvm::raw_fd_ostream> Out;
  std::vector<TensorLayout> Tensors;
  size_t Next = 0;

  Impl(mixtape::DurableFile durable, std::vector<TensorLayout> tensors)
      : Path(durable.path().str()), File(std::move(durable)),
        Out(std::make_unique<llvm::raw_fd_ostream>(File->fd(), /*shouldClose=*/false)),
        Tensors(std::move(tensors)) {}
  ~Impl() { close(); }
  /// Ends writing: the file is removed unless it was committed.
  void close() {
    if (Out) { // reported already, or the file is abandoned anyway; emptied first, since a
      Out->flush();     // stream that fails again in its destructor aborts the process
      Out->clear_error();
    }
    Out.reset();
    File.reset();
  }
  llvm::Error fail(const llvm::Twine &why) {
    close();
    return fileError(Path, why);
  }
};

Writer::Writer(std::unique_ptr<Impl> impl) : PImpl(std::move(impl)) {}
Writer::Writer(Writer &&) noexcept = default;
Writer &Writer::operator=(Writer &&) noexcept = default;
Writer::~Writer() = default;

llvm::Expected<Writer> Writer::create(llvm::StringRef path, llvm::ArrayRef<TensorLayout> tensors,
                                      const std::map<std::string, std::string> &metadata) {
  llvm::Expected<std::string> header = formatHeader(tensors, metadata);
  if (!header)
    return prefixError(path, header.takeError());
  llvm::Expected<mixtape::DurableFile> file = mixtape::DurableFile::create(path);
  if (!file)
    return file.takeError();
  auto impl = std::make_unique<Impl>(std::move(*file), tensors.vec());
  char length[8];
  llvm::support::endian::write64le(length, header->size());
  impl->Out->write(length, 8);
  *impl->Out << *header;
  return Writer(std::move(impl));
}

llvm::Error Writer::add(llvm::StringRef name, llvm::ArrayRef<uint8_t> bytes) {
  Impl &w = *PImpl;
  if (!w.File || w.Next == w.Tensors.size())
    return fileError(w.Path, "tensor '" + name + "' is not in the header, or was added after the last");
  const TensorLayout &t = w.Tensors[w.Next];
  if (t.Name != name)
    return fileError(w.Path, "tensor '" + name + "' added where the header has '" + t.Name + "'");
  if (t.byteSize() != bytes.size())
    return fileError(w.Path, "tensor '" + name + "' has " + llvm::Twine(bytes.size()) +
                                 " bytes, but its dtype and shape need " + llvm::Twine(t.byteSize()));
  w.Out->write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
  if (std::error_code ec = w.Out->error())
    return w.fail("write failed: " + ec.message());
  ++w.Next;
  return llvm::Error::success();
}

llvm::Error Writer::commit() {
  Impl &w = *PImpl;
  if (!w.File)
    return fileError(w.Path, "the file was already committed or abandoned");
  if (w.Next != w.Tensors.size())
    return w.fail("committed after " + llvm::Twine(w.Next) + " of " +
                  llvm::Twine(w.Tensors.size()) + " tensors");
  w.Out->flush();
  if (std::error_code ec = w.Out->error())
    return w.fail("write failed: " + ec.message());
  w.Out.reset();
  llvm::Error committed = w.File->commit(); // fsync, rename into place, fsync the folder
  w.close();
  return committed;
}

llvm::Error mixtape::safetensors::write(llvm::StringRef path, llvm::ArrayRef<TensorData> tensors,
                                        const std::map<std::string, std::string> &metadata) {
  std::vector<TensorLayout> layouts;
  for (const TensorData &t : tensors) {
    if (llvm::Error e = checkBytes(t))
      return prefixError(path, std::move(e));
    layouts.push_back(layoutOf(t));
  }
  llvm::Expected<Writer> writer = Writer::create(path, layouts, metadata);
  if (!writer)
    return writer.takeError();
  for (const TensorData &t : tensors)
    if (llvm::Error e = writer->add(t.Name, t.Bytes))
      return e;
  return writer->commit();
}
