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
  Tok Kind = Tok::End;
  uint32_t Begin = 0, End = 0;
  Quantity Number;   // Number: Value, Fraction Dim for %, HasScale
  std::string Text;  // String: the decoded contents
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
  explicit Lexer(llvm::StringRef text) : Text(text) {}

  Token next(uint32_t &pos, ExprDiag &error) const {
    size_t n = Text.size();
    while (pos < n && (Text[pos] == ' ' || Text[pos] == '\t' || Text[pos] == '\n' ||
                       Text[pos] == '\r'))
      ++pos;
    Token tok;
    tok.Begin = tok.End = pos;
    if (pos >= n) return tok;
    char c = Text[pos];
    if (llvm::isDigit(c)) return lexNumber(pos, error);
    if (isIdentStart(c)) return lexIdent(pos);
    if (c == '\'') return lexString(pos, error);
    auto punct = [&](Tok kind, uint32_t length) {
      tok.Kind = kind;
      pos += length;
      tok.End = pos;
      return tok;
    };
    char d = pos + 1 < n ? Text[pos + 1] : '\0';
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
    tok.Kind = Tok::Error;
    tok.Begin = pos;
    tok.End = pos + length;
    error = ExprDiag{};
    error.Range = {tok.Begin, tok.End};
    error.Message = std::move(message);
    error.Fixit = std::move(fixit);
    pos = tok.End;
    return tok;
  }

  Token unexpectedCharacter(uint32_t &pos, ExprDiag &error) const {
    auto byte = static_cast<unsigned char>(Text[pos]);
    uint32_t length = byte >= 0xF0 && byte <= 0xF4 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC2 ? 2 : 1;
    if (byte >= 0xF5) length = 1;
    uint32_t codePoint = length == 1 ? byte : byte & (0x7F >> length);
    for (uint32_t i = 1; i < length; ++i) {
      if (pos + i >= Text.size() || (static_cast<unsigned char>(Text[pos + i]) & 0xC0) != 0x80) {
        length = 1;
        codePoint = byte;
        break;
      }
      codePoint = (codePoint << 6) | (static_cast<unsigned char>(Text[pos + i]) & 0x3F);
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
    return fail(pos, length, "unexpected character '" + Text.substr(pos, length).str() + "'", "",
                error);
  }

  Token lexIdent(uint32_t &pos) const {
    Token tok;
    tok.Begin = pos;
    size_t n = Text.size();
    while (pos < n && isIdentChar(Text[pos])) ++pos;
    // `which-sources`: a '-' glued between two name characters joins the name; `a - b`
    // and `a-(b)` stay subtractions.
    while (pos + 1 < n && Text[pos] == '-' && llvm::isAlnum(Text[pos + 1])) {
      pos += 1;
      while (pos < n && isIdentChar(Text[pos])) ++pos;
    }
    tok.End = pos;
    tok.Kind = keywordKind(Text.slice(tok.Begin, tok.End));
    return tok;
  }

  Token lexNumber(uint32_t &pos, ExprDiag &error) const {
    size_t n = Text.size();
    uint32_t begin = pos;
    auto digits = [&] {
      while (pos < n && llvm::isDigit(Text[pos])) ++pos;
    };
    digits();
    if (pos + 1 < n && Text[pos] == '.' && llvm::isDigit(Text[pos + 1])) {
      ++pos;
      digits();
    }
    if (pos < n && (Text[pos] == 'e' || Text[pos] == 'E')) {
      uint32_t afterE = pos + 1;
      if (afterE < n && (Text[afterE] == '+' || Text[afterE] == '-')) ++afterE;
      if (afterE < n && llvm::isDigit(Text[afterE])) {
        pos = afterE;
        digits();
      }
    }
    Token tok;
    tok.Kind = Tok::Number;
    tok.Begin = begin;
    double value = 0;
    auto parsed = std::from_chars(Text.data() + begin, Text.data() + pos, value);
    if (parsed.ec != std::errc() || !std::isfinite(value)) {
      uint32_t at = begin;
      return fail(at, pos - begin,
                  "number '" + Text.slice(begin, pos).str() + "' is out of range", "", error);
    }
    tok.Number.Value = value;
    if (pos < n && Text[pos] == '%') {
      ++pos;
      tok.Number.Value = value / 100;
      tok.Number.Dim = Dim::Fraction;
      tok.Number.UnitWritten = true;
    } else if (pos < n && isIdentStart(Text[pos])) {
      uint32_t suffixBegin = pos;
      while (pos < n && isIdentChar(Text[pos])) ++pos;
      llvm::StringRef suffix = Text.slice(suffixBegin, pos);
      std::optional<double> scale = scaleSuffix(suffix);
      if (!scale) return badSuffix(suffixBegin, suffix, error);
      tok.Number.Value = value * *scale;
      tok.Number.HasScale = true;
      if (!std::isfinite(tok.Number.Value)) {
        uint32_t at = begin;
        return fail(at, pos - begin,
                    "number '" + Text.slice(begin, pos).str() + "' is out of range", "", error);
      }
    }
    tok.End = pos;
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
        error.Fixit = candidate;
        error.Notes.push_back({error.Range, std::string("did you mean '") + candidate + "'" +
                                                (suffix == "m" ? " (10^6)?" : "?")});
        return tok;
      }
    error.Notes.push_back(
        {error.Range, "scale suffixes are k, M, B (or G), T for 10^3..10^12 and Ki, Mi, Gi, Ti "
                      "for 2^10..2^40"});
    return tok;
  }

  Token lexString(uint32_t &pos, ExprDiag &error) const {
    Token tok;
    tok.Kind = Tok::String;
    tok.Begin = pos;
    size_t n = Text.size();
    uint32_t i = pos + 1;
    while (i < n && Text[i] != '\'') {
      if (Text[i] == '\\') {
        char escaped = i + 1 < n ? Text[i + 1] : '\0';
        if (escaped != '\'' && escaped != '\\') {
          uint32_t at = i;
          return fail(at, i + 1 < n ? 2 : 1,
                      "unknown escape in string; only \\' and \\\\ are escapes", "", error);
        }
        tok.Text += escaped;
        i += 2;
        continue;
      }
      tok.Text += Text[i];
      ++i;
    }
    if (i >= n) {
      uint32_t at = pos;
      Token bad = fail(at, 1, "unterminated string", "", error);
      pos = static_cast<uint32_t>(n);
      return bad;
    }
    pos = i + 1;
    tok.End = pos;
    return tok;
  }

  llvm::StringRef Text;
};

class Parser {
public:
  explicit Parser(llvm::StringRef text) : Text(text), Lexer(text) { advance(); }

  ParseResult parse() {
    ParseResult result;
    if (Cur.Kind == Tok::End) {
      error({0, static_cast<uint32_t>(Text.size())}, "empty expression");
    } else {
      std::unique_ptr<Expr> e = parseSequence();
      if (!Failed && Cur.Kind != Tok::End) unexpectedAfter();
      if (!Failed) result.Expr = std::move(e);
    }
    if (Failed) result.Errors.push_back(std::move(Diag));
    return result;
  }

private:
  using ExprPtr = std::unique_ptr<Expr>;

  // --- tokens -----------------------------------------------------------------------

  void advance() {
    PrevBegin = Cur.Begin;
    PrevEnd = Cur.End;
    ExprDiag lexError;
    Cur = Lexer.next(Pos, lexError);
    if (Cur.Kind == Tok::Error && !Failed) {
      Failed = true;
      Diag = std::move(lexError);
    }
  }

  llvm::StringRef tokText(uint32_t begin, uint32_t end) const { return Text.slice(begin, end); }

  /// How a token is named in a message: 'then', 'web', string, end of expression.
  std::string describeCur() const {
    if (Cur.Kind == Tok::End) return "end of expression";
    if (Cur.Kind == Tok::String) return "string";
    return quoted(tokText(Cur.Begin, Cur.End));
  }
  std::string describePrev() const {
    if (PrevBegin < Text.size() && Text[PrevBegin] == '\'') return "string";
    return quoted(tokText(PrevBegin, PrevEnd));
  }
  static std::string quoted(llvm::StringRef s) {
    if (s.size() > 40) return "'" + s.take_front(37).str() + "...'";
    return "'" + s.str() + "'";
  }

  // --- errors -----------------------------------------------------------------------

  ExprDiag &error(TextRange range, std::string message) {
    if (!Failed) {
      Failed = true;
      Diag = ExprDiag{};
      Diag.Range = range;
      Diag.Message = std::move(message);
    }
    return Diag;
  }
  TextRange curRange() const { return {Cur.Begin, Cur.End}; }

  void unexpectedAfter() {
    ExprDiag &d = error(curRange(), "unexpected " + describeCur() + " after " + describePrev());
    if (Cur.Kind == Tok::Assign) {
      d.Message += "; did you mean '=='?";
      d.Fixit = "==";
    } else if (Cur.Kind == Tok::Ident || Cur.Kind == Tok::Number || Cur.Kind == Tok::String ||
               Cur.Kind == Tok::LParen) {
      d.Message += "; expected an operator";
    }
  }

  void expectedExpression() {
    if (Failed) return;
    if (Cur.Kind == Tok::End)
      error(curRange(), "expected an expression after " + describePrev());
    else if (Cur.Kind == Tok::Dot)
      error(curRange(), "a number needs a digit before '.'").Fixit = "0.";
    else
      error(curRange(), "unexpected " + describeCur() + "; expected an expression");
  }

  /// `closer` missing: "expected ')' to close call to 'warmup'", note at the opener.
  void expectedCloser(llvm::StringRef closer, const std::string &what, TextRange opener,
                      llvm::StringRef separator = ",") {
    if (Failed) return;
    std::string message = Cur.Kind == Tok::End || separator.empty()
                              ? "expected '" + closer.str() + "' to close " + what
                              : "expected '" + separator.str() + "' or '" + closer.str() +
                                    "' in " + what + ", found " + describeCur();
    ExprDiag &d = error(curRange(), std::move(message));
    d.Notes.push_back({opener, "'" + tokText(opener.Begin, opener.End).str() + "' opened here"});
  }

  // --- nodes ------------------------------------------------------------------------

  ExprPtr node(ExprKind kind, TextRange range) {
    if (++NodeCount > kMaxExprNodes) {
      error(range, "expression is too long (more than " + std::to_string(kMaxExprNodes) +
                       " terms)");
      return nullptr;
    }
    auto e = std::make_unique<Expr>();
    e->Kind = kind;
    e->Range = range;
    return e;
  }

  ExprPtr binary(BinaryOp op, ExprPtr lhs, ExprPtr rhs) {
    if (!lhs || !rhs) return nullptr;
    ExprPtr e = node(ExprKind::Binary, {lhs->Range.Begin, rhs->Range.End});
    if (!e) return nullptr;
    e->BinaryOp = op;
    e->Operands.push_back(std::move(lhs));
    e->Operands.push_back(std::move(rhs));
    return e;
  }

  /// Bounds recursion: every bracket, argument and prefix operator nests one level.
  struct Nesting {
    Parser &P;
    explicit Nesting(Parser &p) : P(p) { ++p.Depth; }
    ~Nesting() { --P.Depth; }
    bool tooDeep() {
      if (P.Depth <= kMaxExprDepth) return false;
      P.error(P.curRange(), "expression nested too deeply (more than " +
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
    while (!Failed && (Cur.Kind == Tok::KwThen || Cur.Kind == Tok::Arrow)) {
      if (chainOp && *chainOp != Cur.Kind) {
        ExprDiag &d = error(curRange(), "cannot mix 'then' and '->' in one expression");
        d.Notes.push_back({firstOp, "'" + tokText(firstOp.Begin, firstOp.End).str() +
                                        "' used here; add parentheses to group"});
        return nullptr;
      }
      if (!chainOp) {
        chainOp = Cur.Kind;
        firstOp = curRange();
      }
      BinaryOp op = Cur.Kind == Tok::KwThen ? BinaryOp::Then : BinaryOp::Arrow;
      advance();
      lhs = binary(op, std::move(lhs), parseAt());
    }
    return Failed ? nullptr : std::move(lhs);
  }

  // at_expr = or_expr [ "@" or_expr ]
  ExprPtr parseAt() {
    ExprPtr lhs = parseOr();
    if (Failed || Cur.Kind != Tok::At) return lhs;
    advance();
    return binary(BinaryOp::At, std::move(lhs), parseOr());
  }

  ExprPtr parseOr() {
    ExprPtr lhs = parseAnd();
    while (!Failed && Cur.Kind == Tok::KwOr) {
      advance();
      lhs = binary(BinaryOp::Or, std::move(lhs), parseAnd());
    }
    return lhs;
  }

  ExprPtr parseAnd() {
    ExprPtr lhs = parseNot();
    while (!Failed && Cur.Kind == Tok::KwAnd) {
      advance();
      lhs = binary(BinaryOp::And, std::move(lhs), parseNot());
    }
    return lhs;
  }

  ExprPtr unary(UnaryOp op, uint32_t begin, ExprPtr operand) {
    if (!operand) return nullptr;
    ExprPtr e = node(ExprKind::Unary, {begin, operand->Range.End});
    if (!e) return nullptr;
    e->UnaryOp = op;
    e->Operands.push_back(std::move(operand));
    return e;
  }

  // not_expr = "not" not_expr | comparison
  ExprPtr parseNot() {
    if (Cur.Kind != Tok::KwNot) return parseComparison();
    Nesting nesting(*this);
    if (nesting.tooDeep()) return nullptr;
    uint32_t begin = Cur.Begin;
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
    if (Failed) return nullptr;
    bool negated = false;
    uint32_t begin = lhs->Range.Begin;
    if (Cur.Kind == Tok::KwNot) {
      advance();
      if (Cur.Kind != Tok::KwIn) {
        error(curRange(), "expected 'in' after 'not'");
        return nullptr;
      }
      negated = true;
    }
    std::optional<BinaryOp> op = comparisonOp(Cur.Kind);
    if (!op) return lhs;
    TextRange opRange = curRange();
    advance();
    ExprPtr e = binary(*op, std::move(lhs), parseSum());
    if (!Failed && comparisonOp(Cur.Kind)) {
      ExprDiag &d = error(curRange(), "comparisons cannot be chained; combine them with 'and'");
      d.Notes.push_back({opRange, "first comparison here"});
      return nullptr;
    }
    return negated ? unary(UnaryOp::Not, begin, std::move(e)) : std::move(e);
  }

  // sum = product { ("+" | "-") product }
  ExprPtr parseSum() {
    ExprPtr lhs = parseProduct();
    while (!Failed && (Cur.Kind == Tok::Plus || Cur.Kind == Tok::Minus)) {
      BinaryOp op = Cur.Kind == Tok::Plus ? BinaryOp::Add : BinaryOp::Sub;
      advance();
      lhs = binary(op, std::move(lhs), parseProduct());
    }
    return lhs;
  }

  // product = factor { "*" factor }
  ExprPtr parseProduct() {
    ExprPtr lhs = parseFactor();
    while (!Failed && Cur.Kind == Tok::Star) {
      advance();
      lhs = binary(BinaryOp::Mul, std::move(lhs), parseFactor());
    }
    return lhs;
  }

  // factor = number_literal postfix   (juxtaposition: "0.95 med", "2 (a + b)")
  //        | unary
  ExprPtr parseFactor() {
    bool literal = Cur.Kind == Tok::Number || Cur.Kind == Tok::Minus;
    ExprPtr lhs = parseUnary();
    if (Failed || !literal || lhs->Kind != ExprKind::Number) return lhs;
    if (Cur.Kind != Tok::Ident && Cur.Kind != Tok::LParen) return lhs;
    return binary(BinaryOp::Mul, std::move(lhs), parsePostfix());
  }

  // unary = "-" unary | postfix; a minus on a number literal folds into it.
  ExprPtr parseUnary() {
    if (Cur.Kind != Tok::Minus) return parsePostfix();
    Nesting nesting(*this);
    if (nesting.tooDeep()) return nullptr;
    uint32_t begin = Cur.Begin;
    advance();
    bool literal = Cur.Kind == Tok::Number;
    ExprPtr operand = parseUnary();
    if (!operand) return nullptr;
    if (literal && operand->Kind == ExprKind::Number) {
      operand->Number.Value = -operand->Number.Value;
      operand->Range.Begin = begin;
      return operand;
    }
    return unary(UnaryOp::Neg, begin, std::move(operand));
  }

  // postfix = primary { "(" arguments ")" | "[" selector "]" | "." identifier }
  ExprPtr parsePostfix() {
    ExprPtr e = parsePrimary();
    while (!Failed && e->Kind != ExprKind::Number) {
      if (Cur.Kind == Tok::LParen || Cur.Kind == Tok::LBracket) {
        if (e->Kind != ExprKind::Ident) {
          error(curRange(), Cur.Kind == Tok::LParen ? "only a name can be called"
                                                     : "only a stage name can take a selector");
          return nullptr;
        }
        e = Cur.Kind == Tok::LParen ? parseCall(std::move(e)) : parseSelect(std::move(e));
      } else if (Cur.Kind == Tok::Dot) {
        advance();
        if (Cur.Kind != Tok::Ident) {
          error(curRange(), "expected a name after '.', found " + describeCur());
          return nullptr;
        }
        ExprPtr member = node(ExprKind::Member, {e->Range.Begin, Cur.End});
        if (!member) return nullptr;
        member->NameRange = curRange();
        member->Name = tokText(Cur.Begin, Cur.End).str();
        member->Operands.push_back(std::move(e));
        advance();
        e = std::move(member);
      } else {
        break;
      }
    }
    return Failed ? nullptr : std::move(e);
  }

  // arguments = [ argument { "," argument } ]; argument = [ identifier "=" ] sequence
  ExprPtr parseCall(ExprPtr callee) {
    TextRange open = curRange();
    callee->Kind = ExprKind::Call;
    advance();
    std::string what = "call to '" + callee->Name + "'";
    if (Cur.Kind != Tok::RParen) {
      while (!Failed) {
        std::string argName;
        TextRange argNameRange;
        bool startsWithName = Cur.Kind == Tok::Ident;
        TextRange first = curRange();
        ExprPtr arg = parseSequence();
        if (Failed) return nullptr;
        if (Cur.Kind == Tok::Assign && startsWithName && arg->Kind == ExprKind::Ident &&
            arg->Range.Begin == first.Begin && arg->Range.End == first.End) {
          argName = std::move(arg->Name);
          argNameRange = first;
          advance();
          arg = parseSequence();
          if (Failed) return nullptr;
        }
        callee->Operands.push_back(std::move(arg));
        callee->ArgNames.push_back(std::move(argName));
        callee->ArgNameRanges.push_back(argNameRange);
        if (Cur.Kind != Tok::Comma) break;
        advance();
      }
    }
    if (Cur.Kind != Tok::RParen) {
      expectedCloser(")", what, open);
      return nullptr;
    }
    callee->Range.End = Cur.End;
    advance();
    return callee;
  }

  // selector = "*" | axis "=" label { "," axis "=" label }
  ExprPtr parseSelect(ExprPtr stage) {
    TextRange open = curRange();
    stage->Kind = ExprKind::Select;
    std::string what = "selector of '" + stage->Name + "'";
    advance();
    if (Cur.Kind == Tok::Star) {
      stage->SelectAll = true;
      advance();
    } else {
      while (!Failed) {
        if (Cur.Kind != Tok::Ident) {
          error(curRange(), "expected '*' or axis=label in " + what + ", found " + describeCur());
          return nullptr;
        }
        Expr::SelectorItem item;
        item.Axis = tokText(Cur.Begin, Cur.End).str();
        item.AxisRange = curRange();
        advance();
        if (Cur.Kind != Tok::Assign) {
          error(curRange(), "expected '=' after axis '" + item.Axis + "', found " + describeCur());
          return nullptr;
        }
        advance();
        if (Cur.Kind == Tok::Ident || Cur.Kind == Tok::Number) {
          item.Label = tokText(Cur.Begin, Cur.End).str();
        } else if (Cur.Kind == Tok::String) {
          item.Label = Cur.Text;
        } else {
          if (!Failed)
            error(curRange(), "expected a label after '" + item.Axis + "=', found " +
                                  describeCur());
          return nullptr;
        }
        item.LabelRange = curRange();
        advance();
        stage->Selectors.push_back(std::move(item));
        if (Cur.Kind != Tok::Comma) break;
        advance();
      }
    }
    if (Cur.Kind != Tok::RBracket) {
      expectedCloser("]", what, open);
      return nullptr;
    }
    stage->Range.End = Cur.End;
    advance();
    return stage;
  }

  ExprPtr parsePrimary() {
    if (Failed) return nullptr;
    switch (Cur.Kind) {
    case Tok::Number: return parseNumber();
    case Tok::String: {
      ExprPtr e = node(ExprKind::String, curRange());
      if (!e) return nullptr;
      e->Name = std::move(Cur.Text);
      advance();
      return e;
    }
    case Tok::KwTrue:
    case Tok::KwFalse: {
      ExprPtr e = node(ExprKind::Bool, curRange());
      if (!e) return nullptr;
      e->Boolean = Cur.Kind == Tok::KwTrue;
      advance();
      return e;
    }
    case Tok::Ident: {
      ExprPtr e = node(ExprKind::Ident, curRange());
      if (!e) return nullptr;
      e->NameRange = curRange();
      e->Name = tokText(Cur.Begin, Cur.End).str();
      advance();
      return e;
    }
    case Tok::LParen: {
      TextRange open = curRange();
      advance();
      ExprPtr e = parseSequence();
      if (Failed) return nullptr;
      if (Cur.Kind != Tok::RParen) {
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
    e->Number = Cur.Number;
    advance();
    if (Cur.Kind == Tok::Ident) {
      if (std::optional<Dim> dim = unitWord(tokText(Cur.Begin, Cur.End))) {
        if (e->Number.Dim == Dim::Fraction) {
          error(curRange(), "a percentage cannot have a unit");
          return nullptr;
        }
        e->Number.Dim = *dim;
        e->Number.UnitWritten = true;
        e->Range.End = Cur.End;
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
    if (Cur.Kind != Tok::RBracket) {
      while (!Failed) {
        ExprPtr item = parseSequence();
        if (Failed) return nullptr;
        list->Operands.push_back(std::move(item));
        if (Cur.Kind != Tok::Comma) break;
        advance();
      }
    }
    if (Cur.Kind != Tok::RBracket) {
      expectedCloser("]", "list", open);
      return nullptr;
    }
    list->Range.End = Cur.End;
    advance();
    return list;
  }

  // dict = "{" [ sequence ":" sequence { "," sequence ":" sequence } ] "}"
  ExprPtr parseDict() {
    TextRange open = curRange();
    ExprPtr dict = node(ExprKind::Dict, open);
    if (!dict) return nullptr;
    advance();
    if (Cur.Kind != Tok::RBrace) {
      while (!Failed) {
        ExprPtr key = parseSequence();
        if (Failed) return nullptr;
        if (Cur.Kind != Tok::Colon) {
          error(curRange(), "expected ':' after a key in '{...}', found " + describeCur());
          return nullptr;
        }
        advance();
        ExprPtr value = parseSequence();
        if (Failed) return nullptr;
        dict->Operands.push_back(std::move(key));
        dict->Operands.push_back(std::move(value));
        if (Cur.Kind != Tok::Comma) break;
        advance();
      }
    }
    if (Cur.Kind != Tok::RBrace) {
      expectedCloser("}", "'{'", open);
      return nullptr;
    }
    dict->Range.End = Cur.End;
    advance();
    return dict;
  }

  llvm::StringRef Text;
  mixtape::Lexer Lexer;
  uint32_t Pos = 0;
  Token Cur;
  uint32_t PrevBegin = 0, PrevEnd = 0;
  unsigned Depth = 0;
  unsigned NodeCount = 0;
  bool Failed = false;
  ExprDiag Diag;
};

void print(std::string &out, const Expr &e) {
  auto list = [&](size_t from, llvm::StringRef separator) {
    for (size_t i = from; i < e.Operands.size(); ++i) {
      if (i > from) out += separator;
      print(out, e.operand(i));
    }
  };
  switch (e.Kind) {
  case ExprKind::Number: out += formatQuantity(e.Number); return;
  case ExprKind::String: out += quoteString(e.Name); return;
  case ExprKind::Bool: out += e.Boolean ? "true" : "false"; return;
  case ExprKind::Ident: out += e.Name; return;
  case ExprKind::Call:
    out += e.Name;
    out += '(';
    for (size_t i = 0; i < e.Operands.size(); ++i) {
      if (i) out += ", ";
      if (i < e.ArgNames.size() && !e.ArgNames[i].empty()) out += e.ArgNames[i] + " = ";
      print(out, e.operand(i));
    }
    out += ')';
    return;
  case ExprKind::Select:
    out += e.Name;
    out += '[';
    if (e.SelectAll) out += '*';
    for (size_t i = 0; i < e.Selectors.size(); ++i) {
      if (i) out += ", ";
      out += e.Selectors[i].Axis + "=";
      // Labels written as strings print quoted unless they read back as a name or number.
      llvm::StringRef label = e.Selectors[i].Label;
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
    out += e.Name;
    return;
  case ExprKind::List:
    out += '[';
    list(0, ", ");
    out += ']';
    return;
  case ExprKind::Dict:
    out += '{';
    for (size_t i = 0; i + 1 < e.Operands.size(); i += 2) {
      if (i) out += ", ";
      print(out, e.operand(i));
      out += ": ";
      print(out, e.operand(i + 1));
    }
    out += '}';
    return;
  case ExprKind::Unary:
    out += e.UnaryOp == UnaryOp::Not ? "(not " : "(-";
    print(out, e.operand(0));
    out += ')';
    return;
  case ExprKind::Binary:
    out += '(';
    print(out, e.operand(0));
    out += ' ';
    out += binaryOpSpelling(e.BinaryOp);
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
    result.Errors.push_back({DiagCode::ExprSyntax, {0, 0}, "expression is too long", "", {}});
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
  d.Code = code;
  d.Range = range;
  d.Message = std::move(message);
  diags.push_back(std::move(d));
  return diags.back();
}
