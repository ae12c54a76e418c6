//===- Metadata.h - per-document hashes and metadata columns ---*- C++ -*-===//
//
// "<prefix>.meta" holds one row per document: the document's hash (XXH3-64 of its token
// ids as little-endian uint32, so it does not depend on the stored dtype) and one value
// per column. Columns are numbers (float32, NaN when missing) or strings (dictionary-
// encoded: uint16 or uint32 codes into a table of distinct values; "" when missing).
// The byte layout is in docs/data-format.md; opening validates all of it.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/data/Manifest.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace llvm {
class MemoryBuffer;
} // namespace llvm

namespace mixtape::data {

enum class ColumnKind { Number, String };

class MetadataTable {
public:
  static constexpr uint32_t Version = 1;

  static llvm::Expected<std::unique_ptr<MetadataTable>> open(llvm::StringRef path);
  static llvm::Expected<std::unique_ptr<MetadataTable>>
  fromBuffer(std::unique_ptr<llvm::MemoryBuffer> buffer);
  ~MetadataTable();

  llvm::StringRef path() const;
  uint64_t numRows() const { return Rows; }
  uint64_t documentHash(uint64_t row) const;

  size_t numColumns() const { return Columns.size(); }
  llvm::StringRef columnName(size_t column) const { return Columns[column].Name; }
  ColumnKind columnKind(size_t column) const { return Columns[column].Kind; }
  std::optional<size_t> findColumn(llvm::StringRef name) const;

  /// Number columns: the value, NaN when missing.
  float number(size_t column, uint64_t row) const;
  /// String columns: the value's code, an index into dictionary(column).
  uint32_t stringCode(size_t column, uint64_t row) const;
  llvm::StringRef string(size_t column, uint64_t row) const {
    return Columns[column].Dictionary[stringCode(column, row)];
  }
  llvm::ArrayRef<llvm::StringRef> dictionary(size_t column) const {
    return Columns[column].Dictionary;
  }

private:
  struct Column {
    llvm::StringRef Name;
    ColumnKind Kind;
    unsigned CodeSize; ///< 2 or 4 for strings
    uint64_t ValuesAt; ///< byte offset of the values or codes
    std::vector<llvm::StringRef> Dictionary;
  };
  class Parser;

  explicit MetadataTable(std::unique_ptr<llvm::MemoryBuffer> buffer);

  std::unique_ptr<llvm::MemoryBuffer> Buffer;
  uint64_t Rows = 0;
  std::vector<Column> Columns;
};

/// Collects rows in memory (a few bytes per document and column) and writes the sidecar.
class MetadataBuilder {
public:
  /// Starts the next row.
  void addRow(uint64_t documentHash);
  uint64_t numRows() const { return Hashes.size(); }
  /// Set a value in the current row. A column's kind is fixed by its first value; rows
  /// that never set a column hold NaN or "".
  llvm::Error setNumber(llvm::StringRef column, double value);
  llvm::Error setString(llvm::StringRef column, llvm::StringRef value);

  /// Writes to a temporary file and renames it onto `path`.
  llvm::Expected<FileDigest> write(llvm::StringRef path);

private:
  struct Column {
    std::string Name;
    ColumnKind Kind;
    std::vector<float> Numbers;
    std::vector<uint32_t> Codes;
    std::vector<std::string> Dictionary;
    llvm::StringMap<uint32_t> CodeOf;

    uint32_t intern(llvm::StringRef value);
    /// Fills rows [size, rows) with the missing value.
    void padTo(uint64_t rows);
  };
  llvm::Expected<Column *> column(llvm::StringRef name, ColumnKind kind);

  std::vector<uint64_t> Hashes;
  std::vector<Column> Columns;
  llvm::StringMap<size_t> ColumnIndex;
};

} // namespace mixtape::data
