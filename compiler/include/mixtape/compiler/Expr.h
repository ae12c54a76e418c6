//===- Expr.h - the expression language inside recipe strings --*- C++ -*-===//
//
// Recipe values such as "0.95 med + 0.05 web", "warmup(20M, peak = 3e-4) then cosine",
// "overall_score >= 4 and domain == 'Medicine'" and "anneal[replay=r5]" are strings in
// one small expression language (grammar/expr.ebnf). The parser is context-free: it
// builds one generic tree and the semantic checks interpret it per key (a mixture, a
// schedule, a predicate, a quantity, a selector). Offsets are byte offsets into the
// expression text; StringLocation maps them into the recipe file.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/compiler/Diagnostics.h"
#include "mixtape/compiler/Quantity.h"

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mixtape {

struct TextRange {
  uint32_t Begin = 0, End = 0; // byte offsets in the expression text, [begin, end)
};

enum class ExprKind {
  Number,  ///< quantity literal: 3e-4, 20M, 1Mi tokens, 5%, 2 epochs
  String,  ///< 'Medicine' (single quotes: the TOML string already uses double quotes)
  Bool,    ///< true / false
  Ident,   ///< med, cosine, overall_score
  Call,    ///< f(arg, name = arg, ...)
  Select,  ///< stage[*] or stage[axis=label, ...]
  Member,  ///< web.val (operand 0 is the object, `Name` the member)
  List,    ///< [a, b]
  Dict,    ///< {1: 0.7, 3: 0.3}: operands alternate key, value
  Unary,   ///< not x, -x (a minus on a number literal is folded into the literal)
  Binary,  ///< see BinaryOp
};

enum class BinaryOp {
  Then,    ///< schedule sequencing:   warmup(...) then cosine(...)
  Arrow,   ///< mixture points:        a -> b -> c
  At,      ///< point position:        0.8 a + 0.2 b @ 100M
  Or, And,
  Eq, Ne, Lt, Le, Gt, Ge, In,
  Add, Sub,
  Mul,     ///< `0.95 med` (juxtaposition of a number and an operand) or `0.95 * med`
};

enum class UnaryOp { Not, Neg };

llvm::StringRef binaryOpSpelling(BinaryOp op); // "then", "->", "@", "or", "==", "+", ...

struct Expr {
  ExprKind Kind = ExprKind::Number;
  TextRange Range;          ///< the whole node
  TextRange NameRange;      ///< Ident/Call/Select/Member: the name token only

  Quantity Number;          ///< Number
  bool Boolean = false;     ///< Bool
  std::string Name;         ///< Ident/Call/Select callee or stage name/Member name; String contents
  mixtape::BinaryOp BinaryOp = mixtape::BinaryOp::Add;
  mixtape::UnaryOp UnaryOp = mixtape::UnaryOp::Not;

  /// Binary: {lhs, rhs}. Unary: {operand}. Call: arguments. List: items. Dict: k0, v0, k1, v1...
  /// Member: {object}.
  std::vector<std::unique_ptr<Expr>> Operands;
  /// Call: one entry per argument, empty for positional ones, with the name's range.
  std::vector<std::string> ArgNames;
  std::vector<TextRange> ArgNameRanges;

  /// Select: `[*]` sets SelectAll; otherwise (axis, label) pairs with their ranges.
  bool SelectAll = false;
  struct SelectorItem { std::string Axis, Label; TextRange AxisRange, LabelRange; };
  std::vector<SelectorItem> Selectors;

  const Expr &operand(size_t i) const { return *Operands[i]; }
  bool isBinary(mixtape::BinaryOp op) const { return Kind == ExprKind::Binary && BinaryOp == op; }
};

/// A diagnostic about an expression, in expression offsets. The parser reports
/// DiagCode::ExprSyntax; the interpreters of each context (mixture, schedule, predicate,
/// ...) report their own codes. The recipe loader maps ranges into the file.
struct ExprDiag {
  DiagCode Code = DiagCode::ExprSyntax;
  TextRange Range;
  std::string Message;     ///< e.g. "expected ')' to close this call"
  std::string Fixit;       ///< replacement text for `Range`, if an obvious one exists
  struct Note { TextRange Range; std::string Message; };
  std::vector<Note> Notes; ///< e.g. "did you mean 'cosine'?" or "call opened here"
  Severity severity() const { return defaultSeverity(Code); }
};
using ExprDiags = std::vector<ExprDiag>;

/// Append a diagnostic; the reference stays valid until the next append (for notes, fix-its).
ExprDiag &reportExpr(ExprDiags &diags, DiagCode code, TextRange range, std::string message);

struct ParseResult {
  std::unique_ptr<mixtape::Expr> Expr; ///< null when Errors is non-empty
  ExprDiags Errors;
};

/// Parse one expression (the whole text must be consumed). Never throws, never recurses
/// without bound: nesting deeper than kMaxExprDepth is an error.
ParseResult parseExpr(llvm::StringRef text);
constexpr unsigned kMaxExprDepth = 64;

/// Canonical spelling of a tree (for golden tests and error messages): fully parenthesized
/// binary operators, numbers in shortest round-trip form with their dimension.
std::string printExpr(const Expr &e);

} // namespace mixtape
