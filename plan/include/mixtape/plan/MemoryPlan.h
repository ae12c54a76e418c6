//===- MemoryPlan.h - bytes per GPU and time per step of a train node -*- C++ -*-===//
//
// A model of what one rank of a train node holds: weights, gradients, AdamW state,
// saved activations, the classifier's logits and the buffers of its collectives, from the
// architecture, the sequence length, the micro-batch, the shard mode, the world size and
// activation checkpointing. Torch-free, so that `mixtape plan` checks a plan against the
// GPUs before launch and a runtime bench can print the prediction beside what it measures.
// The formulas, and the forward ops each activation term comes from (runtime/model's
// Model.cpp), are in docs/cluster.md ("The memory plan").
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Plan.h"

#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mixtape::plan {

/// Elements of one call's buffer when ZeRO's reduce-scatter and all-gather run a slice of
/// every rank's shard at a time (runtime/dist SlicedCollectives.h): 16 MiB of fp32.
inline constexpr int64_t kCollectiveSliceElements = int64_t(4) << 20;

/// How the runtime computes. Cpu: fp32 everywhere, attention by model::groupedAttention,
/// which saves the softmax probabilities (T^2 per head). Cuda: bf16 weights for compute
/// with fp32 master weights, fp32 gradients and AdamW state, LibTorch's fused
/// scaled-dot-product attention, which saves O(T) per head.
enum class Device { Cpu, Cuda };

struct MemoryConfig {
  Architecture Model;
  uint64_t SeqLen = 0;
  uint64_t MicroBatch = 1;          ///< sequences per forward pass on one rank
  mixtape::plan::Device Device = mixtape::plan::Device::Cuda;
  ShardMode Shard = ShardMode::None;
  uint64_t World = 1;               ///< data-parallel ranks
  uint64_t CheckpointEvery = 0;     ///< every Nth block recomputes its activations; 0: none
  uint64_t LogitChunk = 0;          ///< tokens per classifier chunk; 0: a micro-batch's logits at once
  /// Whole fp32 copies of the weights beside the trained ones, never sharded: a distillation
  /// teacher, l2_to_init's anchor, the EMA.
  uint64_t WeightCopies = 0;
  bool Distill = false;             ///< each loss chunk also holds the teacher's logits
};

/// `config` with what a train node's regularizers add (weight copies, the teacher's logits).
void addRegularizers(MemoryConfig &config, const TrainSettings &settings);

/// Positions per chunk of the training loss's classifier and cross-entropy (the runtime's
/// model::chunkedTokenLosses) for `vocab`: a chunk's fp32 logits take at most 64 MiB (16M
/// values), rounded down to a multiple of 8 — 128 positions of Llama-3's 128,256 tokens, 328
/// of GPT-2's 50,257 — small beside a model's activations, yet each chunk's product is
/// [positions, d] x [d, vocab], large enough to run at full speed.
uint64_t lossChunkTokens(uint64_t vocab);

/// Bytes one rank holds at the peak of a step (the end of forward, as backward starts).
struct MemoryEstimate {
  double Weights = 0, Gradients = 0, Optimizer = 0;
  double Activations = 0;           ///< saved for backward, with the configured checkpointing
  double ActivationsUncheckpointed = 0; ///< the same without checkpointing, for the table
  double Logits = 0;
  double Buffers = 0;               ///< collectives: gradient buckets, gathered parameters
  double total() const { return Weights + Gradients + Optimizer + Activations + Logits + Buffers; }
};

/// Parameters by where they live: one block, the token embedding (and gpt2's position
/// table), the output head (0 when tied) and the final norm.
struct ParameterCounts {
  double Block = 0, Embedding = 0, Head = 0, FinalNorm = 0;
  uint64_t Layers = 0;
  double total() const { return Block * static_cast<double>(Layers) + Embedding + Head + FinalNorm; }
};
ParameterCounts countParameters(const Architecture &model);

/// Bytes one block saves for backward per token of a micro-batch, without checkpointing.
double blockActivationBytesPerToken(const Architecture &model, uint64_t seqLen, Device device);

/// The memory of one rank: the function `mixtape plan` calls and a runtime bench compares
/// with what it measures (CPU: peak RSS over the RSS before the model is built; CUDA:
/// max_memory_allocated).
MemoryEstimate estimateMemory(const MemoryConfig &config);

/// The cluster `mixtape plan` checks train nodes against ([resources] and its flags).
struct Cluster {
  uint64_t Gpus = 0;
  double GpuMemory = 0;             ///< bytes per GPU
  double InterconnectGbps = 0;      ///< per GPU, for collectives
  /// What a plan may use of a GPU's memory: the CUDA context, NCCL's buffers and the
  /// caching allocator's fragmentation take the rest.
  static constexpr double kUsableFraction = 0.9;
  double usableMemory() const { return GpuMemory * kUsableFraction; }
};

/// Seconds of one optimizer step on each rank: compute at the cost model's peak and MFU
/// (with the recomputed forward of checkpointed blocks), and the ring collectives of the
/// shard mode at the interconnect's bandwidth, not overlapped (an upper bound).
struct StepTime {
  double Compute = 0, Communication = 0;
  double total() const { return Compute + Communication; }
};
/// `batchSequences` is the global batch; `flopsPerToken` the plan's 6N + 12 L d T.
StepTime estimateStepTime(const MemoryConfig &config, uint64_t batchSequences, double flopsPerToken,
                          const Cost &cost, double interconnectGbps);

/// What a train node runs with; unset fields of a request are for choose() to pick.
struct ExecChoice {
  ShardMode Shard = ShardMode::None;
  uint64_t MicroBatch = 1;
  uint64_t CheckpointEvery = 0;
};
struct ExecRequest {
  std::optional<ShardMode> Shard;
  std::optional<uint64_t> MicroBatch;
  std::optional<uint64_t> CheckpointEvery;
};

/// The choice that fits `usable` bytes per rank, for a node whose ranks each take
/// `shareSequences` sequences per step: the least sharding (none, optimizer, full), then
/// the least checkpointing (none, every L, ..., every 2, full), then the largest
/// micro-batch that divides the share, among the settings the request leaves open. nullopt
/// when nothing fits.
std::optional<ExecChoice> chooseExecution(MemoryConfig base, uint64_t shareSequences, double usable,
                                          const ExecRequest &request);

/// "80.0 GiB", "512 MiB", "3.2 KiB".
std::string formatBytes(double bytes);
/// "none", "full", "every 4".
std::string checkpointingName(uint64_t every);

/// The per-GPU table of every train node of `plan` on `cluster` (its exec fields as the
/// plan has them) with the step time expected; the device is Cuda.
void printMemoryPlan(const Plan &plan, const Cluster &cluster, llvm::raw_ostream &os);

} // namespace mixtape::plan
