//===- Quantity.h - numbers with units ------------------------*- C++ -*-===//
//
// Recipes count tokens, optimizer steps, epochs, sequences and fractions. A quantity is
// a number with a dimension, never a bare double with a comment. Scale suffixes are SI
// (k M B/G T = 10^3..10^12) or binary (Ki Mi Gi Ti = 2^10..2^40), so `1M` = 10^6 and
// `1Mi` = 2^20 are never ambiguous. `5%` is the fraction 0.05.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/support/Format.h"

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>

namespace mixtape {

enum class Dim {
  Number,    ///< a plain number (a weight, an LR, a ratio written without %)
  Tokens,
  Steps,
  Epochs,
  Sequences,
  Fraction,  ///< written with %: 5% is 0.05
};

llvm::StringRef dimName(Dim dim); // "number", "tokens", "steps", ...

struct Quantity {
  double Value = 0;         ///< scaled value: 20M -> 2e7, 5% -> 0.05
  mixtape::Dim Dim = mixtape::Dim::Number;
  bool HasScale = false;    ///< written with k/M/B/Ki/... ("20M")
  bool UnitWritten = false; ///< Dim came from an explicit unit word or %, not a default

  /// The value as an exact count, if it is a non-negative whole number below 2^53.
  std::optional<uint64_t> asCount() const;
};

/// Scale suffix value: "M" -> 1e6, "Mi" -> 2^20; nullopt if not a suffix.
std::optional<double> scaleSuffix(llvm::StringRef suffix);
/// Unit word to dimension: "tokens"/"token"/"tok" -> Tokens, "steps"/"step", "epochs"/"epoch",
/// "sequences"/"sequence"/"seqs"/"seq"; nullopt otherwise.
std::optional<Dim> unitWord(llvm::StringRef word);

/// A byte size: a number, an SI or binary scale and "B" in any case ("80GiB" = 80 * 2^30,
/// "80GB" = 80e9, "1.5 TB", "512B"), or a whole number of bytes; rounded to whole bytes.
/// nullopt if it is none of these or past 2^63.
std::optional<uint64_t> parseByteSize(llvm::StringRef text);

/// Human form with the largest exact suffix: 1048576 tokens -> "1Mi tokens", 2e9 -> "2B".
std::string formatCount(uint64_t n);
std::string formatQuantity(const Quantity &q);

} // namespace mixtape
