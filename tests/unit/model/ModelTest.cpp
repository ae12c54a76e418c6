//===- ModelTest.cpp - gradients, documents, loss masks, init -------------===//
#include "ModelTestSupport.h"

using namespace mixtape::model;
using namespace mixtape::model::test;

namespace {

class EachFamily : public testing::TestWithParam<Family> {};

/// Mean masked loss of `model` on a fixed packed batch with two documents per row.
at::Tensor batchLoss(const Model &model, const at::Tensor &inputs, const at::Tensor &targets,
                     const at::Tensor &mask, const at::Tensor &starts) {
  return maskedTokenLossSum(model.forward(inputs, starts), targets, mask) /
         double(countLossTokens(targets, mask));
}

} // namespace

// Autograd's gradient of every parameter against central differences, in float64, through
// the document mask and the loss mask.
TEST_P(EachFamily, GradientsMatchFiniteDifferences) {
  std::unique_ptr<Model> model = makeModel(tinyConfig(GetParam()), 3, at::kDouble);
  ASSERT_TRUE(model);
  const auto [inputs, targets, mask, starts] = packedBatch(7, model->config().VocabSize, 11);

  at::Tensor loss = batchLoss(*model, inputs, targets, mask, starts);
  loss.backward();

  at::NoGradGuard noGrad;
  const double h = 1e-6;
  for (const NamedParameter &p : model->parameters()) {
    ASSERT_TRUE(p.Tensor.grad().defined()) << p.Name;
    at::Tensor flat = p.Tensor.view({-1});
    const int64_t n = flat.numel();
    for (int64_t i : {int64_t(0), n / 2, n - 1}) {
      double saved = flat[i].item<double>();
      flat[i] = saved + h;
      double up = batchLoss(*model, inputs, targets, mask, starts).item<double>();
      flat[i] = saved - h;
      double down = batchLoss(*model, inputs, targets, mask, starts).item<double>();
      flat[i] = saved;
      double numeric = (up - down) / (2 * h);
      double analytic = p.Tensor.grad().view({-1})[i].item<double>();
      EXPECT_NEAR(analytic, numeric, 1e-7 + 1e-5 * std::abs(numeric))
          << p.Name << "[" << i << "]";
    }
  }
}

// A packed row with document starts gives, for each document, the logits of running that
// document alone.
TEST_P(EachFamily, AttentionWithinDocumentsEqualsSeparateRuns) {
  std::unique_ptr<Model> model = makeModel(tinyConfig(GetParam()), 5);
  ASSERT_TRUE(model);
  at::NoGradGuard noGrad;
  const int64_t V = model->config().VocabSize;
  const std::vector<int64_t> lengths = {3, 5, 1, 3};
  at::Tensor packed = tokens(1, 12, V, 21);
  at::Tensor starts = at::zeros({1, 12}, at::kBool);
  at::Tensor together = model->forward(packed, starts.index_fill(1, at::tensor(std::vector<int64_t>{0, 3, 8, 9}), true));
  int64_t offset = 0;
  for (int64_t len : lengths) {
    at::Tensor alone = model->forward(packed.narrow(1, offset, len).contiguous());
    EXPECT_TRUE(at::allclose(together.narrow(1, offset, len), alone, 1e-5, 1e-5))
        << "document at " << offset << ": max diff "
        << (together.narrow(1, offset, len) - alone).abs().max().item<double>();
    offset += len;
  }
  // Without document starts, later documents do see earlier ones.
  at::Tensor plain = model->forward(packed);
  EXPECT_FALSE(at::allclose(plain.narrow(1, 3, 5), together.narrow(1, 3, 5), 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(plain.narrow(1, 0, 3), together.narrow(1, 0, 3), 1e-6, 1e-6));
}

// Whatever the targets of masked positions are, the loss and every gradient are the same,
// and equal to the loss over the unmasked positions alone.
TEST_P(EachFamily, MaskedPositionsChangeNothing) {
  std::unique_ptr<Model> model = makeModel(tinyConfig(GetParam()), 9);
  ASSERT_TRUE(model);
  const int64_t V = model->config().VocabSize;
  at::Tensor inputs = tokens(2, 6, V, 31), targets = tokens(2, 6, V, 32);
  at::Tensor mask = at::ones({2, 6}, at::kBool);
  mask[0][1] = false;
  mask[1][5] = false;
  mask[1][0] = false;
  at::Tensor otherTargets = targets.clone();
  otherTargets[0][1] = (targets[0][1].item<int64_t>() + 3) % V;
  otherTargets[1][5] = -100; // padding ids need not be valid classes
  otherTargets[1][0] = (targets[1][0].item<int64_t>() + 1) % V;

  auto lossAndGrads = [&](const at::Tensor &t) {
    for (const NamedParameter &p : model->parameters())
      p.Tensor.mutable_grad() = at::Tensor();
    at::Tensor loss = maskedTokenLossSum(model->forward(inputs), t, mask);
    loss.backward();
    std::vector<at::Tensor> grads = {loss.detach()};
    for (const NamedParameter &p : model->parameters())
      grads.push_back(p.Tensor.grad().clone());
    return grads;
  };
  std::vector<at::Tensor> a = lossAndGrads(targets), b = lossAndGrads(otherTargets);
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(at::equal(a[i], b[i])) << (i ? model->parameters()[i - 1].Name : "loss");

  at::NoGradGuard noGrad;
  at::Tensor logits = model->forward(inputs);
  at::Tensor perToken = at::cross_entropy_loss(logits.view({-1, V}), targets.view({-1}), {},
                                               at::Reduction::None);
  EXPECT_NEAR(a[0].item<double>(), perToken.masked_select(mask.view({-1})).sum().item<double>(), 1e-5);
  EXPECT_EQ(countLossTokens(targets, mask), 9);
}

INSTANTIATE_TEST_SUITE_P(Families, EachFamily, testing::ValuesIn(AllFamilies), familyLabel);

TEST(ModelInit, SameSeedSameBitsOtherSeedOtherBits) {
  for (Family f : AllFamilies) {
    std::unique_ptr<Model> a = makeModel(tinyConfig(f), 42), b = makeModel(tinyConfig(f), 42),
                           c = makeModel(tinyConfig(f), 43);
    for (size_t i = 0; i < a->parameters().size(); ++i) {
      const NamedParameter &p = a->parameters()[i];
      EXPECT_TRUE(at::equal(p.Tensor, b->parameters()[i].Tensor)) << p.Name;
      if (p.Kind == ParamKind::Matrix || p.Kind == ParamKind::Embedding) {
        EXPECT_FALSE(at::equal(p.Tensor, c->parameters()[i].Tensor)) << p.Name;
      }
    }
  }
}

TEST(ModelInit, GPT2Scheme) {
  ModelConfig c = ModelConfig::defaults(Family::Llama, 512, 8, 256, 4, 64);
  std::unique_ptr<Model> m = makeModel(c, 1);
  auto stdOf = [&](const std::string &name) {
    return m->findParameter(name)->Tensor.std().item<double>();
  };
  EXPECT_NEAR(stdOf("model.layers.0.self_attn.q_proj.weight"), 0.02, 0.001);
  EXPECT_NEAR(stdOf("model.layers.3.mlp.down_proj.weight"), 0.02 / 4.0, 0.0005); // 1/sqrt(2*8)
  EXPECT_TRUE(at::equal(m->findParameter("model.norm.weight")->Tensor, at::ones({256})));
  EXPECT_EQ(m->findParameter("model.norm.weight")->Kind, ParamKind::Norm);
  EXPECT_EQ(m->findParameter("model.embed_tokens.weight")->Kind, ParamKind::Embedding);
  EXPECT_EQ(m->findParameter("lm_head.weight")->Kind, ParamKind::Matrix);
  EXPECT_EQ(c.FfnHidden, 704); // 8/3 * 256 rounded up to 64

  std::unique_ptr<Model> gpt2 = makeModel(tinyConfig(Family::GPT2));
  EXPECT_EQ(gpt2->findParameter("lm_head.weight"), nullptr) << "tied to transformer.wte.weight";
  EXPECT_EQ(gpt2->findParameter("transformer.h.1.attn.c_attn.weight")->Tensor.sizes(),
            (std::vector<int64_t>{8, 24})); // Conv1D: [in, out]
}

// What a fully sharded build relies on: parameters without bytes until given them, create's
// draws one parameter at a time, and a load of some parameters only.
TEST(ModelInit, UnallocatedParametersHaveShapesButNoBytes) {
  llvm::Expected<std::unique_ptr<Model>> m = Model::createUnallocated(tinyConfig(Family::Llama), at::kCPU);
  ASSERT_TRUE(bool(m)) << llvm::toString(m.takeError());
  std::unique_ptr<Model> whole = makeModel(tinyConfig(Family::Llama));
  ASSERT_EQ((*m)->parameters().size(), whole->parameters().size());
  for (size_t i = 0; i < whole->parameters().size(); ++i) {
    const at::Tensor &t = (*m)->parameters()[i].Tensor;
    EXPECT_EQ(t.sizes(), whole->parameters()[i].Tensor.sizes()) << whole->parameters()[i].Name;
    EXPECT_EQ(t.storage().nbytes(), 0u) << whole->parameters()[i].Name;
    EXPECT_TRUE(t.requires_grad());
  }
}

TEST(ModelInit, OneParameterAtATimeInOrderGivesCreatesBits) {
  for (Family f : AllFamilies) {
    std::unique_ptr<Model> created = makeModel(tinyConfig(f), 42), drawn = makeModel(tinyConfig(f), 7);
    Model::Initializer init(*drawn, 42);
    // Constants first (a tied model's sharded build fills the final norm with the embedding).
    for (size_t i = drawn->parameters().size(); i-- > 0;)
      if (drawn->parameters()[i].Kind == ParamKind::Norm || drawn->parameters()[i].Kind == ParamKind::Bias)
        ASSERT_FALSE(bool(init.fill(i)));
    for (size_t i = 0; i < drawn->parameters().size(); ++i)
      if (drawn->parameters()[i].Kind == ParamKind::Matrix || drawn->parameters()[i].Kind == ParamKind::Embedding)
        ASSERT_FALSE(bool(init.fill(i)));
    for (size_t i = 0; i < created->parameters().size(); ++i)
      EXPECT_TRUE(at::equal(created->parameters()[i].Tensor, drawn->parameters()[i].Tensor))
          << created->parameters()[i].Name;
  }
}

TEST(ModelInit, ADrawOutOfOrderIsAnError) {
  std::unique_ptr<Model> m = makeModel(tinyConfig(Family::Llama));
  Model::Initializer init(*m, 1);
  const size_t q = 2, embedding = 0; // model.layers.0.self_attn.q_proj.weight, then the embedding
  ASSERT_EQ(m->parameters()[q].Name, "model.layers.0.self_attn.q_proj.weight");
  ASSERT_FALSE(bool(init.fill(q)));
  llvm::Error late = init.fill(embedding);
  ASSERT_TRUE(bool(late));
  EXPECT_EQ(llvm::toString(std::move(late)),
            "model initialization: parameter 'model.embed_tokens.weight' drawn after "
            "'model.layers.0.self_attn.q_proj.weight'; the draws must come in parameter order to give "
            "Model::create's values");
}

TEST(ModelWeights, LoadingSomeParametersCopiesOnlyThose) {
  TempDir dir;
  std::unique_ptr<Model> saved = makeModel(tinyConfig(Family::Llama), 1);
  std::unique_ptr<Model> loaded = makeModel(tinyConfig(Family::Llama), 2);
  ASSERT_FALSE(bool(saved->saveWeights(dir / "model.safetensors")));
  // 0: the embedding, 2: the first q_proj (both drawn, so the seeds differ there).
  const at::Tensor &embedding = loaded->parameters()[0].Tensor, &q = loaded->parameters()[2].Tensor;
  at::Tensor before = q.detach().clone();
  ASSERT_FALSE(bool(loaded->loadWeights(dir / "model.safetensors", {0})));
  EXPECT_TRUE(at::equal(embedding, saved->parameters()[0].Tensor));
  EXPECT_TRUE(at::equal(q, before));
  EXPECT_FALSE(at::equal(q, saved->parameters()[2].Tensor));
}

TEST(ModelForward, RefusesBadInputs) {
  std::unique_ptr<Model> m = makeModel(tinyConfig(Family::GPT2));
  EXPECT_THROW(m->forward(at::zeros({1, 13}, at::kLong)), c10::Error); // 12 positions
  EXPECT_THROW(m->forward(at::zeros({13}, at::kLong)), c10::Error);
  EXPECT_THROW(m->forward(at::zeros({1, 4}, at::kInt)), c10::Error);
}
