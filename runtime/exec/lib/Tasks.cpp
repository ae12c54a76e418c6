//===- Tasks.cpp - downstream tasks: log-likelihood choices, greedy generation -===//
//
// lm-eval-harness's two request kinds (docs/tasks.md). A choice item is one forward pass per
// choice over (context, continuation), summing the continuation's token log-probabilities
// (Scoring.h: the same numbers for any world size). A generate item is greedy decoding until a stop string, the end-of-
// text token or max_new_tokens; item i goes to rank i mod W. Rank 0 writes one record per
// task and the per-item file that audits it.
//
//===----------------------------------------------------------------------===//
#include "ExecContext.h"

#include "mixtape/exec/Scoring.h"

#include "mixtape/data/Tasks.h"
#include "mixtape/dist/Collectives.h"
#include "mixtape/model/Model.h"
#include "mixtape/model/TorchCompat.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <ATen/core/grad_mode.h>

#include <numeric>

using namespace mixtape;
using namespace mixtape::exec;

/// A task's items and prompts, tokenized once per run for a sequence length.
struct mixtape::exec::PreparedTask {
  data::TaskFiles Files;
  std::vector<ScoringRequest> Requests; ///< choice tasks: each item's choices in order
  std::vector<std::pair<size_t, size_t>> RequestOf; ///< (item, choice) of each request
  std::vector<std::vector<uint32_t>> Contexts; ///< generate tasks, per item, cut to fit
};

static llvm::Expected<const PreparedTask *> prepare(ExecContext &ctx, const std::string &name, const plan::Task &task,
                                                   uint64_t seqLen) {
  const std::string key = llvm::formatv("{0}\n{1}\n{2}", name, task.Fingerprint.value_or(""), seqLen).str();
  if (auto it = ctx.Tasks.find(key); it != ctx.Tasks.end())
    return it->second.get();
  const std::string file = plan::resolvePath(ctx.Plan->RecipeDir, task.Path);
  // The plan's hash covers the files' content: scoring other content under it would cache
  // numbers the hash does not describe.
  llvm::Expected<std::string> fingerprint = data::taskFingerprint(task, ctx.Plan->RecipeDir);
  if (!fingerprint)
    return fingerprint.takeError();
  if (!task.Fingerprint)
    return fileError(file, "task '" + name + "' had no file when the plan was made: plan again");
  if (*fingerprint != *task.Fingerprint)
    return fileError(file, "task '" + name + "' changed since the plan was made: plan again");
  if (!ctx.Tokenizer) {
    llvm::Expected<std::unique_ptr<data::Tokenizer>> tokenizer = data::modelTokenizer(*ctx.Plan);
    if (!tokenizer)
      return tokenizer.takeError();
    ctx.Tokenizer = std::move(*tokenizer);
  }
  auto p = std::make_unique<PreparedTask>();
  llvm::Expected<data::TaskFiles> files = data::readTaskFiles(task, ctx.Plan->RecipeDir);
  if (!files)
    return files.takeError();
  p->Files = std::move(*files);
  for (size_t i = 0; i < p->Files.Items.size(); ++i) {
    const std::string context = data::taskContext(task, p->Files, i);
    if (task.Kind == plan::TaskKind::Generate) {
      std::vector<uint32_t> tokens = ctx.Tokenizer->encode(context);
      if (tokens.empty())
        tokens.push_back(ctx.Tokenizer->eot());
      // lm-eval keeps the last max_length - max_gen_toks context tokens (at least one here).
      const size_t keep = std::max<int64_t>(1, static_cast<int64_t>(seqLen) - static_cast<int64_t>(task.MaxNewTokens));
      if (tokens.size() > keep)
        tokens.erase(tokens.begin(), tokens.end() - static_cast<ptrdiff_t>(keep));
      p->Contexts.push_back(std::move(tokens));
      continue;
    }
    const std::vector<std::string> &choices = p->Files.Items[i].Choices;
    for (size_t c = 0; c < choices.size(); ++c) {
      data::ScoredPair pair = data::encodePair(*ctx.Tokenizer, context, task.TargetDelimiter + choices[c]);
      if (pair.Continuation.empty())
        return fileError(file + ":" + llvm::Twine(p->Files.Items[i].Line + 1),
                         llvm::formatv("choice {0} encodes to no tokens", c));
      ScoringRequest r{data::scoringInput(pair, seqLen), pair.Continuation};
      // A continuation longer than the window is scored on its last seqLen tokens.
      if (r.Continuation.size() > r.Input.size())
        r.Continuation.erase(r.Continuation.begin(),
                             r.Continuation.end() - static_cast<ptrdiff_t>(r.Input.size()));
      p->Requests.push_back(std::move(r));
      p->RequestOf.emplace_back(i, c);
    }
  }
  const PreparedTask *raw = p.get();
  ctx.Tasks[key] = std::move(p);
  return raw;
}

static at::Tensor tokensTensor(llvm::ArrayRef<std::vector<uint32_t>> rows, size_t length) {
  at::Tensor t = at::zeros({static_cast<int64_t>(rows.size()), static_cast<int64_t>(length)}, at::kLong);
  int64_t *data = t.data_ptr<int64_t>();
  for (size_t r = 0; r < rows.size(); ++r)
    std::copy(rows[r].begin(), rows[r].end(), data + r * length);
  return t;
}

std::vector<double> mixtape::exec::continuationLogLikelihoods(const model::Model &m,
                                                              llvm::ArrayRef<ScoringRequest> requests,
                                                              dist::Collectives &collectives, uint64_t batchSize) {
  const size_t ranks = static_cast<size_t>(collectives.worldSize()), rank = static_cast<size_t>(collectives.rank());
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  llvm::stable_sort(order, [&](size_t a, size_t b) { return requests[a].Input.size() > requests[b].Input.size(); });
  at::NoGradGuard noGrad;
  std::vector<double> logliks(requests.size(), 0.0);
  for (size_t first = 0, batch = 0; first < order.size(); first += batchSize, ++batch) {
    if (batch % ranks != rank)
      continue;
    const size_t count = std::min<size_t>(batchSize, order.size() - first);
    std::vector<std::vector<uint32_t>> rows;
    for (size_t r = first; r < first + count; ++r)
      rows.push_back(requests[order[r]].Input);
    at::Tensor logits;
    {
      compat::CudaAutocast autocast(m.parameters().front().Tensor);
      logits = m.forward(tokensTensor(rows, rows.front().size()).to(m.device()));
    }
    logits = logits.to(at::kFloat).cpu();
    // The batch's continuation positions as rows of one [N, vocab] matrix: one log_softmax
    // and one gather for the batch, not a handful of small ops per request.
    const int64_t width = logits.size(1), vocab = logits.size(2);
    std::vector<int64_t> positions, targets;
    for (size_t r = 0; r < count; ++r) {
      const ScoringRequest &q = requests[order[first + r]];
      const int64_t n = static_cast<int64_t>(q.Continuation.size()), end = static_cast<int64_t>(q.Input.size());
      for (int64_t j = 0; j < n; ++j) {
        positions.push_back(static_cast<int64_t>(r) * width + end - n + j);
        targets.push_back(q.Continuation[static_cast<size_t>(j)]);
      }
    }
    const int64_t picked = static_cast<int64_t>(positions.size());
    at::Tensor logProbs = at::log_softmax(
        logits.reshape({-1, vocab}).index_select(0, at::from_blob(positions.data(), {picked}, at::kLong)), -1);
    at::Tensor terms =
        logProbs.gather(1, at::from_blob(targets.data(), {picked, 1}, at::kLong)).reshape({picked}).to(at::kDouble);
    const double *term = terms.data_ptr<double>();
    for (size_t r = 0; r < count; ++r) {
      double sum = 0;
      for (size_t j = 0; j < requests[order[first + r]].Continuation.size(); ++j)
        sum += *term++;
      logliks[order[first + r]] = sum;
    }
  }
  at::Tensor reduced = at::from_blob(logliks.data(), {static_cast<int64_t>(logliks.size())}, at::kDouble)
                           .to(c10::Device(collectives.deviceType()), /*non_blocking=*/false, /*copy=*/true);
  collectives.allReduceSum(reduced);
  reduced = reduced.cpu();
  return std::vector<double>(reduced.data_ptr<double>(), reduced.data_ptr<double>() + reduced.numel());
}

/// Each generate item's output text (cut at its stop), on every rank.
static std::vector<std::string> generate(ExecContext &ctx, const model::Model &m, const plan::Task &task,
                                         const PreparedTask &p, uint64_t seqLen) {
  const size_t ranks = static_cast<size_t>(ctx.Collectives->worldSize()),
               rank = static_cast<size_t>(ctx.Collectives->rank());
  const size_t items = p.Contexts.size(), width = task.MaxNewTokens + 1;
  // Row i: the count of generated tokens, then the tokens (exact in double below 2^53).
  at::Tensor generated = at::zeros({static_cast<int64_t>(items), static_cast<int64_t>(width)}, at::kDouble);
  for (size_t i = rank; i < items; i += ranks) {
    std::vector<uint32_t> tokens = p.Contexts[i], out;
    for (uint64_t step = 0; step < task.MaxNewTokens; ++step) {
      const size_t window = std::min<size_t>(tokens.size(), seqLen);
      std::vector<uint32_t> input(tokens.end() - static_cast<ptrdiff_t>(window), tokens.end());
      at::Tensor logits;
      {
        compat::CudaAutocast autocast(m.parameters().front().Tensor);
        logits = m.forward(tokensTensor({input}, input.size()).to(m.device()));
      }
      const uint32_t next = static_cast<uint32_t>(logits[0][static_cast<int64_t>(window) - 1].argmax().item<int64_t>());
      if (next == ctx.Tokenizer->eot())
        break;
      out.push_back(next);
      tokens.push_back(next);
      const std::string text = ctx.Tokenizer->decode(out);
      if (llvm::any_of(task.Until, [&](const std::string &stop) { return llvm::StringRef(text).contains(stop); }))
        break;
    }
    generated[static_cast<int64_t>(i)][0] = static_cast<double>(out.size());
    for (size_t t = 0; t < out.size(); ++t)
      generated[static_cast<int64_t>(i)][static_cast<int64_t>(t + 1)] = static_cast<double>(out[t]);
  }
  at::Tensor reduced = generated.to(c10::Device(ctx.Collectives->deviceType()));
  ctx.Collectives->allReduceSum(reduced);
  reduced = reduced.cpu();
  std::vector<std::string> outputs;
  for (size_t i = 0; i < items; ++i) {
    const double *row = reduced.data_ptr<double>() + i * width;
    std::vector<uint32_t> out;
    for (size_t t = 0; t < static_cast<size_t>(row[0]); ++t)
      out.push_back(static_cast<uint32_t>(row[t + 1]));
    outputs.push_back(data::cutAtStop(ctx.Tokenizer->decode(out), task.Until));
  }
  return outputs;
}

llvm::Error mixtape::exec::scoreTasks(ExecContext &ctx, const model::Model &m, const plan::TaskTable &tasks,
                                      uint64_t seqLen, uint64_t microBatch, const rundir::TaskRecord &base,
                                      rundir::MetricsLog &log, llvm::StringRef itemsDir) {
  at::NoGradGuard noGrad;
  for (const auto &[name, task] : tasks) {
    llvm::Expected<const PreparedTask *> prepared = prepare(ctx, name, task, seqLen);
    if (!prepared)
      return prepared.takeError();
    const PreparedTask &p = **prepared;
    const std::vector<data::TaskItem> &items = p.Files.Items;
    rundir::TaskRecord record = base;
    record.Task = name;
    record.Kind = task.Kind;
    record.Items = items.size();
    std::string lines;
    llvm::raw_string_ostream os(lines);
    std::map<std::string, std::vector<double>> perItem;
    if (task.Kind == plan::TaskKind::Choice) {
      std::vector<double> scores = continuationLogLikelihoods(m, p.Requests, *ctx.Collectives, microBatch);
      std::vector<std::vector<double>> logliks(items.size());
      for (size_t r = 0; r < p.Requests.size(); ++r) {
        auto [item, choice] = p.RequestOf[r];
        logliks[item].resize(std::max(logliks[item].size(), choice + 1));
        logliks[item][choice] = scores[r];
      }
      for (size_t i = 0; i < items.size(); ++i) {
        data::ChoiceOutcome o = data::chooseAnswer(logliks[i], items[i].Choices);
        perItem["acc"].push_back(o.Best == items[i].Gold);
        perItem["acc_norm"].push_back(o.BestNorm == items[i].Gold);
        os << llvm::json::Value(llvm::json::Object{{"index", items[i].Line},
                                                   {"loglik", llvm::json::Array(logliks[i])},
                                                   {"gold", items[i].Gold}})
           << "\n";
      }
    } else {
      std::vector<std::string> outputs = generate(ctx, m, task, p, seqLen);
      for (size_t i = 0; i < items.size(); ++i) {
        data::GenerateOutcome o = data::judgeGenerated(outputs[i], items[i].Answer);
        perItem["exact_match"].push_back(o.ExactMatch);
        perItem["contains"].push_back(o.Contains);
        os << llvm::json::Value(llvm::json::Object{{"index", items[i].Line},
                                                   {"output", outputs[i]},
                                                   {"answer", items[i].Answer},
                                                   {"exact_match", o.ExactMatch ? 1 : 0},
                                                   {"contains", o.Contains ? 1 : 0}})
           << "\n";
      }
    }
    for (const auto &[metric, values] : perItem) {
      data::MeanStderr s = data::meanStderr(values);
      record.Scores[metric] = s.Mean;
      record.Scores[metric + "_stderr"] = s.Stderr;
    }
    if (!ctx.WritesFiles)
      continue;
    // In-loop points keep one file per point: "<task>@<chain tokens>.items.jsonl".
    const std::string file =
        base.Final ? name + ".items.jsonl" : llvm::formatv("{0}@{1}.items.jsonl", name, base.ChainTokens).str();
    if (llvm::Error e = writeFileDurably(joinPath(itemsDir, file), os.str()))
      return e;
    if (llvm::Error e = log.write(record))
      return e;
  }
  return llvm::Error::success();
}
