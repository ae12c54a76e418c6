//===- GrowthTest.cpp - grown models compute the small model's function ---===//
#include "ModelTestSupport.h"

#include "mixtape/model/Growth.h"

using namespace mixtape::model;
using namespace mixtape::model::test;

namespace {

/// The tiny model with every parameter drawn at random: norm weights far from 1 and biases
/// far from 0, so that a wrong duplication or a division in the wrong place shows.
std::unique_ptr<Model> randomizedModel(Family family) {
  std::unique_ptr<Model> m = makeModel(tinyConfig(family), 3);
  at::NoGradGuard noGrad;
  at::Generator gen = at::detail::createCPUGenerator(5);
  for (const NamedParameter &p : m->parameters())
    if (p.Kind == ParamKind::Norm)
      p.Tensor.uniform_(0.5, 1.5, gen);
    else
      p.Tensor.normal_(0, 0.3, gen);
  return m;
}

/// `c` with `layers` blocks and width k times as large (heads, KV heads, ffn alike).
ModelConfig grownConfig(ModelConfig c, int64_t layers, int64_t k) {
  c.NumLayers = layers;
  c.DModel *= k;
  c.NumHeads *= k;
  c.NumKVHeads *= k;
  c.FfnHidden *= k;
  c.TieEmbeddings = c.TieEmbeddings && k == 1;
  return c;
}

struct Shape {
  const char *Name;
  int64_t Layers, Factor;
};
const Shape kShapes[] = {{"depth", 4, 1}, {"width", 2, 2}, {"both", 5, 3}};

class Growth : public testing::TestWithParam<Family> {};

TEST_P(Growth, LogitsEqualTheSmallModelsAfterDepthWidthAndBoth) {
  std::unique_ptr<Model> small = randomizedModel(GetParam());
  ASSERT_TRUE(small);
  at::Tensor input = tokens(2, 12, 11);
  at::Tensor starts = at::zeros({2, 12}, at::kLong);
  starts[1][5] = 1;
  at::NoGradGuard noGrad;
  const at::Tensor expected = small->forward(input, starts);
  for (const Shape &shape : kShapes) {
    SCOPED_TRACE(shape.Name);
    llvm::Expected<std::unique_ptr<Model>> grown =
        growModel(*small, grownConfig(small->config(), shape.Layers, shape.Factor));
    ASSERT_TRUE(static_cast<bool>(grown)) << llvm::toString(grown.takeError());
    EXPECT_EQ((*grown)->config().NumLayers, shape.Layers);
    EXPECT_EQ((*grown)->config().DModel, 8 * shape.Factor);
    const at::Tensor logits = (*grown)->forward(input, starts);
    ASSERT_EQ(logits.sizes(), expected.sizes());
    EXPECT_TRUE(at::allclose(logits, expected, /*rtol=*/1e-5, /*atol=*/1e-5))
        << "largest difference " << (logits - expected).abs().max().item<double>();
  }
}

TEST_P(Growth, NewBlocksStartAsTheIdentity) {
  std::unique_ptr<Model> small = randomizedModel(GetParam());
  ASSERT_TRUE(small);
  auto grown = growModel(*small, grownConfig(small->config(), 4, 1));
  ASSERT_TRUE(static_cast<bool>(grown)) << llvm::toString(grown.takeError());
  // Blocks 1 and 3 are the new ones, copies of the small model's blocks 0 and 1: every output
  // projection zero, everything else the copied block's.
  size_t zeroed = 0;
  for (const NamedParameter &p : (*grown)->parameters()) {
    llvm::StringRef name = p.Name;
    if (!name.contains(".1.") && !name.contains(".3."))
      continue;
    std::string copied = name.str();
    copied.replace(copied.find(name.contains(".1.") ? ".1." : ".3."), 3, name.contains(".1.") ? ".0." : ".1.");
    const NamedParameter *source = small->findParameter(copied);
    ASSERT_TRUE(source) << copied;
    const at::Tensor &from = source->Tensor;
    if (p.Tensor.abs().max().item<double>() == 0 && from.abs().max().item<double>() > 0)
      ++zeroed;
    else
      EXPECT_TRUE(at::equal(p.Tensor, from)) << p.Name;
  }
  // Two blocks, each with its attention and MLP output (GPT-2 and GPT-NeoX: their biases too).
  EXPECT_EQ(zeroed, GetParam() == Family::Llama ? 4u : 8u);
}

TEST_P(Growth, NoiseBreaksSymmetryAndIsSeeded) {
  std::unique_ptr<Model> small = randomizedModel(GetParam());
  ASSERT_TRUE(small);
  const ModelConfig to = grownConfig(small->config(), 2, 2);
  auto a = growModel(*small, to, GrowOptions{0.01, 7});
  auto b = growModel(*small, to, GrowOptions{0.01, 7});
  auto exact = growModel(*small, to);
  ASSERT_TRUE(a && b && exact);
  bool differs = false;
  for (size_t i = 0; i < (*a)->parameters().size(); ++i) {
    const at::Tensor &x = (*a)->parameters()[i].Tensor;
    EXPECT_TRUE(at::equal(x, (*b)->parameters()[i].Tensor)) << (*a)->parameters()[i].Name;
    differs |= !at::equal(x, (*exact)->parameters()[i].Tensor);
  }
  EXPECT_TRUE(differs);
}

INSTANTIATE_TEST_SUITE_P(Families, Growth, testing::ValuesIn(AllFamilies), familyLabel);

TEST(GrowthBlocks, NewBlocksFollowTheBlocksTheyCopyEvenlySpread) {
  using Sources = std::vector<std::pair<int64_t, bool>>;
  EXPECT_EQ(grownBlockSources(2, 4), (Sources{{0, false}, {0, true}, {1, false}, {1, true}}));
  // LLaMA Pro's groups: one new block after every group of two.
  EXPECT_EQ(grownBlockSources(4, 6), (Sources{{0, false}, {1, false}, {1, true}, {2, false}, {3, false}, {3, true}}));
  EXPECT_EQ(grownBlockSources(1, 3), (Sources{{0, false}, {0, true}, {0, true}}));
  EXPECT_EQ(grownBlockSources(3, 3), (Sources{{0, false}, {1, false}, {2, false}}));
}

TEST(GrowthErrors, ShapesThatDoNotPreserveTheFunction) {
  std::unique_ptr<Model> small = makeModel(tinyConfig(Family::Llama));
  ASSERT_TRUE(small);
  auto message = [&](const ModelConfig &to) {
    llvm::Expected<std::unique_ptr<Model>> m = growModel(*small, to);
    return m ? std::string() : llvm::toString(m.takeError());
  };
  ModelConfig fewer = small->config();
  fewer.NumLayers = 1;
  EXPECT_NE(message(fewer).find("cannot remove blocks"), std::string::npos);
  ModelConfig odd = small->config();
  odd.DModel = 12;
  odd.NumHeads = 3;
  EXPECT_NE(message(odd).find("d_model 12 is not a whole multiple of 8"), std::string::npos);
  ModelConfig headsOnly = grownConfig(small->config(), 2, 2);
  headsOnly.NumKVHeads = 1;
  EXPECT_NE(message(headsOnly).find("duplicates the heads (4), KV heads (2)"), std::string::npos);
}

} // namespace
