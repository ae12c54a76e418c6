//===- NodeRunners.cpp - init, train, eval and merge nodes ----------------===//
//
// The training loop reads top to bottom: open the data, restore the start state (the last
// checkpoint, else the input node's weights and maybe its optimizer state), then for each
// optimizer step: in-loop evals due at its start, the step, a checkpoint when one is due.
// Samples are a pure function of the plan and their index, and CPU math is deterministic
// for a fixed thread count, so a resumed node ends bit-identical to an uninterrupted one.
// With several ranks, each trains on a consecutive share of every batch and evaluates every
// W-th eval micro-batch; the step and the eval are summed over the ranks (runtime/dist).
//
//===----------------------------------------------------------------------===//
#include "ExecContext.h"

#include "mixtape/compiler/DuringEvals.h"
#include "mixtape/compiler/Plan.h"
#include "mixtape/dist/DataParallel.h"
#include "mixtape/dist/ShardedAdamW.h"
#include "mixtape/merge/Merge.h"
#include "mixtape/model/Model.h"
#include "mixtape/model/TorchCompat.h"
#include "mixtape/train/AdamW.h"
#include "mixtape/train/Numerics.h"
#include "mixtape/train/Trainer.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/raw_ostream.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cmath>

using namespace mixtape;
using namespace mixtape::exec;
using llvm::json::Object;

namespace {

llvm::Error error(const llvm::Twine &what) { return llvm::createStringError(llvm::inconvertibleErrorCode(), what); }

int64_t integer(const Object &o, llvm::StringRef key, int64_t fallback = 0) {
  return o.getInteger(key).getValueOr(fallback);
}

/// The architecture of the plan's model, with a node's RoPE base. A model that came from a
/// Hugging Face checkpoint keeps what the plan does not spell out (norm eps, head size,
/// tied head, rotary fraction, activation): its init node saved the checkpoint's config.
llvm::Expected<model::ModelConfig> modelConfig(const ExecContext &ctx, llvm::Optional<double> ropeTheta) {
  // RoPE has no position table to learn: its limit only sizes a cache, so it covers the
  // longest sequence any node trains on (a long-context stage), without touching any hash.
  auto coverSequences = [&](model::ModelConfig &c) {
    if (c.family == model::Family::GPT2)
      return;
    for (const ExecNode &n : ctx.nodes)
      c.maxPositions = std::max(c.maxPositions, n.settings->getInteger("seq_len").getValueOr(0));
  };
  for (const ExecNode &n : ctx.nodes) {
    std::string config = joinPath(ctx.nodeDir(n), "config.json");
    if (n.kind != "init" || !n.settings->getString("init").getValueOr("").startswith("hf:") ||
        !llvm::sys::fs::exists(config))
      continue;
    llvm::Expected<model::ModelConfig> c = model::readHFConfig(config);
    if (c && ropeTheta)
      c->ropeTheta = *ropeTheta;
    if (c)
      coverSequences(*c);
    return c;
  }
  const Object *m = ctx.plan->getObject("model");
  if (!m)
    return error("malformed plan: no model");
  auto family = model::familyFromName(m->getString("family").getValueOr(""));
  if (!family)
    return error("malformed plan: unknown model family");
  model::ModelConfig c = model::ModelConfig::defaults(*family, integer(*m, "vocab"), integer(*m, "layers"),
                                                      integer(*m, "d_model"), integer(*m, "heads"),
                                                      integer(*m, "max_positions"));
  c.numKVHeads = integer(*m, "kv_heads", c.numHeads);
  c.ffnHidden = integer(*m, "ffn", c.ffnHidden);
  c.rotaryPct = m->getNumber("rotary_pct").getValueOr(1.0);
  if (ropeTheta)
    c.ropeTheta = *ropeTheta;
  coverSequences(c);
  if (llvm::Error e = c.validate())
    return e;
  return c;
}

/// The plan's model with the weights of `weights` (a model.safetensors).
llvm::Expected<std::unique_ptr<model::Model>> loadModel(const ExecContext &ctx, llvm::StringRef weights,
                                                        llvm::Optional<double> ropeTheta) {
  llvm::Expected<model::ModelConfig> config = modelConfig(ctx, ropeTheta);
  if (!config)
    return config.takeError();
  llvm::Expected<std::unique_ptr<model::Model>> m = model::Model::create(*config, ctx.seed);
  if (!m)
    return m.takeError();
  if (llvm::Error e = (*m)->loadWeights(weights))
    return e;
  return m;
}

/// The model a node's input left: every node that makes a model writes model.safetensors.
llvm::Expected<std::unique_ptr<model::Model>> loadInputModel(const ExecContext &ctx, const ExecNode &input,
                                                             llvm::Optional<double> ropeTheta) {
  return loadModel(ctx, joinPath(ctx.nodeDir(input), "model.safetensors"), ropeTheta);
}

/// Samples [first, first + count) of a sample source as one micro-batch of tensors.
template <typename ReadSample>
train::MicroBatch makeMicroBatch(ReadSample read, uint64_t first, uint64_t count, uint64_t seqLen, bool withDocuments,
                             data::Sample &scratch) {
  const int64_t B = static_cast<int64_t>(count), L = static_cast<int64_t>(seqLen);
  at::Tensor tokens = at::empty({B, L + 1}, at::kLong);
  at::Tensor mask = at::empty({B, L}, at::kFloat);
  at::Tensor starts = withDocuments ? at::zeros({B, L}, at::kBool) : at::Tensor();
  at::Tensor streams = at::empty({B}, at::kLong);
  int64_t *t = tokens.data_ptr<int64_t>();
  float *m = mask.data_ptr<float>();
  bool *s = withDocuments ? starts.data_ptr<bool>() : nullptr;
  for (int64_t b = 0; b < B; ++b) {
    read(first + static_cast<uint64_t>(b), scratch);
    streams.data_ptr<int64_t>()[b] = scratch.stream;
    for (int64_t i = 0; i <= L; ++i)
      t[b * (L + 1) + i] = scratch.tokens[i];
    for (int64_t i = 0; i < L; ++i)
      m[b * L + i] = scratch.lossMask[i];
    if (s)
      for (uint32_t start : scratch.documentStarts)
        if (start < static_cast<uint32_t>(L))
          s[b * L + start] = true;
  }
  train::MicroBatch mb;
  mb.inputs = tokens.narrow(1, 0, L).contiguous();
  mb.targets = tokens.narrow(1, 1, L).contiguous();
  mb.lossMask = mask;
  mb.documentStarts = starts;
  mb.streams = streams;
  return mb;
}

/// Mean loss of a model over one split (a fixed, seeded subset of at most max_tokens).
llvm::Expected<std::pair<double, uint64_t>> evaluateSplit(ExecContext &ctx, const model::Model &m,
                                                         llvm::StringRef stream, uint64_t seqLen,
                                                         uint64_t maxTokens, uint64_t microBatch,
                                                         bool withDocuments) {
  llvm::Expected<data::NodeStream> ns = ctx.stream(stream, 0);
  if (!ns)
    return ns.takeError();
  llvm::Expected<std::unique_ptr<data::ValSet>> val = data::ValSet::open(*ns, seqLen, maxTokens, *ctx.sources);
  if (!val)
    return val.takeError();
  at::NoGradGuard noGrad;
  const c10::Device device = m.device();
  at::Tensor lossSum = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(device));
  data::Sample scratch;
  auto read = [&](uint64_t i, data::Sample &out) { (*val)->sample(i, out); };
  const uint64_t ranks = static_cast<uint64_t>(ctx.collectives->worldSize()),
                 rank = static_cast<uint64_t>(ctx.collectives->rank());
  for (uint64_t first = rank * microBatch; first < (*val)->size(); first += ranks * microBatch) {
    uint64_t count = std::min<uint64_t>(microBatch, (*val)->size() - first);
    train::MicroBatch mb = train::onDevice(makeMicroBatch(read, first, count, seqLen, withDocuments, scratch), device);
    at::Tensor logits;
    {
      compat::CudaAutocast autocast(m.parameters().front().tensor); // as in training: bf16 on CUDA
      logits = m.forward(mb.inputs, mb.documentStarts);
    }
    lossSum += model::maskedTokenLossSum(logits, mb.targets, mb.lossMask);
  }
  at::Tensor total = lossSum.reshape({1}).to(c10::Device(ctx.collectives->deviceType()));
  ctx.collectives->allReduceSum(total);
  uint64_t tokens = (*val)->targetTokens();
  if (tokens == 0)
    return error("stream '" + stream + "' has no held-out tokens to evaluate");
  return std::make_pair(total.item<double>() / static_cast<double>(tokens), tokens);
}

/// Runs the evals of `splits` ([[stream, split], ...]) and logs one record per split.
llvm::Error evaluate(ExecContext &ctx, const model::Model &m, const llvm::json::Array &splits, uint64_t maxTokens,
                     uint64_t seqLen, uint64_t microBatch, bool withDocuments, Object base, MetricsLog &log) {
  for (const llvm::json::Value &split : splits) {
    const llvm::json::Array *pair = split.getAsArray();
    if (!pair || pair->size() != 2 || !(*pair)[0].getAsString() || !(*pair)[1].getAsString())
      return error("malformed plan: an eval split is [stream, split]");
    llvm::StringRef stream = *(*pair)[0].getAsString(), which = *(*pair)[1].getAsString();
    if (which != "val")
      return error("evaluating a '" + which + "' split is not supported yet; evaluate '" + stream + ".val'");
    auto result = evaluateSplit(ctx, m, stream, seqLen, maxTokens, microBatch, withDocuments);
    if (!result)
      return result.takeError();
    Object record = base;
    record["type"] = "eval";
    record["stream"] = stream;
    record["split"] = which;
    record["loss"] = result->first;
    record["ppl"] = std::exp(result->first);
    record["tokens"] = static_cast<int64_t>(result->second);
    log.write(record);
  }
  return llvm::Error::success();
}

/// One progress line per print: a terminal gets it updated in place.
class Progress {
public:
  Progress(bool enabled, std::string node, int64_t first, int64_t last)
      : Enabled(enabled), Tty(llvm::sys::Process::StandardErrIsDisplayed()), Node(std::move(node)), First(first),
        Last(last), Start(std::chrono::steady_clock::now()) {}
  void step(int64_t step, const train::StepResult &r, uint64_t tokensDone, int64_t skipped) {
    if (!Enabled)
      return;
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - Start).count();
    int64_t done = step - First;
    bool last = step == Last;
    // Plain lines every 25 steps, and at every skipped one.
    if (!Tty && !last && done % 25 != 0 && !r.skipped)
      return;
    double rate = seconds > 0 ? static_cast<double>(tokensDone) / seconds : 0;
    double eta = done > 0 ? seconds / static_cast<double>(done) * static_cast<double>(Last - step) : 0;
    llvm::errs() << (Tty ? "\r" : "")
                 << llvm::formatv("[{0}] step {1}/{2}  {3:f0} tok/s  loss {4:f4}  lr {5:e2}  ETA {6:f0}s", Node, step,
                                  Last, rate, r.loss, r.lr, eta)
                 << (skipped ? llvm::formatv("  skipped {0}", skipped).str() : "")
                 << (Tty && !last ? "" : "\n");
  }

private:
  bool Enabled, Tty;
  std::string Node;
  int64_t First, Last;
  std::chrono::steady_clock::time_point Start;
};

/// Non-finite steps dropped so far (on_nonfinite = "skip"), and how many of the last in a row.
struct SkipCount {
  int64_t total = 0, consecutive = 0;
};

/// More non-finite steps in a row than this stop a node that skips them: it diverged.
constexpr int64_t kMaxConsecutiveSkips = 8;

struct Checkpoint {
  std::string dir;
  int64_t step = 0;
  uint64_t metricsBytes = 0;
  std::string numerics;
  SkipCount skips;
  /// The ranks that wrote it and each one's micro-batch (0: not recorded): another split of
  /// the batch sums in another order.
  int64_t worldSize = 0, microBatch = 0;
};

/// The newest complete checkpoint: a step-N folder whose state.json (written last) parses.
std::optional<Checkpoint> latestCheckpoint(llvm::StringRef nodeDir) {
  std::optional<Checkpoint> best;
  std::error_code ec;
  std::string root = joinPath(nodeDir, "checkpoints");
  for (llvm::sys::fs::directory_iterator it(root, ec), end; it != end && !ec; it.increment(ec)) {
    auto buffer = llvm::MemoryBuffer::getFile(joinPath(it->path(), "state.json"));
    if (!buffer)
      continue;
    llvm::Expected<llvm::json::Value> state = llvm::json::parse((*buffer)->getBuffer());
    if (!state) {
      llvm::consumeError(state.takeError());
      continue;
    }
    const Object *o = state->getAsObject();
    if (!o || !o->getInteger("step"))
      continue;
    Checkpoint c{it->path(), *o->getInteger("step"), static_cast<uint64_t>(o->getInteger("metrics_bytes").getValueOr(0)),
                 o->getString("numerics").getValueOr("").str(),
                 SkipCount{o->getInteger("skipped_steps").getValueOr(0), o->getInteger("consecutive_skips").getValueOr(0)},
                 o->getInteger("world_size").getValueOr(0), o->getInteger("micro_batch").getValueOr(0)};
    if (!best || c.step > best->step)
      best = c;
  }
  return best;
}

/// Rank 0's newest checkpoint, the one every rank resumes from (the others know only its
/// step: they neither check numerics nor cut metrics).
std::optional<Checkpoint> agreedCheckpoint(ExecContext &ctx, llvm::StringRef nodeDir) {
  std::optional<Checkpoint> c = ctx.writesFiles ? latestCheckpoint(nodeDir) : std::nullopt;
  int64_t step = ctx.collectives->broadcastValue(c ? c->step : -1);
  if (step < 0)
    return c;
  // Every rank stops after the same run of skipped steps.
  int64_t consecutive = ctx.collectives->broadcastValue(c ? c->skips.consecutive : 0);
  if (c)
    return c;
  return Checkpoint{checkpointDir(nodeDir, step), step, 0, train::numericsFingerprint(ctx.device), SkipCount{0, consecutive}};
}

/// This rank's share of every batch of B sequences: `count` consecutive ones from `offset`,
/// in micro-batches of `micro` (the plan's micro-batch, or the largest below it that divides
/// the share).
struct BatchShare {
  uint64_t offset = 0, count = 0, micro = 0;
};

llvm::Expected<BatchShare> batchShare(const ExecContext &ctx, uint64_t B, uint64_t micro) {
  const uint64_t ranks = static_cast<uint64_t>(ctx.collectives->worldSize());
  if (B % ranks)
    return error(llvm::formatv("a batch of {0} sequences does not split over {1} ranks; use a number of ranks "
                               "that divides it",
                               B, ranks)
                     .str());
  const uint64_t count = B / ranks;
  return BatchShare{static_cast<uint64_t>(ctx.collectives->rank()) * count, count, dist::shareMicroBatch(count, micro)};
}

llvm::Error saveCheckpoint(const ExecContext &ctx, const std::string &nodeDir, int64_t step, const model::Model &m, const train::AdamW &opt,
                           uint64_t metricsBytes, SkipCount skips, uint64_t keep, uint64_t microBatch) {
  std::string root = joinPath(nodeDir, "checkpoints");
  std::string dir = checkpointDir(nodeDir, step);
  if (std::error_code ec = llvm::sys::fs::create_directories(dir))
    return error(dir + ": " + ec.message());
  if (llvm::Error e = m.saveWeights(joinPath(dir, "model.safetensors")))
    return e;
  if (llvm::Error e = opt.saveState(joinPath(dir, "optimizer.safetensors")))
    return e;
  Object state{{"step", step}, {"metrics_bytes", static_cast<int64_t>(metricsBytes)}, {"numerics", train::numericsFingerprint(ctx.device)},
               {"skipped_steps", skips.total}, {"consecutive_skips", skips.consecutive},
               {"world_size", ctx.collectives->worldSize()}, {"micro_batch", static_cast<int64_t>(microBatch)}};
  if (llvm::Error e = writeFileDurably(joinPath(dir, "state.json"), llvm::formatv("{0}\n", llvm::json::Value(std::move(state))).str()))
    return e;
  // Keep the newest `keep` (at least the one just written).
  std::vector<std::string> all;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(root, ec), end; it != end && !ec; it.increment(ec))
    all.push_back(it->path());
  llvm::sort(all);
  for (size_t i = 0; i + std::max<uint64_t>(keep, 1) < all.size(); ++i)
    llvm::sys::fs::remove_directories(all[i]);
  return llvm::Error::success();
}

} // namespace

llvm::Error mixtape::exec::runInit(ExecContext &ctx, const ExecNode &node) {
  llvm::StringRef init = node.settings->getString("init").getValueOr("random");
  std::unique_ptr<model::Model> m;
  if (init == "random") {
    llvm::Expected<model::ModelConfig> config = modelConfig(ctx, llvm::None);
    if (!config)
      return config.takeError();
    auto created = model::Model::create(*config, static_cast<uint64_t>(integer(*node.settings, "seed")));
    if (!created)
      return created.takeError();
    m = std::move(*created);
  } else if (init.startswith("hf:")) {
    auto loaded = model::Model::fromHuggingFace(joinPath(ctx.recipeDir, init.drop_front(3)));
    if (!loaded)
      return loaded.takeError();
    // With its config: the nodes after it build the checkpoint's architecture from it.
    return (*loaded)->saveHuggingFace(ctx.nodeDir(node));
  } else {
    return error("unknown init '" + init + "'");
  }
  return m->saveWeights(joinPath(ctx.nodeDir(node), "model.safetensors"));
}

llvm::Error mixtape::exec::exportModel(ExecContext &ctx, const ExecNode &node, llvm::StringRef outDir) {
  if (node.kind == "eval")
    return error("node '" + node.name + "' is an eval: it makes no model to export");
  if (llvm::sys::fs::exists(outDir))
    return error(outDir + ": exists; export writes a new folder and replaces nothing");
  auto m = loadInputModel(ctx, node, node.settings->getNumber("rope_theta"));
  if (!m)
    return m.takeError();
  // Built beside its destination and renamed into place: a reader never sees half a folder.
  llvm::SmallString<256> temp;
  std::string parent = llvm::sys::path::parent_path(outDir).str();
  std::string stem = joinPath(parent.empty() ? "." : parent,
                              "." + llvm::sys::path::filename(outDir).str() + ".tmp");
  if (std::error_code ec = llvm::sys::fs::createUniqueDirectory(stem, temp))
    return error(outDir + ": cannot create a folder beside it: " + ec.message());
  auto fail = [&](llvm::Error e) {
    llvm::sys::fs::remove_directories(temp);
    return e;
  };
  if (llvm::Error e = (*m)->saveHuggingFace(temp))
    return fail(std::move(e));
  if (llvm::Error e = syncPath(temp))
    return fail(std::move(e));
  if (std::error_code ec = llvm::sys::fs::rename(temp, outDir))
    return fail(error(outDir + ": cannot move the exported model into place: " + ec.message()));
  return syncPath(parent.empty() ? "." : parent);
}

llvm::Error mixtape::exec::runTrain(ExecContext &ctx, const ExecNode &node) {
  const Object &s = *node.settings;
  const std::string dir = ctx.nodeDir(node);
  const llvm::json::Array *steps = s.getArray("steps");
  const Object *lrJSON = s.getObject("lr"), *mixJSON = s.getObject("mixture"), *data = s.getObject("data");
  if (!steps || steps->size() != 2 || !lrJSON || !mixJSON || !data || !data->getObject("cursors"))
    return error("malformed plan: a train node needs steps, lr, mixture and data");
  const int64_t first = (*steps)[0].getAsInteger().getValueOr(0), last = (*steps)[1].getAsInteger().getValueOr(0);
  const uint64_t B = static_cast<uint64_t>(integer(s, "batch_sequences")), L = static_cast<uint64_t>(integer(s, "seq_len"));
  uint64_t micro = static_cast<uint64_t>(integer(*node.exec, "micro_batch", static_cast<int64_t>(B)));
  if (!B || !L || !micro || B % micro)
    return error("malformed plan: batch_sequences, seq_len and micro_batch must be positive, micro dividing batch");
  const bool withDocuments = s.getString("attention") == llvm::StringRef("within_document");
  const uint64_t perStep = B * L;
  llvm::Expected<BatchShare> share = batchShare(ctx, B, micro);
  if (!share)
    return share.takeError();

  // Data: this node's samples, a pure function of the plan and the sample index.
  llvm::Expected<Mixture> mixture = mixtureFromJSON(*mixJSON);
  if (!mixture)
    return mixture.takeError();
  data::TrainNodeData nodeData;
  nodeData.seqLen = L;
  nodeData.mixture = *mixture;
  nodeData.begin = static_cast<uint64_t>(first) * B;
  nodeData.end = static_cast<uint64_t>(last) * B;
  for (const std::string &stream : mixture->streams) {
    auto cursor = data->getObject("cursors")->getInteger(stream);
    if (!cursor)
      return error("malformed plan: no cursor for stream '" + stream + "'");
    llvm::Expected<data::NodeStream> ns = ctx.stream(stream, static_cast<uint64_t>(*cursor));
    if (!ns)
      return ns.takeError();
    nodeData.streams.push_back(std::move(*ns));
  }
  llvm::Expected<std::unique_ptr<data::TrainSamples>> samples = data::TrainSamples::open(nodeData, *ctx.sources);
  if (!samples)
    return samples.takeError();

  // Start state: the last checkpoint, else the input's weights (and optimizer state).
  const ExecNode &input = ctx.nodes[node.inputs.front()];
  auto m = loadInputModel(ctx, input, s.getNumber("rope_theta"));
  if (!m)
    return m.takeError();
  (*m)->to(ctx.device);
  const Object *o = s.getObject("optimizer");
  train::AdamWOptions options;
  if (o) {
    options.beta1 = o->getNumber("beta1").getValueOr(options.beta1);
    options.beta2 = o->getNumber("beta2").getValueOr(options.beta2);
    options.eps = o->getNumber("eps").getValueOr(options.eps);
    options.weightDecay = o->getNumber("weight_decay").getValueOr(options.weightDecay);
    options.decayAllParameters = o->getBoolean("decay_embeddings").getValueOr(false);
  }
  train::AdamW optimizer((*m)->parameters(), options);
  int64_t start = first;
  std::optional<uint64_t> keepMetrics = 0;
  SkipCount skips;
  if (std::optional<Checkpoint> c = agreedCheckpoint(ctx, dir)) {
    if (llvm::Error e = (*m)->loadWeights(joinPath(c->dir, "model.safetensors")))
      return e;
    if (llvm::Error e = optimizer.loadState(joinPath(c->dir, "optimizer.safetensors")))
      return e;
    start = c->step;
    keepMetrics = c->metricsBytes;
    skips = c->skips;
    const int64_t ranks = ctx.collectives->worldSize(), microBatch = static_cast<int64_t>(share->micro);
    if (c->numerics != train::numericsFingerprint(ctx.device))
      llvm::errs() << llvm::formatv("[{0}] warning: resuming at step {1} under other numerics ({2}, was {3}); the "
                                    "result may differ from an uninterrupted run in the low bits\n",
                                    node.name, start, train::numericsFingerprint(ctx.device), c->numerics);
    else if (ctx.progress)
      llvm::errs() << llvm::formatv("[{0}] resuming from the checkpoint at step {1}\n", node.name, start);
    if (c->worldSize && (c->worldSize != ranks || c->microBatch != microBatch))
      llvm::errs() << llvm::formatv("[{0}] warning: resuming at step {1} on {2} rank(s) with micro-batches of {3} "
                                    "(the checkpoint's: {4} rank(s), micro-batches of {5}); the gradients sum in "
                                    "another order, so the result may differ from an uninterrupted run in the low "
                                    "bits\n",
                                    node.name, start, ranks, microBatch, c->worldSize, c->microBatch);
  } else if (s.getString("optimizer_state") == llvm::StringRef("keep") && input.kind == "train") {
    if (llvm::Error e = optimizer.loadState(joinPath(ctx.nodeDir(input), "optimizer.safetensors")))
      return e;
  }
  llvm::Expected<schedule::Schedule> lr = scheduleFromJSON(*lrJSON);
  if (!lr)
    return lr.takeError();
  train::TrainOptions trainOptions;
  trainOptions.clipNorm = s.getNumber("grad_clip").getValueOr(1.0);
  trainOptions.streams = mixture->streams.size();
  trainOptions.skipNonFinite = s.getString("on_nonfinite") == llvm::StringRef("skip");
  dist::DataParallel dataParallel(*ctx.collectives);
  std::unique_ptr<dist::ShardedAdamW> zero1; // ZeRO-1: this rank holds 1/W of the optimizer state
  if (ctx.collectives->worldSize() > 1) {
    dist::broadcastParameters(*ctx.collectives, (*m)->parameters());
    trainOptions.sync = &dataParallel;
    if (ctx.zero1 || node.exec->getBoolean("zero1").getValueOr(false)) {
      llvm::Expected<std::unique_ptr<dist::ShardedAdamW>> sharded = dist::ShardedAdamW::create(*ctx.collectives, optimizer);
      if (!sharded)
        return sharded.takeError();
      zero1 = std::move(*sharded);
      trainOptions.sync = zero1.get();
    }
  }
  // Rank 0 writes checkpoints, with the whole optimizer state however the ranks keep it: a
  // run resumes with or without ZeRO-1, on any number of ranks. The others wait for it
  // however long a large model's save takes (Collectives::rankZeroAlone).
  auto saveWithWholeState = [&](const std::string &what, llvm::function_ref<llvm::Error()> save) -> llvm::Error {
    if (zero1)
      return zero1->saveWholeState(optimizer, what, save);
    return ctx.collectives->rankZeroAlone(what, save);
  };
  train::Trainer trainer(**m, optimizer, *lr, trainOptions);
  trainer.setTokensSeen(static_cast<double>(static_cast<uint64_t>(start) * perStep));

  MetricsLog log;
  if (ctx.writesFiles)
    if (llvm::Error e = log.open(joinPath(dir, "metrics.jsonl"), keepMetrics))
      return e;
  const std::string stage = node.exec->getString("stage").getValueOr("").str();
  const uint64_t chainBase = static_cast<uint64_t>(integer(*node.exec, "chain_tokens")) -
                             static_cast<uint64_t>(first) * perStep; // chain tokens at stage token 0
  const uint64_t every = static_cast<uint64_t>(integer(*node.exec, "checkpoint_every"));
  const uint64_t keep = static_cast<uint64_t>(integer(*node.exec, "checkpoint_keep", 2));
  const Object *during = node.exec->getObject("eval_during");

  Progress progress(ctx.progress, node.name, first, last);
  data::Sample scratch;
  auto read = [&](uint64_t i, data::Sample &out) { (*samples)->read(i, out); };
  for (int64_t step = start; step <= last; ++step) {
    const uint64_t tokens = static_cast<uint64_t>(step) * perStep; // stage tokens at this step's start
    // In-loop evals due at this step: points in (tokens - perStep, tokens].
    if (during)
      for (const auto &kv : *during) {
        const Object *e = kv.second.getAsObject();
        const llvm::json::Array *points = e ? e->getArray("stage_tokens") : nullptr;
        if (!points)
          continue;
        bool due = llvm::any_of(*points, [&](const llvm::json::Value &p) {
          auto point = p.getAsInteger();
          return point && *point >= 0 && duringEvalStep(static_cast<uint64_t>(*point), perStep) == step;
        });
        if (!due)
          continue;
        Object base{{"node", node.name}, {"eval", kv.first.str()}, {"point", "during"}, {"stage", stage},
                    {"stage_tokens", static_cast<int64_t>(tokens)}, {"chain_tokens", static_cast<int64_t>(chainBase + tokens)}};
        if (llvm::Error err = evaluate(ctx, **m, *e->getArray("splits"), static_cast<uint64_t>(integer(*e, "max_tokens")),
                                       L, micro, withDocuments, std::move(base), log))
          return err;
      }
    if (step == last)
      break;
    std::vector<train::MicroBatch> batch;
    uint64_t firstSample = static_cast<uint64_t>(step - first) * B + share->offset;
    for (uint64_t k = 0; k < share->count; k += share->micro)
      batch.push_back(makeMicroBatch(read, firstSample + k, share->micro, L, withDocuments, scratch));
    llvm::Expected<train::StepResult> r = trainer.step(batch);
    if (!r)
      return error(llvm::formatv("stage step {0}: {1}; the last checkpoint is kept", step, llvm::toString(r.takeError()))
                       .str());
    const Object where{{"node", node.name}, {"stage", stage}, {"step", step + 1},
                       {"stage_tokens", static_cast<int64_t>(tokens + perStep)},
                       {"chain_tokens", static_cast<int64_t>(chainBase + tokens + perStep)}};
    if (r->skipped) {
      ++skips.total;
      Object record = where;
      record["type"] = "skip";
      record["nonfinite_loss"] = std::isnan(r->loss) ? "NaN" : r->loss > 0 ? "inf" : "-inf";
      record["skipped_steps"] = skips.total;
      log.write(record);
      if (++skips.consecutive >= kMaxConsecutiveSkips)
        return error(llvm::formatv("stage steps {0} to {1}: the loss was not finite {2} steps in a row (on_nonfinite = "
                                   "\"skip\" dropped them); stopping, the last checkpoint is kept",
                                   step + 2 - skips.consecutive, step + 1, skips.consecutive)
                         .str());
    } else {
      skips.consecutive = 0;
      Object lossByStream, lossTokensByStream;
      for (size_t k = 0; k < mixture->streams.size(); ++k)
        if (r->streamLossTokens[k] > 0) {
          lossByStream[mixture->streams[k]] = r->streamLossSums[k] / static_cast<double>(r->streamLossTokens[k]);
          lossTokensByStream[mixture->streams[k]] = r->streamLossTokens[k];
        }
      Object record = where;
      record["type"] = "train";
      record["loss"] = r->loss;
      record["lr"] = r->lr;
      record["grad_norm"] = r->gradNorm;
      record["loss_by_stream"] = std::move(lossByStream);
      record["loss_tokens_by_stream"] = std::move(lossTokensByStream);
      if (trainOptions.skipNonFinite)
        record["skipped_steps"] = skips.total;
      log.write(record);
    }
    progress.step(step + 1, *r, static_cast<uint64_t>(step + 1 - start) * perStep, skips.total);
    uint64_t after = tokens + perStep;
    if (every && after / every != tokens / every && step + 1 < last)
      if (llvm::Error e = saveWithWholeState(
              llvm::formatv("saving the checkpoint at step {0}", step + 1).str(),
              [&] { return saveCheckpoint(ctx, dir, step + 1, **m, optimizer, log.size(), skips, keep, share->micro); }))
        return e;
  }
  return saveWithWholeState("saving the trained model", [&]() -> llvm::Error {
    if (llvm::Error e = (*m)->saveWeights(joinPath(dir, "model.safetensors")))
      return e;
    return optimizer.saveState(joinPath(dir, "optimizer.safetensors"));
  });
}

/// Rank 0's `text`, on every rank.
static std::string broadcastText(ExecContext &ctx, std::string text) {
  const int64_t size = ctx.collectives->broadcastValue(static_cast<int64_t>(text.size()));
  at::Tensor bytes = at::zeros({size}, at::kByte);
  if (ctx.writesFiles)
    std::copy(text.begin(), text.end(), bytes.data_ptr<uint8_t>());
  bytes = bytes.to(c10::Device(ctx.collectives->deviceType()));
  ctx.collectives->broadcast(bytes, 0);
  bytes = bytes.cpu();
  return std::string(reinterpret_cast<const char *>(bytes.data_ptr<uint8_t>()), static_cast<size_t>(size));
}

llvm::Error mixtape::exec::serveDuringEvals(ExecContext &ctx, const ExecNode &node) {
  const Object &s = *node.settings;
  const Object *during = node.exec->getObject("eval_during");
  if (node.kind != "train" || !during || node.inputs.empty())
    return llvm::Error::success();
  // Rank 0's view of the run directory decides; every rank evaluates its share of it.
  llvm::json::Array served;
  std::vector<MissingDuringEval> missing;
  if (ctx.writesFiles)
    missing = missingDuringEvals(s, *node.exec, ctx.nodeDir(node), ctx.nodeDir(ctx.nodes[node.inputs.front()]));
  // By step: each retained model is loaded once.
  llvm::stable_sort(missing, [](const MissingDuringEval &a, const MissingDuringEval &b) { return a.step < b.step; });
  for (const MissingDuringEval &m : missing) {
      if (m.source == MissingDuringEval::Unavailable) {
        llvm::errs() << llvm::formatv("[{0}] warning: eval '{1}' at stage tokens {2} is not logged and {3}\n",
                                      node.name, m.eval, m.stageTokens, describeSource(m));
        continue;
      }
      if (ctx.progress)
        llvm::errs() << llvm::formatv("[{0}] eval '{1}' at stage tokens {2}, {3}\n", node.name, m.eval,
                                      m.stageTokens, describeSource(m));
      llvm::json::Array splits;
      for (const auto &[stream, which] : m.splits)
        splits.push_back(llvm::json::Array{stream, which});
      served.push_back(Object{{"eval", m.eval}, {"step", m.step}, {"weights", m.weights}, {"splits", std::move(splits)}});
    }
  std::string list = llvm::formatv("{0}", llvm::json::Value(std::move(served))).str();
  if (ctx.collectives->worldSize() > 1)
    list = broadcastText(ctx, std::move(list));
  llvm::Expected<llvm::json::Value> parsed = llvm::json::parse(list);
  if (!parsed)
    return parsed.takeError();
  const llvm::json::Array *points = parsed->getAsArray();
  if (!points || points->empty())
    return llvm::Error::success();

  const uint64_t B = static_cast<uint64_t>(integer(s, "batch_sequences")), L = static_cast<uint64_t>(integer(s, "seq_len"));
  const uint64_t micro = static_cast<uint64_t>(integer(*node.exec, "micro_batch", static_cast<int64_t>(B)));
  const int64_t first = (*s.getArray("steps"))[0].getAsInteger().getValueOr(0);
  const int64_t perStep = static_cast<int64_t>(B * L);
  const int64_t chainBase = integer(*node.exec, "chain_tokens") - first * perStep;
  const bool withDocuments = s.getString("attention") == llvm::StringRef("within_document");
  MetricsLog log;
  if (ctx.writesFiles)
    if (llvm::Error e = log.open(joinPath(ctx.nodeDir(node), "metrics.jsonl")))
      return e;
  std::string loaded;
  std::unique_ptr<model::Model> m;
  for (const llvm::json::Value &v : *points) {
    const Object &p = *v.getAsObject();
    llvm::StringRef weights = *p.getString("weights"), eval = *p.getString("eval");
    if (weights != loaded) {
      auto next = loadModel(ctx, weights, s.getNumber("rope_theta"));
      if (!next)
        return next.takeError();
      m = std::move(*next);
      m->to(ctx.device);
      loaded = weights.str();
    }
    const int64_t tokens = *p.getInteger("step") * perStep;
    Object base{{"node", node.name}, {"eval", eval}, {"point", "during"},
                {"stage", node.exec->getString("stage").getValueOr("")}, {"stage_tokens", tokens},
                {"chain_tokens", chainBase + tokens}, {"from_checkpoint", true}};
    const Object *e = during->getObject(eval);
    if (llvm::Error err = evaluate(ctx, *m, *p.getArray("splits"), static_cast<uint64_t>(integer(*e, "max_tokens")), L,
                                   micro, withDocuments, std::move(base), log))
      return err;
  }
  return llvm::Error::success();
}

llvm::Error mixtape::exec::runEval(ExecContext &ctx, const ExecNode &node) {
  const ExecNode &input = ctx.nodes[node.inputs.front()];
  // A merged model takes the config of its base, else of its first model (docs/language.md).
  const ExecNode *trained = &input;
  while (trained->kind == "merge")
    trained = &ctx.nodes[trained->inputs[static_cast<size_t>(integer(*trained->settings, "base_input"))]];
  auto m = loadInputModel(ctx, input, trained->settings->getNumber("rope_theta"));
  if (!m)
    return m.takeError();
  (*m)->to(ctx.device);
  // Evaluate at the sequence length the model was trained at last (the model's own for the
  // init).
  uint64_t seqLen = static_cast<uint64_t>(trained->settings->getInteger("seq_len").getValueOr(
      ctx.plan->getObject("model")->getInteger("max_positions").getValueOr(1024)));
  bool withDocuments = trained->settings->getString("attention") == llvm::StringRef("within_document");
  MetricsLog log;
  if (ctx.writesFiles)
    if (llvm::Error e = log.open(joinPath(ctx.nodeDir(node), "metrics.jsonl"), 0))
      return e;
  const llvm::json::Array *splits = node.settings->getArray("splits");
  if (!splits)
    return error("malformed plan: an eval node needs splits");
  llvm::StringRef evalName = llvm::StringRef(node.name).split('@').first;
  // Where in its stage the model ended (0 for the init and merges, which have no stage).
  int64_t stageTokens = 0;
  if (const llvm::json::Array *steps = input.settings->getArray("steps"); steps && steps->size() == 2)
    stageTokens = (*steps)[1].getAsInteger().getValueOr(0) * integer(*input.settings, "batch_sequences") *
                  integer(*input.settings, "seq_len");
  Object base{{"node", input.name}, {"eval", evalName}, {"point", "final"},
              {"stage", input.exec->getString("stage").getValueOr("")},
              {"stage_tokens", stageTokens}, {"chain_tokens", integer(*node.exec, "chain_tokens")}};
  if (!input.exec->getString("stage"))
    base["stage"] = nullptr;
  return evaluate(ctx, **m, *splits, static_cast<uint64_t>(integer(*node.settings, "max_tokens")), seqLen, 8,
                  withDocuments, std::move(base), log);
}

llvm::Error mixtape::exec::runMerge(ExecContext &ctx, const ExecNode &node) {
  const Object &s = *node.settings;
  llvm::StringRef methodName = s.getString("method").getValueOr("");
  std::optional<merge::Method> method = merge::methodFromName(methodName);
  if (!method)
    return error("malformed plan: unknown merge method '" + methodName + "'");
  merge::MergeOptions options;
  options.method = *method;
  if (const llvm::json::Array *weights = s.getArray("weights"))
    for (const llvm::json::Value &w : *weights)
      options.weights.push_back(w.getAsNumber().getValueOr(0));
  options.normalize = s.getBoolean("normalize").getValueOr(true);
  options.density = s.getNumber("density").getValueOr(1.0);
  options.t = s.getNumber("t").getValueOr(0.5);
  options.seed = static_cast<uint64_t>(integer(s, "seed"));
  // Every input node left a model.safetensors; base_input says which one is the base.
  llvm::Optional<int64_t> baseInput = s.getInteger("base_input");
  std::vector<std::string> models;
  std::optional<std::string> base;
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    std::string path = joinPath(ctx.nodeDir(ctx.nodes[node.inputs[i]]), "model.safetensors");
    if (baseInput && static_cast<size_t>(*baseInput) == i)
      base = path;
    else
      models.push_back(path);
  }
  if (baseInput && !base)
    return error("malformed plan: base_input is not one of the merge's inputs");
  return merge::mergeFiles(options, models, base, joinPath(ctx.nodeDir(node), "model.safetensors"));
}
