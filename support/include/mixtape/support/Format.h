//===- Format.h - numbers and strings as recipes and plans spell them -*- C++ -*-===//
#pragma once

#include "llvm/ADT/StringRef.h"

#include <string>

namespace mixtape {

/// Shortest decimal spelling that reads back as exactly `v`: whole numbers below 2^53 in
/// full ("100"), otherwise the shorter of fixed and scientific ("0.05", "3e-4",
/// "1.65e-4"); "nan", "inf", "-inf" for the values JSON cannot hold.
std::string formatNumber(double v);

/// A string literal of the expression language that reads back as `s`: single quotes,
/// with \' and \\ escaped.
std::string quoteString(llvm::StringRef s);

} // namespace mixtape
