//===- Format.cpp ---------------------------------------------------------===//
#include "mixtape/support/Format.h"

#include <charconv>
#include <cmath>
#include <cstdint>

std::string mixtape::formatNumber(double v) {
  if (std::isnan(v))
    return "nan";
  if (std::isinf(v))
    return v < 0 ? "-inf" : "inf";
  if (v == 0)
    return "0";
  if (std::fabs(v) < 9007199254740992.0 && v == std::floor(v)) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v));
    return std::string(buf, r.ptr);
  }
  // Shortest round-trip digits in scientific form, e.g. "-1.65e-04", then re-spelled.
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  llvm::StringRef sci(buf, r.ptr - buf);
  bool negative = sci.consume_front("-");
  size_t ePos = sci.find('e');
  std::string digits;
  for (char c : sci.take_front(ePos))
    if (c != '.')
      digits += c;
  int exponent = 0;
  llvm::StringRef expText = sci.drop_front(ePos + 1);
  expText.consume_front("+");
  std::from_chars(expText.begin(), expText.end(), exponent);

  std::string scientific = digits.substr(0, 1);
  if (digits.size() > 1)
    scientific += "." + digits.substr(1);
  scientific += "e" + std::to_string(exponent);

  std::string fixed;
  int intDigits = exponent + 1;
  if (intDigits <= 0)
    fixed = "0." + std::string(static_cast<size_t>(-intDigits), '0') + digits;
  else if (static_cast<size_t>(intDigits) >= digits.size())
    fixed = digits + std::string(intDigits - digits.size(), '0');
  else
    fixed = digits.substr(0, intDigits) + "." + digits.substr(intDigits);
  const std::string &best = scientific.size() < fixed.size() ? scientific : fixed;
  return negative ? "-" + best : best;
}

std::string mixtape::quoteString(llvm::StringRef s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\')
      out += '\\';
    out += c;
  }
  out += '\'';
  return out;
}
