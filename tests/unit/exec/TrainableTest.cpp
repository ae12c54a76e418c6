//===- TrainableTest.cpp - freeze, lr_scale and LoRA on a training model --===//
#include "../model/ModelTestSupport.h"

#include "mixtape/exec/Trainable.h"
#include "mixtape/plan/ParamGroups.h"
#include "mixtape/safetensors/SafeTensors.h"
#include "mixtape/train/Trainer.h"

#include <cmath>

using namespace mixtape;
using namespace mixtape::model;
using namespace mixtape::model::test;

namespace {

train::MicroBatch microBatch(int64_t vocab, uint64_t seed) {
  train::MicroBatch mb;
  at::Tensor ids = tokens(2, 9, vocab, seed);
  mb.Inputs = ids.narrow(1, 0, 8).contiguous();
  mb.Targets = ids.narrow(1, 1, 8).contiguous();
  return mb;
}

plan::LRSchedule constantLR(double lr) {
  return plan::LRSchedule{0, {plan::Phase{plan::PhaseShape::Constant, 0, std::nullopt, lr, lr, 1, 0}}};
}

std::vector<at::Tensor> copies(const Model &m) {
  std::vector<at::Tensor> out;
  for (const NamedParameter &p : m.parameters())
    out.push_back(p.Tensor.detach().clone());
  return out;
}

std::vector<double> apply(const plan::TrainSettings &s, Model &m) {
  llvm::Expected<std::vector<double>> scales = exec::applyTrainable(s, m);
  if (!scales) {
    ADD_FAILURE() << llvm::toString(scales.takeError());
    return {};
  }
  return *scales;
}

plan::Lora lora(double dropout = 0) { return plan::Lora{2, 4, {"q", "v", "o", "down"}, dropout, 5}; }

} // namespace

// Frozen groups get no gradient and are not in the optimizer: after training they are the
// same bits; every other parameter moved.
TEST(Freeze, FrozenParametersAreBitIdenticalAfterTraining) {
  for (Family family : AllFamilies) {
    std::unique_ptr<Model> m = makeModel(tinyConfig(family), 4);
    plan::TrainSettings s;
    s.Freeze = std::vector<std::string>{"embeddings", "layers.0"};
    std::vector<double> scales = apply(s, *m);
    std::vector<at::Tensor> before = copies(*m);
    train::AdamW opt(m->trainableParameters(), train::AdamWOptions{}, scales);
    train::Trainer trainer(*m, opt, constantLR(1e-2));
    for (uint64_t step = 0; step < 3; ++step)
      ASSERT_TRUE(!!trainer.step({microBatch(m->config().VocabSize, step)}));
    for (size_t i = 0; i < m->parameters().size(); ++i) {
      llvm::StringRef name = m->parameters()[i].Name;
      std::optional<plan::GroupSelector> g = plan::groupOfParameter(family, name);
      ASSERT_TRUE(g) << name.str();
      const bool frozen = g->Kind == plan::GroupKind::Embeddings || (g->Kind == plan::GroupKind::Layers && g->First == 0);
      EXPECT_EQ(at::equal(m->parameters()[i].Tensor, before[i]), frozen) << name.str();
      EXPECT_EQ(llvm::any_of(opt.parameters(), [&](const NamedParameter &p) { return p.Name == name; }), !frozen)
          << name.str();
    }
  }
}

// The first AdamW step by hand: m = (1 - b1) g and v = (1 - b2) g^2, so after both bias
// corrections the step is lr * g / (|g| + eps), after the decoupled decay p * (1 - lr * wd).
// Both terms are linear in lr: a group scaled by s moves by exactly s times the unscaled update.
TEST(LRScale, FirstUpdateIsTheUnscaledOneTimesTheScale) {
  const double lr = 1e-2;
  train::AdamWOptions o;
  std::unique_ptr<Model> scaled = makeModel(tinyConfig(Family::Llama), 8), plain = makeModel(tinyConfig(Family::Llama), 8);
  plan::TrainSettings s;
  s.LRScale = plan::GroupScales{{"embeddings", 0.1}, {"layers.1", 0.5}};
  std::vector<double> scales = apply(s, *scaled);
  train::AdamW scaledOpt(scaled->trainableParameters(), o, scales);
  train::AdamW plainOpt(plain->trainableParameters(), o);
  train::MicroBatch mb = microBatch(scaled->config().VocabSize, 1);
  std::vector<at::Tensor> before = copies(*scaled), grads;
  for (Model *m : {scaled.get(), plain.get()})
    ASSERT_TRUE(!!train::accumulateGradients(*m, {mb}));
  for (const NamedParameter &p : scaled->parameters())
    grads.push_back(p.Tensor.grad().clone());
  scaledOpt.step(lr);
  plainOpt.step(lr);
  for (size_t i = 0; i < scaled->parameters().size(); ++i) {
    const NamedParameter &p = scaled->parameters()[i];
    llvm::StringRef name = p.Name;
    const double scale = name.startswith("model.embed_tokens.") ? 0.1 : name.startswith("model.layers.1.") ? 0.5 : 1.0;
    const double decay = p.Kind == ParamKind::Matrix ? o.WeightDecay : 0.0;
    const at::Tensor &g = grads[i];
    at::Tensor byHand = before[i] * (1 - lr * scale * decay) - lr * scale * g / (g.abs() + o.Eps);
    EXPECT_TRUE(at::allclose(p.Tensor, byHand, 1e-6, 1e-7)) << name.str();
    at::Tensor unscaledUpdate = plain->parameters()[i].Tensor - before[i];
    EXPECT_TRUE(at::allclose(p.Tensor - before[i], unscaledUpdate * scale, 1e-4, 1e-8)) << name.str();
  }
  // decay, no_decay, the embeddings x0.1 (no decay), layer 1 x0.5: its matrices and its norms.
  EXPECT_EQ(scaledOpt.groups().size(), 5u);
}

TEST(Trainable, GroupsThatNameNoParameter) {
  std::unique_ptr<Model> gpt2 = makeModel(tinyConfig(Family::GPT2));
  plan::TrainSettings s;
  s.LRScale = plan::GroupScales{{"head", 0.5}};
  llvm::Expected<std::vector<double>> r = exec::applyTrainable(s, *gpt2);
  ASSERT_FALSE(!!r);
  EXPECT_EQ(llvm::toString(r.takeError()),
            "lr_scale: group 'head' names no parameter of this gpt2 model (2 layers, its head tied to the embeddings)");
  std::unique_ptr<Model> llama = makeModel(tinyConfig(Family::Llama));
  plan::TrainSettings deep;
  deep.Freeze = std::vector<std::string>{"layers.1-4"};
  EXPECT_TRUE(!!exec::applyTrainable(deep, *llama)); // layer 1 exists
  std::unique_ptr<Model> other = makeModel(tinyConfig(Family::Llama));
  deep.Freeze = std::vector<std::string>{"layers.2-4"};
  r = exec::applyTrainable(deep, *other);
  ASSERT_FALSE(!!r);
  EXPECT_EQ(llvm::toString(r.takeError()), "freeze: group 'layers.2-4' names no parameter of this llama model (2 layers)");
}

// LoRA trains its factors only: the base never enters the optimizer, whose state file holds
// the factors' moments alone, and the base weights leave training bit-identical.
TEST(LoraTraining, OptimizerStateOnlyForTheFactors) {
  TempDir dir;
  for (Family family : AllFamilies) {
    std::unique_ptr<Model> m = makeModel(tinyConfig(family), 4);
    std::vector<at::Tensor> base = copies(*m);
    plan::TrainSettings s;
    s.Lora = lora();
    std::vector<double> scales = apply(s, *m);
    train::AdamW opt(m->trainableParameters(), train::AdamWOptions{}, scales);
    train::Trainer trainer(*m, opt, constantLR(1e-2));
    for (uint64_t step = 0; step < 3; ++step)
      ASSERT_TRUE(!!trainer.step({microBatch(m->config().VocabSize, step)}));
    for (size_t i = 0; i < base.size(); ++i)
      EXPECT_TRUE(at::equal(m->parameters()[i].Tensor, base[i])) << m->parameters()[i].Name;
    const std::string path = dir / "optimizer.safetensors";
    ASSERT_FALSE(!!opt.saveState(path));
    llvm::Expected<safetensors::File> file = safetensors::File::open(path);
    ASSERT_TRUE(!!file);
    // 4 targets x 2 layers x 2 factors x 2 moments.
    EXPECT_EQ(file->tensors().size(), 32u);
    for (const safetensors::TensorInfo &t : file->tensors())
      EXPECT_TRUE(llvm::StringRef(t.Name).contains(".lora_")) << t.Name;
    m->mergeLora();
    bool moved = false;
    for (size_t i = 0; i < base.size(); ++i)
      moved |= !at::equal(m->parameters()[i].Tensor, base[i]);
    EXPECT_TRUE(moved) << "the merged adapters changed no weight";
  }
}

// A LoRA run (with dropout) resumed from its checkpoint — the base and the factors, the
// factors' optimizer state — ends with the bits of the uninterrupted run.
TEST(LoraTraining, ResumeIsBitExact) {
  TempDir dir;
  plan::TrainSettings s;
  s.Lora = lora(0.2);
  auto train = [&](Model &m, train::AdamW &opt, uint64_t first, uint64_t last) {
    train::Trainer trainer(m, opt, constantLR(1e-2));
    for (uint64_t step = first; step < last; ++step) {
      m.reseedLoraDropout(step);
      ASSERT_TRUE(!!trainer.step({microBatch(m.config().VocabSize, step)}));
    }
  };
  std::unique_ptr<Model> whole = makeModel(tinyConfig(Family::GPTNeoX), 4);
  std::vector<double> wholeScales = apply(s, *whole);
  train::AdamW wholeOpt(whole->trainableParameters(), train::AdamWOptions{}, wholeScales);
  train(*whole, wholeOpt, 0, 4);

  std::unique_ptr<Model> first = makeModel(tinyConfig(Family::GPTNeoX), 4);
  std::vector<double> firstScales = apply(s, *first);
  train::AdamW firstOpt(first->trainableParameters(), train::AdamWOptions{}, firstScales);
  train(*first, firstOpt, 0, 2);
  ASSERT_FALSE(!!first->saveWeights(dir / "model.safetensors"));
  ASSERT_FALSE(!!firstOpt.saveState(dir / "optimizer.safetensors"));

  std::unique_ptr<Model> resumed = makeModel(tinyConfig(Family::GPTNeoX), 4);
  std::vector<double> resumedScales = apply(s, *resumed);
  train::AdamW resumedOpt(resumed->trainableParameters(), train::AdamWOptions{}, resumedScales);
  ASSERT_FALSE(!!resumed->loadWeights(dir / "model.safetensors"));
  ASSERT_FALSE(!!resumedOpt.loadState(dir / "optimizer.safetensors"));
  train(*resumed, resumedOpt, 2, 4);
  ASSERT_EQ(resumed->parameters().size(), whole->parameters().size());
  for (size_t i = 0; i < whole->parameters().size(); ++i)
    EXPECT_TRUE(at::equal(resumed->parameters()[i].Tensor, whole->parameters()[i].Tensor))
        << whole->parameters()[i].Name;
}
