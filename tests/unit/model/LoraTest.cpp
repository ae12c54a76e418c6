//===- LoraTest.cpp - LoRA's forward, init, dropout and merge per family --===//
#include "ModelTestSupport.h"

#include <cmath>

using namespace mixtape::model;
using namespace mixtape::model::test;

namespace {

class Lora : public testing::TestWithParam<Family> {};

LoraOptions options(std::vector<std::string> targets, double dropout = 0) {
  LoraOptions o;
  o.Rank = 3;
  o.Alpha = 6; // scale 2
  o.Targets = std::move(targets);
  o.Dropout = dropout;
  o.Seed = 11;
  return o;
}

std::vector<std::string> everyTarget(Family family) {
  if (family == Family::Llama)
    return {"q", "k", "v", "o", "gate", "up", "down"};
  return {"q", "k", "v", "o", "up", "down"};
}

/// B is zero after addLora; nonzero values make the adapters' update visible.
void randomizeB(Model &m, uint64_t seed) {
  at::NoGradGuard noGrad;
  at::Generator gen = at::detail::createCPUGenerator(seed);
  for (const NamedParameter &p : m.parameters())
    if (llvm::StringRef(p.Name).contains(".lora_B"))
      p.Tensor.normal_(0, 0.3, gen);
}

/// The update (alpha / r) B A of `target` in block `layer`, [out, in].
at::Tensor update(const Model &m, const std::string &module, const std::string &suffix, double scale) {
  const NamedParameter *a = m.findParameter(module + ".lora_A" + suffix + ".weight");
  const NamedParameter *b = m.findParameter(module + ".lora_B" + suffix + ".weight");
  EXPECT_TRUE(a && b) << module << suffix;
  return at::matmul(b->Tensor, a->Tensor).detach() * scale;
}

/// A plain model whose weights are written here, independently of Lora.cpp, as
/// W + (alpha / r) B A in each family's own layout.
std::unique_ptr<Model> mergedByHand(const Model &lora, const Model &base, const std::vector<std::string> &targets) {
  const ModelConfig &c = base.config();
  std::unique_ptr<Model> out = makeModel(c, 99);
  at::NoGradGuard noGrad;
  for (const NamedParameter &p : base.parameters())
    out->findParameter(p.Name)->Tensor.copy_(p.Tensor);
  const double scale = 2;
  const int64_t d = c.DModel, H = c.NumHeads, D = c.effectiveHeadDim();
  auto has = [&](const char *t) { return llvm::is_contained(targets, t); };
  auto weight = [&](const std::string &name) { return out->findParameter(name)->Tensor; };
  for (int64_t i = 0; i < c.NumLayers; ++i) {
    const std::string L = std::to_string(i);
    switch (c.Family) {
    case Family::GPT2: { // Conv1D [in, out]: add the transpose; q, k, v are column blocks
      const std::string attn = "transformer.h." + L + ".attn.";
      const char *qkv[] = {"q", "k", "v"};
      for (int64_t k = 0; k < 3; ++k)
        if (has(qkv[k]))
          weight(attn + "c_attn.weight").narrow(1, k * d, d).add_(update(lora, attn + "c_attn", std::string(".") + qkv[k], scale).t());
      if (has("o"))
        weight(attn + "c_proj.weight").add_(update(lora, attn + "c_proj", "", scale).t());
      const std::string mlp = "transformer.h." + L + ".mlp.";
      if (has("up"))
        weight(mlp + "c_fc.weight").add_(update(lora, mlp + "c_fc", "", scale).t());
      if (has("down"))
        weight(mlp + "c_proj.weight").add_(update(lora, mlp + "c_proj", "", scale).t());
      break;
    }
    case Family::Llama: {
      const std::string pre = "model.layers." + L + ".";
      const std::pair<const char *, const char *> modules[] = {
          {"q", "self_attn.q_proj"}, {"k", "self_attn.k_proj"}, {"v", "self_attn.v_proj"}, {"o", "self_attn.o_proj"},
          {"gate", "mlp.gate_proj"}, {"up", "mlp.up_proj"},     {"down", "mlp.down_proj"}};
      for (auto [t, module] : modules)
        if (has(t))
          weight(pre + module + ".weight").add_(update(lora, pre + module, "", scale));
      break;
    }
    case Family::GPTNeoX: { // rows of head h: [q_h; k_h; v_h]
      const std::string pre = "gpt_neox.layers." + L + ".";
      const char *qkv[] = {"q", "k", "v"};
      for (int64_t k = 0; k < 3; ++k)
        if (has(qkv[k])) {
          at::Tensor u = update(lora, pre + "attention.query_key_value", std::string(".") + qkv[k], scale);
          for (int64_t h = 0; h < H; ++h)
            weight(pre + "attention.query_key_value.weight")
                .narrow(0, h * 3 * D + k * D, D)
                .add_(u.narrow(0, h * D, D));
        }
      const std::pair<const char *, const char *> modules[] = {
          {"o", "attention.dense"}, {"up", "mlp.dense_h_to_4h"}, {"down", "mlp.dense_4h_to_h"}};
      for (auto [t, module] : modules)
        if (has(t))
          weight(pre + module + ".weight").add_(update(lora, pre + module, "", scale));
      break;
    }
    }
  }
  return out;
}

} // namespace

// The adapters start as the identity: B = 0, A uniform in +-1/sqrt(in) (PEFT's
// kaiming_uniform_ with a = sqrt(5)), drawn from the seed; the base stops requiring grad.
TEST_P(Lora, StartsAsTheBaseWithPeftsInit) {
  std::unique_ptr<Model> base = makeModel(tinyConfig(GetParam()), 3), m = makeModel(tinyConfig(GetParam()), 3);
  ASSERT_FALSE(!!m->addLora(options(everyTarget(GetParam()))));
  at::Tensor ids = tokens(2, 7, m->config().VocabSize);
  EXPECT_TRUE(at::equal(m->forward(ids), base->forward(ids)));
  size_t factors = 0;
  for (const NamedParameter &p : m->parameters()) {
    llvm::StringRef name(p.Name);
    EXPECT_EQ(p.Tensor.requires_grad(), name.contains(".lora_")) << p.Name;
    if (name.contains(".lora_B")) {
      EXPECT_TRUE(at::equal(p.Tensor, at::zeros_like(p.Tensor))) << p.Name;
    }
    if (name.contains(".lora_A")) {
      ++factors;
      EXPECT_EQ(p.Tensor.size(0), 3);
      const double bound = 1 / std::sqrt(double(p.Tensor.size(1)));
      EXPECT_LE(p.Tensor.abs().max().item<double>(), bound) << p.Name;
      EXPECT_GT(p.Tensor.abs().max().item<double>(), 0.5 * bound) << p.Name;
    }
  }
  EXPECT_EQ(factors, everyTarget(GetParam()).size() * 2);
  EXPECT_EQ(m->trainableParameters().size(), 2 * factors);
  std::unique_ptr<Model> again = makeModel(tinyConfig(GetParam()), 3);
  ASSERT_FALSE(!!again->addLora(options(everyTarget(GetParam()))));
  for (size_t i = 0; i < m->parameters().size(); ++i)
    EXPECT_TRUE(at::equal(m->parameters()[i].Tensor, again->parameters()[i].Tensor)) << m->parameters()[i].Name;
}

// W x + (alpha / r) B A x: by linearity, the logits of a model whose weights are W + (alpha / r)
// B A, written in the test in each family's layout (GPT-2's transposed Conv1D and column
// blocks, GPT-NeoX's per-head rows); for every target and for a subset.
TEST_P(Lora, ForwardIsTheFormula) {
  for (std::vector<std::string> targets : {everyTarget(GetParam()), std::vector<std::string>{"k", "o", "down"}}) {
    std::unique_ptr<Model> base = makeModel(tinyConfig(GetParam()), 3), m = makeModel(tinyConfig(GetParam()), 3);
    ASSERT_FALSE(!!m->addLora(options(targets)));
    randomizeB(*m, 5);
    std::unique_ptr<Model> byHand = mergedByHand(*m, *base, targets);
    at::Tensor ids = tokens(2, 7, m->config().VocabSize);
    at::Tensor got = m->forward(ids), want = byHand->forward(ids);
    EXPECT_FALSE(at::allclose(got, base->forward(ids), 1e-3, 1e-3)) << "the adapters changed nothing";
    EXPECT_TRUE(at::allclose(got, want, 1e-5, 1e-5)) << (got - want).abs().max().item<double>();
  }
}

// mergeLora writes W + (alpha / r) B A: the merged model's logits are the unmerged one's, its
// parameters the base's names, all trainable again, and its weights those written by hand.
TEST_P(Lora, MergeKeepsTheLogits) {
  std::unique_ptr<Model> base = makeModel(tinyConfig(GetParam()), 3), m = makeModel(tinyConfig(GetParam()), 3);
  ASSERT_FALSE(!!m->addLora(options(everyTarget(GetParam()))));
  randomizeB(*m, 6);
  std::unique_ptr<Model> byHand = mergedByHand(*m, *base, everyTarget(GetParam()));
  at::Tensor ids = tokens(2, 7, m->config().VocabSize);
  at::Tensor unmerged = m->forward(ids).detach();
  m->mergeLora();
  EXPECT_FALSE(m->hasLora());
  EXPECT_TRUE(at::allclose(m->forward(ids), unmerged, 1e-5, 1e-5));
  ASSERT_EQ(m->parameters().size(), base->parameters().size());
  for (size_t i = 0; i < m->parameters().size(); ++i) {
    EXPECT_EQ(m->parameters()[i].Name, base->parameters()[i].Name);
    EXPECT_TRUE(m->parameters()[i].Tensor.requires_grad());
    EXPECT_TRUE(at::allclose(m->parameters()[i].Tensor, byHand->parameters()[i].Tensor, 1e-6, 1e-6))
        << m->parameters()[i].Name;
  }
}

// Dropout on the adapters' input: drawn while gradients are recorded only, from (seed, step)
// alone, so the same step gives the same masks and another step others.
TEST_P(Lora, DropoutIsSeededPerStepAndOffWithoutGrad) {
  std::unique_ptr<Model> m = makeModel(tinyConfig(GetParam()), 3);
  ASSERT_FALSE(!!m->addLora(options(everyTarget(GetParam()), 0.5)));
  randomizeB(*m, 7);
  at::Tensor ids = tokens(2, 7, m->config().VocabSize);
  auto logits = [&](uint64_t step) {
    m->reseedLoraDropout(step);
    return m->forward(ids).detach();
  };
  at::Tensor first = logits(4), again = logits(4), other = logits(5);
  EXPECT_TRUE(at::equal(first, again));
  EXPECT_FALSE(at::allclose(first, other));
  at::Tensor evalA, evalB;
  {
    at::NoGradGuard noGrad;
    evalA = logits(4);
    evalB = logits(5);
  }
  EXPECT_TRUE(at::equal(evalA, evalB));
  EXPECT_FALSE(at::allclose(evalA, first));
}

TEST(LoraErrors, TargetTheFamilyLacks) {
  std::unique_ptr<Model> m = makeModel(tinyConfig(Family::GPT2));
  llvm::Error e = m->addLora(options({"q", "gate"}));
  ASSERT_TRUE(!!e);
  EXPECT_EQ(llvm::toString(std::move(e)), "LoRA: gpt2 has no projection 'gate' (it has q, k, v, o, up, down)");
  EXPECT_FALSE(m->hasLora());
  EXPECT_EQ(m->trainableParameters().size(), m->parameters().size());
}

INSTANTIATE_TEST_SUITE_P(Families, Lora, testing::ValuesIn(AllFamilies), familyLabel);
