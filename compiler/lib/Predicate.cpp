//===- Predicate.cpp - a stream's `where`, interpreted --------------------===//

#include "mixtape/compiler/Predicate.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace mixtape {

/// Turns an expression tree into Predicate nodes, reporting every problem it finds.
struct PredicateCompiler {
  using Op = plan::Predicate::Op;
  plan::Predicate P;
  ExprDiags &Diags;

  void error(TextRange range, std::string message) {
    ExprDiag d;
    d.Code = DiagCode::Predicate;
    d.Range = range;
    d.Message = std::move(message);
    Diags.push_back(std::move(d));
  }

  static bool isValue(const Expr &e) {
    return e.Kind == ExprKind::Number || e.Kind == ExprKind::String || e.Kind == ExprKind::Bool;
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
    switch (e.Kind) {
    case ExprKind::Bool:
      return P.addConstant(e.Boolean);
    case ExprKind::Ident:
      error(e.Range, "'" + e.Name + "' is a column, not a condition; compare it with a value, "
                                    "as in '" + e.Name + " >= 4'");
      return std::nullopt;
    case ExprKind::Unary:
      if (e.UnaryOp == UnaryOp::Not) {
        std::optional<uint32_t> operand = compile(e.operand(0));
        if (!operand) return std::nullopt;
        return P.addNot(*operand);
      }
      break;
    case ExprKind::Binary:
      if (e.BinaryOp == BinaryOp::And || e.BinaryOp == BinaryOp::Or) {
        std::optional<uint32_t> lhs = compile(e.operand(0));
        std::optional<uint32_t> rhs = compile(e.operand(1));
        if (!lhs || !rhs) return std::nullopt;
        return P.addLogical(e.BinaryOp == BinaryOp::And ? Op::And : Op::Or, *lhs, *rhs);
      }
      if (e.BinaryOp == BinaryOp::In) return compileIn(e);
      if (std::optional<Op> op = comparison(e.BinaryOp)) return compileComparison(e, *op);
      break;
    default: break;
    }
    error(e.Range, "expected a condition such as 'overall_score >= 4'");
    return std::nullopt;
  }

  std::optional<uint32_t> compileComparison(const Expr &e, Op op) {
    const Expr *col = &e.operand(0), *value = &e.operand(1);
    std::string spelling = binaryOpSpelling(e.BinaryOp).str();
    if (col->Kind == ExprKind::Ident && value->Kind == ExprKind::Ident) {
      error(e.Range, "cannot compare two columns ('" + col->Name + "' and '" + value->Name +
                         "'); compare a column with a value");
      return std::nullopt;
    }
    if (isValue(*col) && isValue(*value)) {
      error(e.Range, "comparing two values is always true or always false; compare a column "
                     "with a value");
      return std::nullopt;
    }
    if (isValue(*col)) { // "4 <= overall_score" is "overall_score >= 4"
      std::swap(col, value);
      op = flipped(op);
    }
    if (col->Kind != ExprKind::Ident) {
      error(col->Range, "expected a column name");
      return std::nullopt;
    }
    if (!isValue(*value)) {
      error(value->Range, "expected a number or a 'string' to compare '" + col->Name + "' with");
      return std::nullopt;
    }
    if (value->Kind == ExprKind::Bool) {
      error(value->Range, "metadata values are numbers or strings, not true/false");
      return std::nullopt;
    }
    if (value->Kind == ExprKind::String) {
      if (op != Op::Eq && op != Op::Ne) {
        error(e.Range, "'" + spelling + "' compares numbers; a string can only be compared "
                       "with == or !=");
        return std::nullopt;
      }
      return P.addCompare(op, col->Name, llvm::StringRef(value->Name));
    }
    return P.addCompare(op, col->Name, value->Number.Value);
  }

  std::optional<uint32_t> compileIn(const Expr &e) {
    const Expr &col = e.operand(0), &list = e.operand(1);
    if (col.Kind != ExprKind::Ident) {
      error(col.Range, "expected a column name before 'in'");
      return std::nullopt;
    }
    if (list.Kind != ExprKind::List) {
      error(list.Range, "'in' needs a list of values, such as ['pubmed', 'pmc']");
      return std::nullopt;
    }
    std::vector<double> numbers;
    std::vector<std::string> strings;
    bool ok = true;
    for (const auto &item : list.Operands) {
      if (item->Kind == ExprKind::Number) {
        numbers.push_back(item->Number.Value);
      } else if (item->Kind == ExprKind::String) {
        strings.push_back(item->Name);
      } else {
        error(item->Range, "expected a number or a 'string' in the list");
        ok = false;
      }
    }
    if (!ok) return std::nullopt;
    return P.addIn(col.Name, std::move(numbers), std::move(strings));
  }
};

std::optional<plan::Predicate> interpretPredicate(const Expr &e, ExprDiags &diags) {
  size_t errorsBefore = diags.size();
  PredicateCompiler compiler{plan::Predicate(), diags};
  std::optional<uint32_t> root = compiler.compile(e);
  if (!root || diags.size() != errorsBefore) return std::nullopt;
  return std::move(compiler.P);
}

} // namespace mixtape
