//===- Predicate.h - filters over per-document metadata ---------*- C++ -*-===//
//
// A stream's `where` keeps the documents whose metadata pass a condition:
// "overall_score >= 4 and domain == 'Medicine'", "source in ['pubmed', 'pmc']". The
// compiler builds it from the expression (compiler/Predicate.h); the plan carries it as
// structure (docs/plan-format.md); the data layer evaluates it over millions of documents
// without a string lookup per document: it fills one MetadataValue per column (in
// columnNames() order, or in its own order through bind()) and calls eval.
//
// Semantics: a comparison is false when the document has no value for the column, or a
// value of the other kind (a string compared with a number); that holds for `!=` and
// `in` too. `not` inverts the result, so "not (x == 1)" keeps documents without x while
// "x != 1" drops them.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace mixtape::plan {

/// Per-document metadata by column name (the slow, general path).
struct MetadataLookup {
  virtual ~MetadataLookup() = default;
  virtual std::optional<double> number(std::string_view column) const = 0;
  virtual std::optional<std::string_view> string(std::string_view column) const = 0;
};

/// One metadata value of one document (the fast path).
struct MetadataValue {
  enum class Kind : uint8_t { Missing, Number, String };
  Kind ValueKind = Kind::Missing;
  double Number = 0;
  std::string_view String;

  static MetadataValue missing() { return {}; }
  static MetadataValue ofNumber(double v) { return {Kind::Number, v, {}}; }
  static MetadataValue ofString(std::string_view s) { return {Kind::String, 0, s}; }
};

/// A metadata value that owns its string: what an ablation unit grouped `by` a column keeps.
struct ColumnValue {
  MetadataValue::Kind ValueKind = MetadataValue::Kind::Missing;
  double Number = 0;
  std::string String;

  static ColumnValue of(const MetadataValue &v) { return {v.ValueKind, v.Number, std::string(v.String)}; }
  /// The same kind and value (a missing value matches a missing one).
  bool matches(const MetadataValue &v) const {
    return v.ValueKind == ValueKind && (ValueKind != MetadataValue::Kind::Number || v.Number == Number) &&
           (ValueKind != MetadataValue::Kind::String || v.String == String);
  }
  /// "filter", "4", "0.5" (metadata numbers are float32: the shortest text of the float);
  /// "(missing)" for documents without a value. A string that reads as a number, is
  /// "(missing)" or starts with a quote is quoted ('4', '(missing)'), so distinct values
  /// never share a label.
  std::string label() const;
  /// Missing first, then numbers ascending, then strings.
  bool operator<(const ColumnValue &o) const {
    return std::tie(ValueKind, Number, String) < std::tie(o.ValueKind, o.Number, o.String);
  }
  bool operator==(const ColumnValue &o) const {
    return std::tie(ValueKind, Number, String) == std::tie(o.ValueKind, o.Number, o.String);
  }
};

/// The column every document has: its tokens, without its end-of-text token (docs/language.md).
inline constexpr llvm::StringLiteral kLengthColumn = "length";

class BoundPredicate;

class Predicate {
public:
  enum class Op : uint8_t { True, False, And, Or, Not, Eq, Ne, Lt, Le, Gt, Ge, In };

  /// One node of the tree; children come before their parents and the root is last.
  struct Term {
    Op Operation = Op::True;
    bool StringLiteral = false;          ///< Eq/Ne: compare with Strings[StrBegin]
    uint32_t Lhs = 0, Rhs = 0;           ///< And/Or: children; Not: Lhs
    uint32_t Column = 0;                 ///< comparisons: index into columnNames()
    double Number = 0;                   ///< numeric comparisons
    uint32_t NumBegin = 0, NumCount = 0; ///< In: sorted numbers()[NumBegin, +NumCount)
    uint32_t StrBegin = 0, StrCount = 0; ///< In: sorted strings()[StrBegin, +StrCount)
  };

  // Building, children first: each returns the index of the term it added; the last one
  // added is the root.
  uint32_t addConstant(bool value);
  uint32_t addNot(uint32_t operand);
  /// Op::And or Op::Or.
  uint32_t addLogical(Op op, uint32_t lhs, uint32_t rhs);
  /// Eq, Ne, Lt, Le, Gt or Ge with a number.
  uint32_t addCompare(Op op, llvm::StringRef column, double number);
  /// Eq or Ne with a string.
  uint32_t addCompare(Op op, llvm::StringRef column, llvm::StringRef string);
  /// `column in [...]`: the lists are sorted and made unique.
  uint32_t addIn(llvm::StringRef column, std::vector<double> numbers, std::vector<std::string> strings);

  bool empty() const { return Terms.empty(); }
  const std::vector<Term> &terms() const { return Terms; }
  const std::vector<double> &numbers() const { return Numbers; }
  const std::vector<std::string> &strings() const { return Strings; }
  /// The distinct columns, in order of first use: the row layout of eval(row).
  const std::vector<std::string> &columnNames() const { return ColumnNames; }

  bool eval(const MetadataLookup &metadata) const;
  /// `row[i]` is the document's value of columnNames()[i]; a short row means missing values.
  bool eval(llvm::ArrayRef<MetadataValue> row) const;
  /// Evaluate on rows laid out as `rowColumns` (the data layer's own column order).
  /// Columns the rows lack are missing for every document.
  BoundPredicate bind(llvm::ArrayRef<std::string> rowColumns) const;

  /// Canonical text for people: fully parenthesized, the column first in every
  /// comparison, numbers in shortest form, `in` lists sorted and without duplicates.
  std::string canonical() const;

  bool operator==(const Predicate &o) const;

private:
  friend class BoundPredicate;

  uint32_t add(Term term);
  uint32_t column(llvm::StringRef name);
  template <typename ValueOf> bool evalTerm(uint32_t index, const ValueOf &valueOf) const;
  void print(std::string &out, uint32_t index) const;

  std::vector<Term> Terms;
  std::vector<double> Numbers;
  std::vector<std::string> Strings;
  std::vector<std::string> ColumnNames;
};

/// True when no document passes every filter of `a` and every filter of `b` (each list a
/// conjunction, as a derived stream's filters and its ancestors'), proven from the
/// comparisons: "x <= 2" against "x >= 4", "lang == 'de'" against "lang in ['en', 'fr']".
/// False means not proven: `not` is not reasoned about, and `or` splits into at most a few
/// hundred cases.
bool provablyDisjoint(llvm::ArrayRef<Predicate> a, llvm::ArrayRef<Predicate> b);

/// A predicate with its columns mapped onto a row layout (see Predicate::bind).
class BoundPredicate {
public:
  bool eval(llvm::ArrayRef<MetadataValue> row) const;

private:
  friend class Predicate;
  Predicate Condition;
  std::vector<int> RowIndex; ///< per predicate column; -1 if the rows lack it
};

} // namespace mixtape::plan
