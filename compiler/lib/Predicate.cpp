//===- Predicate.cpp - filters over per-document metadata -----------------===//

#include "mixtape/compiler/Predicate.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace mixtape {

/// Turns an expression tree into Predicate nodes, reporting every problem it finds.
struct PredicateCompiler {
  using Op = Predicate::Op;
  Predicate p;
  ExprDiags &diags;

  void error(TextRange range, std::string message) {
    ExprDiag d;
    d.code = DiagCode::Predicate;
    d.range = range;
    d.message = std::move(message);
    diags.push_back(std::move(d));
  }

  uint32_t add(Predicate::Node node) {
    p.nodes_.push_back(node);
    return static_cast<uint32_t>(p.nodes_.size() - 1);
  }

  uint32_t column(const Expr &ident) {
    p.columnRefs_.emplace_back(ident.name, ident.nameRange);
    auto it = std::find(p.columnNames_.begin(), p.columnNames_.end(), ident.name);
    if (it != p.columnNames_.end()) return static_cast<uint32_t>(it - p.columnNames_.begin());
    p.columnNames_.push_back(ident.name);
    return static_cast<uint32_t>(p.columnNames_.size() - 1);
  }

  static bool isValue(const Expr &e) {
    return e.kind == ExprKind::Number || e.kind == ExprKind::String || e.kind == ExprKind::Bool;
  }

  static Op flipped(Op op) {
    switch (op) {
    case Op::Lt: return Op::Gt;
    case Op::Le: return Op::Ge;
    case Op::Gt: return Op::Lt;
    case Op::Ge: return Op::Le;
    default: return op;
    }
  }

  static std::optional<Op> comparison(BinaryOp op) {
    switch (op) {
    case BinaryOp::Eq: return Op::Eq;
    case BinaryOp::Ne: return Op::Ne;
    case BinaryOp::Lt: return Op::Lt;
    case BinaryOp::Le: return Op::Le;
    case BinaryOp::Gt: return Op::Gt;
    case BinaryOp::Ge: return Op::Ge;
    default: return std::nullopt;
    }
  }

  std::optional<uint32_t> compile(const Expr &e) {
    switch (e.kind) {
    case ExprKind::Bool:
      return add({e.boolean ? Op::True : Op::False});
    case ExprKind::Ident:
      error(e.range, "'" + e.name + "' is a column, not a condition; compare it with a value, "
                                    "as in '" + e.name + " >= 4'");
      return std::nullopt;
    case ExprKind::Unary:
      if (e.unaryOp == UnaryOp::Not) {
        std::optional<uint32_t> operand = compile(e.operand(0));
        if (!operand) return std::nullopt;
        Predicate::Node node{Op::Not};
        node.lhs = *operand;
        return add(node);
      }
      break;
    case ExprKind::Binary:
      if (e.binaryOp == BinaryOp::And || e.binaryOp == BinaryOp::Or) {
        std::optional<uint32_t> lhs = compile(e.operand(0));
        std::optional<uint32_t> rhs = compile(e.operand(1));
        if (!lhs || !rhs) return std::nullopt;
        Predicate::Node node{e.binaryOp == BinaryOp::And ? Op::And : Op::Or};
        node.lhs = *lhs;
        node.rhs = *rhs;
        return add(node);
      }
      if (e.binaryOp == BinaryOp::In) return compileIn(e);
      if (std::optional<Op> op = comparison(e.binaryOp)) return compileComparison(e, *op);
      break;
    default: break;
    }
    error(e.range, "expected a condition such as 'overall_score >= 4'");
    return std::nullopt;
  }

  std::optional<uint32_t> compileComparison(const Expr &e, Op op) {
    const Expr *col = &e.operand(0), *value = &e.operand(1);
    std::string spelling = binaryOpSpelling(e.binaryOp).str();
    if (col->kind == ExprKind::Ident && value->kind == ExprKind::Ident) {
      error(e.range, "cannot compare two columns ('" + col->name + "' and '" + value->name +
                         "'); compare a column with a value");
      return std::nullopt;
    }
    if (isValue(*col) && isValue(*value)) {
      error(e.range, "comparing two values is always true or always false; compare a column "
                     "with a value");
      return std::nullopt;
    }
    if (isValue(*col)) { // "4 <= overall_score" is "overall_score >= 4"
      std::swap(col, value);
      op = flipped(op);
    }
    if (col->kind != ExprKind::Ident) {
      error(col->range, "expected a column name");
      return std::nullopt;
    }
    if (!isValue(*value)) {
      error(value->range, "expected a number or a 'string' to compare '" + col->name + "' with");
      return std::nullopt;
    }
    if (value->kind == ExprKind::Bool) {
      error(value->range, "metadata values are numbers or strings, not true/false");
      return std::nullopt;
    }
    Predicate::Node node{op};
    node.column = column(*col);
    if (value->kind == ExprKind::String) {
      if (op != Op::Eq && op != Op::Ne) {
        error(e.range, "'" + spelling + "' compares numbers; a string can only be compared "
                       "with == or !=");
        return std::nullopt;
      }
      node.stringLiteral = true;
      node.strBegin = static_cast<uint32_t>(p.strings_.size());
      node.strCount = 1;
      p.strings_.push_back(value->name);
    } else {
      node.number = value->number.value;
    }
    return add(node);
  }

  std::optional<uint32_t> compileIn(const Expr &e) {
    const Expr &col = e.operand(0), &list = e.operand(1);
    if (col.kind != ExprKind::Ident) {
      error(col.range, "expected a column name before 'in'");
      return std::nullopt;
    }
    if (list.kind != ExprKind::List) {
      error(list.range, "'in' needs a list of values, such as ['pubmed', 'pmc']");
      return std::nullopt;
    }
    std::vector<double> numbers;
    std::vector<std::string> strings;
    bool ok = true;
    for (const auto &item : list.operands) {
      if (item->kind == ExprKind::Number) {
        numbers.push_back(item->number.value);
      } else if (item->kind == ExprKind::String) {
        strings.push_back(item->name);
      } else {
        error(item->range, "expected a number or a 'string' in the list");
        ok = false;
      }
    }
    if (!ok) return std::nullopt;
    // Sorted and unique: binary search when evaluating, and one canonical spelling.
    std::sort(numbers.begin(), numbers.end());
    numbers.erase(std::unique(numbers.begin(), numbers.end()), numbers.end());
    std::sort(strings.begin(), strings.end());
    strings.erase(std::unique(strings.begin(), strings.end()), strings.end());
    Predicate::Node node{Op::In};
    node.column = column(col);
    node.numBegin = static_cast<uint32_t>(p.numbers_.size());
    node.numCount = static_cast<uint32_t>(numbers.size());
    node.strBegin = static_cast<uint32_t>(p.strings_.size());
    node.strCount = static_cast<uint32_t>(strings.size());
    p.numbers_.insert(p.numbers_.end(), numbers.begin(), numbers.end());
    p.strings_.insert(p.strings_.end(), strings.begin(), strings.end());
    return add(node);
  }
};

std::optional<Predicate> interpretPredicate(const Expr &e, ExprDiags &diags) {
  size_t errorsBefore = diags.size();
  PredicateCompiler compiler{Predicate(), diags};
  std::optional<uint32_t> root = compiler.compile(e);
  if (!root || diags.size() != errorsBefore) return std::nullopt;
  return std::move(compiler.p);
}

template <typename ValueOf>
bool Predicate::evalNode(uint32_t index, const ValueOf &valueOf) const {
  const Node &n = nodes_[index];
  switch (n.op) {
  case Op::True: return true;
  case Op::False: return false;
  case Op::And: return evalNode(n.lhs, valueOf) && evalNode(n.rhs, valueOf);
  case Op::Or: return evalNode(n.lhs, valueOf) || evalNode(n.rhs, valueOf);
  case Op::Not: return !evalNode(n.lhs, valueOf);
  default: break;
  }
  MetadataValue v = valueOf(n.column, n.op == Op::In ? n.strCount > 0 : n.stringLiteral);
  if (v.kind == MetadataValue::Kind::Number && std::isnan(v.number)) return false;
  if (n.op == Op::In) {
    if (v.kind == MetadataValue::Kind::Number)
      return std::binary_search(numbers_.begin() + n.numBegin,
                                numbers_.begin() + n.numBegin + n.numCount, v.number);
    if (v.kind == MetadataValue::Kind::String)
      return std::binary_search(strings_.begin() + n.strBegin,
                                strings_.begin() + n.strBegin + n.strCount, v.string,
                                [](std::string_view a, std::string_view b) { return a < b; });
    return false;
  }
  if (n.stringLiteral) {
    if (v.kind != MetadataValue::Kind::String) return false;
    bool equal = v.string == std::string_view(strings_[n.strBegin]);
    return n.op == Op::Eq ? equal : !equal;
  }
  if (v.kind != MetadataValue::Kind::Number) return false;
  switch (n.op) {
  case Op::Eq: return v.number == n.number;
  case Op::Ne: return v.number != n.number;
  case Op::Lt: return v.number < n.number;
  case Op::Le: return v.number <= n.number;
  case Op::Gt: return v.number > n.number;
  case Op::Ge: return v.number >= n.number;
  default: return false;
  }
}

bool Predicate::eval(const MetadataLookup &metadata) const {
  if (nodes_.empty()) return true;
  auto valueOf = [&](uint32_t column, bool wantString) {
    const std::string &name = columnNames_[column];
    if (wantString) {
      if (std::optional<std::string_view> s = metadata.string(name))
        return MetadataValue::ofString(*s);
      if (std::optional<double> d = metadata.number(name)) return MetadataValue::ofNumber(*d);
    } else {
      if (std::optional<double> d = metadata.number(name)) return MetadataValue::ofNumber(*d);
      if (std::optional<std::string_view> s = metadata.string(name))
        return MetadataValue::ofString(*s);
    }
    return MetadataValue::missing();
  };
  return evalNode(static_cast<uint32_t>(nodes_.size() - 1), valueOf);
}

bool Predicate::eval(llvm::ArrayRef<MetadataValue> row) const {
  if (nodes_.empty()) return true;
  auto valueOf = [&](uint32_t column, bool) {
    return column < row.size() ? row[column] : MetadataValue::missing();
  };
  return evalNode(static_cast<uint32_t>(nodes_.size() - 1), valueOf);
}

BoundPredicate Predicate::bind(llvm::ArrayRef<std::string> rowColumns) const {
  BoundPredicate bound;
  bound.predicate = *this;
  for (const std::string &name : columnNames_) {
    auto it = std::find(rowColumns.begin(), rowColumns.end(), name);
    bound.rowIndex.push_back(it == rowColumns.end() ? -1 : static_cast<int>(it - rowColumns.begin()));
  }
  return bound;
}

bool BoundPredicate::eval(llvm::ArrayRef<MetadataValue> row) const {
  const Predicate &p = predicate;
  if (p.nodes_.empty()) return true;
  auto valueOf = [&](uint32_t column, bool) {
    int at = rowIndex[column];
    return at >= 0 && static_cast<size_t>(at) < row.size() ? row[at] : MetadataValue::missing();
  };
  return p.evalNode(static_cast<uint32_t>(p.nodes_.size() - 1), valueOf);
}

void Predicate::print(std::string &out, uint32_t index) const {
  const Node &n = nodes_[index];
  auto binary = [&](const char *op) {
    out += '(';
    print(out, n.lhs);
    out += op;
    print(out, n.rhs);
    out += ')';
  };
  auto comparison = [&](const char *op) {
    out += '(' + columnNames_[n.column] + op;
    if (n.stringLiteral)
      out += quoteString(strings_[n.strBegin]);
    else
      out += formatNumber(n.number);
    out += ')';
  };
  switch (n.op) {
  case Op::True: out += "true"; return;
  case Op::False: out += "false"; return;
  case Op::And: binary(" and "); return;
  case Op::Or: binary(" or "); return;
  case Op::Not:
    out += "(not ";
    print(out, n.lhs);
    out += ')';
    return;
  case Op::Eq: comparison(" == "); return;
  case Op::Ne: comparison(" != "); return;
  case Op::Lt: comparison(" < "); return;
  case Op::Le: comparison(" <= "); return;
  case Op::Gt: comparison(" > "); return;
  case Op::Ge: comparison(" >= "); return;
  case Op::In: {
    out += '(' + columnNames_[n.column] + " in [";
    bool first = true;
    for (uint32_t i = 0; i < n.numCount; ++i, first = false)
      out += (first ? "" : ", ") + formatNumber(numbers_[n.numBegin + i]);
    for (uint32_t i = 0; i < n.strCount; ++i, first = false) {
      if (!first) out += ", ";
      out += quoteString(strings_[n.strBegin + i]);
    }
    out += "])";
    return;
  }
  }
}

std::string ColumnValue::label() const {
  if (kind == MetadataValue::Kind::String) {
    // Quoted only where the bare text could be another value's label (a number's, the
    // missing one's) or a quoted one, so labels are unique: they name streams and nodes.
    double asNumber;
    llvm::StringRef text = string;
    bool ambiguous = text == "(missing)" || text.startswith("'") || !text.getAsDouble(asNumber);
    return ambiguous ? quoteString(text) : string;
  }
  if (kind == MetadataValue::Kind::Missing)
    return "(missing)";
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, static_cast<float>(number));
  return std::string(buf, r.ptr);
}

std::string Predicate::canonical() const {
  if (nodes_.empty()) return "true";
  std::string out;
  print(out, static_cast<uint32_t>(nodes_.size() - 1));
  return out;
}

} // namespace mixtape
