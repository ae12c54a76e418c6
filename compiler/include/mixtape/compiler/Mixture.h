//===- Mixture.h - data mixtures over a stage's tokens ----------*- C++ -*-===//
//
// A mixture says which streams a stage trains on, in which proportions:
// "0.95 med + 0.05 web". Points joined by "->" change the proportions piecewise-linearly
// over the stage's tokens, each point optionally placed with "@ position" (tokens, or a
// percentage of the stage): "0.8 a + 0.2 b @ 100M -> 0.9 a + 0.1 b". The spec keeps
// what was written (with ranges for diagnostics); the resolved plan::Mixture is the pure
// function of tokens that both the linter and the data loader evaluate.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/compiler/Expr.h"
#include "mixtape/plan/Mixture.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mixtape {

struct MixtureComponent {
  std::string Stream;
  double Weight = 1;
  TextRange StreamRange, WeightRange; ///< WeightRange = StreamRange when no weight is written
};

struct MixturePoint {
  std::optional<Quantity> At; ///< Dim::Tokens (or a plain count) or Dim::Fraction of the stage
  TextRange AtRange;
  std::vector<MixtureComponent> Components;
  TextRange Range;            ///< the weighted sum, without "@ position"
};

struct MixtureSpec {
  std::vector<MixturePoint> Points;
};

/// Reads a mixture expression. Reports MixtureWeight (weight not a positive number,
/// subtraction), MixtureSum (weights of a point do not sum to 1), BadValue (a stream
/// twice in a point, positions not increasing, not a mixture at all) and Units (a
/// position in steps or epochs). Returns nullopt if anything was reported.
std::optional<MixtureSpec> interpretMixture(const Expr &e, ExprDiags &diags);

/// Every stream name written in the mixture, in order, for the checker's name lookup.
std::vector<std::pair<std::string, TextRange>> streamRefs(const MixtureSpec &spec);

/// Places the points: an annotated point at its position (a percentage scales by
/// `stageTokens`); an unannotated first point at 0 and last at `stageTokens`; other
/// unannotated points evenly between their neighbours. Reports BadValue for a position
/// beyond the stage (unless `pastTheEnd` allows it) or positions that do not increase, and
/// when a position needs the stage length but `stageTokens` is not finite.
/// The result is the plan's mixture (plan/Mixture.h evaluates it).
enum class PastTheEnd { Error, Allowed };
std::optional<plan::Mixture> resolveMixture(const MixtureSpec &spec, double stageTokens, ExprDiags &diags,
                                            PastTheEnd pastTheEnd = PastTheEnd::Error);

/// Tokens in one epoch of a constant mixture whose streams have `tokens` training tokens at
/// `weights`: until the stream read fastest relative to its size has been read once, the
/// least tokens / weight. No document repeats within it, and N epochs read that stream N
/// times (Hugging Face datasets' interleave_datasets stops there by default,
/// stopping_strategy = "first_exhausted"); with weights proportional to the sizes every
/// stream is read exactly once. Streams of weight 0 do not count.
double epochTokens(const std::vector<double> &weights, const std::vector<uint64_t> &tokens);

/// Tokens each stream of `m` is drawn over a stage's first `length` tokens: the integral of
/// its weight (linear between points, constant outside them), in `m.Streams` order.
std::vector<double> drawnTokens(const plan::Mixture &m, double length);

/// The stage length of `epochs` epochs of `spec` over streams with `tokens` training tokens
/// each (in resolveMixture's stream order): the least length at which the stream read
/// fastest relative to its size has been read `epochs` times; for a constant mixture
/// epochs × epochTokens. Positions in % scale with the length, so the draws do too and the
/// length is exact; with a position in tokens it is found by bisection over whole tokens
/// (draws grow with the length). Nullopt when the mixture cannot be placed at any length.
std::optional<double> epochsLength(const MixtureSpec &spec, const std::vector<uint64_t> &tokens, double epochs);

} // namespace mixtape
