//===- Predicate.h - filters over per-document metadata ---------*- C++ -*-===//
//
// A stream's `where` keeps the documents whose metadata pass a condition:
// "overall_score >= 4 and domain == 'Medicine'", "source in ['pubmed', 'pmc']". The
// condition compiles to a small flat tree over numbered columns, so the data layer can
// test millions of documents without a string lookup per document: it fills one
// MetadataValue per column (in columnNames() order, or in its own order through bind())
// and calls eval.
//
// Semantics: a comparison is false when the document has no value for the column, or a
// value of the other kind (a string compared with a number); that holds for `!=` and
// `in` too. `not` inverts the result, so "not (x == 1)" keeps documents without x while
// "x != 1" drops them.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/compiler/Expr.h"

#include "llvm/ADT/ArrayRef.h"

#include <optional>
#include <tuple>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mixtape {

/// Per-document metadata by column name (the slow, general path).
struct MetadataLookup {
  virtual ~MetadataLookup() = default;
  virtual std::optional<double> number(std::string_view column) const = 0;
  virtual std::optional<std::string_view> string(std::string_view column) const = 0;
};

/// One metadata value of one document (the fast path).
struct MetadataValue {
  enum class Kind : uint8_t { Missing, Number, String };
  Kind kind = Kind::Missing;
  double number = 0;
  std::string_view string;

  static MetadataValue missing() { return {}; }
  static MetadataValue ofNumber(double v) { return {Kind::Number, v, {}}; }
  static MetadataValue ofString(std::string_view s) { return {Kind::String, 0, s}; }
};

/// A metadata value that owns its string: what an ablation unit grouped `by` a column keeps.
struct ColumnValue {
  MetadataValue::Kind kind = MetadataValue::Kind::Missing;
  double number = 0;
  std::string string;

  static ColumnValue of(const MetadataValue &v) { return {v.kind, v.number, std::string(v.string)}; }
  /// The same kind and value (a missing value matches a missing one).
  bool matches(const MetadataValue &v) const {
    return v.kind == kind && (kind != MetadataValue::Kind::Number || v.number == number) &&
           (kind != MetadataValue::Kind::String || v.string == string);
  }
  /// "filter", "4", "0.5" (metadata numbers are float32: the shortest text of the float);
  /// "(missing)" for documents without a value. A string that reads as a number, is
  /// "(missing)" or starts with a quote is quoted ('4', '(missing)'), so distinct values
  /// never share a label.
  std::string label() const;
  /// Missing first, then numbers ascending, then strings.
  bool operator<(const ColumnValue &o) const {
    return std::tie(kind, number, string) < std::tie(o.kind, o.number, o.string);
  }
};

class BoundPredicate;

class Predicate {
public:
  /// Every column reference as written, with its range (for unknown-column checks).
  const std::vector<std::pair<std::string, TextRange>> &columns() const { return columnRefs_; }
  /// The distinct columns, in order of first use: the row layout of eval(row).
  const std::vector<std::string> &columnNames() const { return columnNames_; }

  bool eval(const MetadataLookup &metadata) const;
  /// `row[i]` is the document's value of columnNames()[i]; a short row means missing values.
  bool eval(llvm::ArrayRef<MetadataValue> row) const;
  /// Evaluate on rows laid out as `rowColumns` (the data layer's own column order).
  /// Columns the rows lack are missing for every document.
  BoundPredicate bind(llvm::ArrayRef<std::string> rowColumns) const;

  /// Canonical text for plan hashing: fully parenthesized, the column first in every
  /// comparison, numbers in shortest form ("4.0" and "4" agree, "1k" is "1000", "5%" is
  /// "0.05"), `in` lists sorted and without duplicates.
  std::string canonical() const;

private:
  friend class BoundPredicate;
  friend struct PredicateCompiler;

  enum class Op : uint8_t { True, False, And, Or, Not, Eq, Ne, Lt, Le, Gt, Ge, In };
  struct Node {
    Op op = Op::True;
    bool stringLiteral = false; ///< Eq/Ne: compare with strings_[strBegin]
    uint32_t lhs = 0, rhs = 0;  ///< And/Or: children; Not: lhs
    uint32_t column = 0;        ///< comparisons: index into columnNames_
    double number = 0;          ///< numeric comparisons
    uint32_t numBegin = 0, numCount = 0; ///< In: sorted numbers_[numBegin, +numCount)
    uint32_t strBegin = 0, strCount = 0; ///< In: sorted strings_[strBegin, +strCount)
  };
  template <typename ValueOf> bool evalNode(uint32_t index, const ValueOf &valueOf) const;
  void print(std::string &out, uint32_t index) const;

  std::vector<Node> nodes_; ///< children before parents; the root is last
  std::vector<double> numbers_;
  std::vector<std::string> strings_;
  std::vector<std::string> columnNames_;
  std::vector<std::pair<std::string, TextRange>> columnRefs_;
};

/// A predicate with its columns mapped onto a row layout (see Predicate::bind).
class BoundPredicate {
public:
  bool eval(llvm::ArrayRef<MetadataValue> row) const;

private:
  friend class Predicate;
  Predicate predicate;
  std::vector<int> rowIndex; ///< per predicate column; -1 if the rows lack it
};

/// Compiles a condition. Reports DiagCode::Predicate for two columns or two values
/// compared, an ordering comparison with a string, `in` without a list of values, a
/// column or value where a condition is needed ("overall_score" alone).
std::optional<Predicate> interpretPredicate(const Expr &e, ExprDiags &diags);

} // namespace mixtape
