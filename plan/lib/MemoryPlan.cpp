//===- MemoryPlan.cpp - bytes per GPU and time per step of a train node ---===//
#include "mixtape/plan/MemoryPlan.h"

#include "mixtape/support/Format.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <cmath>

using namespace mixtape;
using namespace mixtape::plan;

namespace {
constexpr double kFp32 = 4;
/// Bytes of an activation and of a weight used for compute.
double computeBytes(Device device) { return device == Device::Cpu ? 4 : 2; }
} // namespace

ParameterCounts plan::countParameters(const Architecture &m) {
  const double d = static_cast<double>(m.DModel), f = static_cast<double>(m.Ffn);
  const double headDim = m.Heads ? d / static_cast<double>(m.Heads) : 0;
  const double kv = static_cast<double>(m.KVHeads) * headDim, vocab = static_cast<double>(m.Vocab);
  ParameterCounts p;
  p.Layers = m.Layers;
  switch (m.Family) {
  case ModelFamily::Llama: // q, k, v, o; gate, up, down; two RMSNorm weights
    p.Block = d * (d + 2 * kv) + d * d + 3 * d * f + 2 * d;
    p.FinalNorm = d;
    break;
  case ModelFamily::GPT2:
  case ModelFamily::GPTNeoX: // fused qkv and out with biases; up, down with biases; two LayerNorms
    p.Block = 3 * d * d + 3 * d + d * d + d + 2 * d * f + f + d + 4 * d;
    p.FinalNorm = 2 * d;
    break;
  }
  p.Embedding = vocab * d + (m.Family == ModelFamily::GPT2 ? static_cast<double>(m.MaxPositions) * d : 0);
  p.Head = m.TieEmbeddings ? 0 : vocab * d;
  return p;
}

/// Per token, in bytes, what autograd keeps of one block's forward (Model.cpp's ops; a is
/// an activation's size, kv the key/value width KV * D):
///   RMSNorm: its input x, the fp32 copy (bf16 only), the fp32 normalized x, 1/rms and its
///     output, which the next linear saves: 2ad + 4d (+ 4d bf16) + 4 (12d + 4 either way);
///   LayerNorm: input, output, mean and 1/std: 2ad + 8;
///   attention inputs (Llama): q, k before RoPE (x * cos), rotate_half's cat (* sin), and what
///     the attention op saves: CPU contiguous copies of q, k, v; CUDA q and K, V repeated to
///     H heads (GQA; k and v themselves when KV = H);
///   gpt2: q, k, v (contiguous copies on CPU, views of the fused qkv on CUDA);
///   gpt_neox: the fused qkv (RoPE's q and k are views of it), the two cats, and rotated q, k
///     (CUDA) or contiguous q, k, v (CPU) (rotary_pct = 1; a partial rotation adds less);
///   the attention op: CPU the softmax probabilities, H * 3T/4 per token for causal T >= 32
///     (two query halves, the upper-right quarter never computed) else H * T; CUDA its
///     output and the fp32 log-sum-exp per head;
///   the output projection's input (transpose + reshape: a copy): ad;
///   MLP: Llama gate, silu(gate), up and their product: 4af; gelu families: up and gelu(up):
///     2af; gpt_neox's parallel residual normalizes x twice but saves it once.
double plan::blockActivationBytesPerToken(const Architecture &m, uint64_t seqLen, Device device) {
  const double a = computeBytes(device), d = static_cast<double>(m.DModel), f = static_cast<double>(m.Ffn);
  const double H = static_cast<double>(m.Heads), T = static_cast<double>(seqLen);
  const double kv = static_cast<double>(m.KVHeads) * (H ? d / H : 0);
  const bool cpu = device == Device::Cpu;
  const double rmsNorm = 2 * a * d + kFp32 * d + (a < kFp32 ? kFp32 * d : 0) + kFp32;
  const double layerNorm = 2 * a * d + 2 * kFp32;
  const double norm = m.Family == ModelFamily::Llama ? rmsNorm : layerNorm;
  double qkv = 0;
  switch (m.Family) {
  case ModelFamily::Llama:
    qkv = 2 * a * d + 2 * a * kv; // q, k before RoPE and their rotate_half cats
    qkv += cpu ? a * d + 2 * a * kv : (m.KVHeads == m.Heads ? 3 * a * d : a * d + 2 * a * d);
    break;
  case ModelFamily::GPT2:
    qkv = 3 * a * d;
    break;
  case ModelFamily::GPTNeoX:
    qkv = 3 * a * d + 2 * a * d + (cpu ? 3 * a * d : 2 * a * d);
    break;
  }
  const double probabilities = H * (seqLen >= 32 ? 0.75 * T : T) * a;
  const double core = cpu ? probabilities : a * d + kFp32 * H;
  const double mlp = (m.Family == ModelFamily::Llama ? 4 : 2) * a * f;
  const double sharedInput = m.Family == ModelFamily::GPTNeoX ? a * d : 0;
  return norm + qkv + core + a * d + norm + mlp - sharedInput;
}

/// What one block's backward holds at once beyond the saved tensors, per token: the
/// gradients through the MLP (Llama: of the product, silu and the gate: 3af; else 2af) or,
/// on the CPU, the gradients of the probabilities and scores of the larger query half
/// (2 * H * T/2 * a), whichever is larger.
static double backwardWorkingBytesPerToken(const Architecture &m, uint64_t seqLen, Device device) {
  const double a = computeBytes(device), f = static_cast<double>(m.Ffn);
  const double mlp = (m.Family == ModelFamily::Llama ? 3 : 2) * a * f;
  const double attention =
      device == Device::Cpu ? static_cast<double>(m.Heads) * static_cast<double>(seqLen) * a : 0;
  return std::max(mlp, attention);
}

/// Elements of the model's largest tensor: the embedding (or head), an MLP matrix, or a
/// fused qkv.
static double largestTensor(const Architecture &m) {
  const double d = static_cast<double>(m.DModel);
  const double qkv = m.Family == ModelFamily::Llama ? d * d : 3 * d * d;
  return std::max({static_cast<double>(m.Vocab) * d, d * static_cast<double>(m.Ffn), qkv});
}

uint64_t plan::lossChunkTokens(uint64_t vocab) {
  constexpr uint64_t kChunkLogits = uint64_t(16) << 20; // 64 MiB of fp32
  const uint64_t tokens = std::max<uint64_t>(1, kChunkLogits / std::max<uint64_t>(1, vocab));
  return tokens >= 8 ? tokens / 8 * 8 : tokens; // whole tiles of 8 rows for the GPU's matrix units
}

MemoryEstimate plan::estimateMemory(const MemoryConfig &c) {
  const ParameterCounts p = countParameters(c.Model);
  const double P = p.total(), W = static_cast<double>(std::max<uint64_t>(c.World, 1));
  const double a = computeBytes(c.Device), d = static_cast<double>(c.Model.DModel);
  // A world of one shards nothing, whatever the mode (the runtime syncs nothing there).
  const ShardMode shard = c.World > 1 ? c.Shard : ShardMode::None;
  const bool full = shard == ShardMode::Full, sharded = shard != ShardMode::None;
  const bool bf16 = c.Device == Device::Cuda, cpu = c.Device == Device::Cpu;
  // The largest unit of full sharding: a block, the embedding or the head.
  const double unit = std::max({p.Block, p.Embedding, p.Head});
  MemoryEstimate e;

  // Model state: fp32 masters (and, unsharded on CUDA, their bf16 copies for compute),
  // fp32 gradients, AdamW's two fp32 moments. On the CPU (no fused AdamW), the step's
  // denominator sqrt(v) / c + eps makes two temporaries of the largest tensor it updates
  // at once (AdamW::update): a whole parameter, or its piece of this rank's shard. ZeRO-1
  // frees the whole gradients before its step, whose temporaries then take their place.
  e.Weights = kFp32 * P / (full ? W : 1) + (bf16 && !full ? 2 * P : 0) + static_cast<double>(c.WeightCopies) * kFp32 * P;
  e.Gradients = kFp32 * P / (full ? W : 1);
  e.Optimizer = 2 * kFp32 * P / (sharded ? W : 1);
  if (cpu && shard != ShardMode::Optimizer)
    e.Optimizer += 2 * kFp32 * std::min(largestTensor(c.Model), sharded ? (full ? unit : P) / W : P);

  // Activations: a checkpointed block keeps its input only and recomputes the rest in
  // backward, when the blocks after it have freed theirs. The peak is the larger of all
  // blocks' saved tensors as backward starts and, for each checkpointed block, those of
  // the blocks before it plus its own recomputed ones. The final norm's are outside the
  // blocks; the working set is what backward holds on top.
  const double tokens = static_cast<double>(c.MicroBatch) * static_cast<double>(c.SeqLen);
  const double block = blockActivationBytesPerToken(c.Model, c.SeqLen, c.Device), input = a * d;
  double before = 0, peak = 0;
  for (uint64_t i = 0; i < c.Model.Layers; ++i) {
    const bool checkpointed = c.CheckpointEvery && i % c.CheckpointEvery == 0;
    if (checkpointed)
      peak = std::max(peak, before + input + block);
    before += checkpointed ? input : block;
  }
  peak = std::max(peak, before);
  const double finalNorm = c.Model.Family == ModelFamily::Llama ? 2 * a * d + 2 * kFp32 * d : 2 * a * d;
  const double outside = finalNorm + backwardWorkingBytesPerToken(c.Model, c.SeqLen, c.Device);
  e.ActivationsUncheckpointed = tokens * (static_cast<double>(c.Model.Layers) * block + outside);
  e.Activations = tokens * (peak + outside);

  // Logits of the tokens scored at once, the fp32 log-probabilities the loss saves, and in
  // backward their gradient and the logits' gradient.
  const double scored = c.LogitChunk ? std::min(static_cast<double>(c.LogitChunk), tokens) : tokens;
  e.Logits = scored * static_cast<double>(c.Model.Vocab) * (2 * a + 2 * kFp32);
  // Distillation: the teacher's logits and probabilities beside the student's in each chunk,
  // and the teacher's final hidden states, which backward reads again.
  if (c.Distill)
    e.Logits += scored * static_cast<double>(c.Model.Vocab) * (2 * a + 2 * kFp32) + tokens * d * kFp32;

  // Collectives (none on one rank): DDP's buckets hold a flat copy of the gradients; ZeRO-1
  // holds this rank's gradient shard and reduce-scatters into it a slice of every shard at a
  // time (the whole buffer when it is smaller), and Gloo's reduce-scatter (the CPU's)
  // all-reduces a copy of each slice; full sharding gathers two units' parameters (the one
  // computing and the one prefetched) and holds one unit's unsharded gradient until it is
  // reduce-scattered, a slice at a time as ZeRO-1's.
  if (c.World > 1) {
    auto slices = [&](double elements) {
      return kFp32 * std::min(elements, static_cast<double>(kCollectiveSliceElements)) * (cpu ? 2 : 1);
    };
    if (shard == ShardMode::None)
      e.Buffers = kFp32 * P;
    else if (shard == ShardMode::Optimizer)
      e.Buffers = kFp32 * P / W + slices(P);
    else
      e.Buffers = (2 * a + kFp32) * unit + slices(unit);
  }
  return e;
}

void plan::addRegularizers(MemoryConfig &c, const TrainSettings &s) {
  c.Distill = s.Distill.has_value();
  c.WeightCopies = (s.Distill ? 1 : 0) + (s.L2ToInit ? 1 : 0) + (s.Ema ? 1 : 0);
}

/// Ring collectives over W ranks move (W-1)/W of the data through each rank's link for an
/// all-gather or a reduce-scatter, twice that for an all-reduce.
StepTime plan::estimateStepTime(const MemoryConfig &c, uint64_t batchSequences, double flopsPerToken,
                                const Cost &cost, double interconnectGbps) {
  const double W = static_cast<double>(std::max<uint64_t>(c.World, 1)), L = static_cast<double>(c.Model.Layers);
  const double a = computeBytes(c.Device);
  StepTime t;
  // Recomputing a checkpointed block's forward costs 2N of its 6N.
  const double checkpointed = c.CheckpointEvery ? std::ceil(L / static_cast<double>(c.CheckpointEvery)) : 0;
  const double recompute = L ? 1 + checkpointed / (3 * L) : 1;
  const double tokensPerRank = static_cast<double>(batchSequences) * static_cast<double>(c.SeqLen) / W;
  t.Compute = flopsPerToken * tokensPerRank * recompute / (cost.PeakFlops * cost.Mfu);
  if (c.World <= 1)
    return t;
  const double P = countParameters(c.Model).total(), share = (W - 1) / W;
  const double bytesPerSecond = interconnectGbps * 1e9 / 8;
  double bytes = 0;
  switch (c.Shard) {
  case ShardMode::None: // all-reduce the fp32 gradients once per step
    bytes = 2 * share * kFp32 * P;
    break;
  case ShardMode::Optimizer: // reduce-scatter them, all-gather the updated weights
    bytes = share * kFp32 * P + share * a * P;
    break;
  case ShardMode::Full: { // per micro-batch: gather for forward and backward, reduce-scatter
    const double microBatches = static_cast<double>(batchSequences) / W / static_cast<double>(c.MicroBatch);
    bytes = microBatches * share * (2 * a + kFp32) * P;
    break;
  }
  }
  t.Communication = bytes / bytesPerSecond;
  return t;
}

std::optional<ExecChoice> plan::chooseExecution(MemoryConfig base, uint64_t shareSequences, double usable,
                                                const ExecRequest &request) {
  std::vector<ShardMode> shards = {ShardMode::None, ShardMode::Optimizer, ShardMode::Full};
  if (request.Shard)
    shards = {*request.Shard};
  std::vector<uint64_t> checkpointing = {0};
  for (uint64_t every = base.Model.Layers; every >= 1; --every)
    checkpointing.push_back(every);
  if (request.CheckpointEvery)
    checkpointing = {*request.CheckpointEvery};
  std::vector<uint64_t> micro;
  for (uint64_t m = shareSequences; m >= 1; --m)
    if (shareSequences % m == 0)
      micro.push_back(m);
  if (request.MicroBatch)
    micro = {*request.MicroBatch};
  for (ShardMode shard : shards)
    for (uint64_t every : checkpointing)
      for (uint64_t m : micro) {
        base.Shard = shard;
        base.CheckpointEvery = every;
        base.MicroBatch = m;
        if (estimateMemory(base).total() <= usable)
          return ExecChoice{shard, m, every};
      }
  return std::nullopt;
}

std::string plan::formatBytes(double bytes) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t u = 0;
  while (bytes >= 1024 && u + 1 < std::size(units)) {
    bytes /= 1024;
    ++u;
  }
  return u ? llvm::formatv("{0:f1} {1}", bytes, units[u]).str() : llvm::formatv("{0:f0} B", bytes).str();
}

std::string plan::checkpointingName(uint64_t every) {
  return every == 0 ? "none" : every == 1 ? "full" : "every " + std::to_string(every);
}

void plan::printMemoryPlan(const Plan &plan, const Cluster &cluster, llvm::raw_ostream &os) {
  os << llvm::formatv("\nmemory per GPU on {0} GPUs of {1} ({2} usable), collectives at {3} Gb/s; step time at "
                      "{4:f0} TFLOP/s and {5:f0}% MFU plus communication:\n",
                      cluster.Gpus, formatBytes(cluster.GpuMemory), formatBytes(cluster.usableMemory()),
                      formatNumber(cluster.InterconnectGbps), plan.Cost.PeakFlops / 1e12, plan.Cost.Mfu * 100);
  size_t width = 4;
  for (const Node &n : plan.Nodes)
    if (n.train())
      width = std::max(width, n.Name.size());
  auto cell = [&](const std::string &s) { return llvm::right_justify(s, 10); };
  os << "  " << llvm::left_justify("node", width) << llvm::right_justify("shard", 10) << llvm::right_justify("micro", 6)
     << llvm::right_justify("ckpt", 9) << cell("weights") << cell("grads") << cell("optim") << cell("activ")
     << cell("(no ckpt)") << cell("logits") << cell("buffers") << cell("total") << cell("step") << "\n";
  for (const Node &n : plan.Nodes) {
    const TrainNode *t = n.train();
    if (!t)
      continue;
    MemoryConfig c;
    c.Model = plan.Model;
    c.SeqLen = t->Settings.SeqLen;
    c.Shard = t->Exec.Shard;
    c.World = cluster.Gpus;
    c.CheckpointEvery = t->Exec.ActivationCheckpointing;
    c.LogitChunk = lossChunkTokens(c.Model.Vocab);
    addRegularizers(c, t->Settings);
    // Each rank takes the largest part of micro_batch that divides its share (the runtime's rule).
    const uint64_t share = std::max<uint64_t>(t->Settings.BatchSequences / cluster.Gpus, 1);
    c.MicroBatch = 1;
    for (uint64_t m = std::min(share, t->Exec.MicroBatch); m >= 1; --m)
      if (share % m == 0) {
        c.MicroBatch = m;
        break;
      }
    const MemoryEstimate e = estimateMemory(c);
    const double flopsPerToken = t->Ledger.Tokens ? t->Ledger.Flops / static_cast<double>(t->Ledger.Tokens) : 0;
    const StepTime step =
        estimateStepTime(c, t->Settings.BatchSequences, flopsPerToken, plan.Cost, cluster.InterconnectGbps);
    os << "  " << llvm::left_justify(n.Name, width) << llvm::right_justify(enumName(c.Shard), 10)
       << llvm::right_justify(std::to_string(c.MicroBatch), 6)
       << llvm::right_justify(checkpointingName(c.CheckpointEvery), 9) << cell(formatBytes(e.Weights))
       << cell(formatBytes(e.Gradients)) << cell(formatBytes(e.Optimizer)) << cell(formatBytes(e.Activations))
       << cell(formatBytes(e.ActivationsUncheckpointed)) << cell(formatBytes(e.Logits)) << cell(formatBytes(e.Buffers))
       << cell(formatBytes(e.total())) << cell(llvm::formatv("{0:f2} s", step.total()).str()) << "\n";
    if (step.Communication > 0)
      os << "  " << llvm::left_justify("", width)
         << llvm::formatv("   step: {0:f2} s compute + {1:f2} s communication\n", step.Compute, step.Communication);
  }
}
