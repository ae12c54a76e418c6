#include "mixtape/compiler/Expr.h"

#include <gtest/gtest.h>

#include <random>

using namespace mixtape;

namespace {

std::string canonical(llvm::StringRef text) {
  ParseResult r = parseExpr(text);
  if (!r.Expr) {
    EXPECT_FALSE(r.Errors.empty());
    return "error: " + (r.Errors.empty() ? std::string("?") : r.Errors[0].Message);
  }
  EXPECT_TRUE(r.Errors.empty());
  return printExpr(*r.Expr);
}

/// The single syntax error of `text`.
ExprDiag syntaxError(llvm::StringRef text) {
  ParseResult r = parseExpr(text);
  EXPECT_EQ(r.Expr, nullptr) << text.str();
  EXPECT_EQ(r.Errors.size(), 1u) << text.str();
  if (r.Errors.empty()) return {};
  EXPECT_EQ(r.Errors[0].Code, DiagCode::ExprSyntax);
  return r.Errors[0];
}

std::string slice(llvm::StringRef text, TextRange r) { return text.slice(r.Begin, r.End).str(); }

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
    EXPECT_TRUE(r.Expr && r.Expr->Kind == ExprKind::Number) << text.str();
    return r.Expr ? r.Expr->Number : Quantity{};
  };
  Quantity q = number("20M");
  EXPECT_EQ(q.Value, 2e7);
  EXPECT_EQ(q.Dim, Dim::Number);
  EXPECT_TRUE(q.HasScale);
  EXPECT_FALSE(q.UnitWritten);

  q = number("1Mi tokens");
  EXPECT_EQ(q.Value, 1048576.0);
  EXPECT_EQ(q.Dim, Dim::Tokens);
  EXPECT_TRUE(q.UnitWritten);

  q = number("1.5B");
  EXPECT_EQ(q.Value, 1.5e9);
  q = number("5%");
  EXPECT_EQ(q.Value, 0.05);
  EXPECT_EQ(q.Dim, Dim::Fraction);
  EXPECT_TRUE(q.UnitWritten);
  EXPECT_EQ(number("3e-4").Value, 3e-4);
  EXPECT_EQ(number("0.0003").Value, 0.0003);
  EXPECT_EQ(number("3E+2").Value, 300.0);
  EXPECT_EQ(number("-3e-4").Value, -3e-4);
  EXPECT_EQ(number("2 epochs").Dim, Dim::Epochs);
  EXPECT_EQ(number("1 epoch").Dim, Dim::Epochs);
  EXPECT_EQ(number("100 steps").Dim, Dim::Steps);
  EXPECT_EQ(number("64 seqs").Dim, Dim::Sequences);
  EXPECT_EQ(number("4k").Value, 4000.0);
  EXPECT_EQ(number("4K").Value, 4000.0);
  EXPECT_EQ(number("2Ti").Value, 2199023255552.0);
  EXPECT_EQ(number("0.1").Value, 0.1); // the exact double of the text

  ParseResult r = parseExpr("  -20M tokens ");
  ASSERT_TRUE(r.Expr);
  EXPECT_EQ(r.Expr->Number.Value, -2e7);
  EXPECT_EQ(r.Expr->Range.Begin, 2u); // the folded minus is part of the literal
  EXPECT_EQ(r.Expr->Range.End, 13u);
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
  ASSERT_TRUE(r.Expr);
  const Expr &then = *r.Expr;
  ASSERT_TRUE(then.isBinary(BinaryOp::Then));
  const Expr &warmup = then.operand(0);
  EXPECT_EQ(warmup.Kind, ExprKind::Call);
  EXPECT_EQ(warmup.Name, "warmup");
  EXPECT_EQ(slice(text, warmup.NameRange), "warmup");
  EXPECT_EQ(slice(text, warmup.Range), "warmup(20M, peak = 3e-4)");
  ASSERT_EQ(warmup.Operands.size(), 2u);
  ASSERT_EQ(warmup.ArgNames.size(), 2u);
  ASSERT_EQ(warmup.ArgNameRanges.size(), 2u);
  EXPECT_EQ(warmup.ArgNames[0], "");
  EXPECT_EQ(warmup.ArgNames[1], "peak");
  EXPECT_EQ(slice(text, warmup.ArgNameRanges[1]), "peak");
  EXPECT_EQ(slice(text, warmup.operand(0).Range), "20M");
  EXPECT_EQ(slice(text, warmup.operand(1).Range), "3e-4");
  EXPECT_EQ(slice(text, then.operand(1).Range), "cosine(final = 3e-5)");
  EXPECT_EQ(slice(text, then.Range), text.str());

  text = "anneal[replay=r5, at=1B]";
  r = parseExpr(text);
  ASSERT_TRUE(r.Expr);
  EXPECT_EQ(r.Expr->Kind, ExprKind::Select);
  EXPECT_EQ(r.Expr->Name, "anneal");
  EXPECT_FALSE(r.Expr->SelectAll);
  ASSERT_EQ(r.Expr->Selectors.size(), 2u);
  EXPECT_EQ(r.Expr->Selectors[0].Axis, "replay");
  EXPECT_EQ(r.Expr->Selectors[0].Label, "r5");
  EXPECT_EQ(slice(text, r.Expr->Selectors[0].AxisRange), "replay");
  EXPECT_EQ(slice(text, r.Expr->Selectors[0].LabelRange), "r5");
  EXPECT_EQ(r.Expr->Selectors[1].Label, "1B"); // a number label is kept as written
  EXPECT_EQ(slice(text, r.Expr->NameRange), "anneal");

  r = parseExpr("anneal[lr='3e-4 warm', at=b-1]"); // string labels print quoted only if needed
  ASSERT_TRUE(r.Expr);
  EXPECT_EQ(r.Expr->Selectors[0].Label, "3e-4 warm");
  EXPECT_EQ(printExpr(*r.Expr), "anneal[lr='3e-4 warm', at=b-1]");

  r = parseExpr("anneal[*]");
  ASSERT_TRUE(r.Expr);
  EXPECT_TRUE(r.Expr->SelectAll);
  EXPECT_TRUE(r.Expr->Selectors.empty());

  text = "web.val";
  r = parseExpr(text);
  ASSERT_TRUE(r.Expr);
  EXPECT_EQ(r.Expr->Kind, ExprKind::Member);
  EXPECT_EQ(r.Expr->Name, "val");
  EXPECT_EQ(slice(text, r.Expr->NameRange), "val");
  EXPECT_EQ(r.Expr->operand(0).Name, "web");

  text = "{1: 0.7, 3: 0.3}";
  r = parseExpr(text);
  ASSERT_TRUE(r.Expr);
  EXPECT_EQ(r.Expr->Kind, ExprKind::Dict);
  ASSERT_EQ(r.Expr->Operands.size(), 4u);
  EXPECT_EQ(r.Expr->operand(2).Number.Value, 3.0);
  EXPECT_EQ(r.Expr->operand(3).Number.Value, 0.3);

  r = parseExpr("'it\\'s a \\\\ test'");
  ASSERT_TRUE(r.Expr);
  EXPECT_EQ(r.Expr->Kind, ExprKind::String);
  EXPECT_EQ(r.Expr->Name, "it's a \\ test");
  EXPECT_EQ(printExpr(*r.Expr), "'it\\'s a \\\\ test'");

  r = parseExpr("'Médecine'"); // non-ASCII is fine inside strings
  ASSERT_TRUE(r.Expr);
  EXPECT_EQ(r.Expr->Name, "Médecine");
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
  EXPECT_EQ(d.Message, "unknown scale suffix 'm'");
  EXPECT_EQ(d.Range.Begin, 2u);
  EXPECT_EQ(d.Range.End, 3u);
  EXPECT_EQ(d.Fixit, "M");
  ASSERT_EQ(d.Notes.size(), 1u);
  EXPECT_EQ(d.Notes[0].Message, "did you mean 'M' (10^6)?");

  d = syntaxError("3mi tokens");
  EXPECT_EQ(d.Fixit, "Mi");

  d = syntaxError("3X");
  EXPECT_EQ(d.Message, "unknown scale suffix 'X'");
  EXPECT_EQ(d.Fixit, "");
  ASSERT_EQ(d.Notes.size(), 1u);

  d = syntaxError("100tokens");
  EXPECT_EQ(d.Message, "missing space between the number and 'tokens'");
  EXPECT_EQ(d.Range.Begin, 3u);
  EXPECT_EQ(d.Range.End, 3u);
  EXPECT_EQ(d.Fixit, " ");

  d = syntaxError("1Mtokens");
  EXPECT_EQ(d.Message, "missing space between 'M' and 'tokens'");
  EXPECT_EQ(d.Range.Begin, 2u);

  d = syntaxError("3e");
  EXPECT_EQ(d.Message, "unknown scale suffix 'e'");
}

TEST(ExprParser, NumberErrors) {
  ExprDiag d = syntaxError("1e400");
  EXPECT_EQ(d.Message, "number '1e400' is out of range");
  EXPECT_EQ(d.Range.Begin, 0u);
  EXPECT_EQ(d.Range.End, 5u);
  EXPECT_EQ(syntaxError("1e300T").Message, "number '1e300T' is out of range");
  d = syntaxError(".5 med");
  EXPECT_EQ(d.Message, "a number needs a digit before '.'");
  EXPECT_EQ(d.Fixit, "0.");
  EXPECT_EQ(syntaxError("5% tokens").Message, "a percentage cannot have a unit");
}

TEST(ExprParser, UnclosedBracketsPointAtTheOpener) {
  ExprDiag d = syntaxError("warmup(20M");
  EXPECT_EQ(d.Message, "expected ')' to close call to 'warmup'");
  EXPECT_EQ(d.Range.Begin, 10u);
  ASSERT_EQ(d.Notes.size(), 1u);
  EXPECT_EQ(d.Notes[0].Range.Begin, 6u);
  EXPECT_EQ(d.Notes[0].Range.End, 7u);
  EXPECT_EQ(d.Notes[0].Message, "'(' opened here");

  d = syntaxError("warmup(20M peak = 3e-4)");
  EXPECT_EQ(d.Message, "expected ',' or ')' in call to 'warmup', found '='");

  d = syntaxError("(a + b");
  EXPECT_EQ(d.Message, "expected ')' to close '('");
  EXPECT_EQ(d.Notes.at(0).Range.Begin, 0u);

  d = syntaxError("['a', 'b'");
  EXPECT_EQ(d.Message, "expected ']' to close list");
  d = syntaxError("{1: 0.7");
  EXPECT_EQ(d.Message, "expected '}' to close '{'");
  d = syntaxError("{1 0.7}");
  EXPECT_EQ(d.Message, "expected ':' after a key in '{...}', found '0.7'");
  d = syntaxError("anneal[replay=r5");
  EXPECT_EQ(d.Message, "expected ']' to close selector of 'anneal'");
  d = syntaxError("anneal[]");
  EXPECT_EQ(d.Message, "expected '*' or axis=label in selector of 'anneal', found ']'");
  d = syntaxError("anneal[replay]");
  EXPECT_EQ(d.Message, "expected '=' after axis 'replay', found ']'");
}

TEST(ExprParser, SyntaxErrors) {
  ExprDiag d = syntaxError("a then b -> c");
  EXPECT_EQ(d.Message, "cannot mix 'then' and '->' in one expression");
  EXPECT_EQ(d.Range.Begin, 9u);
  EXPECT_EQ(d.Notes.at(0).Range.Begin, 2u);

  d = syntaxError("warmup(20M) then");
  EXPECT_EQ(d.Message, "expected an expression after 'then'");
  EXPECT_EQ(d.Range.Begin, 16u);

  d = syntaxError("then cosine");
  EXPECT_EQ(d.Message, "unexpected 'then'; expected an expression");

  d = syntaxError("med web");
  EXPECT_EQ(d.Message, "unexpected 'web' after 'med'; expected an operator");
  EXPECT_EQ(d.Range.Begin, 4u);
  EXPECT_EQ(d.Range.End, 7u);

  d = syntaxError("domain = 'Medicine'");
  EXPECT_EQ(d.Message, "unexpected '=' after 'domain'; did you mean '=='?");
  EXPECT_EQ(d.Fixit, "==");

  d = syntaxError("a < b < c");
  EXPECT_EQ(d.Message, "comparisons cannot be chained; combine them with 'and'");

  EXPECT_EQ(syntaxError("").Message, "empty expression");
  EXPECT_EQ(syntaxError("   ").Message, "empty expression");
  EXPECT_EQ(syntaxError("f(x)(y)").Message, "only a name can be called");
  EXPECT_EQ(syntaxError("'a'[*]").Message, "only a stage name can take a selector");
  EXPECT_EQ(syntaxError("(0.5) med").Message, "unexpected 'med' after ')'; expected an operator");
  EXPECT_EQ(syntaxError("x not 3").Message, "expected 'in' after 'not'");
  EXPECT_EQ(syntaxError("web.").Message, "expected a name after '.', found end of expression");
  EXPECT_EQ(syntaxError("a !b").Message, "unexpected character '!'; negation is written 'not'");
  EXPECT_EQ(syntaxError("\"a\"").Message,
            "unexpected character '\"'; strings in expressions use single quotes");
  EXPECT_EQ(syntaxError("1 / 3").Message, "unexpected character '/'");
  EXPECT_EQ(syntaxError("a @ 1 @ 2").Message, "unexpected '@' after '1'");
}

TEST(ExprParser, StringErrors) {
  ExprDiag d = syntaxError("domain == 'Medicine");
  EXPECT_EQ(d.Message, "unterminated string");
  EXPECT_EQ(d.Range.Begin, 10u);
  EXPECT_EQ(d.Range.End, 11u);
  d = syntaxError("'a\\nb'");
  EXPECT_EQ(d.Message, "unknown escape in string; only \\' and \\\\ are escapes");
  EXPECT_EQ(d.Range.Begin, 2u);
  EXPECT_EQ(d.Range.End, 4u);
  EXPECT_EQ(syntaxError("'abc\\").Message, "unknown escape in string; only \\' and \\\\ are escapes");
}

TEST(ExprParser, UnexpectedBytes) {
  ExprDiag d = syntaxError("a + \xC3\xA9");  // é, two bytes
  EXPECT_EQ(d.Message, "unexpected character '\xC3\xA9'");
  EXPECT_EQ(d.Range.Begin, 4u);
  EXPECT_EQ(d.Range.End, 6u);

  d = syntaxError("a \xE2\x88\x92 b");  // U+2212 MINUS SIGN, three bytes
  EXPECT_EQ(d.Range.Begin, 2u);
  EXPECT_EQ(d.Range.End, 5u);

  d = syntaxError("0.95\xC2\xA0med");  // no-break space
  EXPECT_EQ(d.Message, "unexpected character U+00A0 (no-break space)");
  EXPECT_EQ(d.Fixit, " ");

  d = syntaxError(llvm::StringRef("a\0b", 3));
  EXPECT_EQ(d.Message, "unexpected character U+0000");
  EXPECT_EQ(d.Range.Begin, 1u);
  EXPECT_EQ(d.Range.End, 2u);

  d = syntaxError("a \xFF");
  EXPECT_EQ(d.Message, "unexpected byte 0xFF (the expression is not valid UTF-8)");
  d = syntaxError("a \xC3");  // truncated sequence
  EXPECT_EQ(d.Range.End, 3u);
}

TEST(ExprParser, NestingIsBounded) {
  std::string ok = std::string(30, '(') + "a" + std::string(30, ')');
  EXPECT_EQ(canonical(ok), "a");
  std::string deep = std::string(100000, '(') + "a" + std::string(100000, ')');
  EXPECT_EQ(syntaxError(deep).Message, "expression nested too deeply (more than 64 levels)");
  EXPECT_EQ(syntaxError(std::string(100000, '[')).Message,
            "expression nested too deeply (more than 64 levels)");
  EXPECT_EQ(syntaxError(std::string(100000, '-') + "a").Message,
            "expression nested too deeply (more than 64 levels)");
  std::string nots;
  for (int i = 0; i < 10000; ++i) nots += "not ";
  EXPECT_EQ(syntaxError(nots + "a").Message, "expression nested too deeply (more than 64 levels)");
  std::string calls;
  for (int i = 0; i < 10000; ++i) calls += "f(";
  EXPECT_EQ(syntaxError(calls).Message, "expression nested too deeply (more than 64 levels)");
}

TEST(ExprParser, LongChainsAreBounded) {
  std::string sum = "a";
  for (int i = 0; i < 100; ++i) sum += " + a";
  EXPECT_TRUE(parseExpr(sum).Expr);
  for (int i = 0; i < 5000; ++i) sum += " + a";
  EXPECT_EQ(syntaxError(sum).Message, "expression is too long (more than 4096 terms)");
}

TEST(ExprParser, ArbitraryBytesNeverCrash) {
  std::mt19937 rng(42);
  const std::string alphabet("0123456789.eE+-*%kMBiT@()[]{},:=<>!' \\abtn\xC3\xA9\x00\xFF", 46);
  for (int round = 0; round < 20000; ++round) {
    std::string text;
    size_t length = rng() % 24;
    for (size_t i = 0; i < length; ++i) text += alphabet[rng() % alphabet.size()];
    ParseResult r = parseExpr(text);
    EXPECT_NE(r.Expr == nullptr, r.Errors.empty()) << text;
    for (const ExprDiag &d : r.Errors) {
      EXPECT_LE(d.Range.Begin, d.Range.End);
      EXPECT_LE(d.Range.End, text.size());
    }
    if (r.Expr) {
      // The canonical form parses back to itself.
      std::string printed = printExpr(*r.Expr);
      ParseResult again = parseExpr(printed);
      ASSERT_TRUE(again.Expr) << text << " -> " << printed;
      EXPECT_EQ(printExpr(*again.Expr), printed);
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
