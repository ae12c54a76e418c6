//===- Quantity.cpp - numbers with units ----------------------------------===//

#include "mixtape/compiler/Quantity.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <iterator>

namespace mixtape {

llvm::StringRef dimName(Dim dim) {
  switch (dim) {
  case Dim::Number: return "number";
  case Dim::Tokens: return "tokens";
  case Dim::Steps: return "steps";
  case Dim::Epochs: return "epochs";
  case Dim::Sequences: return "sequences";
  case Dim::Fraction: return "fraction";
  }
  return "number";
}

std::optional<uint64_t> Quantity::asCount() const {
  constexpr double kExactLimit = 9007199254740992.0; // 2^53
  if (!(Value >= 0) || Value >= kExactLimit || Value != std::floor(Value))
    return std::nullopt;
  return static_cast<uint64_t>(Value);
}

namespace {
struct Suffix {
  const char *Spelling;
  double Scale;
};
// Largest first, so formatCount takes the first exact one; a binary scale is larger than
// its SI neighbour, which is what makes binary win when both are exact.
constexpr Suffix kPrintedSuffixes[] = {
    {"Ti", 1099511627776.0}, {"T", 1e12}, {"Gi", 1073741824.0}, {"B", 1e9},
    {"Mi", 1048576.0},       {"M", 1e6},  {"Ki", 1024.0},       {"k", 1e3},
};
} // namespace

std::optional<double> scaleSuffix(llvm::StringRef suffix) {
  if (suffix == "k" || suffix == "K") return 1e3;
  if (suffix == "G") return 1e9; // G and B are both 10^9
  for (const Suffix &s : kPrintedSuffixes)
    if (suffix == s.Spelling) return s.Scale;
  return std::nullopt;
}

std::optional<Dim> unitWord(llvm::StringRef word) {
  if (word == "tokens" || word == "token" || word == "tok") return Dim::Tokens;
  if (word == "steps" || word == "step") return Dim::Steps;
  if (word == "epochs" || word == "epoch") return Dim::Epochs;
  if (word == "sequences" || word == "sequence" || word == "seqs" || word == "seq")
    return Dim::Sequences;
  return std::nullopt;
}

std::optional<uint64_t> parseByteSize(llvm::StringRef text) {
  text = text.trim();
  llvm::StringRef unit = text.drop_while([](char c) { return llvm::isDigit(c) || c == '.'; });
  llvm::StringRef number = text.take_front(text.size() - unit.size());
  unit = unit.ltrim();
  double value = 0;
  auto [end, ec] = std::from_chars(number.begin(), number.end(), value);
  if (number.empty() || ec != std::errc() || end != number.end())
    return std::nullopt;
  // "B" last, so that the scale before it is never read as B = 10^9.
  double scale = 1;
  if (!unit.empty()) {
    if (unit.back() != 'B' && unit.back() != 'b')
      return std::nullopt;
    llvm::StringRef prefix = unit.drop_back();
    static const std::pair<llvm::StringRef, double> kScales[] = {
        {"", 1},         {"k", 1e3},           {"m", 1e6},           {"g", 1e9},           {"t", 1e12},
        {"ki", 1024.0}, {"mi", 1048576.0}, {"gi", 1073741824.0}, {"ti", 1099511627776.0}};
    const auto *found = llvm::find_if(kScales, [&](const auto &s) { return s.first.equals_insensitive(prefix); });
    if (found == std::end(kScales))
      return std::nullopt;
    scale = found->second;
  } else if (number.contains('.')) {
    return std::nullopt; // a fraction of a byte
  }
  double bytes = std::round(value * scale);
  if (!(bytes < 9223372036854775808.0))
    return std::nullopt;
  return static_cast<uint64_t>(bytes);
}

std::string formatCount(uint64_t n) {
  if (n == 0) return "0";
  for (const Suffix &s : kPrintedSuffixes) {
    auto scale = static_cast<uint64_t>(s.Scale);
    if (n % scale == 0) return std::to_string(n / scale) + s.Spelling;
  }
  return std::to_string(n);
}

namespace {
// The shortest percentage p with p / 100 == v, so "7%" prints back as "7%" although
// 0.07 * 100 is 7.000000000000001.
std::string formatPercent(double v) {
  double scaled = v * 100;
  for (int precision = 1; precision <= 17; ++precision) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, scaled, std::chars_format::general, precision);
    double back = 0;
    std::from_chars(buf, r.ptr, back);
    if (back / 100 == v) return formatNumber(back);
  }
  return formatNumber(scaled);
}

llvm::StringRef unitSpelling(Dim dim, bool singular) {
  switch (dim) {
  case Dim::Tokens: return singular ? "token" : "tokens";
  case Dim::Steps: return singular ? "step" : "steps";
  case Dim::Epochs: return singular ? "epoch" : "epochs";
  case Dim::Sequences: return singular ? "sequence" : "sequences";
  case Dim::Number:
  case Dim::Fraction: break;
  }
  return "";
}
} // namespace

std::string formatQuantity(const Quantity &q) {
  if (q.Dim == Dim::Fraction) return formatPercent(q.Value) + "%";
  bool counted = q.HasScale || q.Dim != Dim::Number;
  std::string text;
  Quantity magnitude = q;
  magnitude.Value = std::fabs(q.Value);
  if (std::optional<uint64_t> n = magnitude.asCount(); counted && n)
    text = (q.Value < 0 ? "-" : "") + formatCount(*n);
  else
    text = formatNumber(q.Value);
  if (q.Dim != Dim::Number) {
    text += ' ';
    text += unitSpelling(q.Dim, q.Value == 1).str();
  }
  return text;
}

} // namespace mixtape
