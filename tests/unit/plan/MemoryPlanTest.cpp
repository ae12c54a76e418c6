// The memory plan and step-time model against numbers worked out by hand (the arithmetic is
// in the comments), and Llama-3-8B against what is known of it: 8,030,261,248 parameters,
// too large for one 80 GiB GPU unsharded, trainable on 8 fully sharded and checkpointed.
#include "mixtape/plan/MemoryPlan.h"

#include <gtest/gtest.h>

using namespace mixtape::plan;

namespace {

/// An untied Llama with RoPE over whole heads.
Architecture llama(uint64_t vocab, uint64_t layers, uint64_t d, uint64_t heads, uint64_t kvHeads, uint64_t ffn,
                   uint64_t positions) {
  return Architecture{ModelFamily::Llama, vocab, layers, d, heads, kvHeads, ffn, positions, 1.0, "bytes", false};
}

/// d 64, 4 heads of 16, 2 KV heads (kv width 32), ffn 128, vocab 100, 2 layers.
Architecture tinyLlama() { return llama(100, 2, 64, 4, 2, 128, 16); }

MemoryConfig tinyOnCpu() {
  MemoryConfig c;
  c.Model = tinyLlama();
  c.SeqLen = 16;
  c.MicroBatch = 2;
  c.Device = Device::Cpu;
  return c;
}

Architecture llama3_8B() { return llama(128256, 32, 4096, 32, 8, 14336, 8192); }

constexpr double kGiB = 1024.0 * 1024 * 1024;

} // namespace

TEST(MemoryPlan, ParametersByPart) {
  ParameterCounts p = countParameters(tinyLlama());
  // q 64*64 + k, v 2 * 64*32 + o 64*64 = 12288; gate, up, down 3 * 64*128 = 24576; norms 128.
  EXPECT_EQ(p.Block, 36992);
  EXPECT_EQ(p.Embedding, 6400);
  EXPECT_EQ(p.Head, 6400);
  EXPECT_EQ(p.FinalNorm, 64);
  EXPECT_EQ(p.total(), 2 * 36992 + 6400 + 6400 + 64);
  // Hugging Face's count of meta-llama/Meta-Llama-3-8B.
  EXPECT_EQ(countParameters(llama3_8B()).total(), 8030261248.0);
  Architecture tied = tinyLlama();
  tied.TieEmbeddings = true;
  EXPECT_EQ(countParameters(tied).Head, 0);
}

TEST(MemoryPlan, ABlocksSavedTensorsOnTheCpu) {
  // fp32 (a = 4), T = 16 < 32: the probabilities are H * T per token.
  //   RMSNorm: x 256 + normalized 256 + output 256 + 1/rms 4          =  772
  //   q, k before RoPE 256 + 128, their cats 256 + 128,
  //   contiguous q, k, v 256 + 128 + 128                              = 1280
  //   probabilities 4 * 16 * 4                                        =  256
  //   the output projection's input                                   =  256
  //   RMSNorm                                                         =  772
  //   gate, silu, up, product 4 * 4 * 128                             = 2048
  EXPECT_EQ(blockActivationBytesPerToken(tinyLlama(), 16, Device::Cpu), 5384);
  // At T = 64 the causal halves keep 3/4 of the scores: 4 * 48 * 4 = 768 instead of 256.
  EXPECT_EQ(blockActivationBytesPerToken(tinyLlama(), 64, Device::Cpu), 5384 - 256 + 768);
}

TEST(MemoryPlan, OneProcessOnTheCpu) {
  MemoryEstimate e = estimateMemory(tinyOnCpu());
  const double P = 86848;
  EXPECT_EQ(e.Weights, 4 * P);
  EXPECT_EQ(e.Gradients, 4 * P);
  // The moments, and the step's two temporaries of the largest tensor, an MLP matrix of
  // 64 * 128 = 8192 (the embedding has 6400).
  EXPECT_EQ(e.Optimizer, 8 * P + 2 * 4 * 8192);
  // 32 tokens * (2 blocks * 5384 + final norm (2*4*64 + 8*64 = 1024) + working set
  // max(3 * 4 * 128, 4 * 16 * 4) = 1536).
  EXPECT_EQ(e.Activations, 32 * (2 * 5384 + 1024 + 1536));
  EXPECT_EQ(e.ActivationsUncheckpointed, e.Activations);
  // 32 tokens * vocab 100 * (logits 4 + log-probabilities 4 + their gradients 4 + 4).
  EXPECT_EQ(e.Logits, 32 * 100 * 16);
  EXPECT_EQ(e.Buffers, 0) << "one process has no collectives";
  EXPECT_EQ(e.total(), 16 * P + 2 * 4 * 8192 + 32 * 13328 + 51200);
}

TEST(MemoryPlan, AWorldOfOneShardsNothing) {
  MemoryConfig c = tinyOnCpu();
  const double none = estimateMemory(c).total();
  for (ShardMode shard : {ShardMode::Optimizer, ShardMode::Full}) {
    c.Shard = shard;
    EXPECT_EQ(estimateMemory(c).total(), none) << "the runtime syncs nothing on one rank";
  }
}

TEST(MemoryPlan, CheckpointingKeepsBlockInputs) {
  MemoryConfig c = tinyOnCpu();
  c.CheckpointEvery = 1;
  // Both blocks keep their input (4 * 64 = 256); recomputing block 1 holds block 0's input,
  // its own and its 5384: 5896.
  EXPECT_EQ(estimateMemory(c).Activations, 32 * (5896 + 1024 + 1536));
  EXPECT_EQ(estimateMemory(c).ActivationsUncheckpointed, 32 * (2 * 5384 + 1024 + 1536));
  // Every 2nd: block 0 checkpointed, block 1 not: 5384 + 256 as backward starts, and the same
  // when block 0 recomputes after block 1 has freed its own.
  c.CheckpointEvery = 2;
  EXPECT_EQ(estimateMemory(c).Activations, 32 * (5640 + 1024 + 1536));
  c.CheckpointEvery = 0;
  c.LogitChunk = 8;
  EXPECT_EQ(estimateMemory(c).Logits, 8 * 100 * 16) << "a chunk of 8 tokens at a time";
}

TEST(MemoryPlan, ShardModesDivideWhatTheyShard) {
  MemoryConfig c = tinyOnCpu();
  c.World = 4;
  const double P = 86848;
  // AdamW's step temporaries (the CPU's): two of the largest tensor, 8192, or of the largest
  // piece of a shard, at most a block's shard 36992/4 = 9248 (full). ZeRO-1's take the place
  // of the whole gradients, freed before its step.
  const double step = 2 * 4 * 8192;
  MemoryEstimate none = estimateMemory(c);
  EXPECT_EQ(none.Optimizer, 8 * P + step);
  EXPECT_EQ(none.Buffers, 4 * P) << "the gradient buckets";
  c.Shard = ShardMode::Optimizer;
  MemoryEstimate zero1 = estimateMemory(c);
  EXPECT_EQ(zero1.Weights, 4 * P);
  EXPECT_EQ(zero1.Gradients, 4 * P);
  EXPECT_EQ(zero1.Optimizer, 2 * P);
  // Smaller than one slice (4Mi elements): the whole flat buffer is one call's.
  EXPECT_EQ(zero1.Buffers, P + 4 * P + 4 * P) << "this rank's gradient shard, the slice and Gloo's copy";
  c.Device = Device::Cuda;
  EXPECT_EQ(estimateMemory(c).Buffers, P + 4 * P) << "NCCL reduce-scatters in place";
  c.Device = Device::Cpu;
  c.Model.Layers = 200; // P = 12864 + 200 · 36992 = 7,411,264: slices of 4Mi elements
  EXPECT_EQ(estimateMemory(c).Buffers, 4.0 * 7411264 / 4 + 2 * 4.0 * (4 << 20));
  c.Model.Layers = tinyOnCpu().Model.Layers;
  c.Device = Device::Cpu;
  c.Shard = ShardMode::Full;
  MemoryEstimate full = estimateMemory(c);
  EXPECT_EQ(full.Weights, P);
  EXPECT_EQ(full.Gradients, P);
  EXPECT_EQ(full.Optimizer, 2 * P + step);
  // Two gathered blocks (the largest unit, 36992 > 6400) at 4 bytes, one unsharded fp32
  // gradient of a block, and its reduce-scatter's buffer (the whole unit, less than a slice)
  // with Gloo's copy.
  EXPECT_EQ(full.Buffers, (2 * 4 + 4 + 2 * 4) * 36992.0);
  EXPECT_EQ(full.Activations, none.Activations);
}

TEST(MemoryPlan, OnCudaBf16ComputeBesideFp32Masters) {
  MemoryConfig c = tinyOnCpu();
  c.Device = Device::Cuda;
  const double P = 86848;
  MemoryEstimate e = estimateMemory(c);
  EXPECT_EQ(e.Weights, 4 * P + 2 * P);
  EXPECT_EQ(e.Gradients, 4 * P);
  // bf16 (a = 2), GQA 4 heads over 2:
  //   RMSNorm: x 128 + fp32 copy 256 + normalized 256 + output 128 + 4  =  772
  //   q, k before RoPE 128 + 64, cats 128 + 64; rotated q 128, K and V
  //   repeated to 4 heads 128 + 128                                     =  768
  //   attention output 128 + log-sum-exp 4 * 4                          =  144
  //   output projection input 128; RMSNorm 772; MLP 4 * 2 * 128 = 1024
  EXPECT_EQ(blockActivationBytesPerToken(c.Model, 16, Device::Cuda), 772 + 768 + 144 + 128 + 772 + 1024);
  // Logits bf16 2 + fp32 log-probabilities 4 + gradients 4 + 2.
  EXPECT_EQ(e.Logits, 32 * 100 * 12);
}

TEST(MemoryPlan, StepTimeIsComputePlusRingCollectives) {
  MemoryConfig c = tinyOnCpu();
  Cost cost{1e12, 0.5};
  const double P = 86848, flopsPerToken = 1e6;
  // Batch 8 sequences of 16 on one rank: 128 tokens * 1e6 / (1e12 * 0.5) = 2.56e-4 s.
  StepTime one = estimateStepTime(c, 8, flopsPerToken, cost, 8);
  EXPECT_DOUBLE_EQ(one.Compute, 2.56e-4);
  EXPECT_EQ(one.Communication, 0);
  // 4 ranks at 8 Gb/s = 1e9 B/s: a quarter of the compute; all-reduce of the fp32 gradients
  // moves 2 * 3/4 * 4P bytes.
  c.World = 4;
  StepTime none = estimateStepTime(c, 8, flopsPerToken, cost, 8);
  EXPECT_DOUBLE_EQ(none.Compute, 6.4e-5);
  EXPECT_DOUBLE_EQ(none.Communication, 2 * 0.75 * 4 * P / 1e9);
  // Full: each rank's 2 sequences in micro-batches of 2 is one micro-batch: gathers of
  // 4-byte weights for forward and backward and a reduce-scatter of fp32 gradients.
  c.Shard = ShardMode::Full;
  EXPECT_DOUBLE_EQ(estimateStepTime(c, 8, flopsPerToken, cost, 8).Communication, 0.75 * (4 + 4 + 4) * P / 1e9);
  // Full checkpointing recomputes every block's forward: 2N of 6N more compute.
  c.CheckpointEvery = 1;
  EXPECT_DOUBLE_EQ(estimateStepTime(c, 8, flopsPerToken, cost, 8).Compute, 6.4e-5 * 4 / 3);
}

TEST(MemoryPlan, ChoosesLeastShardingThenCheckpointingThenLargestMicroBatch) {
  MemoryConfig c = tinyOnCpu();
  c.Device = Device::Cuda; // on the CPU, Gloo's copy makes ZeRO-1 no smaller than none on 2 ranks
  c.World = 2;
  // Just enough for none, no checkpointing, micro-batch 2 of a share of 4.
  c.MicroBatch = 2;
  const double budget = estimateMemory(c).total();
  c.MicroBatch = 4;
  ASSERT_GT(estimateMemory(c).total(), budget);
  std::optional<ExecChoice> pick = chooseExecution(c, 4, budget, {});
  ASSERT_TRUE(pick);
  EXPECT_EQ(pick->Shard, ShardMode::None);
  EXPECT_EQ(pick->CheckpointEvery, 0u);
  EXPECT_EQ(pick->MicroBatch, 2u);
  // A written micro-batch of 4 needs more: sharding the optimizer state is the first help.
  pick = chooseExecution(c, 4, budget, {std::nullopt, 4, std::nullopt});
  ASSERT_TRUE(pick);
  EXPECT_EQ(pick->Shard, ShardMode::Optimizer);
  EXPECT_EQ(pick->MicroBatch, 4u);
  EXPECT_FALSE(chooseExecution(c, 4, 1000, {})) << "1000 bytes hold nothing";
}

TEST(MemoryPlan, Llama3_8BNeedsShardingAndCheckpointingOn80GiB) {
  MemoryConfig c;
  c.Model = llama3_8B();
  c.SeqLen = 8192;
  c.MicroBatch = 1;
  c.Device = Device::Cuda;
  Cluster one{1, 80 * kGiB, 400};
  // fp32 masters, bf16 copies, gradients and moments alone are 18 bytes a parameter: 134 GiB.
  EXPECT_GT(estimateMemory(c).Weights + estimateMemory(c).Gradients + estimateMemory(c).Optimizer, 134 * kGiB);
  EXPECT_GT(estimateMemory(c).total(), one.usableMemory());
  EXPECT_FALSE(chooseExecution(c, 1, one.usableMemory(), {ShardMode::None, std::nullopt, std::nullopt}));

  c.World = 8;
  c.Shard = ShardMode::Full;
  c.CheckpointEvery = 1;
  Cluster eight{8, 80 * kGiB, 400};
  MemoryEstimate e = estimateMemory(c);
  EXPECT_LT(e.total(), eight.usableMemory());
  // 16 bytes a parameter over 8 ranks: 15 GiB of model state.
  EXPECT_NEAR(e.Weights + e.Gradients + e.Optimizer, 16 * 8030261248.0 / 8, 1);
  c.CheckpointEvery = 0;
  EXPECT_GT(estimateMemory(c).total(), eight.usableMemory()) << "32 blocks of 8192 tokens' activations";
}

TEST(MemoryPlan, Formats) {
  EXPECT_EQ(formatBytes(80 * kGiB), "80.0 GiB");
  EXPECT_EQ(formatBytes(512), "512 B");
  EXPECT_EQ(formatBytes(1536), "1.5 KiB");
  EXPECT_EQ(checkpointingName(0), "none");
  EXPECT_EQ(checkpointingName(1), "full");
  EXPECT_EQ(checkpointingName(4), "every 4");
}

// The runtime's loss chunk (model::chunkedTokenLosses), which the plan counts.
TEST(MemoryPlan, LossChunkKeepsLogitsUnder64MiB) {
  EXPECT_EQ(lossChunkTokens(128256), 128); // Llama-3: 16M / 128256 = 130.8
  EXPECT_EQ(lossChunkTokens(50257), 328);  // GPT-2: 333.8
  EXPECT_EQ(lossChunkTokens(4), uint64_t(4) << 20);
  EXPECT_EQ(lossChunkTokens(4'000'000), 4);  // fewer than 8 rows stay as they are
  EXPECT_EQ(lossChunkTokens(64'000'000), 1); // a chunk is at least one position
}

// distill, l2_to_init and ema each hold a whole fp32 copy of the weights (never sharded);
// distillation also holds a chunk of the teacher's logits and its final hidden states.
TEST(MemoryPlan, RegularizersAddTheirCopiesAndTheTeachersLogits) {
  MemoryConfig c = tinyOnCpu();
  c.LogitChunk = 8;
  c.Shard = ShardMode::Full;
  c.World = 4;
  const MemoryEstimate plain = estimateMemory(c);
  TrainSettings s;
  s.Distill = Distill{0, 0.5, 1, DistillKind::KL};
  s.L2ToInit = L2ToInit{1e-4, 0};
  s.Ema = 0.999;
  addRegularizers(c, s);
  EXPECT_EQ(c.WeightCopies, 3u);
  const MemoryEstimate regularized = estimateMemory(c);
  const double P = countParameters(c.Model).total();
  EXPECT_DOUBLE_EQ(regularized.Weights - plain.Weights, 3 * 4 * P);
  // A chunk of 8 positions of 100 logits: fp32 products, logits and probabilities (4 + 4 + 8
  // bytes each), and 32 positions of d 64 in fp32.
  EXPECT_DOUBLE_EQ(regularized.Logits - plain.Logits, 8 * 100 * 16 + 32 * 64 * 4);
  EXPECT_EQ(regularized.Activations, plain.Activations);
}
