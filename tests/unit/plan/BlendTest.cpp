// Deterministic blending: exact proportions, piecewise-linear weights, resumable.
#include "mixtape/plan/Mixture.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace mixtape::plan;

namespace {

Mixture constantMix(std::vector<double> w) {
  Mixture m;
  for (size_t i = 0; i < w.size(); ++i)
    m.Streams.push_back("s" + std::to_string(i));
  m.Positions = {0, 1e9};
  m.Weights = {w, w};
  return m;
}

TEST(Blender, ProportionsAreExactWithinOneSampleAtEveryPrefix) {
  Mixture m = constantMix({0.95, 0.05});
  Blender b(m, 128);
  for (int j = 1; j <= 1000; ++j) {
    b.next();
    EXPECT_LE(std::abs(static_cast<double>(b.counts()[1]) - 0.05 * j), 1.0) << j;
  }
  EXPECT_EQ(b.counts()[0], 950u);
  EXPECT_EQ(b.counts()[1], 50u);
}

TEST(Blender, TiesGoToTheEarlierStream) {
  Mixture m = constantMix({0.5, 0.5});
  Blender b(m, 1);
  EXPECT_EQ(b.next(), 0u);
  EXPECT_EQ(b.next(), 1u);
  EXPECT_EQ(b.next(), 0u);
}

TEST(Blender, FollowsLinearlyChangingWeights) {
  // 0 -> 1 of stream 1 over 1000 samples of 1 token: its share is about half overall.
  Mixture m;
  m.Streams = {"a", "b"};
  m.Positions = {0, 1000};
  m.Weights = {{1, 0}, {0, 1}};
  Blender b(m, 1);
  b.skipTo(1000);
  EXPECT_NEAR(static_cast<double>(b.counts()[1]), 499.5, 1.0);
}

TEST(Blender, SkippingAndSteppingAgree) {
  Mixture m = constantMix({0.7, 0.2, 0.1});
  Blender all(m, 64), resumed(m, 64);
  std::vector<size_t> first;
  for (int j = 0; j < 500; ++j)
    first.push_back(all.next());
  resumed.skipTo(250);
  for (int j = 250; j < 500; ++j)
    EXPECT_EQ(resumed.next(), first[j]) << j;
}

} // namespace
