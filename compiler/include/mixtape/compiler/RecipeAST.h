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
  std::string key;
  llvm::SMRange keyRange;
  std::unique_ptr<Value> value;
};

struct Value {
  enum Kind { String, Integer, Float, Bool, Array, Table, Other } kind = Other;
  std::string string;
  int64_t integer = 0;
  double real = 0;
  bool boolean = false;
  std::vector<std::unique_ptr<Value>> items; ///< Array
  std::vector<Field> fields;                 ///< Table, in source order
  llvm::SMRange range;                       ///< the value as written (a table: its header)
  StringLocation stringLocation;             ///< String: decoded offset -> file position

  bool isNumber() const { return kind == Integer || kind == Float; }
  double number() const { return kind == Integer ? static_cast<double>(integer) : real; }
  /// Field lookup in a table; null if absent or not a table.
  const Value *get(llvm::StringRef key) const;
  const Field *field(llvm::StringRef key) const;
  /// For diagnostics: "string", "integer", "table", ...
  llvm::StringRef kindName() const;
  /// Where offset i of this value's text lives (strings map through escapes; other values
  /// map every offset onto their whole range).
  const StringLocation &location() const { return stringLocation; }
};

llvm::StringRef valueKindName(Value::Kind kind);

/// Read and parse a recipe file into `sourceMgr` (which keeps the buffer alive for
/// diagnostics). Unreadable files, directories, non-UTF-8 and TOML syntax errors are
/// reported to `diags`; the result is null then.
std::unique_ptr<Value> parseRecipeFile(llvm::StringRef path, DiagnosticEngine &diags);
/// The same for text already in memory (tests, fuzzing); `name` names it in diagnostics.
std::unique_ptr<Value> parseRecipeText(llvm::StringRef text, llvm::StringRef name,
                                       DiagnosticEngine &diags);

} // namespace mixtape
