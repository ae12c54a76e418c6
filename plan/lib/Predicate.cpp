//===- Predicate.cpp - filters over per-document metadata -----------------===//
#include "mixtape/plan/Predicate.h"

#include "mixtape/support/Format.h"

#include "llvm/ADT/STLExtras.h"

#include <algorithm>
#include <charconv>
#include <cmath>

using namespace mixtape;
using namespace mixtape::plan;

uint32_t Predicate::add(Term term) {
  Terms.push_back(term);
  return static_cast<uint32_t>(Terms.size() - 1);
}

uint32_t Predicate::column(llvm::StringRef name) {
  auto it = llvm::find(ColumnNames, name);
  if (it != ColumnNames.end())
    return static_cast<uint32_t>(it - ColumnNames.begin());
  ColumnNames.push_back(name.str());
  return static_cast<uint32_t>(ColumnNames.size() - 1);
}

uint32_t Predicate::addConstant(bool value) { return add({value ? Op::True : Op::False}); }

uint32_t Predicate::addNot(uint32_t operand) {
  Term t{Op::Not};
  t.Lhs = operand;
  return add(t);
}

uint32_t Predicate::addLogical(Op op, uint32_t lhs, uint32_t rhs) {
  Term t{op};
  t.Lhs = lhs;
  t.Rhs = rhs;
  return add(t);
}

uint32_t Predicate::addCompare(Op op, llvm::StringRef name, double number) {
  Term t{op};
  t.Column = column(name);
  t.Number = number;
  return add(t);
}

uint32_t Predicate::addCompare(Op op, llvm::StringRef name, llvm::StringRef string) {
  Term t{op};
  t.Column = column(name);
  t.StringLiteral = true;
  t.StrBegin = static_cast<uint32_t>(Strings.size());
  t.StrCount = 1;
  Strings.push_back(string.str());
  return add(t);
}

uint32_t Predicate::addIn(llvm::StringRef name, std::vector<double> numbers, std::vector<std::string> strings) {
  // Sorted and unique: binary search when evaluating, and one canonical spelling.
  llvm::sort(numbers);
  numbers.erase(std::unique(numbers.begin(), numbers.end()), numbers.end());
  llvm::sort(strings);
  strings.erase(std::unique(strings.begin(), strings.end()), strings.end());
  Term t{Op::In};
  t.Column = column(name);
  t.NumBegin = static_cast<uint32_t>(Numbers.size());
  t.NumCount = static_cast<uint32_t>(numbers.size());
  t.StrBegin = static_cast<uint32_t>(Strings.size());
  t.StrCount = static_cast<uint32_t>(strings.size());
  Numbers.insert(Numbers.end(), numbers.begin(), numbers.end());
  Strings.insert(Strings.end(), strings.begin(), strings.end());
  return add(t);
}

template <typename ValueOf> bool Predicate::evalTerm(uint32_t index, const ValueOf &valueOf) const {
  const Term &t = Terms[index];
  switch (t.Operation) {
  case Op::True:
    return true;
  case Op::False:
    return false;
  case Op::And:
    return evalTerm(t.Lhs, valueOf) && evalTerm(t.Rhs, valueOf);
  case Op::Or:
    return evalTerm(t.Lhs, valueOf) || evalTerm(t.Rhs, valueOf);
  case Op::Not:
    return !evalTerm(t.Lhs, valueOf);
  default:
    break;
  }
  using Kind = MetadataValue::Kind;
  MetadataValue v = valueOf(t.Column, t.Operation == Op::In ? t.StrCount > 0 : t.StringLiteral);
  if (v.ValueKind == Kind::Number && std::isnan(v.Number))
    return false;
  if (t.Operation == Op::In) {
    if (v.ValueKind == Kind::Number)
      return std::binary_search(Numbers.begin() + t.NumBegin, Numbers.begin() + t.NumBegin + t.NumCount, v.Number);
    if (v.ValueKind == Kind::String)
      return std::binary_search(Strings.begin() + t.StrBegin, Strings.begin() + t.StrBegin + t.StrCount, v.String,
                                [](std::string_view a, std::string_view b) { return a < b; });
    return false;
  }
  if (t.StringLiteral) {
    if (v.ValueKind != Kind::String)
      return false;
    bool equal = v.String == std::string_view(Strings[t.StrBegin]);
    return t.Operation == Op::Eq ? equal : !equal;
  }
  if (v.ValueKind != Kind::Number)
    return false;
  switch (t.Operation) {
  case Op::Eq:
    return v.Number == t.Number;
  case Op::Ne:
    return v.Number != t.Number;
  case Op::Lt:
    return v.Number < t.Number;
  case Op::Le:
    return v.Number <= t.Number;
  case Op::Gt:
    return v.Number > t.Number;
  case Op::Ge:
    return v.Number >= t.Number;
  default:
    return false;
  }
}

bool Predicate::eval(const MetadataLookup &metadata) const {
  if (Terms.empty())
    return true;
  auto valueOf = [&](uint32_t column, bool wantString) {
    const std::string &name = ColumnNames[column];
    if (wantString) {
      if (std::optional<std::string_view> s = metadata.string(name))
        return MetadataValue::ofString(*s);
      if (std::optional<double> d = metadata.number(name))
        return MetadataValue::ofNumber(*d);
    } else {
      if (std::optional<double> d = metadata.number(name))
        return MetadataValue::ofNumber(*d);
      if (std::optional<std::string_view> s = metadata.string(name))
        return MetadataValue::ofString(*s);
    }
    return MetadataValue::missing();
  };
  return evalTerm(static_cast<uint32_t>(Terms.size() - 1), valueOf);
}

bool Predicate::eval(llvm::ArrayRef<MetadataValue> row) const {
  if (Terms.empty())
    return true;
  auto valueOf = [&](uint32_t column, bool) { return column < row.size() ? row[column] : MetadataValue::missing(); };
  return evalTerm(static_cast<uint32_t>(Terms.size() - 1), valueOf);
}

BoundPredicate Predicate::bind(llvm::ArrayRef<std::string> rowColumns) const {
  BoundPredicate bound;
  bound.Condition = *this;
  for (const std::string &name : ColumnNames) {
    auto it = llvm::find(rowColumns, name);
    bound.RowIndex.push_back(it == rowColumns.end() ? -1 : static_cast<int>(it - rowColumns.begin()));
  }
  return bound;
}

bool BoundPredicate::eval(llvm::ArrayRef<MetadataValue> row) const {
  if (Condition.Terms.empty())
    return true;
  auto valueOf = [&](uint32_t column, bool) {
    int at = RowIndex[column];
    return at >= 0 && static_cast<size_t>(at) < row.size() ? row[at] : MetadataValue::missing();
  };
  return Condition.evalTerm(static_cast<uint32_t>(Condition.Terms.size() - 1), valueOf);
}

void Predicate::print(std::string &out, uint32_t index) const {
  const Term &t = Terms[index];
  auto binary = [&](const char *op) {
    out += '(';
    print(out, t.Lhs);
    out += op;
    print(out, t.Rhs);
    out += ')';
  };
  auto comparison = [&](const char *op) {
    out += '(' + ColumnNames[t.Column] + op;
    out += t.StringLiteral ? quoteString(Strings[t.StrBegin]) : formatNumber(t.Number);
    out += ')';
  };
  switch (t.Operation) {
  case Op::True:
    out += "true";
    return;
  case Op::False:
    out += "false";
    return;
  case Op::And:
    return binary(" and ");
  case Op::Or:
    return binary(" or ");
  case Op::Not:
    out += "(not ";
    print(out, t.Lhs);
    out += ')';
    return;
  case Op::Eq:
    return comparison(" == ");
  case Op::Ne:
    return comparison(" != ");
  case Op::Lt:
    return comparison(" < ");
  case Op::Le:
    return comparison(" <= ");
  case Op::Gt:
    return comparison(" > ");
  case Op::Ge:
    return comparison(" >= ");
  case Op::In: {
    out += '(' + ColumnNames[t.Column] + " in [";
    bool first = true;
    for (uint32_t i = 0; i < t.NumCount; ++i, first = false)
      out += (first ? "" : ", ") + formatNumber(Numbers[t.NumBegin + i]);
    for (uint32_t i = 0; i < t.StrCount; ++i, first = false) {
      if (!first)
        out += ", ";
      out += quoteString(Strings[t.StrBegin + i]);
    }
    out += "])";
    return;
  }
  }
}

std::string Predicate::canonical() const {
  if (Terms.empty())
    return "true";
  std::string out;
  print(out, static_cast<uint32_t>(Terms.size() - 1));
  return out;
}

bool Predicate::operator==(const Predicate &o) const { return canonical() == o.canonical(); }

std::string ColumnValue::label() const {
  if (ValueKind == MetadataValue::Kind::String) {
    // Quoted only where the bare text could be another value's label (a number's, the
    // missing one's) or a quoted one, so labels are unique: they name streams and nodes.
    double asNumber;
    llvm::StringRef text = String;
    bool ambiguous = text == "(missing)" || text.startswith("'") || !text.getAsDouble(asNumber);
    return ambiguous ? quoteString(text) : String;
  }
  if (ValueKind == MetadataValue::Kind::Missing)
    return "(missing)";
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, static_cast<float>(Number));
  return std::string(buf, r.ptr);
}
