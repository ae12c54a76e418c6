//===- MergeTest.cpp - merge methods on hand-computed tensors, merged files -----===//
#include "TempDir.h"
#include "mixtape/merge/Merge.h"
#include "mixtape/safetensors/SafeTensors.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <limits>

using namespace mixtape;
using namespace mixtape::merge;
namespace st = mixtape::safetensors;

namespace {

using mixtape::test::TempDir;

std::string readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

at::Tensor vec(std::vector<double> v) { return at::tensor(v, at::kDouble); }

std::vector<double> values(const at::Tensor &t) {
  at::Tensor d = t.to(at::kDouble).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

void expectNear(const at::Tensor &got, std::vector<double> want) {
  std::vector<double> v = values(got);
  ASSERT_EQ(v.size(), want.size());
  for (size_t i = 0; i < v.size(); ++i)
    EXPECT_NEAR(v[i], want[i], 1e-9) << "entry " << i;
}

MergeOptions options(Method method) {
  MergeOptions o;
  o.Method = method;
  return o;
}

/// A safetensors file of ATen tensors, in the given order.
void writeModel(const std::string &path, const std::vector<std::pair<std::string, at::Tensor>> &tensors,
                st::DType floatType = st::DType::F32) {
  std::vector<at::Tensor> keep;
  std::vector<st::TensorData> data;
  const c10::ScalarType torchType = floatType == st::DType::F64    ? at::kDouble
                                    : floatType == st::DType::BF16 ? at::kBFloat16
                                                                   : at::kFloat;
  for (const auto &[name, t] : tensors) {
    bool integer = t.scalar_type() == at::kLong;
    at::Tensor c = (integer ? t : t.to(torchType)).contiguous();
    keep.push_back(c);
    st::DType type = integer ? st::DType::I64 : floatType;
    data.push_back({name, type, c.sizes().vec(),
                    llvm::ArrayRef<uint8_t>(static_cast<const uint8_t *>(c.data_ptr()), c.nbytes())});
  }
  ASSERT_FALSE(llvm::errorToBool(st::write(path, data, {{"format", "pt"}})));
}

std::string mergeError(const MergeOptions &o, std::vector<std::string> models, std::optional<std::string> base,
                       const std::string &out) {
  llvm::Error e = mergeFiles(o, models, base, out);
  return e ? llvm::toString(std::move(e)) : std::string();
}

} // namespace

TEST(Merge, LinearIsAWeightedAverage) {
  MergeOptions o = options(Method::Linear);
  o.Weights = {1, 3};
  // (1*1 + 3*3) / 4, (1*2 + 3*6) / 4
  expectNear(mergeTensors(o, {vec({1, 2}), vec({3, 6})}, {}, "w"), {2.5, 5});
  o.Normalize = false;
  expectNear(mergeTensors(o, {vec({1, 2}), vec({3, 6})}, {}, "w"), {10, 20});
}

TEST(Merge, TaskArithmeticAddsWeightedTaskVectors) {
  MergeOptions o = options(Method::TaskArithmetic);
  o.Weights = {1, 0.5};
  // deltas [1, -1, 0] and [0, 2, 0]: base + [1, -1 + 0.5*2, 0]; not normalized by default (MergeKit).
  expectNear(mergeTensors(o, {vec({2, 0, 1}), vec({1, 3, 1})}, vec({1, 1, 1}), "w"), {2, 1, 1});
}

// normalize = true divides the weighted sum of task vectors by the sum of the weights, as
// MergeKit's GTATask does; a sum of weights of 0 divides by 1.
TEST(Merge, TaskArithmeticNormalizesWhenAsked) {
  MergeOptions o = options(Method::TaskArithmetic);
  o.Weights = {1, 0.5};
  o.Normalize = true;
  // base + [1, 0, 0] / 1.5
  expectNear(mergeTensors(o, {vec({2, 0, 1}), vec({1, 3, 1})}, vec({1, 1, 1}), "w"), {1 + 1 / 1.5, 1, 1});
  o.Weights = {1, -1};
  // [1, -1, 0] - [0, 2, 0] = [1, -3, 0], divided by 1 (the weights sum to 0).
  expectNear(mergeTensors(o, {vec({2, 0, 1}), vec({1, 3, 1})}, vec({1, 1, 1}), "w"), {2, -2, 1});
  o.Normalize = false;
  o.Weights = {1, 0.5};
  expectNear(mergeTensors(o, {vec({2, 0, 1}), vec({1, 3, 1})}, vec({1, 1, 1}), "w"), {2, 1, 1});
}

// dare_linear divides by the sum of all the weights, whatever the drop kept; dare_ties by the
// weights of the entries that agree with the elected sign, and a dropped entry (0) never
// agrees. Two models with the same task vector of ones, density 0.5: each kept entry is 2.
TEST(Merge, DareNormalizesAsMergeKitDoes) {
  at::Tensor base = at::zeros({1000}, at::kDouble), model = at::ones({1000}, at::kDouble);
  MergeOptions o = options(Method::DareLinear);
  o.Density = 0.5;
  o.Seed = 7;
  at::Tensor sum = mergeTensors(o, {model, model}, base, "w"); // 0, 2 or 4 per entry
  o.Normalize = true;
  EXPECT_TRUE(at::equal(mergeTensors(o, {model, model}, base, "w"), sum / 2));
  // Both dropped: 0 (divisor 0, taken as 1); one kept: 2 / 1; both kept: 4 / 2.
  MergeOptions t = options(Method::DareTies);
  t.Density = 0.5;
  t.Seed = 7;
  EXPECT_TRUE(at::equal(mergeTensors(t, {model, model}, base, "w"), sum)) << "the same drop, all signs +";
  t.Normalize = true;
  at::Tensor mean = mergeTensors(t, {model, model}, base, "w");
  EXPECT_TRUE(at::equal(mean, at::where(sum == 0, at::zeros_like(sum), at::full_like(sum, 2))));
  EXPECT_GT((sum == 2).sum().item<int64_t>(), 100) << "some entries kept by one model only";
  EXPECT_GT((sum == 0).sum().item<int64_t>(), 100) << "some entries dropped by both";
  // Without a drop: [1, -2] and [3, 1] elect [+, -]; entry 0 averages 1 and 3, entry 1 keeps -2.
  t.Density = 1;
  expectNear(mergeTensors(t, {vec({1, -2}), vec({3, 1})}, vec({0, 0}), "w"), {2, -2});
}

TEST(Merge, TiesElectsSignsAndAveragesTheAgreeingEntries) {
  MergeOptions o = options(Method::Ties);
  at::Tensor base = vec({10, 10, 10, 10, 10});
  at::Tensor a = base + vec({1, -2, 0, 3, 0}), b = base + vec({-3, 1, 0, 1, 5});
  // Sums [-2, -1, 0, 4, 5] elect [-, -, +, +, +]. Entry 0: only b agrees (-3). Entry 1: only
  // a (-2). Entry 2: both deltas are 0, whose sign agrees with neither: no change. Entry 3:
  // both agree, mean 2. Entry 4: a's zero does not count, so b's 5 is not halved.
  expectNear(mergeTensors(o, {a, b}, base, "w"), {7, 8, 10, 12, 15});
  o.Normalize = false;
  expectNear(mergeTensors(o, {a, b}, base, "w"), {7, 8, 10, 14, 15});
  // density 0.4 keeps int(0.4 * 5) = 2 entries per task vector: a [0, -2, 0, 3, 0], b [-3, 0, 0, 0, 5].
  o.Normalize = true;
  o.Density = 0.4;
  expectNear(mergeTensors(o, {a, b}, base, "w"), {7, 8, 10, 13, 15});
  // Weights scale the deltas before the election: 3 * [1] beats 1 * [-2].
  MergeOptions w = options(Method::Ties);
  w.Weights = {3, 1};
  expectNear(mergeTensors(w, {vec({1}), vec({-2})}, vec({0}), "w"), {1}); // (3*1) / 3
}

TEST(Merge, SlerpInterpolatesOnTheSphereAndLerpsWhenColinear) {
  MergeOptions o = options(Method::Slerp);
  o.T = 0.5;
  // Orthogonal: theta = pi/2, both coefficients sin(pi/4) / sin(pi/2).
  double s = std::sin(M_PI / 4);
  expectNear(mergeTensors(o, {vec({1, 0}), vec({0, 1})}, {}, "w"), {s, s});
  // Colinear (cos = 1 > 0.9995) and opposite (cos = -1): plain lerp, not a division by sin(0).
  o.T = 0.25;
  expectNear(mergeTensors(o, {vec({1, 2, 3}), vec({2, 4, 6})}, {}, "w"), {1.25, 2.5, 3.75});
  expectNear(mergeTensors(o, {vec({1, 2, 3}), vec({-1, -2, -3})}, {}, "w"), {0.5, 1, 1.5});
  // Nearly colinear: cos = 0.99995, still lerp.
  at::Tensor a = vec({1, 0}), b = vec({1, 0.01});
  expectNear(mergeTensors(o, {a, b}, {}, "w"), {1, 0.0025});
}

// MergeKit's slerp (merge_methods/slerp.py) takes the angle from normalized copies and then
// weights the vectors as they are, so their lengths interpolate too. Values by hand from
// s0 = sin((1-t)θ)/sin θ, s1 = sin(tθ)/sin θ.
TEST(Merge, SlerpWeightsTheVectorsAsTheyAreNotTheirDirections) {
  MergeOptions o = options(Method::Slerp);
  // [3, 0] and [0, 2] at t = 0.5: θ = π/2, s0 = s1 = sin(π/4) = 0.70710678...; the directions'
  // slerp would be [0.707, 0.707].
  o.T = 0.5;
  expectNear(mergeTensors(o, {vec({3, 0}), vec({0, 2})}, {}, "w"), {2.1213203435596424, 1.414213562373095});
  // A tensor of any shape is one vector: the same, as 2 x 2 matrices.
  at::Tensor m = mergeTensors(o, {vec({3, 0, 0, 0}).view({2, 2}), vec({0, 0, 0, 2}).view({2, 2})}, {}, "w");
  EXPECT_EQ(m.sizes().vec(), (std::vector<int64_t>{2, 2}));
  expectNear(m, {2.1213203435596424, 0, 0, 1.414213562373095});
  // [4, 0] and [1, 1] at t = 0.25: cos θ = 1/√2, θ = π/4; s0 = sin(3π/16)/sin(π/4) =
  // 0.78569495838710, s1 = sin(π/16)/sin(π/4) = 0.27589937928294: [4 s0 + s1, s1].
  o.T = 0.25;
  expectNear(mergeTensors(o, {vec({4, 0}), vec({1, 1})}, {}, "w"), {3.418679212831352, 0.275899379282943});
  // The ends are the models themselves, lengths included.
  o.T = 0;
  expectNear(mergeTensors(o, {vec({4, 0}), vec({1, 1})}, {}, "w"), {4, 0});
  o.T = 1;
  expectNear(mergeTensors(o, {vec({4, 0}), vec({1, 1})}, {}, "w"), {1, 1});
  // A zero vector is left as it is by MergeKit's normalize(): the dot is 0, θ = π/2, and the
  // result is sin(π/4) times the other vector, not the lerp's half of it.
  o.T = 0.5;
  expectNear(mergeTensors(o, {vec({0, 0}), vec({0, 2})}, {}, "w"), {0, 1.414213562373095});
}

TEST(Merge, DareDropsDeterministicallyAndRescales) {
  MergeOptions o = options(Method::DareLinear);
  o.Density = 0.5;
  o.Seed = 42;
  at::Tensor base = at::zeros({1000}, at::kDouble), model = at::ones({1000}, at::kDouble);
  at::Tensor first = mergeTensors(o, {model}, base, "layers.0.weight");
  // Kept entries are divided by the density: every entry is 0 or 2, and about half are kept.
  int64_t kept = (first == 2).sum().item<int64_t>();
  EXPECT_EQ(kept + (first == 0).sum().item<int64_t>(), 1000);
  EXPECT_GT(kept, 430);
  EXPECT_LT(kept, 570);
  // The same seed and tensor name draw the same mask; another name or seed another one.
  EXPECT_TRUE(at::equal(first, mergeTensors(o, {model}, base, "layers.0.weight")));
  EXPECT_FALSE(at::equal(first, mergeTensors(o, {model}, base, "layers.1.weight")));
  o.Seed = 43;
  EXPECT_FALSE(at::equal(first, mergeTensors(o, {model}, base, "layers.0.weight")));
  EXPECT_NE(dropSeed(42, "a"), dropSeed(42, "b"));
  EXPECT_EQ(dropSeed(42, "a"), dropSeed(42, "a"));
  // Two models draw different masks.
  o.Seed = 42;
  at::Tensor two = mergeTensors(o, {model, model}, base, "layers.0.weight");
  EXPECT_GT((two == 2).sum().item<int64_t>(), 100); // one model's entry kept, the other's not
  // density 1 keeps everything and rescales nothing.
  o.Density = 1;
  EXPECT_TRUE(at::equal(mergeTensors(o, {model}, base, "w"), model));
}

TEST(Merge, DareTiesElectsSignsWithoutNormalizing) {
  MergeOptions o = options(Method::DareTies);
  o.Density = 1; // no drop: the election alone
  expectNear(mergeTensors(o, {vec({1, -2}), vec({3, 1})}, vec({0, 0}), "w"), {4, -2});
}

TEST(Merge, ValidateStatesWhatAMethodNeeds) {
  auto message = [](const MergeOptions &o, size_t models, bool base) {
    llvm::Error e = o.validate(models, base);
    return e ? llvm::toString(std::move(e)) : std::string();
  };
  EXPECT_EQ(message(options(Method::Slerp), 3, false), "slerp merges exactly two models, not 3");
  EXPECT_EQ(message(options(Method::Ties), 2, false), "'ties' merges task vectors: it needs a base model");
  EXPECT_EQ(message(options(Method::Linear), 2, true), "'linear' takes no base model");
  MergeOptions w = options(Method::Linear);
  w.Weights = {1};
  EXPECT_EQ(message(w, 2, false), "1 weights for 2 models");
  MergeOptions d = options(Method::DareTies);
  d.Density = 0;
  EXPECT_EQ(message(d, 2, true), "density must be in (0, 1], not 0");
  EXPECT_EQ(message(options(Method::Linear), 2, false), "");
}

TEST(MergeFiles, LinearMergeOfIdenticalModelsIsByteIdentical) {
  TempDir dir;
  at::Tensor w = at::randn({7, 5}, at::kFloat), e = at::randn({3}, at::kFloat);
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"z.weight", w}, {"a.embed", e}, {"position_ids", at::arange(4, at::kLong)}};
  writeModel(dir / "m.safetensors", tensors);
  writeModel(dir / "half.safetensors", tensors, st::DType::BF16);
  MergeOptions o = options(Method::Linear);
  std::string m = dir / "m.safetensors";
  ASSERT_EQ(mergeError(o, {m, m, m}, std::nullopt, dir / "out.safetensors"), "");
  EXPECT_EQ(readBytes(m), readBytes(dir / "out.safetensors"));
  std::string h = dir / "half.safetensors";
  ASSERT_EQ(mergeError(o, {h, h, h}, std::nullopt, dir / "out-half.safetensors"), "");
  EXPECT_EQ(readBytes(h), readBytes(dir / "out-half.safetensors"));
}

TEST(MergeFiles, KeepsNamesOrderAndDtypesAndMergesEachTensor) {
  TempDir dir;
  writeModel(dir / "base.safetensors", {{"w", vec({10, 10})}, {"b", vec({1})}, {"ids", at::arange(2, at::kLong)}},
             st::DType::BF16);
  writeModel(dir / "a.safetensors", {{"w", vec({12, 9})}, {"b", vec({3})}, {"ids", at::arange(2, at::kLong)}},
             st::DType::BF16);
  writeModel(dir / "b.safetensors", {{"b", vec({2})}, {"w", vec({11, 7})}, {"ids", at::arange(2, at::kLong)}},
             st::DType::BF16);
  MergeOptions o = options(Method::TaskArithmetic);
  ASSERT_EQ(mergeError(o, {dir / "a.safetensors", dir / "b.safetensors"}, dir / "base.safetensors",
                       dir / "out.safetensors"),
            "");
  llvm::Expected<st::File> f = st::File::open(dir / "out.safetensors");
  ASSERT_TRUE(!!f) << llvm::toString(f.takeError());
  ASSERT_EQ(f->tensors().size(), 3u);
  // The first model's order; its dtypes; the base's metadata.
  EXPECT_EQ(f->tensors()[0].Name, "w");
  EXPECT_EQ(f->tensors()[1].Name, "b");
  EXPECT_EQ(f->tensors()[2].Name, "ids");
  EXPECT_EQ(f->tensors()[0].Dtype, st::DType::BF16);
  EXPECT_EQ(f->tensors()[2].Dtype, st::DType::I64);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const st::TensorInfo *w = f->find("w");
  at::Tensor merged = at::from_blob(const_cast<uint8_t *>(w->Bytes.data()), {2}, at::kBFloat16);
  expectNear(merged, {13, 6}); // 10 + (2 + 1), 10 + (-1 - 3)
}

// A NaN or infinity in any input, model or base, of any floating dtype, is an error naming the
// file and the tensor, and nothing is written.
TEST(MergeFiles, ValuesThatAreNotFiniteAreRejected) {
  TempDir dir;
  std::string a = dir / "a.safetensors", b = dir / "b.safetensors", base = dir / "base.safetensors",
              out = dir / "out.safetensors";
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  writeModel(a, {{"b", vec({1, 2})}, {"w", vec({1, 2, 3})}});
  writeModel(b, {{"b", vec({1, 2})}, {"w", vec({1, nan, nan})}});
  writeModel(base, {{"b", vec({1, -inf})}, {"w", vec({1, 2, 3})}});
  MergeOptions linear = options(Method::Linear);
  EXPECT_EQ(mergeError(linear, {a, b}, std::nullopt, out),
            b + ": tensor 'w' holds 2 value(s) that are not finite, the first nan at index 1: it cannot be merged");
  EXPECT_FALSE(llvm::sys::fs::exists(out));
  EXPECT_EQ(mergeError(options(Method::TaskArithmetic), {a, a}, base, out),
            base + ": tensor 'b' holds 1 value(s) that are not finite, the first -inf at index 1: it cannot be merged");
  EXPECT_FALSE(llvm::sys::fs::exists(out));
  writeModel(b, {{"b", vec({inf, 2})}, {"w", vec({1, 2, 3})}}, st::DType::BF16);
  writeModel(a, {{"b", vec({1, 2})}, {"w", vec({1, 2, 3})}}, st::DType::BF16);
  EXPECT_EQ(mergeError(options(Method::Slerp), {a, b}, std::nullopt, out),
            b + ": tensor 'b' holds 1 value(s) that are not finite, the first inf at index 0: it cannot be merged");
  EXPECT_FALSE(llvm::sys::fs::exists(out));
  EXPECT_EQ(mergeError(linear, {a, a}, std::nullopt, out), "");
}

TEST(MergeFiles, MismatchedNamesShapesAndDtypesAreRejected) {
  TempDir dir;
  std::string a = dir / "a.safetensors", b = dir / "b.safetensors", out = dir / "out.safetensors";
  MergeOptions o = options(Method::Linear);
  writeModel(a, {{"w", at::zeros({2, 3})}, {"b", at::zeros({3})}});

  writeModel(b, {{"w", at::zeros({2, 3})}});
  EXPECT_EQ(mergeError(o, {a, b}, std::nullopt, out), "tensor 'b' is in " + a + " but not in " + b);
  EXPECT_EQ(mergeError(o, {b, a}, std::nullopt, out), "tensor 'b' is in " + a + " but not in " + b);

  writeModel(b, {{"w", at::zeros({3, 2})}, {"b", at::zeros({3})}});
  EXPECT_EQ(mergeError(o, {a, b}, std::nullopt, out),
            "tensor 'w' has shape [2, 3] in " + a + " but [3, 2] in " + b);

  writeModel(b, {{"w", at::zeros({2, 3})}, {"b", at::zeros({3})}}, st::DType::F64);
  EXPECT_EQ(mergeError(o, {a, b}, std::nullopt, out), "tensor 'w' is F32 in " + a + " but F64 in " + b);

  writeModel(b, {{"w", at::zeros({2, 3})}, {"b", at::zeros({3})}});
  writeModel(dir / "ids1", {{"w", at::zeros({2})}, {"ids", at::arange(2, at::kLong)}});
  writeModel(dir / "ids2", {{"w", at::zeros({2})}, {"ids", at::arange(1, 3, at::kLong)}});
  EXPECT_EQ(mergeError(o, {dir / "ids1", dir / "ids2"}, std::nullopt, out),
            "tensor 'ids' is I64, which is not merged, and " + dir / "ids1" + " and " + dir / "ids2" +
                " disagree on it");
  EXPECT_FALSE(llvm::sys::fs::exists(out));
}
