//===- Evaluate.cpp - eval nodes, and in-loop evals served later ----------===//
//
// An eval is the mean token loss of a model over one split of a stream (a fixed, seeded
// subset of at most max_tokens). With several ranks each evaluates every W-th micro-batch
// and the sums are reduced; rank 0 alone writes the records.
//
//===----------------------------------------------------------------------===//
#include "Batches.h"
#include "ExecContext.h"

#include "mixtape/dist/Collectives.h"
#include "mixtape/model/Model.h"
#include "mixtape/model/TorchCompat.h"
#include "mixtape/rundir/DuringEvals.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/JSON.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <ATen/core/grad_mode.h>

#include <cmath>

using namespace mixtape;
using namespace mixtape::exec;

/// Bytes of text each id of stream `name`'s tokenizer stands for: its decoded length; none
/// for the end-of-text and the knot, which no text holds.
static llvm::Expected<at::Tensor> bytesPerToken(const ExecContext &ctx, llvm::StringRef name) {
  const plan::Stream &root = ctx.Plan->Streams.at(ctx.Plan->Streams.at(name.str()).Root);
  auto tokenizer = data::createTokenizer(
      data::resolveTokenizerName(root.Tokenizer.value_or(ctx.Plan->Model.Tokenizer), ctx.Plan->RecipeDir));
  if (!tokenizer)
    return tokenizer.takeError();
  at::Tensor bytes = at::empty({static_cast<int64_t>((*tokenizer)->vocabSize())}, at::kDouble);
  double *b = bytes.data_ptr<double>();
  for (uint32_t id = 0; id < (*tokenizer)->vocabSize(); ++id)
    b[id] = id == (*tokenizer)->eot() || id == (*tokenizer)->knot() ? 0
                                                                    : static_cast<double>((*tokenizer)->decode({id}).size());
  return bytes;
}

namespace {
struct SplitLoss {
  double Loss = 0;         ///< mean per target token
  uint64_t Tokens = 0;     ///< target tokens
  double BitsPerByte = 0;  ///< the summed loss in bits over the targets' bytes
};
} // namespace

/// The loss of a model over one split.
static llvm::Expected<SplitLoss> evaluateSplit(ExecContext &ctx, const model::Model &m, const plan::EvalSplit &split,
                                               uint64_t seqLen, uint64_t maxTokens, uint64_t microBatch,
                                               bool withDocuments) {
  llvm::Expected<data::NodeStream> ns = ctx.stream(split.Stream, 0);
  if (!ns)
    return ns.takeError();
  llvm::Expected<at::Tensor> tokenBytes = bytesPerToken(ctx, split.Stream);
  if (!tokenBytes)
    return tokenBytes.takeError();
  llvm::Expected<std::unique_ptr<data::ValSet>> set = data::ValSet::open(*ns, split.Split, seqLen, maxTokens, *ctx.Sources);
  if (!set)
    return set.takeError();
  at::NoGradGuard noGrad;
  const c10::Device device = m.device();
  at::Tensor lossSum = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(device));
  at::Tensor byteSum = at::zeros({}, at::kDouble);
  data::Sample scratch;
  auto read = [&](uint64_t i, data::Sample &out) { (*set)->sample(i, out); };
  const uint64_t ranks = static_cast<uint64_t>(ctx.Collectives->worldSize()),
                 rank = static_cast<uint64_t>(ctx.Collectives->rank());
  for (uint64_t first = rank * microBatch; first < (*set)->size(); first += ranks * microBatch) {
    uint64_t count = std::min<uint64_t>(microBatch, (*set)->size() - first);
    train::MicroBatch cpu = makeMicroBatch(read, first, count, seqLen, withDocuments, scratch);
    byteSum += (tokenBytes->index_select(0, cpu.Targets.flatten().clamp(0, tokenBytes->size(0) - 1)) *
                cpu.LossMask.flatten().to(at::kDouble))
                   .sum();
    train::MicroBatch mb = train::onDevice(cpu, device);
    at::Tensor losses; // [B, T]; the loss in chunks, as in training: never a whole batch's logits
    {
      compat::CudaAutocast autocast(m.parameters().front().Tensor); // as in training: bf16 on CUDA
      losses = model::chunkedTokenLosses(m.hiddenStates(mb.Inputs, mb.DocumentStarts), m.headWeight(), mb.Targets,
                                         mb.LossMask);
    }
    lossSum += losses.to(at::kDouble).sum();
  }
  at::Tensor total = at::cat({lossSum.reshape({1}).cpu(), byteSum.reshape({1})})
                         .to(c10::Device(ctx.Collectives->deviceType()));
  ctx.Collectives->allReduceSum(total);
  total = total.cpu();
  SplitLoss out;
  out.Tokens = (*set)->targetTokens();
  out.Loss = total[0].item<double>() / static_cast<double>(out.Tokens);
  out.BitsPerByte = total[0].item<double>() / std::log(2.0) / total[1].item<double>();
  return out;
}

llvm::Error mixtape::exec::evaluate(ExecContext &ctx, const model::Model &m, const std::vector<plan::EvalSplit> &splits,
                                    uint64_t maxTokens, uint64_t seqLen, uint64_t microBatch, bool withDocuments,
                                    const rundir::EvalRecord &base, rundir::MetricsLog &log) {
  for (const plan::EvalSplit &split : splits) {
    auto result = evaluateSplit(ctx, m, split, seqLen, maxTokens, microBatch, withDocuments);
    if (!result)
      return result.takeError();
    rundir::EvalRecord record = base;
    record.Stream = split.Stream;
    record.Split = split.Split;
    record.Loss = result->Loss;
    record.Ppl = std::exp(result->Loss);
    record.Tokens = result->Tokens;
    record.BitsPerByte = result->BitsPerByte;
    if (llvm::Error e = log.write(record))
      return e;
  }
  return llvm::Error::success();
}

rundir::TaskRecord mixtape::exec::taskRecordAt(const rundir::EvalRecord &point) {
  rundir::TaskRecord r;
  r.Node = point.Node;
  r.Eval = point.Eval;
  r.Final = point.Final;
  r.Stage = point.Stage;
  r.StageTokens = point.StageTokens;
  r.ChainTokens = point.ChainTokens;
  r.FromCheckpoint = point.FromCheckpoint;
  return r;
}

llvm::Error mixtape::exec::runEval(ExecContext &ctx, const plan::Node &node, const plan::EvalNode &eval) {
  const plan::Node &input = ctx.input(node);
  // A merged model takes the settings of its base, else of its first model (docs/language.md).
  const plan::Node *trainedBy = &input;
  while (const plan::MergeNode *m = trainedBy->merge())
    trainedBy = &ctx.input(*trainedBy, m->Settings.BaseInput.value_or(0));
  const plan::TrainNode *trained = trainedBy->train();
  auto m = ctx.loadModel(input, ctx.inputWeights(node),
                         trained ? std::optional<double>(trained->Settings.RopeTheta) : std::nullopt);
  if (!m)
    return m.takeError();
  (*m)->to(ctx.Device);
  // At the sequence length the model was trained at last (the model's own for the init).
  const uint64_t seqLen = trained ? trained->Settings.SeqLen : ctx.Plan->Model.MaxPositions;
  const bool withDocuments = trained && trained->Settings.Attention == plan::AttentionMask::WithinDocument;
  rundir::MetricsLog log;
  if (ctx.WritesFiles)
    if (llvm::Error e = log.open(joinPath(ctx.nodeDir(node), "metrics.jsonl"), 0))
      return e;
  rundir::EvalRecord base;
  base.Node = input.Name + (node.Inputs.front().Average ? plan::kAverageSuffix.str() : "");
  base.Eval = llvm::StringRef(node.Name).split('@').first.str();
  base.Final = true;
  base.ChainTokens = eval.Exec.ChainTokens;
  // Where in its stage the model ended (the init and merges have no stage).
  if (const plan::TrainNode *t = input.train()) {
    base.Stage = t->Exec.Stage;
    base.StageTokens = t->Settings.Steps.End * plan::tokensPerStep(t->Settings);
  }
  if (llvm::Error e = evaluate(ctx, **m, eval.Settings.Splits, eval.Settings.MaxTokens, seqLen, 8, withDocuments, base, log))
    return e;
  if (!eval.Settings.Tasks)
    return llvm::Error::success();
  return scoreTasks(ctx, **m, *eval.Settings.Tasks, seqLen, 8, taskRecordAt(base), log, ctx.nodeDir(node));
}

/// Rank 0's `text`, on every rank.
static std::string broadcastText(ExecContext &ctx, std::string text) {
  const int64_t size = ctx.Collectives->broadcastValue(static_cast<int64_t>(text.size()));
  at::Tensor bytes = at::zeros({size}, at::kByte);
  if (ctx.WritesFiles)
    std::copy(text.begin(), text.end(), bytes.data_ptr<uint8_t>());
  bytes = bytes.to(c10::Device(ctx.Collectives->deviceType()));
  ctx.Collectives->broadcast(bytes, 0);
  bytes = bytes.cpu();
  return std::string(reinterpret_cast<const char *>(bytes.data_ptr<uint8_t>()), static_cast<size_t>(size));
}

/// The points rank 0 found to serve, as every rank evaluates them: (eval, step, weights,
/// splits) in order of step, so each retained model loads once.
struct Served {
  std::string Eval, Weights;
  uint64_t Step = 0;
  std::vector<plan::EvalSplit> Splits;
  std::vector<std::string> Tasks;
};

static llvm::json::Value toJSON(const Served &s) {
  llvm::json::Array splits;
  for (const plan::EvalSplit &split : s.Splits)
    splits.push_back(llvm::json::Array{split.Stream, plan::enumName(split.Split)});
  return llvm::json::Object{
      {"eval", s.Eval}, {"weights", s.Weights}, {"step", s.Step}, {"splits", std::move(splits)}, {"tasks", s.Tasks}};
}

static bool fromJSON(const llvm::json::Value &v, Served &s, llvm::json::Path path) {
  const llvm::json::Object *o = v.getAsObject();
  const llvm::json::Array *splits = o ? o->getArray("splits") : nullptr;
  const llvm::json::Array *tasks = o ? o->getArray("tasks") : nullptr;
  if (!o || !splits || !tasks || !o->getString("eval") || !o->getString("weights") || !o->getInteger("step"))
    return path.report("a served eval point"), false;
  for (const llvm::json::Value &task : *tasks) {
    if (!task.getAsString())
      return path.report("a task name"), false;
    s.Tasks.push_back(task.getAsString()->str());
  }
  s.Eval = o->getString("eval")->str();
  s.Weights = o->getString("weights")->str();
  s.Step = static_cast<uint64_t>(*o->getInteger("step"));
  for (const llvm::json::Value &pair : *splits) {
    const llvm::json::Array *a = pair.getAsArray();
    std::optional<plan::SplitKind> kind = a && a->size() == 2 && (*a)[1].getAsString()
                                              ? plan::enumFromName<plan::SplitKind>(*(*a)[1].getAsString())
                                              : std::nullopt;
    if (!kind || !(*a)[0].getAsString())
      return path.report("a [stream, split] pair"), false;
    s.Splits.push_back({(*a)[0].getAsString()->str(), *kind});
  }
  return true;
}

llvm::Error mixtape::exec::serveDuringEvals(ExecContext &ctx, const plan::Node &node, const plan::TrainNode &train) {
  if (train.Exec.EvalDuring.empty())
    return llvm::Error::success();
  // Rank 0's view of the run directory decides; every rank evaluates its share of it.
  std::vector<Served> served;
  if (ctx.WritesFiles) {
    llvm::Expected<std::vector<rundir::MissingDuringEval>> missing =
        rundir::missingDuringEvals(train, ctx.nodeDir(node), ctx.nodeDir(ctx.input(node)),
                                   rundir::CheckpointStore::Check::Contents);
    if (!missing)
      return missing.takeError();
    llvm::stable_sort(*missing, [](const auto &a, const auto &b) { return a.Step < b.Step; });
    for (const rundir::MissingDuringEval &m : *missing) {
      if (m.From == rundir::MissingDuringEval::Unavailable) {
        llvm::errs() << llvm::formatv("[{0}] warning: eval '{1}' at stage tokens {2} is not logged and {3}\n",
                                      node.Name, m.Eval, m.StageTokens, rundir::describeSource(m));
        continue;
      }
      if (ctx.Progress)
        llvm::errs() << llvm::formatv("[{0}] eval '{1}' at stage tokens {2}, {3}\n", node.Name, m.Eval,
                                      m.StageTokens, rundir::describeSource(m));
      served.push_back({m.Eval, m.Weights, m.Step, m.Splits, m.Tasks});
    }
  }
  if (ctx.Collectives->worldSize() > 1) {
    llvm::json::Array list;
    for (const Served &s : served)
      list.push_back(toJSON(s));
    std::string text = broadcastText(ctx, llvm::formatv("{0}", llvm::json::Value(std::move(list))).str());
    served.clear();
    llvm::Expected<llvm::json::Value> json = parseJSON(text, "served evals");
    if (!json)
      return json.takeError();
    llvm::json::Path::Root root("served evals");
    if (!llvm::json::fromJSON(*json, served, root))
      return root.getError();
  }
  if (served.empty())
    return llvm::Error::success();

  const plan::TrainSettings &s = train.Settings;
  const uint64_t perStep = plan::tokensPerStep(s);
  const uint64_t chainBase = train.Exec.ChainTokens - s.Steps.Begin * perStep;
  const bool withDocuments = s.Attention == plan::AttentionMask::WithinDocument;
  rundir::MetricsLog log;
  if (ctx.WritesFiles)
    if (llvm::Error e = log.open(joinPath(ctx.nodeDir(node), "metrics.jsonl")))
      return e;
  std::string loaded;
  std::unique_ptr<model::Model> m;
  for (const Served &point : served) {
    if (point.Weights != loaded) {
      auto next = ctx.loadModel(node, point.Weights, s.RopeTheta);
      if (!next)
        return next.takeError();
      m = std::move(*next);
      m->to(ctx.Device);
      loaded = point.Weights;
    }
    rundir::EvalRecord base;
    base.Node = node.Name;
    base.Eval = point.Eval;
    base.Stage = train.Exec.Stage;
    base.StageTokens = point.Step * perStep;
    base.ChainTokens = chainBase + base.StageTokens;
    base.FromCheckpoint = true;
    const plan::DuringEval &during = train.Exec.EvalDuring.at(point.Eval);
    if (llvm::Error err = evaluate(ctx, *m, point.Splits, during.MaxTokens, s.SeqLen, train.Exec.MicroBatch,
                                   withDocuments, base, log))
      return err;
    if (point.Tasks.empty())
      continue;
    plan::TaskTable tasks;
    for (const std::string &name : point.Tasks)
      tasks[name] = during.Tasks->at(name);
    if (llvm::Error err =
            scoreTasks(ctx, *m, tasks, s.SeqLen, train.Exec.MicroBatch, taskRecordAt(base), log, ctx.nodeDir(node)))
      return err;
  }
  return llvm::Error::success();
}
