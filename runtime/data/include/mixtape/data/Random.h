//===- Random.h - a small, portable, seedable generator --------*- C++ -*-===//
//
// SplitMix64 (Steele, Lea, Flood: "Fast splittable pseudorandom number generators",
// OOPSLA 2014). Everything derived from it here is integer arithmetic or exact double
// conversion, so the same seed gives the same stream on every platform and standard
// library; std:: distributions make no such promise.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>

namespace mixtape::data {

class SplitMix64 {
public:
  explicit SplitMix64(uint64_t seed) : State(seed) {}

  uint64_t next() {
    uint64_t z = (State += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, n), n > 0 (Lemire's multiply-shift; the bias is below 2^-32 for the
  /// small n used here).
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }
  /// Uniform in [lo, hi].
  int64_t between(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo) + 1));
  }
  /// Uniform in [0, 1) with 53 random bits.
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool chance(double p) { return unit() < p; }

private:
  uint64_t State;
};

/// Combines two values into a seed for an independent stream.
inline uint64_t mixSeed(uint64_t a, uint64_t b) {
  SplitMix64 rng(a ^ (b * 0xd1342543de82ef95ULL));
  return rng.next();
}

} // namespace mixtape::data
