#include "mixtape/compiler/Expr.h"

#include <gtest/gtest.h>

#include <random>

using namespace mixtape;

namespace {

std::string canonical(llvm::StringRef text) {
  ParseResult r = parseExpr(text);
  if (!r.expr) {
    EXPECT_FALSE(r.errors.empty());
    return "error: " + (r.errors.empty() ? std::string("?") : r.errors[0].message);
  }
  EXPECT_TRUE(r.errors.empty());
  return printExpr(*r.expr);
}

/// The single syntax error of `text`.
ExprDiag syntaxError(llvm::StringRef text) {
  ParseResult r = parseExpr(text);
  EXPECT_EQ(r.expr, nullptr) << text.str();
  EXPECT_EQ(r.errors.size(), 1u) << text.str();
  if (r.errors.empty()) return {};
  EXPECT_EQ(r.errors[0].code, DiagCode::ExprSyntax);
  return r.errors[0];
}

std::string slice(llvm::StringRef text, TextRange r) { return text.slice(r.begin, r.end).str(); }

} // namespace

TEST(ExprParser, NorthStarExpressions) {
  EXPECT_EQ(canonical("0.95 med + 0.05 web"), "((0.95 * med) + (0.05 * web))");
  EXPECT_EQ(canonical("warmup(20M, peak = 3e-4) then cosine(final = 3e-5)"),
            "(warmup(20M, peak = 3e-4) then cosine(final = 3e-5))");
  EXPECT_EQ(canonical("linear(from = 3e-5, to = 0)"), "linear(from = 3e-5, to = 0)");
  EXPECT_EQ(canonical("0.7 med_hq + 0.3 web -> 0.9 med_hq + 0.1 web"),
            "(((0.7 * med_hq) + (0.3 * web)) -> ((0.9 * med_hq) + (0.1 * web)))");
  EXPECT_EQ(canonical("infinite(warmup = 20M, peak = 3e-4, cooldown = cosine(1B), constant = 1.65e-4)"),
            "infinite(warmup = 20M, peak = 3e-4, cooldown = cosine(1B), constant = 1.65e-4)");
  EXPECT_EQ(canonical("exp(from = 1.65e-4, to = 3e-5)"), "exp(from = 1.65e-4, to = 3e-5)");
  EXPECT_EQ(canonical("overall_score >= 4 and domain == 'Medicine'"),
            "((overall_score >= 4) and (domain == 'Medicine'))");
  EXPECT_EQ(canonical("overall_score == 5"), "(overall_score == 5)");
  EXPECT_EQ(canonical("untie_knots(chunks = {1: 0.7, 3: 0.3}, keep_order = false)"),
            "untie_knots(chunks = {1: 0.7, 3: 0.3}, keep_order = false)");
  EXPECT_EQ(canonical("anneal[*]"), "anneal[*]");
  EXPECT_EQ(canonical("anneal[replay=r5]"), "anneal[replay=r5]");
  EXPECT_EQ(canonical("long[replay=r5]"), "long[replay=r5]");
  EXPECT_EQ(canonical("adapt[replay=r5]"), "adapt[replay=r5]");
  EXPECT_EQ(canonical("subsets(max = 3)"), "subsets(max = 3)");
  EXPECT_EQ(canonical("1M tokens"), "1M tokens");
  EXPECT_EQ(canonical("1Mi tokens"), "1Mi tokens");
  EXPECT_EQ(canonical("web.val"), "web.val");
  EXPECT_EQ(canonical("2B"), "2B");
  EXPECT_EQ(canonical("200M"), "200M");
  EXPECT_EQ(canonical("1%"), "1%");
  EXPECT_EQ(canonical("0.8 a + 0.2 b @ 100M -> 0.9 a + 0.1 b"),
            "((((0.8 * a) + (0.2 * b)) @ 100M) -> ((0.9 * a) + (0.1 * b)))");
  EXPECT_EQ(canonical("constant"), "constant");
  EXPECT_EQ(canonical("warmup(5M, peak = 2e-5) then constant"),
            "(warmup(5M, peak = 2e-5) then constant)");
  EXPECT_EQ(canonical("source in ['pubmed', 'pmc']"), "(source in ['pubmed', 'pmc'])");
  EXPECT_EQ(canonical("1.0 med"), "(1 * med)");
  EXPECT_EQ(canonical("0.3 books_knotted + 0.6 med + 0.1 web"),
            "(((0.3 * books_knotted) + (0.6 * med)) + (0.1 * web))");
  EXPECT_EQ(canonical("which-sources"), "which-sources");
}

TEST(ExprParser, NumbersKeepExactValuesAndDimensions) {
  auto number = [](llvm::StringRef text) {
    ParseResult r = parseExpr(text);
    EXPECT_TRUE(r.expr && r.expr->kind == ExprKind::Number) << text.str();
    return r.expr ? r.expr->number : Quantity{};
  };
  Quantity q = number("20M");
  EXPECT_EQ(q.value, 2e7);
  EXPECT_EQ(q.dim, Dim::Number);
  EXPECT_TRUE(q.hasScale);
  EXPECT_FALSE(q.unitWritten);

  q = number("1Mi tokens");
  EXPECT_EQ(q.value, 1048576.0);
  EXPECT_EQ(q.dim, Dim::Tokens);
  EXPECT_TRUE(q.unitWritten);

  q = number("1.5B");
  EXPECT_EQ(q.value, 1.5e9);
  q = number("5%");
  EXPECT_EQ(q.value, 0.05);
  EXPECT_EQ(q.dim, Dim::Fraction);
  EXPECT_TRUE(q.unitWritten);
  EXPECT_EQ(number("3e-4").value, 3e-4);
  EXPECT_EQ(number("0.0003").value, 0.0003);
  EXPECT_EQ(number("3E+2").value, 300.0);
  EXPECT_EQ(number("-3e-4").value, -3e-4);
  EXPECT_EQ(number("2 epochs").dim, Dim::Epochs);
  EXPECT_EQ(number("1 epoch").dim, Dim::Epochs);
  EXPECT_EQ(number("100 steps").dim, Dim::Steps);
  EXPECT_EQ(number("64 seqs").dim, Dim::Sequences);
  EXPECT_EQ(number("4k").value, 4000.0);
  EXPECT_EQ(number("4K").value, 4000.0);
  EXPECT_EQ(number("2Ti").value, 2199023255552.0);
  EXPECT_EQ(number("0.1").value, 0.1); // the exact double of the text

  ParseResult r = parseExpr("  -20M tokens ");
  ASSERT_TRUE(r.expr);
  EXPECT_EQ(r.expr->number.value, -2e7);
  EXPECT_EQ(r.expr->range.begin, 2u); // the folded minus is part of the literal
  EXPECT_EQ(r.expr->range.end, 13u);
}

TEST(ExprParser, PrintsNumbersCanonically) {
  EXPECT_EQ(canonical("1.5B"), "1500M");
  EXPECT_EQ(canonical("1000000"), "1000000");
  EXPECT_EQ(canonical("4096 tokens"), "4Ki tokens");
  EXPECT_EQ(canonical("0.0003"), "3e-4");
  EXPECT_EQ(canonical("7%"), "7%");
  EXPECT_EQ(canonical("2 epoch"), "2 epochs");
  EXPECT_EQ(canonical("1000 seqs"), "1k sequences");
  EXPECT_EQ(canonical("4.0"), "4");
  EXPECT_EQ(canonical("-20M"), "-20M");
}

TEST(ExprParser, TreeShapeAndRanges) {
  llvm::StringRef text = "warmup(20M, peak = 3e-4) then cosine(final = 3e-5)";
  ParseResult r = parseExpr(text);
  ASSERT_TRUE(r.expr);
  const Expr &then = *r.expr;
  ASSERT_TRUE(then.isBinary(BinaryOp::Then));
  const Expr &warmup = then.operand(0);
  EXPECT_EQ(warmup.kind, ExprKind::Call);
  EXPECT_EQ(warmup.name, "warmup");
  EXPECT_EQ(slice(text, warmup.nameRange), "warmup");
  EXPECT_EQ(slice(text, warmup.range), "warmup(20M, peak = 3e-4)");
  ASSERT_EQ(warmup.operands.size(), 2u);
  ASSERT_EQ(warmup.argNames.size(), 2u);
  ASSERT_EQ(warmup.argNameRanges.size(), 2u);
  EXPECT_EQ(warmup.argNames[0], "");
  EXPECT_EQ(warmup.argNames[1], "peak");
  EXPECT_EQ(slice(text, warmup.argNameRanges[1]), "peak");
  EXPECT_EQ(slice(text, warmup.operand(0).range), "20M");
  EXPECT_EQ(slice(text, warmup.operand(1).range), "3e-4");
  EXPECT_EQ(slice(text, then.operand(1).range), "cosine(final = 3e-5)");
  EXPECT_EQ(slice(text, then.range), text.str());

  text = "anneal[replay=r5, at=1B]";
  r = parseExpr(text);
  ASSERT_TRUE(r.expr);
  EXPECT_EQ(r.expr->kind, ExprKind::Select);
  EXPECT_EQ(r.expr->name, "anneal");
  EXPECT_FALSE(r.expr->selectAll);
  ASSERT_EQ(r.expr->selectors.size(), 2u);
  EXPECT_EQ(r.expr->selectors[0].axis, "replay");
  EXPECT_EQ(r.expr->selectors[0].label, "r5");
  EXPECT_EQ(slice(text, r.expr->selectors[0].axisRange), "replay");
  EXPECT_EQ(slice(text, r.expr->selectors[0].labelRange), "r5");
  EXPECT_EQ(r.expr->selectors[1].label, "1B"); // a number label is kept as written
  EXPECT_EQ(slice(text, r.expr->nameRange), "anneal");

  r = parseExpr("anneal[lr='3e-4 warm', at=b-1]"); // string labels print quoted only if needed
  ASSERT_TRUE(r.expr);
  EXPECT_EQ(r.expr->selectors[0].label, "3e-4 warm");
  EXPECT_EQ(printExpr(*r.expr), "anneal[lr='3e-4 warm', at=b-1]");

  r = parseExpr("anneal[*]");
  ASSERT_TRUE(r.expr);
  EXPECT_TRUE(r.expr->selectAll);
  EXPECT_TRUE(r.expr->selectors.empty());

  text = "web.val";
  r = parseExpr(text);
  ASSERT_TRUE(r.expr);
  EXPECT_EQ(r.expr->kind, ExprKind::Member);
  EXPECT_EQ(r.expr->name, "val");
  EXPECT_EQ(slice(text, r.expr->nameRange), "val");
  EXPECT_EQ(r.expr->operand(0).name, "web");

  text = "{1: 0.7, 3: 0.3}";
  r = parseExpr(text);
  ASSERT_TRUE(r.expr);
  EXPECT_EQ(r.expr->kind, ExprKind::Dict);
  ASSERT_EQ(r.expr->operands.size(), 4u);
  EXPECT_EQ(r.expr->operand(2).number.value, 3.0);
  EXPECT_EQ(r.expr->operand(3).number.value, 0.3);

  r = parseExpr("'it\\'s a \\\\ test'");
  ASSERT_TRUE(r.expr);
  EXPECT_EQ(r.expr->kind, ExprKind::String);
  EXPECT_EQ(r.expr->name, "it's a \\ test");
  EXPECT_EQ(printExpr(*r.expr), "'it\\'s a \\\\ test'");

  r = parseExpr("'Médecine'"); // non-ASCII is fine inside strings
  ASSERT_TRUE(r.expr);
  EXPECT_EQ(r.expr->name, "Médecine");
}

TEST(ExprParser, Precedence) {
  EXPECT_EQ(canonical("a or b and c"), "(a or (b and c))");
  EXPECT_EQ(canonical("not a and b"), "((not a) and b)");
  EXPECT_EQ(canonical("not not a"), "(not (not a))");
  EXPECT_EQ(canonical("a + b * c"), "(a + (b * c))");
  EXPECT_EQ(canonical("a - b - c"), "((a - b) - c)");
  EXPECT_EQ(canonical("x < 1 + 2"), "(x < (1 + 2))");
  EXPECT_EQ(canonical("a then b then c"), "((a then b) then c)");
  EXPECT_EQ(canonical("a -> b -> c"), "((a -> b) -> c)");
  EXPECT_EQ(canonical("a @ 1 -> b"), "((a @ 1) -> b)");
  EXPECT_EQ(canonical("(a then b) -> c"), "((a then b) -> c)");
  EXPECT_EQ(canonical("x not in [1, 2]"), "(not (x in [1, 2]))");
  EXPECT_EQ(canonical("-x"), "(-x)");
  EXPECT_EQ(canonical("- -3"), "(--3)");
  EXPECT_EQ(canonical("2 (a + b)"), "(2 * (a + b))");
  EXPECT_EQ(canonical("2 * 3 x"), "(2 * (3 * x))");
  EXPECT_EQ(canonical("-0.5 med"), "(-0.5 * med)");
  EXPECT_EQ(canonical("0.5 f(x)"), "(0.5 * f(x))");
  EXPECT_EQ(canonical("0.95 * med"), "(0.95 * med)");
  EXPECT_EQ(canonical("f()"), "f()");
  EXPECT_EQ(canonical("[]"), "[]");
  EXPECT_EQ(canonical("{}"), "{}");
  EXPECT_EQ(canonical("true or false"), "(true or false)");
  EXPECT_EQ(canonical("a\t+\nb"), "(a + b)");
}

TEST(ExprParser, MinusInNames) {
  EXPECT_EQ(canonical("which-sources"), "which-sources");
  EXPECT_EQ(canonical("run-2"), "run-2");
  EXPECT_EQ(canonical("a - b"), "(a - b)");
  EXPECT_EQ(canonical("a -b"), "(a - b)");
  EXPECT_EQ(canonical("a- b"), "(a - b)");
  EXPECT_EQ(canonical("a-(b)"), "(a - b)");
  EXPECT_EQ(canonical("a->b"), "(a -> b)");
  EXPECT_EQ(canonical("a--b"), "(a - (-b))");
}

TEST(ExprParser, UnknownSuffixSuggestsOne) {
  ExprDiag d = syntaxError("20m");
  EXPECT_EQ(d.message, "unknown scale suffix 'm'");
  EXPECT_EQ(d.range.begin, 2u);
  EXPECT_EQ(d.range.end, 3u);
  EXPECT_EQ(d.fixit, "M");
  ASSERT_EQ(d.notes.size(), 1u);
  EXPECT_EQ(d.notes[0].message, "did you mean 'M' (10^6)?");

  d = syntaxError("3mi tokens");
  EXPECT_EQ(d.fixit, "Mi");

  d = syntaxError("3X");
  EXPECT_EQ(d.message, "unknown scale suffix 'X'");
  EXPECT_EQ(d.fixit, "");
  ASSERT_EQ(d.notes.size(), 1u);

  d = syntaxError("100tokens");
  EXPECT_EQ(d.message, "missing space between the number and 'tokens'");
  EXPECT_EQ(d.range.begin, 3u);
  EXPECT_EQ(d.range.end, 3u);
  EXPECT_EQ(d.fixit, " ");

  d = syntaxError("1Mtokens");
  EXPECT_EQ(d.message, "missing space between 'M' and 'tokens'");
  EXPECT_EQ(d.range.begin, 2u);

  d = syntaxError("3e");
  EXPECT_EQ(d.message, "unknown scale suffix 'e'");
}

TEST(ExprParser, NumberErrors) {
  ExprDiag d = syntaxError("1e400");
  EXPECT_EQ(d.message, "number '1e400' is out of range");
  EXPECT_EQ(d.range.begin, 0u);
  EXPECT_EQ(d.range.end, 5u);
  EXPECT_EQ(syntaxError("1e300T").message, "number '1e300T' is out of range");
  d = syntaxError(".5 med");
  EXPECT_EQ(d.message, "a number needs a digit before '.'");
  EXPECT_EQ(d.fixit, "0.");
  EXPECT_EQ(syntaxError("5% tokens").message, "a percentage cannot have a unit");
}

TEST(ExprParser, UnclosedBracketsPointAtTheOpener) {
  ExprDiag d = syntaxError("warmup(20M");
  EXPECT_EQ(d.message, "expected ')' to close call to 'warmup'");
  EXPECT_EQ(d.range.begin, 10u);
  ASSERT_EQ(d.notes.size(), 1u);
  EXPECT_EQ(d.notes[0].range.begin, 6u);
  EXPECT_EQ(d.notes[0].range.end, 7u);
  EXPECT_EQ(d.notes[0].message, "'(' opened here");

  d = syntaxError("warmup(20M peak = 3e-4)");
  EXPECT_EQ(d.message, "expected ',' or ')' in call to 'warmup', found '='");

  d = syntaxError("(a + b");
  EXPECT_EQ(d.message, "expected ')' to close '('");
  EXPECT_EQ(d.notes.at(0).range.begin, 0u);

  d = syntaxError("['a', 'b'");
  EXPECT_EQ(d.message, "expected ']' to close list");
  d = syntaxError("{1: 0.7");
  EXPECT_EQ(d.message, "expected '}' to close '{'");
  d = syntaxError("{1 0.7}");
  EXPECT_EQ(d.message, "expected ':' after a key in '{...}', found '0.7'");
  d = syntaxError("anneal[replay=r5");
  EXPECT_EQ(d.message, "expected ']' to close selector of 'anneal'");
  d = syntaxError("anneal[]");
  EXPECT_EQ(d.message, "expected '*' or axis=label in selector of 'anneal', found ']'");
  d = syntaxError("anneal[replay]");
  EXPECT_EQ(d.message, "expected '=' after axis 'replay', found ']'");
}

TEST(ExprParser, SyntaxErrors) {
  ExprDiag d = syntaxError("a then b -> c");
  EXPECT_EQ(d.message, "cannot mix 'then' and '->' in one expression");
  EXPECT_EQ(d.range.begin, 9u);
  EXPECT_EQ(d.notes.at(0).range.begin, 2u);

  d = syntaxError("warmup(20M) then");
  EXPECT_EQ(d.message, "expected an expression after 'then'");
  EXPECT_EQ(d.range.begin, 16u);

  d = syntaxError("then cosine");
  EXPECT_EQ(d.message, "unexpected 'then'; expected an expression");

  d = syntaxError("med web");
  EXPECT_EQ(d.message, "unexpected 'web' after 'med'; expected an operator");
  EXPECT_EQ(d.range.begin, 4u);
  EXPECT_EQ(d.range.end, 7u);

  d = syntaxError("domain = 'Medicine'");
  EXPECT_EQ(d.message, "unexpected '=' after 'domain'; did you mean '=='?");
  EXPECT_EQ(d.fixit, "==");

  d = syntaxError("a < b < c");
  EXPECT_EQ(d.message, "comparisons cannot be chained; combine them with 'and'");

  EXPECT_EQ(syntaxError("").message, "empty expression");
  EXPECT_EQ(syntaxError("   ").message, "empty expression");
  EXPECT_EQ(syntaxError("f(x)(y)").message, "only a name can be called");
  EXPECT_EQ(syntaxError("'a'[*]").message, "only a stage name can take a selector");
  EXPECT_EQ(syntaxError("(0.5) med").message, "unexpected 'med' after ')'; expected an operator");
  EXPECT_EQ(syntaxError("x not 3").message, "expected 'in' after 'not'");
  EXPECT_EQ(syntaxError("web.").message, "expected a name after '.', found end of expression");
  EXPECT_EQ(syntaxError("a !b").message, "unexpected character '!'; negation is written 'not'");
  EXPECT_EQ(syntaxError("\"a\"").message,
            "unexpected character '\"'; strings in expressions use single quotes");
  EXPECT_EQ(syntaxError("1 / 3").message, "unexpected character '/'");
  EXPECT_EQ(syntaxError("a @ 1 @ 2").message, "unexpected '@' after '1'");
}

TEST(ExprParser, StringErrors) {
  ExprDiag d = syntaxError("domain == 'Medicine");
  EXPECT_EQ(d.message, "unterminated string");
  EXPECT_EQ(d.range.begin, 10u);
  EXPECT_EQ(d.range.end, 11u);
  d = syntaxError("'a\\nb'");
  EXPECT_EQ(d.message, "unknown escape in string; only \\' and \\\\ are escapes");
  EXPECT_EQ(d.range.begin, 2u);
  EXPECT_EQ(d.range.end, 4u);
  EXPECT_EQ(syntaxError("'abc\\").message, "unknown escape in string; only \\' and \\\\ are escapes");
}

TEST(ExprParser, UnexpectedBytes) {
  ExprDiag d = syntaxError("a + \xC3\xA9");  // é, two bytes
  EXPECT_EQ(d.message, "unexpected character '\xC3\xA9'");
  EXPECT_EQ(d.range.begin, 4u);
  EXPECT_EQ(d.range.end, 6u);

  d = syntaxError("a \xE2\x88\x92 b");  // U+2212 MINUS SIGN, three bytes
  EXPECT_EQ(d.range.begin, 2u);
  EXPECT_EQ(d.range.end, 5u);

  d = syntaxError("0.95\xC2\xA0med");  // no-break space
  EXPECT_EQ(d.message, "unexpected character U+00A0 (no-break space)");
  EXPECT_EQ(d.fixit, " ");

  d = syntaxError(llvm::StringRef("a\0b", 3));
  EXPECT_EQ(d.message, "unexpected character U+0000");
  EXPECT_EQ(d.range.begin, 1u);
  EXPECT_EQ(d.range.end, 2u);

  d = syntaxError("a \xFF");
  EXPECT_EQ(d.message, "unexpected byte 0xFF (the expression is not valid UTF-8)");
  d = syntaxError("a \xC3");  // truncated sequence
  EXPECT_EQ(d.range.end, 3u);
}

TEST(ExprParser, NestingIsBounded) {
  std::string ok = std::string(30, '(') + "a" + std::string(30, ')');
  EXPECT_EQ(canonical(ok), "a");
  std::string deep = std::string(100000, '(') + "a" + std::string(100000, ')');
  EXPECT_EQ(syntaxError(deep).message, "expression nested too deeply (more than 64 levels)");
  EXPECT_EQ(syntaxError(std::string(100000, '[')).message,
            "expression nested too deeply (more than 64 levels)");
  EXPECT_EQ(syntaxError(std::string(100000, '-') + "a").message,
            "expression nested too deeply (more than 64 levels)");
  std::string nots;
  for (int i = 0; i < 10000; ++i) nots += "not ";
  EXPECT_EQ(syntaxError(nots + "a").message, "expression nested too deeply (more than 64 levels)");
  std::string calls;
  for (int i = 0; i < 10000; ++i) calls += "f(";
  EXPECT_EQ(syntaxError(calls).message, "expression nested too deeply (more than 64 levels)");
}

TEST(ExprParser, LongChainsAreBounded) {
  std::string sum = "a";
  for (int i = 0; i < 100; ++i) sum += " + a";
  EXPECT_TRUE(parseExpr(sum).expr);
  for (int i = 0; i < 5000; ++i) sum += " + a";
  EXPECT_EQ(syntaxError(sum).message, "expression is too long (more than 4096 terms)");
}

TEST(ExprParser, ArbitraryBytesNeverCrash) {
  std::mt19937 rng(42);
  const std::string alphabet("0123456789.eE+-*%kMBiT@()[]{},:=<>!' \\abtn\xC3\xA9\x00\xFF", 46);
  for (int round = 0; round < 20000; ++round) {
    std::string text;
    size_t length = rng() % 24;
    for (size_t i = 0; i < length; ++i) text += alphabet[rng() % alphabet.size()];
    ParseResult r = parseExpr(text);
    EXPECT_NE(r.expr == nullptr, r.errors.empty()) << text;
    for (const ExprDiag &d : r.errors) {
      EXPECT_LE(d.range.begin, d.range.end);
      EXPECT_LE(d.range.end, text.size());
    }
    if (r.expr) {
      // The canonical form parses back to itself.
      std::string printed = printExpr(*r.expr);
      ParseResult again = parseExpr(printed);
      ASSERT_TRUE(again.expr) << text << " -> " << printed;
      EXPECT_EQ(printExpr(*again.expr), printed);
    }
  }
}

TEST(ExprParser, OperatorSpellings) {
  EXPECT_EQ(binaryOpSpelling(BinaryOp::Then), "then");
  EXPECT_EQ(binaryOpSpelling(BinaryOp::Arrow), "->");
  EXPECT_EQ(binaryOpSpelling(BinaryOp::At), "@");
  EXPECT_EQ(binaryOpSpelling(BinaryOp::Ne), "!=");
  EXPECT_EQ(binaryOpSpelling(BinaryOp::In), "in");
  EXPECT_EQ(binaryOpSpelling(BinaryOp::Mul), "*");
}
