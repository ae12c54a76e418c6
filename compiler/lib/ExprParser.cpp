//===- ExprParser.cpp - lexer and parser of recipe expressions ------------===//
//
// A hand-written lexer and recursive-descent parser for grammar/expr.ebnf. One token of
// lookahead, no backtracking, no allocation per character: tokens are offsets into the
// text and only string literals are copied. The first error stops the parse.
//
//===----------------------------------------------------------------------===//

#include "mixtape/compiler/Expr.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"

#include <charconv>
#include <cmath>
#include <optional>

namespace mixtape {

llvm::StringRef binaryOpSpelling(BinaryOp op) {
  switch (op) {
  case BinaryOp::Then: return "then";
  case BinaryOp::Arrow: return "->";
  case BinaryOp::At: return "@";
  case BinaryOp::Or: return "or";
  case BinaryOp::And: return "and";
  case BinaryOp::Eq: return "==";
  case BinaryOp::Ne: return "!=";
  case BinaryOp::Lt: return "<";
  case BinaryOp::Le: return "<=";
  case BinaryOp::Gt: return ">";
  case BinaryOp::Ge: return ">=";
  case BinaryOp::In: return "in";
  case BinaryOp::Add: return "+";
  case BinaryOp::Sub: return "-";
  case BinaryOp::Mul: return "*";
  }
  return "?";
}

namespace {

/// Trees larger than this are refused, so that every recursive walk (destruction,
/// printing, interpretation) is bounded even for long left-associative chains.
constexpr unsigned kMaxExprNodes = 4096;

enum class Tok : uint8_t {
  End, Error, Number, String, Ident,
  KwThen, KwAnd, KwOr, KwNot, KwIn, KwTrue, KwFalse,
  LParen, RParen, LBracket, RBracket, LBrace, RBrace,
  Comma, Assign, Colon, Dot, Plus, Minus, Star, Arrow, At,
  EqEq, NotEq, Lt, Le, Gt, Ge,
};

struct Token {
  Tok kind = Tok::End;
  uint32_t begin = 0, end = 0;
  Quantity number;   // Number: value, Fraction dim for %, hasScale
  std::string text;  // String: the decoded contents
};

bool isIdentStart(char c) { return llvm::isAlpha(c) || c == '_'; }
bool isIdentChar(char c) { return llvm::isAlnum(c) || c == '_'; }

Tok keywordKind(llvm::StringRef word) {
  return llvm::StringSwitch<Tok>(word)
      .Case("then", Tok::KwThen)
      .Case("and", Tok::KwAnd)
      .Case("or", Tok::KwOr)
      .Case("not", Tok::KwNot)
      .Case("in", Tok::KwIn)
      .Case("true", Tok::KwTrue)
      .Case("false", Tok::KwFalse)
      .Default(Tok::Ident);
}

/// Turns text into tokens on demand. Errors are written to `error` and reported as one
/// Tok::Error token.
class Lexer {
public:
  explicit Lexer(llvm::StringRef text) : text(text) {}

  Token next(uint32_t &pos, ExprDiag &error) const {
    size_t n = text.size();
    while (pos < n && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n' ||
                       text[pos] == '\r'))
      ++pos;
    Token tok;
    tok.begin = tok.end = pos;
    if (pos >= n) return tok;
    char c = text[pos];
    if (llvm::isDigit(c)) return lexNumber(pos, error);
    if (isIdentStart(c)) return lexIdent(pos);
    if (c == '\'') return lexString(pos, error);
    auto punct = [&](Tok kind, uint32_t length) {
      tok.kind = kind;
      pos += length;
      tok.end = pos;
      return tok;
    };
    char d = pos + 1 < n ? text[pos + 1] : '\0';
    switch (c) {
    case '(': return punct(Tok::LParen, 1);
    case ')': return punct(Tok::RParen, 1);
    case '[': return punct(Tok::LBracket, 1);
    case ']': return punct(Tok::RBracket, 1);
    case '{': return punct(Tok::LBrace, 1);
    case '}': return punct(Tok::RBrace, 1);
    case ',': return punct(Tok::Comma, 1);
    case ':': return punct(Tok::Colon, 1);
    case '.': return punct(Tok::Dot, 1);
    case '+': return punct(Tok::Plus, 1);
    case '*': return punct(Tok::Star, 1);
    case '@': return punct(Tok::At, 1);
    case '-': return d == '>' ? punct(Tok::Arrow, 2) : punct(Tok::Minus, 1);
    case '=': return d == '=' ? punct(Tok::EqEq, 2) : punct(Tok::Assign, 1);
    case '<': return d == '=' ? punct(Tok::Le, 2) : punct(Tok::Lt, 1);
    case '>': return d == '=' ? punct(Tok::Ge, 2) : punct(Tok::Gt, 1);
    case '!':
      if (d == '=') return punct(Tok::NotEq, 2);
      return fail(pos, 1, "unexpected character '!'; negation is written 'not'", "not", error);
    case '"':
      return fail(pos, 1, "unexpected character '\"'; strings in expressions use single quotes",
                  "'", error);
    default: return unexpectedCharacter(pos, error);
    }
  }

private:
  Token fail(uint32_t &pos, uint32_t length, std::string message, std::string fixit,
             ExprDiag &error) const {
    Token tok;
    tok.kind = Tok::Error;
    tok.begin = pos;
    tok.end = pos + length;
    error = ExprDiag{};
    error.range = {tok.begin, tok.end};
    error.message = std::move(message);
    error.fixit = std::move(fixit);
    pos = tok.end;
    return tok;
  }

  Token unexpectedCharacter(uint32_t &pos, ExprDiag &error) const {
    auto byte = static_cast<unsigned char>(text[pos]);
    uint32_t length = byte >= 0xF0 && byte <= 0xF4 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC2 ? 2 : 1;
    if (byte >= 0xF5) length = 1;
    uint32_t codePoint = length == 1 ? byte : byte & (0x7F >> length);
    for (uint32_t i = 1; i < length; ++i) {
      if (pos + i >= text.size() || (static_cast<unsigned char>(text[pos + i]) & 0xC0) != 0x80) {
        length = 1;
        codePoint = byte;
        break;
      }
      codePoint = (codePoint << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3F);
    }
    if (length == 1 && byte >= 0x80)
      return fail(pos, 1, "unexpected byte 0x" + llvm::utohexstr(byte, /*LowerCase=*/false) +
                              " (the expression is not valid UTF-8)", "", error);
    if (codePoint == 0xA0)
      return fail(pos, length, "unexpected character U+00A0 (no-break space)", " ", error);
    if (codePoint < 0x20 || codePoint == 0x7F) {
      std::string hex = llvm::utohexstr(codePoint, /*LowerCase=*/false);
      return fail(pos, length, "unexpected character U+" + std::string(4 - hex.size(), '0') + hex,
                  "", error);
    }
    return fail(pos, length, "unexpected character '" + text.substr(pos, length).str() + "'", "",
                error);
  }

  Token lexIdent(uint32_t &pos) const {
    Token tok;
    tok.begin = pos;
    size_t n = text.size();
    while (pos < n && isIdentChar(text[pos])) ++pos;
    // `which-sources`: a '-' glued between two name characters joins the name; `a - b`
    // and `a-(b)` stay subtractions.
    while (pos + 1 < n && text[pos] == '-' && llvm::isAlnum(text[pos + 1])) {
      pos += 1;
      while (pos < n && isIdentChar(text[pos])) ++pos;
    }
    tok.end = pos;
    tok.kind = keywordKind(text.slice(tok.begin, tok.end));
    return tok;
  }

  Token lexNumber(uint32_t &pos, ExprDiag &error) const {
    size_t n = text.size();
    uint32_t begin = pos;
    auto digits = [&] {
      while (pos < n && llvm::isDigit(text[pos])) ++pos;
    };
    digits();
    if (pos + 1 < n && text[pos] == '.' && llvm::isDigit(text[pos + 1])) {
      ++pos;
      digits();
    }
    if (pos < n && (text[pos] == 'e' || text[pos] == 'E')) {
      uint32_t afterE = pos + 1;
      if (afterE < n && (text[afterE] == '+' || text[afterE] == '-')) ++afterE;
      if (afterE < n && llvm::isDigit(text[afterE])) {
        pos = afterE;
        digits();
      }
    }
    Token tok;
    tok.kind = Tok::Number;
    tok.begin = begin;
    double value = 0;
    auto parsed = std::from_chars(text.data() + begin, text.data() + pos, value);
    if (parsed.ec != std::errc() || !std::isfinite(value)) {
      uint32_t at = begin;
      return fail(at, pos - begin,
                  "number '" + text.slice(begin, pos).str() + "' is out of range", "", error);
    }
    tok.number.value = value;
    if (pos < n && text[pos] == '%') {
      ++pos;
      tok.number.value = value / 100;
      tok.number.dim = Dim::Fraction;
      tok.number.unitWritten = true;
    } else if (pos < n && isIdentStart(text[pos])) {
      uint32_t suffixBegin = pos;
      while (pos < n && isIdentChar(text[pos])) ++pos;
      llvm::StringRef suffix = text.slice(suffixBegin, pos);
      std::optional<double> scale = scaleSuffix(suffix);
      if (!scale) return badSuffix(suffixBegin, suffix, error);
      tok.number.value = value * *scale;
      tok.number.hasScale = true;
      if (!std::isfinite(tok.number.value)) {
        uint32_t at = begin;
        return fail(at, pos - begin,
                    "number '" + text.slice(begin, pos).str() + "' is out of range", "", error);
      }
    }
    tok.end = pos;
    return tok;
  }

  Token badSuffix(uint32_t suffixBegin, llvm::StringRef suffix, ExprDiag &error) const {
    uint32_t at = suffixBegin;
    auto length = static_cast<uint32_t>(suffix.size());
    if (unitWord(suffix))
      return fail(at, 0, "missing space between the number and '" + suffix.str() + "'", " ",
                  error);
    // "1Mtokens": a good suffix glued to a unit word.
    for (size_t split = 1; split <= 2 && split < suffix.size(); ++split)
      if (scaleSuffix(suffix.take_front(split)) && unitWord(suffix.drop_front(split))) {
        at += split;
        return fail(at, 0,
                    "missing space between '" + suffix.take_front(split).str() + "' and '" +
                        suffix.drop_front(split).str() + "'",
                    " ", error);
      }
    static const char *const kSuffixes[] = {"k", "M", "B", "G", "T", "Ki", "Mi", "Gi", "Ti"};
    Token tok = fail(at, length, "unknown scale suffix '" + suffix.str() + "'", "", error);
    for (const char *candidate : kSuffixes)
      if (suffix.equals_insensitive(candidate)) {
        error.fixit = candidate;
        error.notes.push_back({error.range, std::string("did you mean '") + candidate + "'" +
                                                (suffix == "m" ? " (10^6)?" : "?")});
        return tok;
      }
    error.notes.push_back(
        {error.range, "scale suffixes are k, M, B (or G), T for 10^3..10^12 and Ki, Mi, Gi, Ti "
                      "for 2^10..2^40"});
    return tok;
  }

  Token lexString(uint32_t &pos, ExprDiag &error) const {
    Token tok;
    tok.kind = Tok::String;
    tok.begin = pos;
    size_t n = text.size();
    uint32_t i = pos + 1;
    while (i < n && text[i] != '\'') {
      if (text[i] == '\\') {
        char escaped = i + 1 < n ? text[i + 1] : '\0';
        if (escaped != '\'' && escaped != '\\') {
          uint32_t at = i;
          return fail(at, i + 1 < n ? 2 : 1,
                      "unknown escape in string; only \\' and \\\\ are escapes", "", error);
        }
        tok.text += escaped;
        i += 2;
        continue;
      }
      tok.text += text[i];
      ++i;
    }
    if (i >= n) {
      uint32_t at = pos;
      Token bad = fail(at, 1, "unterminated string", "", error);
      pos = static_cast<uint32_t>(n);
      return bad;
    }
    pos = i + 1;
    tok.end = pos;
    return tok;
  }

  llvm::StringRef text;
};

class Parser {
public:
  explicit Parser(llvm::StringRef text) : text(text), lexer(text) { advance(); }

  ParseResult parse() {
    ParseResult result;
    if (cur.kind == Tok::End) {
      error({0, static_cast<uint32_t>(text.size())}, "empty expression");
    } else {
      std::unique_ptr<Expr> e = parseSequence();
      if (!failed && cur.kind != Tok::End) unexpectedAfter();
      if (!failed) result.expr = std::move(e);
    }
    if (failed) result.errors.push_back(std::move(diag));
    return result;
  }

private:
  using ExprPtr = std::unique_ptr<Expr>;

  // --- tokens -----------------------------------------------------------------------

  void advance() {
    prevBegin = cur.begin;
    prevEnd = cur.end;
    ExprDiag lexError;
    cur = lexer.next(pos, lexError);
    if (cur.kind == Tok::Error && !failed) {
      failed = true;
      diag = std::move(lexError);
    }
  }

  llvm::StringRef tokText(uint32_t begin, uint32_t end) const { return text.slice(begin, end); }

  /// How a token is named in a message: 'then', 'web', string, end of expression.
  std::string describeCur() const {
    if (cur.kind == Tok::End) return "end of expression";
    if (cur.kind == Tok::String) return "string";
    return quoted(tokText(cur.begin, cur.end));
  }
  std::string describePrev() const {
    if (prevBegin < text.size() && text[prevBegin] == '\'') return "string";
    return quoted(tokText(prevBegin, prevEnd));
  }
  static std::string quoted(llvm::StringRef s) {
    if (s.size() > 40) return "'" + s.take_front(37).str() + "...'";
    return "'" + s.str() + "'";
  }

  // --- errors -----------------------------------------------------------------------

  ExprDiag &error(TextRange range, std::string message) {
    if (!failed) {
      failed = true;
      diag = ExprDiag{};
      diag.range = range;
      diag.message = std::move(message);
    }
    return diag;
  }
  TextRange curRange() const { return {cur.begin, cur.end}; }

  void unexpectedAfter() {
    ExprDiag &d = error(curRange(), "unexpected " + describeCur() + " after " + describePrev());
    if (cur.kind == Tok::Assign) {
      d.message += "; did you mean '=='?";
      d.fixit = "==";
    } else if (cur.kind == Tok::Ident || cur.kind == Tok::Number || cur.kind == Tok::String ||
               cur.kind == Tok::LParen) {
      d.message += "; expected an operator";
    }
  }

  void expectedExpression() {
    if (failed) return;
    if (cur.kind == Tok::End)
      error(curRange(), "expected an expression after " + describePrev());
    else if (cur.kind == Tok::Dot)
      error(curRange(), "a number needs a digit before '.'").fixit = "0.";
    else
      error(curRange(), "unexpected " + describeCur() + "; expected an expression");
  }

  /// `closer` missing: "expected ')' to close call to 'warmup'", note at the opener.
  void expectedCloser(llvm::StringRef closer, const std::string &what, TextRange opener,
                      llvm::StringRef separator = ",") {
    if (failed) return;
    std::string message = cur.kind == Tok::End || separator.empty()
                              ? "expected '" + closer.str() + "' to close " + what
                              : "expected '" + separator.str() + "' or '" + closer.str() +
                                    "' in " + what + ", found " + describeCur();
    ExprDiag &d = error(curRange(), std::move(message));
    d.notes.push_back({opener, "'" + tokText(opener.begin, opener.end).str() + "' opened here"});
  }

  // --- nodes ------------------------------------------------------------------------

  ExprPtr node(ExprKind kind, TextRange range) {
    if (++nodeCount > kMaxExprNodes) {
      error(range, "expression is too long (more than " + std::to_string(kMaxExprNodes) +
                       " terms)");
      return nullptr;
    }
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->range = range;
    return e;
  }

  ExprPtr binary(BinaryOp op, ExprPtr lhs, ExprPtr rhs) {
    if (!lhs || !rhs) return nullptr;
    ExprPtr e = node(ExprKind::Binary, {lhs->range.begin, rhs->range.end});
    if (!e) return nullptr;
    e->binaryOp = op;
    e->operands.push_back(std::move(lhs));
    e->operands.push_back(std::move(rhs));
    return e;
  }

  /// Bounds recursion: every bracket, argument and prefix operator nests one level.
  struct Nesting {
    Parser &p;
    explicit Nesting(Parser &p) : p(p) { ++p.depth; }
    ~Nesting() { --p.depth; }
    bool tooDeep() {
      if (p.depth <= kMaxExprDepth) return false;
      p.error(p.curRange(), "expression nested too deeply (more than " +
                                std::to_string(kMaxExprDepth) + " levels)");
      return true;
    }
  };

  // --- grammar ----------------------------------------------------------------------

  // sequence = at_expr { ("then" | "->") at_expr }
  ExprPtr parseSequence() {
    Nesting nesting(*this);
    if (nesting.tooDeep()) return nullptr;
    ExprPtr lhs = parseAt();
    std::optional<Tok> chainOp;
    TextRange firstOp;
    while (!failed && (cur.kind == Tok::KwThen || cur.kind == Tok::Arrow)) {
      if (chainOp && *chainOp != cur.kind) {
        ExprDiag &d = error(curRange(), "cannot mix 'then' and '->' in one expression");
        d.notes.push_back({firstOp, "'" + tokText(firstOp.begin, firstOp.end).str() +
                                        "' used here; add parentheses to group"});
        return nullptr;
      }
      if (!chainOp) {
        chainOp = cur.kind;
        firstOp = curRange();
      }
      BinaryOp op = cur.kind == Tok::KwThen ? BinaryOp::Then : BinaryOp::Arrow;
      advance();
      lhs = binary(op, std::move(lhs), parseAt());
    }
    return failed ? nullptr : std::move(lhs);
  }

  // at_expr = or_expr [ "@" or_expr ]
  ExprPtr parseAt() {
    ExprPtr lhs = parseOr();
    if (failed || cur.kind != Tok::At) return lhs;
    advance();
    return binary(BinaryOp::At, std::move(lhs), parseOr());
  }

  ExprPtr parseOr() {
    ExprPtr lhs = parseAnd();
    while (!failed && cur.kind == Tok::KwOr) {
      advance();
      lhs = binary(BinaryOp::Or, std::move(lhs), parseAnd());
    }
    return lhs;
  }

  ExprPtr parseAnd() {
    ExprPtr lhs = parseNot();
    while (!failed && cur.kind == Tok::KwAnd) {
      advance();
      lhs = binary(BinaryOp::And, std::move(lhs), parseNot());
    }
    return lhs;
  }

  ExprPtr unary(UnaryOp op, uint32_t begin, ExprPtr operand) {
    if (!operand) return nullptr;
    ExprPtr e = node(ExprKind::Unary, {begin, operand->range.end});
    if (!e) return nullptr;
    e->unaryOp = op;
    e->operands.push_back(std::move(operand));
    return e;
  }

  // not_expr = "not" not_expr | comparison
  ExprPtr parseNot() {
    if (cur.kind != Tok::KwNot) return parseComparison();
    Nesting nesting(*this);
    if (nesting.tooDeep()) return nullptr;
    uint32_t begin = cur.begin;
    advance();
    return unary(UnaryOp::Not, begin, parseNot());
  }

  static std::optional<BinaryOp> comparisonOp(Tok kind) {
    switch (kind) {
    case Tok::EqEq: return BinaryOp::Eq;
    case Tok::NotEq: return BinaryOp::Ne;
    case Tok::Lt: return BinaryOp::Lt;
    case Tok::Le: return BinaryOp::Le;
    case Tok::Gt: return BinaryOp::Gt;
    case Tok::Ge: return BinaryOp::Ge;
    case Tok::KwIn: return BinaryOp::In;
    default: return std::nullopt;
    }
  }

  // comparison = sum [ comparison_op sum ]; `x not in l` is `not (x in l)`.
  ExprPtr parseComparison() {
    ExprPtr lhs = parseSum();
    if (failed) return nullptr;
    bool negated = false;
    uint32_t begin = lhs->range.begin;
    if (cur.kind == Tok::KwNot) {
      advance();
      if (cur.kind != Tok::KwIn) {
        error(curRange(), "expected 'in' after 'not'");
        return nullptr;
      }
      negated = true;
    }
    std::optional<BinaryOp> op = comparisonOp(cur.kind);
    if (!op) return lhs;
    TextRange opRange = curRange();
    advance();
    ExprPtr e = binary(*op, std::move(lhs), parseSum());
    if (!failed && comparisonOp(cur.kind)) {
      ExprDiag &d = error(curRange(), "comparisons cannot be chained; combine them with 'and'");
      d.notes.push_back({opRange, "first comparison here"});
      return nullptr;
    }
    return negated ? unary(UnaryOp::Not, begin, std::move(e)) : std::move(e);
  }

  // sum = product { ("+" | "-") product }
  ExprPtr parseSum() {
    ExprPtr lhs = parseProduct();
    while (!failed && (cur.kind == Tok::Plus || cur.kind == Tok::Minus)) {
      BinaryOp op = cur.kind == Tok::Plus ? BinaryOp::Add : BinaryOp::Sub;
      advance();
      lhs = binary(op, std::move(lhs), parseProduct());
    }
    return lhs;
  }

  // product = factor { "*" factor }
  ExprPtr parseProduct() {
    ExprPtr lhs = parseFactor();
    while (!failed && cur.kind == Tok::Star) {
      advance();
      lhs = binary(BinaryOp::Mul, std::move(lhs), parseFactor());
    }
    return lhs;
  }

  // factor = number_literal postfix   (juxtaposition: "0.95 med", "2 (a + b)")
  //        | unary
  ExprPtr parseFactor() {
    bool literal = cur.kind == Tok::Number || cur.kind == Tok::Minus;
    ExprPtr lhs = parseUnary();
    if (failed || !literal || lhs->kind != ExprKind::Number) return lhs;
    if (cur.kind != Tok::Ident && cur.kind != Tok::LParen) return lhs;
    return binary(BinaryOp::Mul, std::move(lhs), parsePostfix());
  }

  // unary = "-" unary | postfix; a minus on a number literal folds into it.
  ExprPtr parseUnary() {
    if (cur.kind != Tok::Minus) return parsePostfix();
    Nesting nesting(*this);
    if (nesting.tooDeep()) return nullptr;
    uint32_t begin = cur.begin;
    advance();
    bool literal = cur.kind == Tok::Number;
    ExprPtr operand = parseUnary();
    if (!operand) return nullptr;
    if (literal && operand->kind == ExprKind::Number) {
      operand->number.value = -operand->number.value;
      operand->range.begin = begin;
      return operand;
    }
    return unary(UnaryOp::Neg, begin, std::move(operand));
  }

  // postfix = primary { "(" arguments ")" | "[" selector "]" | "." identifier }
  ExprPtr parsePostfix() {
    ExprPtr e = parsePrimary();
    while (!failed && e->kind != ExprKind::Number) {
      if (cur.kind == Tok::LParen || cur.kind == Tok::LBracket) {
        if (e->kind != ExprKind::Ident) {
          error(curRange(), cur.kind == Tok::LParen ? "only a name can be called"
                                                     : "only a stage name can take a selector");
          return nullptr;
        }
        e = cur.kind == Tok::LParen ? parseCall(std::move(e)) : parseSelect(std::move(e));
      } else if (cur.kind == Tok::Dot) {
        advance();
        if (cur.kind != Tok::Ident) {
          error(curRange(), "expected a name after '.', found " + describeCur());
          return nullptr;
        }
        ExprPtr member = node(ExprKind::Member, {e->range.begin, cur.end});
        if (!member) return nullptr;
        member->nameRange = curRange();
        member->name = tokText(cur.begin, cur.end).str();
        member->operands.push_back(std::move(e));
        advance();
        e = std::move(member);
      } else {
        break;
      }
    }
    return failed ? nullptr : std::move(e);
  }

  // arguments = [ argument { "," argument } ]; argument = [ identifier "=" ] sequence
  ExprPtr parseCall(ExprPtr callee) {
    TextRange open = curRange();
    callee->kind = ExprKind::Call;
    advance();
    std::string what = "call to '" + callee->name + "'";
    if (cur.kind != Tok::RParen) {
      while (!failed) {
        std::string argName;
        TextRange argNameRange;
        bool startsWithName = cur.kind == Tok::Ident;
        TextRange first = curRange();
        ExprPtr arg = parseSequence();
        if (failed) return nullptr;
        if (cur.kind == Tok::Assign && startsWithName && arg->kind == ExprKind::Ident &&
            arg->range.begin == first.begin && arg->range.end == first.end) {
          argName = std::move(arg->name);
          argNameRange = first;
          advance();
          arg = parseSequence();
          if (failed) return nullptr;
        }
        callee->operands.push_back(std::move(arg));
        callee->argNames.push_back(std::move(argName));
        callee->argNameRanges.push_back(argNameRange);
        if (cur.kind != Tok::Comma) break;
        advance();
      }
    }
    if (cur.kind != Tok::RParen) {
      expectedCloser(")", what, open);
      return nullptr;
    }
    callee->range.end = cur.end;
    advance();
    return callee;
  }

  // selector = "*" | axis "=" label { "," axis "=" label }
  ExprPtr parseSelect(ExprPtr stage) {
    TextRange open = curRange();
    stage->kind = ExprKind::Select;
    std::string what = "selector of '" + stage->name + "'";
    advance();
    if (cur.kind == Tok::Star) {
      stage->selectAll = true;
      advance();
    } else {
      while (!failed) {
        if (cur.kind != Tok::Ident) {
          error(curRange(), "expected '*' or axis=label in " + what + ", found " + describeCur());
          return nullptr;
        }
        Expr::SelectorItem item;
        item.axis = tokText(cur.begin, cur.end).str();
        item.axisRange = curRange();
        advance();
        if (cur.kind != Tok::Assign) {
          error(curRange(), "expected '=' after axis '" + item.axis + "', found " + describeCur());
          return nullptr;
        }
        advance();
        if (cur.kind == Tok::Ident || cur.kind == Tok::Number) {
          item.label = tokText(cur.begin, cur.end).str();
        } else if (cur.kind == Tok::String) {
          item.label = cur.text;
        } else {
          if (!failed)
            error(curRange(), "expected a label after '" + item.axis + "=', found " +
                                  describeCur());
          return nullptr;
        }
        item.labelRange = curRange();
        advance();
        stage->selectors.push_back(std::move(item));
        if (cur.kind != Tok::Comma) break;
        advance();
      }
    }
    if (cur.kind != Tok::RBracket) {
      expectedCloser("]", what, open);
      return nullptr;
    }
    stage->range.end = cur.end;
    advance();
    return stage;
  }

  ExprPtr parsePrimary() {
    if (failed) return nullptr;
    switch (cur.kind) {
    case Tok::Number: return parseNumber();
    case Tok::String: {
      ExprPtr e = node(ExprKind::String, curRange());
      if (!e) return nullptr;
      e->name = std::move(cur.text);
      advance();
      return e;
    }
    case Tok::KwTrue:
    case Tok::KwFalse: {
      ExprPtr e = node(ExprKind::Bool, curRange());
      if (!e) return nullptr;
      e->boolean = cur.kind == Tok::KwTrue;
      advance();
      return e;
    }
    case Tok::Ident: {
      ExprPtr e = node(ExprKind::Ident, curRange());
      if (!e) return nullptr;
      e->nameRange = curRange();
      e->name = tokText(cur.begin, cur.end).str();
      advance();
      return e;
    }
    case Tok::LParen: {
      TextRange open = curRange();
      advance();
      ExprPtr e = parseSequence();
      if (failed) return nullptr;
      if (cur.kind != Tok::RParen) {
        expectedCloser(")", "'('", open, "");
        return nullptr;
      }
      advance();
      return e;
    }
    case Tok::LBracket: return parseList();
    case Tok::LBrace: return parseDict();
    default: expectedExpression(); return nullptr;
    }
  }

  // number = numeral [ unit ]
  ExprPtr parseNumber() {
    ExprPtr e = node(ExprKind::Number, curRange());
    if (!e) return nullptr;
    e->number = cur.number;
    advance();
    if (cur.kind == Tok::Ident) {
      if (std::optional<Dim> dim = unitWord(tokText(cur.begin, cur.end))) {
        if (e->number.dim == Dim::Fraction) {
          error(curRange(), "a percentage cannot have a unit");
          return nullptr;
        }
        e->number.dim = *dim;
        e->number.unitWritten = true;
        e->range.end = cur.end;
        advance();
      }
    }
    return e;
  }

  // list = "[" [ sequence { "," sequence } ] "]"
  ExprPtr parseList() {
    TextRange open = curRange();
    ExprPtr list = node(ExprKind::List, open);
    if (!list) return nullptr;
    advance();
    if (cur.kind != Tok::RBracket) {
      while (!failed) {
        ExprPtr item = parseSequence();
        if (failed) return nullptr;
        list->operands.push_back(std::move(item));
        if (cur.kind != Tok::Comma) break;
        advance();
      }
    }
    if (cur.kind != Tok::RBracket) {
      expectedCloser("]", "list", open);
      return nullptr;
    }
    list->range.end = cur.end;
    advance();
    return list;
  }

  // dict = "{" [ sequence ":" sequence { "," sequence ":" sequence } ] "}"
  ExprPtr parseDict() {
    TextRange open = curRange();
    ExprPtr dict = node(ExprKind::Dict, open);
    if (!dict) return nullptr;
    advance();
    if (cur.kind != Tok::RBrace) {
      while (!failed) {
        ExprPtr key = parseSequence();
        if (failed) return nullptr;
        if (cur.kind != Tok::Colon) {
          error(curRange(), "expected ':' after a key in '{...}', found " + describeCur());
          return nullptr;
        }
        advance();
        ExprPtr value = parseSequence();
        if (failed) return nullptr;
        dict->operands.push_back(std::move(key));
        dict->operands.push_back(std::move(value));
        if (cur.kind != Tok::Comma) break;
        advance();
      }
    }
    if (cur.kind != Tok::RBrace) {
      expectedCloser("}", "'{'", open);
      return nullptr;
    }
    dict->range.end = cur.end;
    advance();
    return dict;
  }

  llvm::StringRef text;
  Lexer lexer;
  uint32_t pos = 0;
  Token cur;
  uint32_t prevBegin = 0, prevEnd = 0;
  unsigned depth = 0;
  unsigned nodeCount = 0;
  bool failed = false;
  ExprDiag diag;
};

void print(std::string &out, const Expr &e) {
  auto list = [&](size_t from, llvm::StringRef separator) {
    for (size_t i = from; i < e.operands.size(); ++i) {
      if (i > from) out += separator;
      print(out, e.operand(i));
    }
  };
  switch (e.kind) {
  case ExprKind::Number: out += formatQuantity(e.number); return;
  case ExprKind::String: out += quoteString(e.name); return;
  case ExprKind::Bool: out += e.boolean ? "true" : "false"; return;
  case ExprKind::Ident: out += e.name; return;
  case ExprKind::Call:
    out += e.name;
    out += '(';
    for (size_t i = 0; i < e.operands.size(); ++i) {
      if (i) out += ", ";
      if (i < e.argNames.size() && !e.argNames[i].empty()) out += e.argNames[i] + " = ";
      print(out, e.operand(i));
    }
    out += ')';
    return;
  case ExprKind::Select:
    out += e.name;
    out += '[';
    if (e.selectAll) out += '*';
    for (size_t i = 0; i < e.selectors.size(); ++i) {
      if (i) out += ", ";
      out += e.selectors[i].axis + "=";
      // Labels written as strings print quoted unless they read back as a name or number.
      llvm::StringRef label = e.selectors[i].label;
      bool bare = !label.empty() && llvm::isAlnum(label.front()) &&
                  llvm::all_of(label, [](char c) { return isIdentChar(c) || c == '-' || c == '.'; });
      if (bare)
        out += label;
      else
        out += quoteString(label);
    }
    out += ']';
    return;
  case ExprKind::Member:
    print(out, e.operand(0));
    out += '.';
    out += e.name;
    return;
  case ExprKind::List:
    out += '[';
    list(0, ", ");
    out += ']';
    return;
  case ExprKind::Dict:
    out += '{';
    for (size_t i = 0; i + 1 < e.operands.size(); i += 2) {
      if (i) out += ", ";
      print(out, e.operand(i));
      out += ": ";
      print(out, e.operand(i + 1));
    }
    out += '}';
    return;
  case ExprKind::Unary:
    out += e.unaryOp == UnaryOp::Not ? "(not " : "(-";
    print(out, e.operand(0));
    out += ')';
    return;
  case ExprKind::Binary:
    out += '(';
    print(out, e.operand(0));
    out += ' ';
    out += binaryOpSpelling(e.binaryOp);
    out += ' ';
    print(out, e.operand(1));
    out += ')';
    return;
  }
}

} // namespace

ParseResult parseExpr(llvm::StringRef text) {
  if (text.size() >= UINT32_MAX) {
    ParseResult result;
    result.errors.push_back({DiagCode::ExprSyntax, {0, 0}, "expression is too long", "", {}});
    return result;
  }
  return Parser(text).parse();
}

std::string printExpr(const Expr &e) {
  std::string out;
  print(out, e);
  return out;
}

} // namespace mixtape

mixtape::ExprDiag &mixtape::reportExpr(ExprDiags &diags, DiagCode code, TextRange range, std::string message) {
  ExprDiag d;
  d.code = code;
  d.range = range;
  d.message = std::move(message);
  diags.push_back(std::move(d));
  return diags.back();
}
