//===- TrainerTest.cpp - accumulation, schedule, determinism, NaN ---------===//
#include "../model/ModelTestSupport.h"

#include "mixtape/train/Numerics.h"
#include "mixtape/train/Trainer.h"

#include <ATen/Parallel.h>

#include <cstdlib>

using namespace mixtape::model;
using namespace mixtape::model::test;
using namespace mixtape::train;
namespace plan = mixtape::plan;

namespace {

/// A constant LR from the first token on.
plan::LRSchedule constantLR(double lr) {
  return plan::LRSchedule{0, {plan::Phase{plan::PhaseShape::Constant, 0, std::nullopt, lr, lr, 1, 0}}};
}

/// Linear warmup to 1e-3 over 96 tokens, then constant: a schedule as the compiler resolves it.
plan::LRSchedule warmupThenConstant() {
  return plan::LRSchedule{0,
                          {plan::Phase{plan::PhaseShape::Warmup, 0, 96.0, 0, 1e-3, 1, 0},
                           plan::Phase{plan::PhaseShape::Constant, 96, std::nullopt, 1e-3, 1e-3, 1, 0}}};
}

MicroBatch microBatch(int64_t rows, int64_t time, int64_t vocab, uint64_t seed) {
  MicroBatch mb;
  at::Tensor ids = tokens(rows, time + 1, vocab, seed);
  mb.Inputs = ids.narrow(1, 0, time).contiguous();
  mb.Targets = ids.narrow(1, 1, time).contiguous();
  return mb;
}

std::vector<at::Tensor> gradients(const Model &model) {
  std::vector<at::Tensor> grads;
  for (const NamedParameter &p : model.parameters())
    grads.push_back(p.Tensor.grad().clone());
  return grads;
}

void clearGradients(const Model &model) {
  for (const NamedParameter &p : model.parameters())
    p.Tensor.mutable_grad() = at::Tensor();
}

} // namespace

// Four micro-batches with different numbers of masked tokens give the gradient of one batch
// of four times the rows: each token weighs the same however the batch is split.
TEST(Trainer, AccumulationEqualsOneLargeBatch) {
  std::unique_ptr<Model> model = makeModel(tinyConfig(Family::GPTNeoX), 2);
  const int64_t V = model->config().VocabSize, T = 6;
  std::vector<MicroBatch> micro;
  for (int i = 0; i < 4; ++i) {
    MicroBatch mb = microBatch(2, T, V, 100 + i);
    mb.LossMask = at::ones({2, T}, at::kBool);
    for (int j = 0; j < i * 2; ++j) // 0, 2, 4, 6 masked positions
      mb.LossMask[j % 2][j / 2] = false;
    mb.DocumentStarts = at::zeros({2, T}, at::kBool);
    mb.DocumentStarts[1][3] = true;
    micro.push_back(mb);
  }
  MicroBatch whole;
  for (auto field : {&MicroBatch::Inputs, &MicroBatch::Targets, &MicroBatch::LossMask,
                     &MicroBatch::DocumentStarts}) {
    std::vector<at::Tensor> parts;
    for (const MicroBatch &mb : micro)
      parts.push_back(mb.*field);
    whole.*field = at::cat(parts, 0);
  }

  llvm::Expected<StepResult> split = accumulateGradients(*model, micro);
  ASSERT_TRUE(!!split) << llvm::toString(split.takeError());
  std::vector<at::Tensor> splitGrads = gradients(*model);
  clearGradients(*model);
  llvm::Expected<StepResult> one = accumulateGradients(*model, {whole});
  ASSERT_TRUE(!!one) << llvm::toString(one.takeError());
  std::vector<at::Tensor> oneGrads = gradients(*model);

  EXPECT_EQ(split->LossTokens, 4 * 2 * T - 12);
  EXPECT_EQ(split->LossTokens, one->LossTokens);
  EXPECT_EQ(split->Tokens, 4 * 2 * T);
  EXPECT_NEAR(split->Loss, one->Loss, 1e-6);
  for (size_t i = 0; i < oneGrads.size(); ++i)
    EXPECT_TRUE(at::allclose(splitGrads[i], oneGrads[i], 1e-5, 1e-7))
        << model->parameters()[i].Name << ": max diff "
        << (splitGrads[i] - oneGrads[i]).abs().max().item<double>();
}

// Two streams of very different difficulty (a constant token against random ones), mixed
// within micro-batches and masked in part: each stream's loss is its own sequences' mean
// token loss, their token-weighted mean is the batch loss, and asking for them changes no
// bit of the gradient or the loss.
TEST(Trainer, LossPerStreamFromTheSameForwardPass) {
  std::unique_ptr<Model> model = makeModel(tinyConfig(Family::Llama), 4);
  const int64_t V = model->config().VocabSize, T = 6;
  {
    // A few steps on the constant token make it easy.
    AdamW opt(model->parameters(), AdamWOptions{});
    plan::LRSchedule flat = constantLR(3e-2);
    Trainer warm(*model, opt, flat);
    MicroBatch easy;
    easy.Inputs = at::full({4, T}, 3, at::kLong);
    easy.Targets = easy.Inputs.clone();
    for (int i = 0; i < 20; ++i)
      ASSERT_TRUE(!!warm.step({easy}));
    opt.zeroGrad();
  }
  std::vector<MicroBatch> micro;
  for (int i = 0; i < 3; ++i) {
    MicroBatch mb = microBatch(4, T, V, 300 + i);
    mb.Streams = at::tensor(std::vector<int64_t>{0, 1, i % 2, 1}, at::kLong);
    for (int64_t b = 0; b < 4; ++b)
      if (mb.Streams[b].item<int64_t>() == 0) {
        mb.Inputs[b].fill_(3);
        mb.Targets[b].fill_(3);
      }
    mb.LossMask = at::ones({4, T}, at::kFloat);
    mb.LossMask[1][i] = 0; // stream 1 loses a position per micro-batch
    micro.push_back(mb);
  }
  llvm::Expected<StepResult> plain = accumulateGradients(*model, micro);
  ASSERT_TRUE(!!plain) << llvm::toString(plain.takeError());
  std::vector<at::Tensor> plainGrads = gradients(*model);
  clearGradients(*model);
  llvm::Expected<StepResult> r = accumulateGradients(*model, micro, nullptr, 2);
  ASSERT_TRUE(!!r) << llvm::toString(r.takeError());
  std::vector<at::Tensor> grads = gradients(*model);
  EXPECT_EQ(r->Loss, plain->Loss);
  EXPECT_TRUE(plain->StreamLossSums.empty());
  for (size_t i = 0; i < grads.size(); ++i)
    EXPECT_TRUE(at::equal(grads[i], plainGrads[i])) << model->parameters()[i].Name;

  // Reference: each stream's rows alone, through the model again.
  ASSERT_EQ(r->StreamLossSums.size(), 2u);
  ASSERT_EQ(r->StreamLossTokens.size(), 2u);
  at::NoGradGuard noGrad;
  double weighted = 0;
  for (int64_t s = 0; s < 2; ++s) {
    double sum = 0;
    int64_t count = 0;
    for (const MicroBatch &mb : micro) {
      at::Tensor rows = mb.Streams.eq(s).nonzero().reshape({-1});
      if (rows.numel() == 0)
        continue;
      at::Tensor targets = mb.Targets.index_select(0, rows), mask = mb.LossMask.index_select(0, rows);
      sum += maskedTokenLossSum(model->forward(mb.Inputs.index_select(0, rows)), targets, mask).item<double>();
      count += countLossTokens(targets, mask);
    }
    EXPECT_EQ(r->StreamLossTokens[s], count) << "stream " << s;
    EXPECT_NEAR(r->StreamLossSums[s] / double(count), sum / double(count), 1e-5) << "stream " << s;
    weighted += r->StreamLossSums[s];
  }
  EXPECT_EQ(r->StreamLossTokens[0] + r->StreamLossTokens[1], r->LossTokens);
  EXPECT_NEAR(weighted / double(r->LossTokens), r->Loss, 1e-6);
  double easy = r->StreamLossSums[0] / double(r->StreamLossTokens[0]),
         hard = r->StreamLossSums[1] / double(r->StreamLossTokens[1]);
  EXPECT_LT(easy * 4, hard) << "easy " << easy << ", hard " << hard;

  MicroBatch unlabelled = microBatch(1, T, V, 9);
  llvm::Expected<StepResult> bad = accumulateGradients(*model, {unlabelled}, nullptr, 2);
  ASSERT_FALSE(bad);
  EXPECT_EQ(llvm::toString(bad.takeError()), "a micro-batch lacks the stream of its sequences");
}

// The step's loss runs chunk by chunk: its gradient is the full logits' to fp32 rounding.
// Checkpointed blocks change no bit of it; other chunk sizes only its rounding.
TEST(Trainer, ChunkedLossAndCheckpointingKeepTheGradient) {
  ModelConfig config = tinyConfig(Family::GPT2);
  config.NumLayers = 3;
  config.VocabSize = 61;
  std::unique_ptr<Model> model = makeModel(config, 6);
  const int64_t T = 7;
  std::vector<MicroBatch> micro;
  for (int i = 0; i < 2; ++i) {
    MicroBatch mb = microBatch(3, T, config.VocabSize, 500 + i);
    mb.LossMask = at::ones({3, T}, at::kFloat);
    mb.LossMask[i][2] = 0;
    mb.DocumentStarts = at::zeros({3, T}, at::kLong);
    mb.DocumentStarts[2][4] = 1;
    micro.push_back(mb);
  }
  // Reference: the full logits of each micro-batch, as the step computed them before.
  double wantLoss = 0;
  const int64_t lossTokens = 2 * 3 * T - 2;
  for (const MicroBatch &mb : micro) {
    at::Tensor loss = maskedTokenLossSum(model->forward(mb.Inputs, mb.DocumentStarts), mb.Targets, mb.LossMask) /
                      double(lossTokens);
    loss.backward();
    wantLoss += loss.item<double>();
  }
  std::vector<at::Tensor> want = gradients(*model);

  auto step = [&](const MemoryOptions &memory) {
    clearGradients(*model);
    llvm::Expected<StepResult> r = accumulateGradients(*model, micro, nullptr, 0, memory);
    EXPECT_TRUE(!!r) << llvm::toString(r.takeError());
    return std::pair{r ? r->Loss : 0.0, gradients(*model)};
  };
  auto [loss, grads] = step({});
  EXPECT_NEAR(loss, wantLoss, 1e-5 * wantLoss);
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(at::allclose(grads[i], want[i], 1e-5, 1e-7)) << model->parameters()[i].Name;

  MemoryOptions full;
  full.Checkpointing.Every = 1;
  auto [fullLoss, fullGrads] = step(full);
  EXPECT_EQ(fullLoss, loss);
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(at::equal(fullGrads[i], grads[i])) << model->parameters()[i].Name;

  MemoryOptions small;
  small.Checkpointing.Every = 2;
  small.LossChunkTokens = 5;
  auto [smallLoss, smallGrads] = step(small);
  EXPECT_NEAR(smallLoss, wantLoss, 1e-5 * wantLoss);
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(at::allclose(smallGrads[i], want[i], 1e-5, 1e-7)) << model->parameters()[i].Name;
}

TEST(Trainer, LearningRateComesFromTheSchedule) {
  std::unique_ptr<Model> model = makeModel(tinyConfig(Family::Llama), 2);
  AdamW opt(model->parameters(), AdamWOptions{});
  plan::LRSchedule schedule = warmupThenConstant();
  Trainer trainer(*model, opt, schedule);
  const int64_t V = model->config().VocabSize;
  for (int step = 0; step < 5; ++step) {
    double before = trainer.tokensSeen();
    llvm::Expected<StepResult> r = trainer.step({microBatch(4, 8, V, step)});
    ASSERT_TRUE(!!r) << llvm::toString(r.takeError());
    EXPECT_EQ(r->LR, plan::learningRate(schedule, before)) << "step " << step;
    EXPECT_EQ(trainer.tokensSeen(), before + 32);
    EXPECT_TRUE(std::isfinite(r->GradNorm) && r->GradNorm > 0);
  }
  EXPECT_EQ(opt.steps(), 5);
  EXPECT_NEAR(plan::learningRate(schedule, 32), 1e-3 / 3, 1e-12);
}

TEST(Trainer, LossGoesDownOnARepeatedBatch) {
  std::unique_ptr<Model> model = makeModel(tinyConfig(Family::GPT2), 2);
  AdamW opt(model->parameters(), AdamWOptions{});
  plan::LRSchedule flat = constantLR(1e-2);
  Trainer trainer(*model, opt, flat);
  MicroBatch mb = microBatch(4, 8, model->config().VocabSize, 5);
  double first = trainer.step({mb})->Loss, last = first;
  for (int i = 0; i < 30; ++i)
    last = trainer.step({mb})->Loss;
  EXPECT_LT(last, first - 0.5);
}

// Same seed, same data, same threads: the same bits, run after run.
TEST(Trainer, TwoIdenticalRunsGiveIdenticalWeights) {
  auto run = [](Family family) {
    std::unique_ptr<Model> model = makeModel(tinyConfig(family), 17);
    AdamW opt(model->parameters(), AdamWOptions{});
    Trainer trainer(*model, opt, warmupThenConstant());
    const int64_t V = model->config().VocabSize;
    for (int step = 0; step < 6; ++step) {
      llvm::Expected<StepResult> r =
          trainer.step({microBatch(2, 10, V, 1000 + step), microBatch(2, 10, V, 2000 + step)});
      EXPECT_TRUE(!!r);
      if (!r)
        llvm::consumeError(r.takeError());
    }
    return model;
  };
  for (Family family : AllFamilies) {
    std::unique_ptr<Model> a = run(family), b = run(family);
    for (size_t i = 0; i < a->parameters().size(); ++i)
      EXPECT_TRUE(at::equal(a->parameters()[i].Tensor, b->parameters()[i].Tensor))
          << mixtape::plan::enumName(family).str() << " " << a->parameters()[i].Name;
  }
}

TEST(Trainer, NonFiniteLossStopsTheStepAndKeepsTheWeights) {
  std::unique_ptr<Model> model = makeModel(tinyConfig(Family::Llama), 2);
  AdamW opt(model->parameters(), AdamWOptions{});
  Trainer trainer(*model, opt, warmupThenConstant());
  const int64_t V = model->config().VocabSize;
  ASSERT_TRUE(!!trainer.step({microBatch(2, 8, V, 1)}));
  {
    at::NoGradGuard noGrad;
    model->findParameter("model.norm.weight")->Tensor[0] = std::nan("");
  }
  std::vector<at::Tensor> before;
  for (const NamedParameter &p : model->parameters())
    before.push_back(p.Tensor.detach().clone());
  llvm::Expected<StepResult> r = trainer.step({microBatch(2, 8, V, 2)});
  ASSERT_FALSE(r);
  EXPECT_EQ(llvm::toString(r.takeError()),
            "step 2: loss is NaN; weights left as they were after step 1");
  EXPECT_EQ(opt.steps(), 1);
  for (size_t i = 0; i < before.size(); ++i)
    EXPECT_TRUE(at::equal(before[i], model->parameters()[i].Tensor) ||
                model->parameters()[i].Name == "model.norm.weight");

  MicroBatch allMasked = microBatch(1, 4, V, 3);
  allMasked.LossMask = at::zeros({1, 4}, at::kBool);
  r = trainer.step({allMasked});
  ASSERT_FALSE(r);
  EXPECT_EQ(llvm::toString(r.takeError()), "step 2: no position of the batch counts for the loss");
}

// on_nonfinite = "skip": the batch is dropped, counted by the caller; the schedule moves past
// its tokens (a resumed run counts them too) and the next finite step trains.
TEST(Trainer, SkipNonFiniteDropsTheBatchAndGoesOn) {
  std::unique_ptr<Model> model = makeModel(tinyConfig(Family::Llama), 2);
  AdamW opt(model->parameters(), AdamWOptions{});
  TrainOptions options;
  options.SkipNonFinite = true;
  Trainer trainer(*model, opt, warmupThenConstant(), options);
  const int64_t V = model->config().VocabSize;
  ASSERT_TRUE(!!trainer.step({microBatch(2, 8, V, 1)}));
  at::Tensor norm = model->findParameter("model.norm.weight")->Tensor;
  at::Tensor saved = norm.detach().clone();
  {
    at::NoGradGuard noGrad;
    norm[0] = std::nan("");
  }
  std::vector<at::Tensor> before;
  for (const NamedParameter &p : model->parameters())
    before.push_back(p.Tensor.detach().clone());
  llvm::Expected<StepResult> r = trainer.step({microBatch(2, 8, V, 2)});
  ASSERT_TRUE(!!r) << llvm::toString(r.takeError());
  EXPECT_TRUE(r->Skipped);
  EXPECT_TRUE(std::isnan(r->Loss));
  EXPECT_EQ(opt.steps(), 1);
  EXPECT_EQ(trainer.tokensSeen(), 32);
  for (size_t i = 0; i < before.size(); ++i)
    EXPECT_TRUE(at::equal(before[i], model->parameters()[i].Tensor) ||
                model->parameters()[i].Name == "model.norm.weight")
        << model->parameters()[i].Name;
  {
    at::NoGradGuard noGrad;
    norm.copy_(saved);
  }
  r = trainer.step({microBatch(2, 8, V, 3)});
  ASSERT_TRUE(!!r) << llvm::toString(r.takeError());
  EXPECT_FALSE(r->Skipped);
  EXPECT_TRUE(std::isfinite(r->Loss));
  EXPECT_EQ(opt.steps(), 2);
  EXPECT_EQ(r->LR, plan::learningRate(warmupThenConstant(), 32));
}

namespace {
/// A world of one whose summed gradients come back with one NaN, as an overflow in the
/// backward pass leaves them under a finite loss.
class PoisonedGradients : public StepSync {
public:
  void sumCounts(int64_t &, int64_t &) override {}
  void sumGradients(llvm::ArrayRef<NamedParameter> params, llvm::MutableArrayRef<double>) override {
    if (!Poison)
      return;
    at::NoGradGuard noGrad;
    params.front().Tensor.grad().view({-1})[0] = std::nan("");
  }
  bool Poison = false;
};
} // namespace

// A finite loss whose gradient norm is NaN: the update is never applied (it would write NaN
// into every weight it touches, and the next checkpoint would keep them).
TEST(Trainer, NonFiniteGradientNormIsANonFiniteStep) {
  for (bool skip : {false, true}) {
    std::unique_ptr<Model> model = makeModel(tinyConfig(Family::Llama), 2);
    AdamW opt(model->parameters(), AdamWOptions{});
    PoisonedGradients sync;
    TrainOptions options;
    options.Sync = &sync;
    options.ClipNorm = 1.0;
    options.SkipNonFinite = skip;
    Trainer trainer(*model, opt, warmupThenConstant(), options);
    const int64_t V = model->config().VocabSize;
    ASSERT_TRUE(!!trainer.step({microBatch(2, 8, V, 1)}));
    std::vector<at::Tensor> before;
    for (const NamedParameter &p : model->parameters())
      before.push_back(p.Tensor.detach().clone());
    sync.Poison = true;
    llvm::Expected<StepResult> r = trainer.step({microBatch(2, 8, V, 2)});
    if (skip) {
      ASSERT_TRUE(!!r) << llvm::toString(r.takeError());
      EXPECT_TRUE(r->Skipped);
      EXPECT_TRUE(std::isfinite(r->Loss));
      EXPECT_TRUE(std::isnan(r->GradNorm));
    } else {
      ASSERT_FALSE(r);
      std::string error = llvm::toString(r.takeError());
      EXPECT_EQ(error.find("step 2: the gradient norm is NaN (the loss was "), 0u) << error;
      EXPECT_NE(error.find("); weights left as they were after step 1"), std::string::npos) << error;
    }
    EXPECT_EQ(opt.steps(), 1);
    for (size_t i = 0; i < before.size(); ++i)
      EXPECT_TRUE(at::equal(before[i], model->parameters()[i].Tensor)) << model->parameters()[i].Name;
    EXPECT_FALSE(firstNonFinite(opt)) << *firstNonFinite(opt);
    sync.Poison = false;
    r = trainer.step({microBatch(2, 8, V, 3)});
    ASSERT_TRUE(!!r) << llvm::toString(r.takeError());
    EXPECT_FALSE(r->Skipped);
    EXPECT_EQ(opt.steps(), 2);
    {
      at::NoGradGuard noGrad;
      model->parameters().back().Tensor.view({-1})[0] = INFINITY;
    }
    EXPECT_EQ(firstNonFinite(opt), model->parameters().back().Name);
  }
}

TEST(Numerics, ThreadsAndFingerprint) {
  ::setenv(ThreadsEnvVar, "1", 1);
  EXPECT_EQ(configureThreads(), 1u);
  EXPECT_EQ(at::get_num_threads(), 1);
  ::setenv(ThreadsEnvVar, "not a number", 1);
  EXPECT_GE(configureThreads(), 1u);
  ::unsetenv(ThreadsEnvVar);
  unsigned threads = configureThreads();
  std::string fingerprint = numericsFingerprint();
  EXPECT_EQ(fingerprint.find("libtorch "), 0u) << fingerprint;
  EXPECT_NE(fingerprint.find("; threads " + std::to_string(threads) + ";"), std::string::npos)
      << fingerprint;
  EXPECT_NE(fingerprint.find("; blas "), std::string::npos) << fingerprint;
  EXPECT_NE(fingerprint.find("; cpu "), std::string::npos) << fingerprint;
  std::cout << "numerics fingerprint: " << fingerprint << "\n";
}
