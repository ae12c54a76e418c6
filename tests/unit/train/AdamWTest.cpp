//===- AdamWTest.cpp - the update, groups, clipping, state files ----------===//
#include "../model/ModelTestSupport.h"

#include "mixtape/train/AdamW.h"

#include <cmath>
#include <set>

using namespace mixtape::model;
using namespace mixtape::model::test;
using namespace mixtape::train;

namespace {

NamedParameter leaf(const std::string &name, std::vector<double> values, ParamKind kind) {
  at::Tensor t = at::tensor(values, at::kDouble);
  t.set_requires_grad(true);
  return {name, t, kind};
}

} // namespace

// Two steps on a 2-element tensor against Algorithm 2 of Loshchilov & Hutter (2019),
// written out by hand: decoupled decay, both moments, both bias corrections.
TEST(AdamW, TwoStepsByHand) {
  NamedParameter w = leaf("w", {1.0, -2.0}, ParamKind::Matrix);
  AdamWOptions o;
  o.Beta1 = 0.9, o.Beta2 = 0.99, o.Eps = 1e-8, o.WeightDecay = 0.1;
  AdamW opt({w}, o);
  const double lr = 0.01;
  double p[2] = {1.0, -2.0}, m[2] = {0, 0}, v[2] = {0, 0};
  const double grads[2][2] = {{0.5, -1.0}, {0.25, 2.0}};
  for (int t = 1; t <= 2; ++t) {
    w.Tensor.mutable_grad() = at::tensor(std::vector<double>{grads[t - 1][0], grads[t - 1][1]}, at::kDouble);
    opt.step(lr);
    for (int i = 0; i < 2; ++i) {
      double g = grads[t - 1][i];
      p[i] -= lr * o.WeightDecay * p[i];
      m[i] = o.Beta1 * m[i] + (1 - o.Beta1) * g;
      v[i] = o.Beta2 * v[i] + (1 - o.Beta2) * g * g;
      double mHat = m[i] / (1 - std::pow(o.Beta1, t)), vHat = v[i] / (1 - std::pow(o.Beta2, t));
      p[i] -= lr * mHat / (std::sqrt(vHat) + o.Eps);
      EXPECT_NEAR(w.Tensor[i].item<double>(), p[i], 1e-15) << "step " << t << " element " << i;
      EXPECT_NEAR(opt.expAvg(0)[i].item<double>(), m[i], 1e-15);
      EXPECT_NEAR(opt.expAvgSq(0)[i].item<double>(), v[i], 1e-15);
    }
  }
  EXPECT_EQ(opt.steps(), 2);
}

TEST(AdamW, NormsBiasesAndEmbeddingsDoNotDecayUnlessAsked) {
  std::unique_ptr<Model> model = makeModel(tinyConfig(Family::GPT2));
  AdamW opt(model->parameters(), AdamWOptions{});
  ASSERT_EQ(opt.groups().size(), 2u);
  EXPECT_EQ(opt.groups()[0].Name, "decay");
  EXPECT_EQ(opt.groups()[0].WeightDecay, 0.1);
  EXPECT_EQ(opt.groups()[1].WeightDecay, 0.0);
  for (size_t i : opt.groups()[0].Members)
    EXPECT_EQ(model->parameters()[i].Kind, ParamKind::Matrix) << model->parameters()[i].Name;
  std::set<std::string> noDecay;
  for (size_t i : opt.groups()[1].Members)
    noDecay.insert(model->parameters()[i].Name);
  for (const char *name : {"transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
                           "transformer.h.0.ln_1.bias", "transformer.h.1.attn.c_attn.bias",
                           "transformer.ln_f.weight"})
    EXPECT_TRUE(noDecay.count(name)) << name;
  EXPECT_EQ(opt.groups()[0].Members.size() + noDecay.size(), model->parameters().size());

  // A zero gradient leaves a no-decay parameter alone and shrinks a decaying one.
  for (const NamedParameter &p : model->parameters())
    p.Tensor.mutable_grad() = at::zeros_like(p.Tensor);
  at::Tensor norm = model->findParameter("transformer.h.0.ln_1.weight")->Tensor.detach().clone();
  at::Tensor matrix = model->findParameter("transformer.h.0.mlp.c_fc.weight")->Tensor.detach().clone();
  opt.step(0.5);
  EXPECT_TRUE(at::equal(model->findParameter("transformer.h.0.ln_1.weight")->Tensor, norm));
  EXPECT_TRUE(at::allclose(model->findParameter("transformer.h.0.mlp.c_fc.weight")->Tensor,
                           matrix * (1 - 0.5 * 0.1)));

  AdamWOptions all;
  all.DecayAllParameters = true;
  AdamW everything(model->parameters(), all);
  EXPECT_EQ(everything.groups()[0].Members.size(), model->parameters().size());
  EXPECT_TRUE(everything.groups()[1].Members.empty());
}

TEST(AdamW, ClipGradNormScalesToTheGlobalNorm) {
  NamedParameter a = leaf("a", {3.0, 0.0}, ParamKind::Matrix), b = leaf("b", {0.0}, ParamKind::Bias);
  a.Tensor.mutable_grad() = at::tensor(std::vector<double>{3.0, 0.0}, at::kDouble);
  b.Tensor.mutable_grad() = at::tensor(std::vector<double>{4.0}, at::kDouble);
  EXPECT_DOUBLE_EQ(clipGradNorm({a, b}, 10.0), 5.0); // under the limit: untouched
  EXPECT_EQ(b.Tensor.grad().item<double>(), 4.0);
  EXPECT_DOUBLE_EQ(clipGradNorm({a, b}, 1.0), 5.0);
  EXPECT_NEAR(a.Tensor.grad()[0].item<double>(), 3.0 / (5.0 + 1e-6), 1e-12);
  EXPECT_NEAR(b.Tensor.grad().item<double>(), 4.0 / (5.0 + 1e-6), 1e-12);
}

TEST(AdamW, StateRoundTripContinuesIdentically) {
  TempDir tmp;
  std::unique_ptr<Model> model = makeModel(tinyConfig(Family::Llama), 4);
  AdamW opt(model->parameters(), AdamWOptions{});
  for (int step = 0; step < 3; ++step) {
    for (const NamedParameter &p : model->parameters())
      p.Tensor.mutable_grad() = at::full_like(p.Tensor, 0.01 * (step + 1)) + p.Tensor.detach() * 0.5;
    opt.step(1e-3);
  }
  ASSERT_FALSE(llvm::errorToBool(opt.saveState(tmp / "optimizer.safetensors")));
  ASSERT_FALSE(llvm::errorToBool(model->saveWeights(tmp / "model.safetensors")));

  std::unique_ptr<Model> resumed = makeModel(tinyConfig(Family::Llama), 99);
  ASSERT_FALSE(llvm::errorToBool(resumed->loadWeights(tmp / "model.safetensors")));
  AdamW reopened(resumed->parameters(), AdamWOptions{});
  llvm::Error err = reopened.loadState(tmp / "optimizer.safetensors");
  ASSERT_FALSE(!!err) << llvm::toString(std::move(err));
  EXPECT_EQ(reopened.steps(), 3);
  for (size_t i = 0; i < model->parameters().size(); ++i) {
    EXPECT_TRUE(at::equal(opt.expAvg(i), reopened.expAvg(i)));
    EXPECT_TRUE(at::equal(opt.expAvgSq(i), reopened.expAvgSq(i)));
  }
  // One more step on both: bit-identical weights.
  for (auto [m, o] : {std::pair{model.get(), &opt}, {resumed.get(), &reopened}}) {
    for (const NamedParameter &p : m->parameters())
      p.Tensor.mutable_grad() = p.Tensor.detach() * -0.25;
    o->step(1e-3);
  }
  for (size_t i = 0; i < model->parameters().size(); ++i)
    EXPECT_TRUE(at::equal(model->parameters()[i].Tensor, resumed->parameters()[i].Tensor))
        << model->parameters()[i].Name;

  // The state of another model does not load.
  std::unique_ptr<Model> other = makeModel(tinyConfig(Family::GPT2));
  AdamW otherOpt(other->parameters(), AdamWOptions{});
  err = otherOpt.loadState(tmp / "optimizer.safetensors");
  ASSERT_TRUE(!!err);
  EXPECT_NE(llvm::toString(std::move(err)).find("optimizer.safetensors: holds"), std::string::npos);
  // Nor do model weights as optimizer state.
  err = reopened.loadState(tmp / "model.safetensors");
  ASSERT_TRUE(!!err);
  EXPECT_NE(llvm::toString(std::move(err)).find("not an AdamW state file"), std::string::npos);
}
