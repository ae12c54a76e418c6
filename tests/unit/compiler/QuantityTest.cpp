#include "mixtape/compiler/Quantity.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace mixtape;

TEST(Quantity, ScaleSuffixes) {
  EXPECT_EQ(scaleSuffix("k"), 1e3);
  EXPECT_EQ(scaleSuffix("K"), 1e3);
  EXPECT_EQ(scaleSuffix("M"), 1e6);
  EXPECT_EQ(scaleSuffix("B"), 1e9);
  EXPECT_EQ(scaleSuffix("G"), 1e9);
  EXPECT_EQ(scaleSuffix("T"), 1e12);
  EXPECT_EQ(scaleSuffix("Ki"), 1024.0);
  EXPECT_EQ(scaleSuffix("Mi"), 1048576.0);
  EXPECT_EQ(scaleSuffix("Gi"), 1073741824.0);
  EXPECT_EQ(scaleSuffix("Ti"), 1099511627776.0);
  EXPECT_EQ(scaleSuffix("m"), std::nullopt); // never milli, never mega
  EXPECT_EQ(scaleSuffix("mi"), std::nullopt);
  EXPECT_EQ(scaleSuffix("KI"), std::nullopt);
  EXPECT_EQ(scaleSuffix(""), std::nullopt);
  EXPECT_EQ(scaleSuffix("X"), std::nullopt);
}

TEST(Quantity, UnitWordsAndNames) {
  EXPECT_EQ(unitWord("tokens"), Dim::Tokens);
  EXPECT_EQ(unitWord("token"), Dim::Tokens);
  EXPECT_EQ(unitWord("tok"), Dim::Tokens);
  EXPECT_EQ(unitWord("steps"), Dim::Steps);
  EXPECT_EQ(unitWord("step"), Dim::Steps);
  EXPECT_EQ(unitWord("epochs"), Dim::Epochs);
  EXPECT_EQ(unitWord("epoch"), Dim::Epochs);
  EXPECT_EQ(unitWord("sequences"), Dim::Sequences);
  EXPECT_EQ(unitWord("seqs"), Dim::Sequences);
  EXPECT_EQ(unitWord("seq"), Dim::Sequences);
  EXPECT_EQ(unitWord("Tokens"), std::nullopt);
  EXPECT_EQ(unitWord("med"), std::nullopt);
  EXPECT_EQ(dimName(Dim::Number), "number");
  EXPECT_EQ(dimName(Dim::Tokens), "tokens");
  EXPECT_EQ(dimName(Dim::Steps), "steps");
  EXPECT_EQ(dimName(Dim::Epochs), "epochs");
  EXPECT_EQ(dimName(Dim::Sequences), "sequences");
  EXPECT_EQ(dimName(Dim::Fraction), "fraction");
}

TEST(Quantity, AsCount) {
  auto count = [](double v) { return Quantity{v, Dim::Tokens, false, false}.asCount(); };
  EXPECT_EQ(count(0), 0u);
  EXPECT_EQ(count(2e9), 2000000000u);
  EXPECT_EQ(count(9007199254740991.0), 9007199254740991u); // 2^53 - 1
  EXPECT_EQ(count(9007199254740992.0), std::nullopt);      // 2^53: no longer exact
  EXPECT_EQ(count(1.5), std::nullopt);
  EXPECT_EQ(count(-1), std::nullopt);
  EXPECT_EQ(count(std::nan("")), std::nullopt);
}

TEST(Quantity, FormatCountPicksLargestExactSuffix) {
  EXPECT_EQ(formatCount(0), "0");
  EXPECT_EQ(formatCount(1234), "1234");
  EXPECT_EQ(formatCount(1000), "1k");
  EXPECT_EQ(formatCount(1024), "1Ki");
  EXPECT_EQ(formatCount(1048576), "1Mi");
  EXPECT_EQ(formatCount(1000000), "1M");
  EXPECT_EQ(formatCount(20000000), "20M");
  EXPECT_EQ(formatCount(2000000000), "2B");
  EXPECT_EQ(formatCount(1500000000), "1500M");       // no fractional mantissas
  EXPECT_EQ(formatCount(1073741824), "1Gi");
  EXPECT_EQ(formatCount(1099511627776), "1Ti");
  EXPECT_EQ(formatCount(3000000000000), "3T");
  EXPECT_EQ(formatCount(1048576000), "1000Mi");      // 2^20 * 1000: Mi beats k
  EXPECT_EQ(formatCount(4096000), "4000Ki");         // 4096k also exact; Ki is larger
}

TEST(Quantity, FormatNumberShortestRoundTrip) {
  EXPECT_EQ(formatNumber(0), "0");
  EXPECT_EQ(formatNumber(4), "4");
  EXPECT_EQ(formatNumber(-12), "-12");
  EXPECT_EQ(formatNumber(100), "100");
  EXPECT_EQ(formatNumber(0.95), "0.95");
  EXPECT_EQ(formatNumber(0.05), "0.05");   // ties between fixed and scientific go to fixed
  EXPECT_EQ(formatNumber(3e-4), "3e-4");
  EXPECT_EQ(formatNumber(1.65e-4), "1.65e-4");
  EXPECT_EQ(formatNumber(-3e-5), "-3e-5");
  EXPECT_EQ(formatNumber(2.5), "2.5");
  EXPECT_EQ(formatNumber(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(formatNumber(1e20), "1e20");
  EXPECT_EQ(formatNumber(123456.5), "123456.5");
}

TEST(Quantity, FormatQuantity) {
  EXPECT_EQ(formatQuantity({1048576, Dim::Tokens, true, true}), "1Mi tokens");
  EXPECT_EQ(formatQuantity({2e9, Dim::Number, true, false}), "2B");
  EXPECT_EQ(formatQuantity({2e9, Dim::Tokens, true, false}), "2B tokens");
  EXPECT_EQ(formatQuantity({1, Dim::Epochs, false, true}), "1 epoch");
  EXPECT_EQ(formatQuantity({3, Dim::Epochs, false, true}), "3 epochs");
  EXPECT_EQ(formatQuantity({500, Dim::Steps, false, true}), "500 steps");
  EXPECT_EQ(formatQuantity({0.05, Dim::Fraction, false, true}), "5%");
  EXPECT_EQ(formatQuantity({0.07, Dim::Fraction, false, true}), "7%"); // 0.07*100 = 7.000000000000001
  EXPECT_EQ(formatQuantity({0.001, Dim::Fraction, false, true}), "0.1%");
  EXPECT_EQ(formatQuantity({3e-4, Dim::Number, false, false}), "3e-4");
  EXPECT_EQ(formatQuantity({4096, Dim::Number, false, false}), "4096"); // a plain number stays
  EXPECT_EQ(formatQuantity({-2e7, Dim::Number, true, false}), "-20M");
  EXPECT_EQ(formatQuantity({0.5, Dim::Tokens, false, true}), "0.5 tokens");
}

TEST(Quantity, ByteSizes) {
  EXPECT_EQ(parseByteSize("80GiB"), 80ull << 30);
  EXPECT_EQ(parseByteSize("80GB"), 80000000000ull) << "G before B is 10^9, and B alone is bytes";
  EXPECT_EQ(parseByteSize("80 gib"), 80ull << 30);
  EXPECT_EQ(parseByteSize("1.5TB"), 1500000000000ull);
  EXPECT_EQ(parseByteSize("512B"), 512u);
  EXPECT_EQ(parseByteSize("4096"), 4096u);
  EXPECT_EQ(parseByteSize("500MiB"), 500ull << 20);
  EXPECT_EQ(parseByteSize("100KB"), 100000u);
  for (const char *bad : {"", "GiB", "80 gigs", "80GiX", "1.5", "5PB", "-1GB", "1e30B", "99999999999TiB"})
    EXPECT_FALSE(parseByteSize(bad)) << bad;
}
