//===- CudaTest.cpp - the CUDA path agrees with the CPU's ------------------===//
//
// Each test trains or evaluates the same model from the same seed on the CPU in fp32 and on
// a CUDA device (bf16 autocast where the trainer uses it) and compares: exact where no
// rounding differs (weights I/O), to fp32 rounding for fp32 math, to bf16 rounding for
// training. Skipped where LibTorch has no CUDA or the machine no GPU (CI).
//
//===----------------------------------------------------------------------===//
#include "../model/ModelTestSupport.h"

#include "mixtape/dist/Collectives.h"
#include "mixtape/dist/DataParallel.h"
#include "mixtape/dist/LocalLauncher.h"
#include "mixtape/model/TorchCompat.h"
#include "mixtape/train/Numerics.h"
#include "mixtape/train/Trainer.h"

#include <ATen/Context.h>

using namespace mixtape::model;
using namespace mixtape::model::test;
using namespace mixtape::train;

#define MIXTAPE_REQUIRE_CUDA()                                                               \
  if (!at::hasCUDA())                                                                        \
  GTEST_SKIP() << "no CUDA: this LibTorch was built without it or the machine has no GPU"

namespace {

/// A constant LR from the first token on.
mixtape::plan::LRSchedule constantLR(double lr) {
  using namespace mixtape::plan;
  return LRSchedule{0, {Phase{PhaseShape::Constant, 0, std::nullopt, lr, lr, 1, 0}}};
}

const c10::Device Cuda(c10::kCUDA, 0);

double relativeError(const at::Tensor &got, const at::Tensor &want) {
  at::Tensor g = got.detach().cpu().to(at::kDouble), w = want.detach().cpu().to(at::kDouble);
  return ((g - w).norm() / w.norm().clamp_min(1e-30)).item<double>();
}

/// A model of realistic width, so bf16 rounding averages out as it does in real training.
ModelConfig smallConfig(Family family) {
  ModelConfig c = ModelConfig::defaults(family, /*vocab=*/96, /*layers=*/2, /*d=*/64, /*heads=*/4,
                                        /*positions=*/32);
  if (family == Family::Llama)
    c.NumKVHeads = 2;
  return c;
}

std::vector<MicroBatch> batches(int64_t vocab, int count) {
  std::vector<MicroBatch> out;
  for (int i = 0; i < count; ++i) {
    // Learnable data: each row repeats a short random phrase, so the loss falls fast.
    at::Tensor phrase = tokens(4, 8, vocab, 40 + uint64_t(i));
    at::Tensor ids = phrase.repeat({1, 5}).narrow(1, 0, 33).contiguous();
    MicroBatch mb;
    mb.Inputs = ids.narrow(1, 0, 32).contiguous();
    mb.Targets = ids.narrow(1, 1, 32).contiguous();
    mb.LossMask = at::ones({4, 32}, at::kFloat);
    out.push_back(mb);
  }
  return out;
}

class EachFamilyOnCuda : public testing::TestWithParam<Family> {};

} // namespace

TEST(Cuda, ResolveDevice) {
  EXPECT_TRUE(resolveDevice("cpu")->is_cpu());
  llvm::Expected<c10::Device> bad = resolveDevice("tpu");
  ASSERT_FALSE(bool(bad));
  EXPECT_EQ(llvm::toString(bad.takeError()), "device 'tpu': expected cpu, cuda, cuda:N or auto");
  setenv(DeviceEnvVar, "tpu", 1);
  llvm::Expected<c10::Device> fromEnv = resolveDevice("");
  unsetenv(DeviceEnvVar);
  ASSERT_FALSE(bool(fromEnv));
  EXPECT_EQ(llvm::toString(fromEnv.takeError()), "MIXTAPE_DEVICE='tpu': expected cpu, cuda, cuda:N or auto");
  llvm::Expected<c10::Device> cuda = resolveDevice("cuda:0");
  if (!at::hasCUDA()) {
    ASSERT_FALSE(bool(cuda));
    EXPECT_NE(llvm::toString(cuda.takeError()).find("use --device cpu"), std::string::npos);
    EXPECT_TRUE(resolveDevice("auto")->is_cpu());
  } else {
    ASSERT_TRUE(bool(cuda));
    EXPECT_EQ(*cuda, Cuda);
    llvm::Expected<c10::Device> missing = resolveDevice("cuda:99");
    ASSERT_FALSE(bool(missing));
    EXPECT_NE(llvm::toString(missing.takeError()).find("this machine has"), std::string::npos);
    EXPECT_TRUE(resolveDevice("auto")->is_cuda());
  }
}

// fp32 forward on the device (SDPA with a causal or document mask, GQA) equals the CPU's
// to fp32 rounding.
TEST_P(EachFamilyOnCuda, Fp32ForwardMatchesCpu) {
  MIXTAPE_REQUIRE_CUDA();
  ModelConfig c = smallConfig(GetParam());
  std::unique_ptr<Model> cpu = makeModel(c, 3), gpu = makeModel(c, 3);
  gpu->to(Cuda);
  EXPECT_EQ(gpu->device(), Cuda);
  at::globalContext().setAllowTF32CuBLAS(false);
  at::Tensor ids = tokens(2, 32, c.VocabSize, 9);
  at::Tensor starts = at::zeros({2, 32}, at::kBool);
  starts.index_put_({0, 11}, true);
  starts.index_put_({1, 20}, true);
  at::NoGradGuard noGrad;
  EXPECT_LT(relativeError(gpu->forward(ids.to(Cuda)), cpu->forward(ids)), 1e-5);
  EXPECT_LT(relativeError(gpu->forward(ids.to(Cuda), starts.to(Cuda)), cpu->forward(ids, starts)), 1e-5);
}

// Twenty AdamW steps with bf16 autocast on the device follow the CPU's fp32 loss curve
// within bf16's rounding, and both learn.
TEST_P(EachFamilyOnCuda, Bf16TrainingFollowsCpuFp32) {
  MIXTAPE_REQUIRE_CUDA();
  ModelConfig c = smallConfig(GetParam());
  std::unique_ptr<Model> cpu = makeModel(c, 5), gpu = makeModel(c, 5);
  gpu->to(Cuda);
  AdamW cpuOpt(cpu->parameters(), {}), gpuOpt(gpu->parameters(), {});
  mixtape::plan::LRSchedule constant = constantLR(3e-3);
  Trainer cpuTrainer(*cpu, cpuOpt, constant);
  Trainer gpuTrainer(*gpu, gpuOpt, constant);
  std::vector<MicroBatch> data = batches(c.VocabSize, 4);
  double firstLoss = 0, cpuLoss = 0, gpuLoss = 0;
  for (int step = 0; step < 20; ++step) {
    llvm::ArrayRef<MicroBatch> batch(data[size_t(step) % data.size()]);
    llvm::Expected<StepResult> a = cpuTrainer.step(batch), b = gpuTrainer.step(batch);
    ASSERT_TRUE(a && b);
    if (step == 0)
      firstLoss = a->Loss;
    cpuLoss = a->Loss, gpuLoss = b->Loss;
    EXPECT_NEAR(b->Loss, a->Loss, 0.03 * a->Loss) << "step " << step;
  }
  EXPECT_LT(cpuLoss, 0.8 * firstLoss);
  EXPECT_LT(gpuLoss, 0.8 * firstLoss);
  // The trained models compute the same function. Not every parameter is comparable: a
  // key bias has no effect on attention (softmax ignores a shift shared by a row), so its
  // gradient is pure rounding noise, which Adam scales up to full-size steps in fp32 and
  // bf16 alike, in different directions.
  at::NoGradGuard noGrad;
  at::Tensor probe = tokens(2, 32, c.VocabSize, 77);
  EXPECT_LT(relativeError(gpu->forward(probe.to(Cuda)), cpu->forward(probe)), 0.05);
  for (size_t i = 0; i < cpu->parameters().size(); ++i)
    if (cpu->parameters()[i].Kind == ParamKind::Matrix)
      EXPECT_LT(relativeError(gpu->parameters()[i].Tensor, cpu->parameters()[i].Tensor), 0.05)
          << cpu->parameters()[i].Name;
}

INSTANTIATE_TEST_SUITE_P(Families, EachFamilyOnCuda, testing::ValuesIn(AllFamilies), familyLabel);

// bf16 logits are reduced in fp32: the loss and the gradient equal cross-entropy of the same
// logits in fp32, masked positions contributing nothing, and the gradient stays bf16.
TEST(Cuda, Bf16LogitsAreReducedInFp32) {
  MIXTAPE_REQUIRE_CUDA();
  at::Tensor base = at::randn({3, 5, 50}, at::detail::createCPUGenerator(3)).to(at::kBFloat16);
  at::Tensor targets = tokens(3, 5, 50, 4), mask = at::ones({3, 5}, at::kFloat);
  mask.index_put_({1, 2}, 0.0);
  at::Tensor bf16 = base.to(Cuda).requires_grad_(true), fp32 = base.to(at::kFloat).requires_grad_(true);
  at::Tensor got = maskedTokenLossSum(bf16, targets.to(Cuda), mask.to(Cuda));
  at::Tensor want = maskedTokenLossSum(fp32, targets, mask);
  EXPECT_EQ(got.scalar_type(), at::kFloat);
  EXPECT_LT(relativeError(got, want), 1e-5);
  got.backward();
  want.backward();
  EXPECT_EQ(bf16.grad().scalar_type(), at::kBFloat16);
  EXPECT_LT(relativeError(bf16.grad(), fp32.grad()), 1e-2);
  EXPECT_TRUE(bf16.grad()[1][2].cpu().eq(0).all().item<bool>());
}

// The fused AdamW kernel (LibTorch 2.x) makes the plain loop's update, step counts included.
TEST(Cuda, FusedAdamWMatchesPlainLoop) {
  MIXTAPE_REQUIRE_CUDA();
  ModelConfig c = smallConfig(Family::Llama);
  std::unique_ptr<Model> cpu = makeModel(c, 8), gpu = makeModel(c, 8);
  gpu->to(Cuda);
  EXPECT_EQ(mixtape::compat::canFuseAdamW(gpu->parameters().front().Tensor),
            TORCH_VERSION_MAJOR >= 2);
  AdamW cpuOpt(cpu->parameters(), {}), gpuOpt(gpu->parameters(), {});
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < cpu->parameters().size(); ++i) {
      at::Tensor g = at::randn(cpu->parameters()[i].Tensor.sizes(),
                               at::detail::createCPUGenerator(uint64_t(100 * step) + i));
      cpu->parameters()[i].Tensor.mutable_grad() = g;
      gpu->parameters()[i].Tensor.mutable_grad() = g.to(Cuda);
    }
    cpuOpt.step(1e-2);
    gpuOpt.step(1e-2);
  }
  for (size_t i = 0; i < cpu->parameters().size(); ++i)
    EXPECT_LT(relativeError(gpu->parameters()[i].Tensor, cpu->parameters()[i].Tensor), 1e-5)
        << cpu->parameters()[i].Name;
}

// Weights and optimizer state saved from the device read back bit-identical, on the CPU
// and on the device, and training goes on from them as if never interrupted.
TEST(Cuda, CheckpointsRoundTripThroughTheCpu) {
  MIXTAPE_REQUIRE_CUDA();
  TempDir dir;
  ModelConfig c = smallConfig(Family::GPT2);
  std::unique_ptr<Model> gpu = makeModel(c, 2);
  gpu->to(Cuda);
  AdamW opt(gpu->parameters(), {});
  mixtape::plan::LRSchedule constant = constantLR(1e-3);
  Trainer trainer(*gpu, opt, constant);
  std::vector<MicroBatch> data = batches(c.VocabSize, 2);
  ASSERT_TRUE(bool(trainer.step(data[0])));
  ASSERT_FALSE(bool(gpu->saveWeights(dir / "w.safetensors")));
  ASSERT_FALSE(bool(opt.saveState(dir / "o.safetensors")));

  std::unique_ptr<Model> cpu = makeModel(c, 99), again = makeModel(c, 99);
  ASSERT_FALSE(bool(cpu->loadWeights(dir / "w.safetensors")));
  ASSERT_FALSE(bool(again->loadWeights(dir / "w.safetensors")));
  again->to(Cuda);
  AdamW againOpt(again->parameters(), {});
  ASSERT_FALSE(bool(againOpt.loadState(dir / "o.safetensors")));
  for (size_t i = 0; i < gpu->parameters().size(); ++i) {
    EXPECT_TRUE(at::equal(cpu->parameters()[i].Tensor, gpu->parameters()[i].Tensor.cpu()));
    EXPECT_TRUE(againOpt.expAvgSq(i).is_cuda());
    EXPECT_TRUE(at::equal(againOpt.expAvgSq(i).cpu(), opt.expAvgSq(i).cpu()));
  }
  Trainer againTrainer(*again, againOpt, constant);
  againTrainer.setTokensSeen(trainer.tokensSeen());
  ASSERT_TRUE(bool(trainer.step(data[1])));
  ASSERT_TRUE(bool(againTrainer.step(data[1])));
  for (size_t i = 0; i < gpu->parameters().size(); ++i)
    EXPECT_LT(relativeError(again->parameters()[i].Tensor, gpu->parameters()[i].Tensor), 1e-6);
}

// NCCL through c10d, as a world of one (the GPU machine has one GPU, and NCCL allows one
// rank per GPU): every collective, and a data-parallel training step that must equal the
// plain one bit for bit (summing over one rank changes nothing).
TEST(Cuda, NcclWorldOfOne) {
  MIXTAPE_REQUIRE_CUDA();
  namespace dist = mixtape::dist;
  if (!dist::hasBackend(dist::Device::CUDA))
    GTEST_SKIP() << "this build has no NCCL process group";
  llvm::Expected<uint16_t> port = dist::freeLocalPort();
  ASSERT_TRUE(bool(port)) << llvm::toString(port.takeError());
  dist::World world;
  world.MasterPort = *port;
  world.Source = "test";
  llvm::Expected<std::unique_ptr<dist::Collectives>> c =
      dist::connectProcessGroup(world, dist::Device::CUDA, std::chrono::seconds(60));
  ASSERT_TRUE(bool(c)) << llvm::toString(c.takeError());
  EXPECT_EQ((*c)->deviceType(), c10::DeviceType::CUDA);
  at::Tensor t = at::arange(6, at::kFloat).to(Cuda);
  (*c)->allReduceSum(t);
  EXPECT_TRUE(t.cpu().equal(at::arange(6, at::kFloat)));
  at::Tensor slice = at::empty({6}, t.options());
  (*c)->reduceScatterSum(t, slice);
  EXPECT_TRUE(slice.cpu().equal(at::arange(6, at::kFloat)));
  at::Tensor gathered = at::empty({6}, t.options());
  (*c)->allGather(t, gathered);
  EXPECT_TRUE(gathered.cpu().equal(at::arange(6, at::kFloat)));
  EXPECT_EQ((*c)->broadcastValue(42), 42);
  (*c)->barrier();

  ModelConfig config = smallConfig(Family::Llama);
  std::unique_ptr<Model> plain = makeModel(config, 4), parallel = makeModel(config, 4);
  plain->to(Cuda);
  parallel->to(Cuda);
  AdamW plainOpt(plain->parameters(), {}), parallelOpt(parallel->parameters(), {});
  mixtape::plan::LRSchedule constant = constantLR(1e-3);
  dist::DataParallel dp(**c);
  TrainOptions withSync;
  withSync.Sync = &dp;
  Trainer plainTrainer(*plain, plainOpt, constant);
  Trainer parallelTrainer(*parallel, parallelOpt, constant, withSync);
  std::vector<MicroBatch> data = batches(config.VocabSize, 2);
  for (const MicroBatch &mb : data) {
    llvm::Expected<StepResult> a = plainTrainer.step(mb), b = parallelTrainer.step(mb);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->Loss, b->Loss);
  }
  EXPECT_GE(dp.lastBuckets(), 1u);
  for (size_t i = 0; i < plain->parameters().size(); ++i)
    EXPECT_TRUE(at::equal(plain->parameters()[i].Tensor, parallel->parameters()[i].Tensor))
        << plain->parameters()[i].Name;
}
