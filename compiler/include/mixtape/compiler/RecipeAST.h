//===- RecipeAST.h - a recipe's TOML document with source ranges -*- C++ -*-===//
//
// The first phase: TOML text -> a tree of values, each with the range it came from and,
// for strings, a map from decoded offsets to file positions (so diagnostics inside
// expression strings point at the exact token). Tables keep their keys in source order.
// Nothing here knows what the keys mean; Schema.h and Sema.h do.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/compiler/Diagnostics.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mixtape {

struct Value;

struct Field {
  std::string Key;
  llvm::SMRange KeyRange;
  std::unique_ptr<mixtape::Value> Value;
};

enum class ValueKind { String, Integer, Float, Bool, Array, Table, Other };

struct Value {
  ValueKind Kind = ValueKind::Other;
  std::string String;
  int64_t Integer = 0;
  double Real = 0;
  bool Boolean = false;
  std::vector<std::unique_ptr<Value>> Items; ///< Array
  std::vector<Field> Fields;                 ///< Table, in source order
  llvm::SMRange Range;                       ///< the value as written (a table: its header)
  mixtape::StringLocation StringLocation;    ///< String: decoded offset -> file position

  bool isNumber() const { return Kind == ValueKind::Integer || Kind == ValueKind::Float; }
  double number() const { return Kind == ValueKind::Integer ? static_cast<double>(Integer) : Real; }
  /// Field lookup in a table; null if absent or not a table.
  const Value *get(llvm::StringRef key) const;
  const Field *field(llvm::StringRef key) const;
  /// For diagnostics: "string", "integer", "table", ...
  llvm::StringRef kindName() const;
  /// Where offset i of this value's text lives (strings map through escapes; other values
  /// map every offset onto their whole range).
  const mixtape::StringLocation &location() const { return StringLocation; }
};

llvm::StringRef valueKindName(ValueKind kind);

/// The largest recipe file read: recipes are written by hand, and a bound keeps a wrong
/// argument (a disk image, /dev/zero) from being read for minutes or forever.
constexpr uint64_t kMaxRecipeBytes = 16u << 20;

/// Read and parse a recipe file into `sourceMgr` (which keeps the buffer alive for
/// diagnostics). Unreadable files, anything but a regular file, files over kMaxRecipeBytes,
/// non-UTF-8 and TOML syntax errors are reported to `diags`; the result is null then.
std::unique_ptr<Value> parseRecipeFile(llvm::StringRef path, DiagnosticEngine &diags);
/// The same for text already in memory (tests, fuzzing); `name` names it in diagnostics.
std::unique_ptr<Value> parseRecipeText(llvm::StringRef text, llvm::StringRef name,
                                       DiagnosticEngine &diags);

} // namespace mixtape
