//===- Metadata.cpp - the .meta sidecar -----------------------------------===//
#include "mixtape/data/Metadata.h"

#include "AtomicFile.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>
#include <cstring>
#include <limits>

using namespace mixtape;
using namespace mixtape::data;
namespace endian = llvm::support::endian;

static const char kMagic[8] = {'M', 'X', 'T', 'M', 'E', 'T', 'A', '\0'};
static constexpr uint64_t kHeaderSize = 24;
enum StoredKind : uint8_t { kFloat32 = 1, kString16 = 2, kString32 = 3 };

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

/// Reads the sidecar front to back; every read is bounds-checked and every failure names
/// the byte where the bad field starts.
class MetadataTable::Parser {
public:
  Parser(MetadataTable &table)
      : Table(table), Name(table.path()),
        Bytes(reinterpret_cast<const uint8_t *>(table.Buffer->getBufferStart())),
        Size(table.Buffer->getBufferSize()) {}

  llvm::Error parse() {
    if (Size < kHeaderSize)
      return fileError(Name, Size, "file ends inside the " + llvm::Twine(kHeaderSize) +
                                       "-byte header of a metadata sidecar (" +
                                       llvm::Twine(Size) + " bytes)");
    if (std::memcmp(Bytes, kMagic, sizeof kMagic) != 0)
      return fileError(Name, 0, "not a metadata sidecar: the magic is not \"MXTMETA\\0\"");
    uint32_t version = endian::read32le(Bytes + 8);
    if (version != MetadataTable::Version)
      return fileError(Name, 8, "metadata version " + llvm::Twine(version) +
                                    "; only version 1 is supported");
    uint32_t columns = endian::read32le(Bytes + 12);
    Table.Rows = endian::read64le(Bytes + 16);
    Pos = kHeaderSize;
    if (Table.Rows > (Size - Pos) / 8)
      return fileError(Name, 16, "row count " + llvm::Twine(Table.Rows) +
                                     " but the file holds room for at most " +
                                     llvm::Twine((Size - Pos) / 8) + " document hashes");
    Pos += 8 * Table.Rows;
    // Each column takes at least its 8-byte descriptor.
    if (columns > (Size - Pos) / 8)
      return fileError(Name, 12, "column count " + llvm::Twine(columns) +
                                     " but the file holds room for at most " +
                                     llvm::Twine((Size - Pos) / 8));
    llvm::StringSet<> names;
    for (uint32_t c = 0; c < columns; ++c) {
      if (llvm::Error err = parseColumn(c, names))
        return err;
    }
    if (Pos != Size)
      return fileError(Name, Pos, llvm::Twine(Size - Pos) + " bytes after the last column");
    return llvm::Error::success();
  }

private:
  llvm::Error need(uint64_t bytes, const llvm::Twine &what) {
    if (bytes > Size - Pos)
      return fileError(Name, Pos, "file ends inside " + what + " (" + llvm::Twine(bytes) +
                                      " bytes needed, " + llvm::Twine(Size - Pos) + " left)");
    return llvm::Error::success();
  }

  llvm::Error padding(const llvm::Twine &what) {
    uint64_t end = (Pos + 7) / 8 * 8;
    if (llvm::Error err = need(end - Pos, "the padding after " + what))
      return err;
    for (; Pos < end; ++Pos)
      if (Bytes[Pos] != 0)
        return fileError(Name, Pos, "nonzero padding byte after " + what);
    return llvm::Error::success();
  }

  llvm::Error parseColumn(uint32_t c, llvm::StringSet<> &names) {
    std::string label = "column " + std::to_string(c);
    if (llvm::Error err = need(8, "the descriptor of " + label))
      return err;
    uint64_t at = Pos;
    uint8_t kind = Bytes[Pos];
    uint16_t nameLength = endian::read16le(Bytes + Pos + 2);
    if (kind != kFloat32 && kind != kString16 && kind != kString32)
      return fileError(Name, at, label + " has unknown kind " + llvm::Twine(unsigned(kind)) +
                                     " (1 float32, 2 and 3 strings)");
    if (Bytes[Pos + 1] != 0 || endian::read32le(Bytes + Pos + 4) != 0)
      return fileError(Name, at, "reserved bytes of " + label + " are not zero");
    if (nameLength == 0)
      return fileError(Name, at + 2, label + " has an empty name");
    Pos += 8;
    if (llvm::Error err = need(nameLength, "the name of " + label))
      return err;
    Column column;
    column.Name = llvm::StringRef(reinterpret_cast<const char *>(Bytes + Pos), nameLength);
    if (!names.insert(column.Name).second)
      return fileError(Name, Pos, "column name '" + column.Name + "' appears twice");
    Pos += nameLength;
    label = "column '" + column.Name.str() + "'";
    if (llvm::Error err = padding("the name of " + label))
      return err;

    if (kind == kFloat32) {
      column.Kind = ColumnKind::Number;
      column.CodeSize = 4;
      column.ValuesAt = Pos;
      if (llvm::Error err = need(4 * Table.Rows, "the values of " + label))
        return err;
      Pos += 4 * Table.Rows;
      if (llvm::Error err = padding("the values of " + label))
        return err;
      Table.Columns.push_back(std::move(column));
      return llvm::Error::success();
    }

    column.Kind = ColumnKind::String;
    column.CodeSize = kind == kString16 ? 2 : 4;
    if (llvm::Error err = need(8, "the dictionary header of " + label))
      return err;
    uint64_t entriesAt = Pos;
    uint32_t entries = endian::read32le(Bytes + Pos);
    uint32_t textBytes = endian::read32le(Bytes + Pos + 4);
    Pos += 8;
    if (entries == 0 && Table.Rows > 0)
      return fileError(Name, entriesAt, label + " has rows but an empty dictionary");
    if (kind == kString16 && entries > 65536)
      return fileError(Name, entriesAt, label + " has " + llvm::Twine(entries) +
                                            " dictionary entries, too many for uint16 codes");
    if (llvm::Error err = need(uint64_t(4) * entries, "the dictionary offsets of " + label))
      return err;
    uint64_t offsetsAt = Pos;
    Pos += uint64_t(4) * entries;
    if (llvm::Error err = need(textBytes, "the dictionary text of " + label))
      return err;
    const char *text = reinterpret_cast<const char *>(Bytes + Pos);
    uint32_t begin = 0;
    llvm::StringSet<> seen;
    for (uint32_t e = 0; e < entries; ++e) {
      uint32_t end = endian::read32le(Bytes + offsetsAt + 4 * e);
      if (end < begin || end > textBytes)
        return fileError(Name, offsetsAt + 4 * e,
                         "dictionary entry " + llvm::Twine(e) + " of " + label + " ends at " +
                             llvm::Twine(end) + ", outside [" + llvm::Twine(begin) + ", " +
                             llvm::Twine(textBytes) + "]");
      llvm::StringRef value(text + begin, end - begin);
      if (!seen.insert(value).second)
        return fileError(Name, Pos + begin,
                         "dictionary entry " + llvm::Twine(e) + " of " + label +
                             " repeats the value '" + value + "'");
      column.Dictionary.push_back(value);
      begin = end;
    }
    if (begin != textBytes)
      return fileError(Name, entriesAt + 4, label + " declares " + llvm::Twine(textBytes) +
                                                " bytes of dictionary text but its entries use " +
                                                llvm::Twine(begin));
    Pos += textBytes;
    if (llvm::Error err = padding("the dictionary of " + label))
      return err;
    column.ValuesAt = Pos;
    if (llvm::Error err = need(column.CodeSize * Table.Rows, "the codes of " + label))
      return err;
    for (uint64_t row = 0; row < Table.Rows; ++row) {
      const uint8_t *p = Bytes + Pos + column.CodeSize * row;
      uint32_t code = column.CodeSize == 2 ? endian::read16le(p) : endian::read32le(p);
      if (code >= entries)
        return fileError(Name, Pos + column.CodeSize * row,
                         "row " + llvm::Twine(row) + " of " + label + " has code " +
                             llvm::Twine(code) + " but the dictionary has " +
                             llvm::Twine(entries) + " entries");
    }
    Pos += column.CodeSize * Table.Rows;
    if (llvm::Error err = padding("the codes of " + label))
      return err;
    Table.Columns.push_back(std::move(column));
    return llvm::Error::success();
  }

  MetadataTable &Table;
  llvm::StringRef Name;
  const uint8_t *Bytes;
  uint64_t Size;
  uint64_t Pos = 0;
};

MetadataTable::MetadataTable(std::unique_ptr<llvm::MemoryBuffer> buffer)
    : Buffer(std::move(buffer)) {}

MetadataTable::~MetadataTable() = default;

llvm::StringRef MetadataTable::path() const { return Buffer->getBufferIdentifier(); }

llvm::Expected<std::unique_ptr<MetadataTable>>
MetadataTable::fromBuffer(std::unique_ptr<llvm::MemoryBuffer> buffer) {
  std::unique_ptr<MetadataTable> table(new MetadataTable(std::move(buffer)));
  if (llvm::Error err = Parser(*table).parse())
    return err;
  return table;
}

llvm::Expected<std::unique_ptr<MetadataTable>> MetadataTable::open(llvm::StringRef path) {
  llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> buffer = mapFile(path);
  if (!buffer)
    return buffer.takeError();
  return fromBuffer(std::move(*buffer));
}

uint64_t MetadataTable::documentHash(uint64_t row) const {
  return endian::read64le(Buffer->getBufferStart() + kHeaderSize + 8 * row);
}

std::optional<size_t> MetadataTable::findColumn(llvm::StringRef name) const {
  for (size_t c = 0; c < Columns.size(); ++c)
    if (Columns[c].Name == name)
      return c;
  return std::nullopt;
}

float MetadataTable::number(size_t column, uint64_t row) const {
  uint32_t bits = endian::read32le(Buffer->getBufferStart() + Columns[column].ValuesAt + 4 * row);
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

uint32_t MetadataTable::stringCode(size_t column, uint64_t row) const {
  const Column &c = Columns[column];
  const char *p = Buffer->getBufferStart() + c.ValuesAt + c.CodeSize * row;
  return c.CodeSize == 2 ? endian::read16le(p) : endian::read32le(p);
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

uint32_t MetadataBuilder::Column::intern(llvm::StringRef value) {
  auto [it, inserted] = CodeOf.try_emplace(value, static_cast<uint32_t>(Dictionary.size()));
  if (inserted)
    Dictionary.push_back(value.str());
  return it->second;
}

void MetadataBuilder::Column::padTo(uint64_t rows) {
  if (Kind == ColumnKind::Number) {
    Numbers.resize(rows, std::numeric_limits<float>::quiet_NaN());
    return;
  }
  if (Codes.size() < rows)
    Codes.resize(rows, intern(""));
}

void MetadataBuilder::addRow(uint64_t documentHash) { Hashes.push_back(documentHash); }

llvm::Expected<MetadataBuilder::Column *> MetadataBuilder::column(llvm::StringRef name,
                                                                  ColumnKind kind) {
  if (Hashes.empty())
    return makeError("metadata value for column '" + name + "' before the first row");
  if (name.empty() || name.size() > 0xffff)
    return makeError("a metadata column name must have 1 to 65535 bytes");
  auto [it, inserted] = ColumnIndex.try_emplace(name, Columns.size());
  if (inserted) {
    Columns.emplace_back();
    Columns.back().Name = name.str();
    Columns.back().Kind = kind;
  }
  Column &c = Columns[it->second];
  if (c.Kind != kind)
    return makeError("metadata column '" + name + "' holds " +
                     (c.Kind == ColumnKind::Number ? "numbers" : "strings") + ", not " +
                     (kind == ColumnKind::Number ? "numbers" : "strings"));
  c.padTo(Hashes.size() - 1); // earlier rows that never set this column
  return &c;
}

llvm::Error MetadataBuilder::setNumber(llvm::StringRef name, double value) {
  llvm::Expected<Column *> c = column(name, ColumnKind::Number);
  if (!c)
    return c.takeError();
  std::vector<float> &numbers = (*c)->Numbers;
  numbers.resize(Hashes.size());
  numbers.back() = static_cast<float>(value);
  return llvm::Error::success();
}

llvm::Error MetadataBuilder::setString(llvm::StringRef name, llvm::StringRef value) {
  llvm::Expected<Column *> c = column(name, ColumnKind::String);
  if (!c)
    return c.takeError();
  if ((*c)->Dictionary.size() == std::numeric_limits<uint32_t>::max() && !(*c)->CodeOf.count(value))
    return makeError("metadata column '" + name + "' has 2^32 distinct values");
  uint32_t code = (*c)->intern(value);
  (*c)->Codes.resize(Hashes.size());
  (*c)->Codes.back() = code;
  return llvm::Error::success();
}

namespace {
/// Little-endian serialization into a byte vector, with 8-byte alignment padding.
struct ByteWriter {
  std::vector<uint8_t> Bytes;
  void put(uint64_t value, unsigned size) {
    for (unsigned i = 0; i < size; ++i)
      Bytes.push_back(static_cast<uint8_t>(value >> (8 * i)));
  }
  void put(llvm::StringRef text) { Bytes.insert(Bytes.end(), text.bytes_begin(), text.bytes_end()); }
  void align(uint64_t base) {
    while ((base + Bytes.size()) % 8 != 0)
      Bytes.push_back(0);
  }
};
} // namespace

llvm::Expected<FileDigest> MetadataBuilder::write(llvm::StringRef path) {
  llvm::Expected<AtomicFile> file = AtomicFile::create(path);
  if (!file)
    return file.takeError();
  uint64_t rows = Hashes.size();
  ByteWriter out;
  out.put(llvm::StringRef(kMagic, sizeof kMagic));
  out.put(MetadataTable::Version, 4);
  out.put(Columns.size(), 4);
  out.put(rows, 8);
  for (uint64_t hash : Hashes)
    out.put(hash, 8);
  file->write(out.Bytes);

  for (Column &c : Columns) {
    c.padTo(rows);
    uint64_t base = file->bytesWritten();
    out.Bytes.clear();
    bool narrow = c.Dictionary.size() <= 65536;
    out.put(c.Kind == ColumnKind::Number ? kFloat32 : narrow ? kString16 : kString32, 1);
    out.put(0, 1);
    out.put(c.Name.size(), 2);
    out.put(0, 4);
    out.put(c.Name);
    out.align(base);
    if (c.Kind == ColumnKind::Number) {
      for (float value : c.Numbers) {
        uint32_t bits;
        std::memcpy(&bits, &value, sizeof bits);
        out.put(bits, 4);
      }
    } else {
      out.put(c.Dictionary.size(), 4);
      uint64_t textBytes = 0;
      for (const std::string &value : c.Dictionary)
        textBytes += value.size();
      if (textBytes > std::numeric_limits<uint32_t>::max())
        return fileError(path, "the values of metadata column '" + c.Name +
                                   "' exceed 4 GiB, the dictionary's limit");
      out.put(textBytes, 4);
      uint64_t end = 0;
      for (const std::string &value : c.Dictionary)
        out.put(end += value.size(), 4);
      for (const std::string &value : c.Dictionary)
        out.put(value);
      out.align(base);
      for (uint32_t code : c.Codes)
        out.put(code, narrow ? 2 : 4);
    }
    out.align(base);
    file->write(out.Bytes);
  }
  return file->commit();
}
