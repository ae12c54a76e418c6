//===- Predicate.cpp - a stream's `where`, interpreted --------------------===//

#include "mixtape/compiler/Predicate.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace mixtape {

/// Turns an expression tree into Predicate nodes, reporting every problem it finds.
struct PredicateCompiler {
  using Op = plan::Predicate::Op;
  plan::Predicate p;
  ExprDiags &diags;

  void error(TextRange range, std::string message) {
    ExprDiag d;
    d.code = DiagCode::Predicate;
    d.range = range;
    d.message = std::move(message);
    diags.push_back(std::move(d));
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
      return p.addConstant(e.boolean);
    case ExprKind::Ident:
      error(e.range, "'" + e.name + "' is a column, not a condition; compare it with a value, "
                                    "as in '" + e.name + " >= 4'");
      return std::nullopt;
    case ExprKind::Unary:
      if (e.unaryOp == UnaryOp::Not) {
        std::optional<uint32_t> operand = compile(e.operand(0));
        if (!operand) return std::nullopt;
        return p.addNot(*operand);
      }
      break;
    case ExprKind::Binary:
      if (e.binaryOp == BinaryOp::And || e.binaryOp == BinaryOp::Or) {
        std::optional<uint32_t> lhs = compile(e.operand(0));
        std::optional<uint32_t> rhs = compile(e.operand(1));
        if (!lhs || !rhs) return std::nullopt;
        return p.addLogical(e.binaryOp == BinaryOp::And ? Op::And : Op::Or, *lhs, *rhs);
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
    if (value->kind == ExprKind::String) {
      if (op != Op::Eq && op != Op::Ne) {
        error(e.range, "'" + spelling + "' compares numbers; a string can only be compared "
                       "with == or !=");
        return std::nullopt;
      }
      return p.addCompare(op, col->name, llvm::StringRef(value->name));
    }
    return p.addCompare(op, col->name, value->number.value);
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
    return p.addIn(col.name, std::move(numbers), std::move(strings));
  }
};

std::optional<plan::Predicate> interpretPredicate(const Expr &e, ExprDiags &diags) {
  size_t errorsBefore = diags.size();
  PredicateCompiler compiler{plan::Predicate(), diags};
  std::optional<uint32_t> root = compiler.compile(e);
  if (!root || diags.size() != errorsBefore) return std::nullopt;
  return std::move(compiler.p);
}

} // namespace mixtape
