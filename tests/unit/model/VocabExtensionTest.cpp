//===- VocabExtensionTest.cpp - new rows for new tokens, old logits kept --===//
#include "ModelTestSupport.h"

#include "mixtape/model/VocabExtension.h"

using namespace mixtape;
using namespace mixtape::model;
using namespace mixtape::model::test;

namespace {

class VocabExtension : public testing::TestWithParam<Family> {};

constexpr int64_t kOld = 11, kNew = 15; // tinyConfig's vocabulary, and 4 new tokens

VocabExtensionOptions options(plan::NewTokenInit init) {
  VocabExtensionOptions o;
  o.Vocab = kNew;
  o.FirstNew = kOld;
  o.EndNew = kNew;
  o.Init = init;
  o.Seed = 5;
  if (init == plan::NewTokenInit::SubwordMean)
    o.Pieces = {{3, 4}, {7}, {}, {0, 0, 10}};
  return o;
}

std::unique_ptr<Model> extended(const Model &old, plan::NewTokenInit init) {
  llvm::Expected<std::unique_ptr<Model>> m = extendVocabulary(old, options(init));
  if (!m) {
    ADD_FAILURE() << llvm::toString(m.takeError());
    return nullptr;
  }
  return std::move(*m);
}

/// The parameters with one row per token: the embedding, and the head when it is not tied.
std::vector<std::string> tokenRows(const Model &m) {
  std::vector<std::string> names;
  for (const NamedParameter &p : m.parameters())
    if (p.Tensor.dim() == 2 && p.Tensor.size(0) == m.config().VocabSize)
      names.push_back(p.Name);
  return names;
}

TEST_P(VocabExtension, OldTokenLogitsAreUnchangedBitForBit) {
  std::unique_ptr<Model> old = makeModel(tinyConfig(GetParam()), 3);
  at::Tensor input = tokens(2, 9, kOld, 21);
  at::NoGradGuard noGrad;
  at::Tensor before = old->forward(input);
  for (plan::NewTokenInit init :
       {plan::NewTokenInit::Mean, plan::NewTokenInit::SubwordMean, plan::NewTokenInit::Random}) {
    std::unique_ptr<Model> m = extended(*old, init);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->config().VocabSize, kNew);
    at::Tensor after = m->forward(input);
    ASSERT_EQ(after.size(2), kNew);
    EXPECT_TRUE(at::equal(after.narrow(2, 0, kOld), before)) << plan::enumName(init).str();
  }
}

TEST_P(VocabExtension, EveryOtherParameterIsCopied) {
  std::unique_ptr<Model> old = makeModel(tinyConfig(GetParam()), 3);
  std::unique_ptr<Model> m = extended(*old, plan::NewTokenInit::Mean);
  ASSERT_TRUE(m);
  ASSERT_EQ(m->parameters().size(), old->parameters().size());
  for (const NamedParameter &p : old->parameters()) {
    const at::Tensor now = m->findParameter(p.Name)->Tensor;
    EXPECT_TRUE(at::equal(now.narrow(0, 0, p.Tensor.size(0)), p.Tensor)) << p.Name;
    EXPECT_TRUE(now.requires_grad()) << p.Name;
  }
}

TEST_P(VocabExtension, MeanIsTheMeanOfTheOldRows) {
  std::unique_ptr<Model> old = makeModel(tinyConfig(GetParam()), 3);
  std::unique_ptr<Model> m = extended(*old, plan::NewTokenInit::Mean);
  ASSERT_TRUE(m);
  for (const std::string &name : tokenRows(*m)) {
    const at::Tensor rows = old->findParameter(name)->Tensor.detach();
    at::Tensor mean = at::zeros({rows.size(1)}, at::kDouble);
    for (int64_t t = 0; t < kOld; ++t)
      mean += rows[t].to(at::kDouble);
    mean /= static_cast<double>(kOld);
    for (int64_t t = kOld; t < kNew; ++t)
      EXPECT_TRUE(at::allclose(m->findParameter(name)->Tensor[t].detach().to(at::kDouble), mean, 1e-6, 1e-7))
          << name << " row " << t;
  }
}

TEST_P(VocabExtension, SubwordMeanIsTheMeanOfTheOldPieces) {
  std::unique_ptr<Model> old = makeModel(tinyConfig(GetParam()), 3);
  std::unique_ptr<Model> m = extended(*old, plan::NewTokenInit::SubwordMean);
  ASSERT_TRUE(m);
  for (const std::string &name : tokenRows(*m)) {
    const at::Tensor r = old->findParameter(name)->Tensor.detach().to(at::kDouble);
    const at::Tensor now = m->findParameter(name)->Tensor.detach().to(at::kDouble);
    // Pieces {3, 4}, {7}, none (the mean of all old rows), {0, 0, 10} (a repeated piece counts twice).
    EXPECT_TRUE(at::allclose(now[11], (r[3] + r[4]) / 2, 1e-6, 1e-7)) << name;
    EXPECT_TRUE(at::equal(now[12], r[7])) << name;
    EXPECT_TRUE(at::allclose(now[13], r.sum(0) / kOld, 1e-6, 1e-7)) << name;
    EXPECT_TRUE(at::allclose(now[14], (2 * r[0] + r[10]) / 3, 1e-6, 1e-7)) << name;
  }
}

TEST_P(VocabExtension, RandomRowsAreAFreshModelsRows) {
  std::unique_ptr<Model> old = makeModel(tinyConfig(GetParam()), 3);
  std::unique_ptr<Model> m = extended(*old, plan::NewTokenInit::Random);
  ASSERT_TRUE(m);
  ModelConfig c = tinyConfig(GetParam());
  c.VocabSize = kNew;
  std::unique_ptr<Model> fresh = makeModel(c, options(plan::NewTokenInit::Random).Seed);
  for (const std::string &name : tokenRows(*m))
    EXPECT_TRUE(at::equal(m->findParameter(name)->Tensor.narrow(0, kOld, kNew - kOld),
                          fresh->findParameter(name)->Tensor.narrow(0, kOld, kNew - kOld)))
        << name;
}

TEST(VocabExtensionErrors, RefusesWhatIsNoExtension) {
  std::unique_ptr<Model> old = makeModel(tinyConfig(Family::Llama), 3);
  VocabExtensionOptions shrink = options(plan::NewTokenInit::Mean);
  shrink.Vocab = shrink.EndNew = 9;
  shrink.FirstNew = 5;
  llvm::Expected<std::unique_ptr<Model>> shrunk = extendVocabulary(*old, shrink);
  ASSERT_FALSE(static_cast<bool>(shrunk));
  EXPECT_NE(llvm::toString(shrunk.takeError()).find("do not extend a model of 11 rows"), std::string::npos);
  VocabExtensionOptions newPiece = options(plan::NewTokenInit::SubwordMean);
  newPiece.Pieces[0] = {12};
  llvm::Expected<std::unique_ptr<Model>> refused = extendVocabulary(*old, newPiece);
  ASSERT_FALSE(static_cast<bool>(refused));
  EXPECT_NE(llvm::toString(refused.takeError()).find("piece id 12 is not an old token"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Families, VocabExtension, testing::ValuesIn(AllFamilies), familyLabel);

} // namespace
