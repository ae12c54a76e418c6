//===- Tasks.cpp - downstream tasks: log-likelihood choices, greedy generation -===//
//
// lm-eval-harness's two request kinds (docs/tasks.md). A choice scores its continuation's
// token log-probabilities given the context (Scoring.h: the choices of an item share one
// row, and the numbers are the same for any world size). A generate item is greedy decoding
// until a stop string, the end-of-text token or max_new_tokens, items batched. Rank 0 writes
// one record per task and the per-item file that audits it.
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

/// A packed row holds at most this many times the longest request's tokens: its attention
/// costs about what its members' would apart.
constexpr size_t kPackedRowFactor = 2;

namespace {

/// Requests scored in one row of a batch: the input prefix they share once, then the rest of
/// each, which reads the prefix and itself (Model::forwardAt).
struct PackedRow {
  std::vector<size_t> Members;
  size_t Prefix = 0, Longest = 0, SumOfLengths = 0;
  size_t length() const { return Prefix + SumOfLengths - Members.size() * Prefix; }
};

/// One batch's tensors, laid out on the CPU.
struct PackedBatch {
  at::Tensor Tokens, Positions;
  at::Tensor Allowed;           ///< undefined when no row holds several requests
  at::Tensor Rows;              ///< each scored position, flat
  std::vector<int64_t> Targets; ///< the token each scored position predicts
};

} // namespace

static size_t commonPrefix(llvm::ArrayRef<uint32_t> a, llvm::ArrayRef<uint32_t> b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n])
    ++n;
  return n;
}

/// Consecutive requests (an item's choices) go in one row while they share at least half of
/// every member's input and the row stays within `maxLength` tokens.
static std::vector<PackedRow> packRows(llvm::ArrayRef<ScoringRequest> requests, size_t maxLength) {
  std::vector<PackedRow> rows;
  for (size_t i = 0; i < requests.size(); ++i) {
    const std::vector<uint32_t> &input = requests[i].Input;
    if (!rows.empty()) {
      PackedRow grown = rows.back();
      grown.Prefix = std::min(grown.Prefix, commonPrefix(requests[grown.Members.front()].Input, input));
      grown.Longest = std::max(grown.Longest, input.size());
      grown.SumOfLengths += input.size();
      grown.Members.push_back(i);
      if (2 * grown.Prefix >= grown.Longest && grown.length() <= maxLength) {
        rows.back() = std::move(grown);
        continue;
      }
    }
    rows.push_back({{i}, input.size(), input.size(), input.size()});
  }
  return rows;
}

static PackedBatch layOut(llvm::ArrayRef<ScoringRequest> requests, llvm::ArrayRef<PackedRow> rows) {
  const int64_t R = static_cast<int64_t>(rows.size()), T = static_cast<int64_t>(rows.front().length());
  // Rows of one request each are plain causal sequences: no mask to build, nor to apply.
  const bool shared = llvm::any_of(rows, [](const PackedRow &row) { return row.Members.size() > 1; });
  PackedBatch b{at::zeros({R, T}, at::kLong), at::zeros({R, T}, at::kLong),
                shared ? at::zeros({R, T, T}, at::kBool) : at::Tensor(), {}, {}};
  int64_t *tokens = b.Tokens.data_ptr<int64_t>(), *positions = b.Positions.data_ptr<int64_t>();
  bool *allowed = shared ? b.Allowed.data_ptr<bool>() : nullptr;
  std::vector<int64_t> scored;
  for (int64_t r = 0; r < R; ++r) {
    const PackedRow &row = rows[static_cast<size_t>(r)];
    const int64_t prefix = static_cast<int64_t>(row.Prefix);
    int64_t *rowTokens = tokens + r * T, *rowPositions = positions + r * T;
    // Query `at` reads keys [from, from + count).
    auto allow = [&](int64_t at, int64_t from, int64_t count) {
      if (allowed)
        std::fill_n(allowed + (r * T + at) * T + from, count, true);
    };
    int64_t at = 0;
    for (; at < prefix; ++at) {
      rowTokens[at] = requests[row.Members.front()].Input[static_cast<size_t>(at)];
      rowPositions[at] = at;
      allow(at, 0, at + 1);
    }
    for (size_t member : row.Members) {
      const ScoringRequest &q = requests[member];
      const int64_t start = at, end = static_cast<int64_t>(q.Input.size());
      for (int64_t i = prefix; i < end; ++i, ++at) {
        rowTokens[at] = q.Input[static_cast<size_t>(i)];
        rowPositions[at] = i;
        allow(at, 0, prefix);
        allow(at, start, at - start + 1);
      }
      // Input position i predicts continuation token j = i - (end - n).
      const int64_t n = static_cast<int64_t>(q.Continuation.size());
      for (int64_t j = 0; j < n; ++j) {
        const int64_t i = end - n + j;
        scored.push_back(r * T + (i < prefix ? i : start + i - prefix));
        b.Targets.push_back(q.Continuation[static_cast<size_t>(j)]);
      }
    }
    for (; at < T; ++at) // padding reads itself only
      allow(at, at, 1);
  }
  b.Rows = at::tensor(scored, at::kLong);
  return b;
}

std::vector<double> mixtape::exec::continuationLogLikelihoods(const model::Model &m,
                                                              llvm::ArrayRef<ScoringRequest> requests,
                                                              dist::Collectives &collectives, uint64_t batchSize) {
  const size_t ranks = static_cast<size_t>(collectives.worldSize()), rank = static_cast<size_t>(collectives.rank());
  std::vector<double> logliks(requests.size(), 0.0);
  size_t longest = 0;
  for (const ScoringRequest &q : requests)
    longest = std::max(longest, q.Input.size());
  std::vector<PackedRow> rows = packRows(requests, kPackedRowFactor * longest);
  llvm::stable_sort(rows, [](const PackedRow &a, const PackedRow &b) { return a.length() > b.length(); });
  at::NoGradGuard noGrad;
  const size_t budget = batchSize * longest; // the tokens of a batch of the longest requests
  for (size_t first = 0, batch = 0; first < rows.size(); ++batch) {
    const size_t width = rows[first].length();
    const size_t count = std::min(rows.size() - first, std::max<size_t>(1, budget / width));
    llvm::ArrayRef<PackedRow> batchRows = llvm::makeArrayRef(rows).slice(first, count);
    first += count;
    if (batch % ranks != rank)
      continue;
    PackedBatch b = layOut(requests, batchRows);
    at::Tensor logits;
    {
      compat::CudaAutocast autocast(m.parameters().front().Tensor);
      const c10::Device device = m.device();
      logits = m.forwardAt(b.Tokens.to(device), b.Positions.to(device),
                           b.Allowed.defined() ? b.Allowed.to(device) : b.Allowed, b.Rows.to(device));
    }
    const int64_t picked = static_cast<int64_t>(b.Targets.size());
    at::Tensor terms = at::log_softmax(logits.to(at::kFloat).cpu(), -1)
                           .gather(1, at::from_blob(b.Targets.data(), {picked, 1}, at::kLong))
                           .reshape({picked})
                           .to(at::kDouble);
    const double *term = terms.data_ptr<double>();
    for (const PackedRow &row : batchRows)
      for (size_t member : row.Members) {
        double sum = 0;
        for (size_t j = 0; j < requests[member].Continuation.size(); ++j)
          sum += *term++;
        logliks[member] = sum;
      }
  }
  at::Tensor reduced = at::from_blob(logliks.data(), {static_cast<int64_t>(logliks.size())}, at::kDouble)
                           .to(c10::Device(collectives.deviceType()), /*non_blocking=*/false, /*copy=*/true);
  collectives.allReduceSum(reduced);
  reduced = reduced.cpu();
  return std::vector<double>(reduced.data_ptr<double>(), reduced.data_ptr<double>() + reduced.numel());
}

/// Each generate item's output text (cut at its stop), on every rank. Items decode greedily
/// in batches of `batchSize` (batch k on rank k mod W, so each output comes from the same
/// batch whatever the world size); a step is one forward of the batch's unfinished items with
/// logits at each one's last position only.
static std::vector<std::string> generate(ExecContext &ctx, const model::Model &m, const plan::Task &task,
                                         const PreparedTask &p, uint64_t seqLen, uint64_t batchSize) {
  const size_t ranks = static_cast<size_t>(ctx.Collectives->worldSize()),
               rank = static_cast<size_t>(ctx.Collectives->rank());
  const size_t items = p.Contexts.size(), width = task.MaxNewTokens + 1;
  // Row i: the count of generated tokens, then the tokens (exact in double below 2^53).
  at::Tensor generated = at::zeros({static_cast<int64_t>(items), static_cast<int64_t>(width)}, at::kDouble);
  const c10::Device device = m.device();
  for (size_t first = 0, batch = 0; first < items; first += batchSize, ++batch) {
    if (batch % ranks != rank)
      continue;
    std::vector<size_t> active;
    for (size_t i = first; i < std::min<size_t>(items, first + batchSize); ++i)
      active.push_back(i);
    std::vector<std::vector<uint32_t>> tokens(p.Contexts.begin() + static_cast<ptrdiff_t>(first),
                                              p.Contexts.begin() + static_cast<ptrdiff_t>(first + active.size()));
    std::vector<std::vector<uint32_t>> outs(active.size());
    for (uint64_t step = 0; step < task.MaxNewTokens && !active.empty(); ++step) {
      // Each item's last seqLen tokens, padded after them: causal attention never reads it.
      const int64_t R = static_cast<int64_t>(active.size());
      int64_t T = 0;
      for (size_t i : active)
        T = std::max<int64_t>(T, static_cast<int64_t>(std::min<size_t>(tokens[i - first].size(), seqLen)));
      at::Tensor input = at::zeros({R, T}, at::kLong);
      std::vector<int64_t> last;
      for (int64_t r = 0; r < R; ++r) {
        const std::vector<uint32_t> &t = tokens[active[static_cast<size_t>(r)] - first];
        const size_t window = std::min<size_t>(t.size(), seqLen);
        std::copy(t.end() - static_cast<ptrdiff_t>(window), t.end(), input.data_ptr<int64_t>() + r * T);
        last.push_back(r * T + static_cast<int64_t>(window) - 1);
      }
      at::Tensor next;
      {
        compat::CudaAutocast autocast(m.parameters().front().Tensor);
        at::TensorOptions longs = at::TensorOptions(device).dtype(at::kLong);
        next = m.forwardAt(input.to(device), at::arange(T, longs).expand({R, T}), /*allowed=*/{},
                           at::tensor(last, at::kLong).to(device))
                   .argmax(-1)
                   .cpu();
      }
      std::vector<size_t> unfinished;
      for (int64_t r = 0; r < R; ++r) {
        const size_t i = active[static_cast<size_t>(r)];
        const uint32_t token = static_cast<uint32_t>(next[r].item<int64_t>());
        if (token == ctx.Tokenizer->eot())
          continue;
        outs[i - first].push_back(token);
        tokens[i - first].push_back(token);
        const std::string text = ctx.Tokenizer->decode(outs[i - first]);
        if (llvm::none_of(task.Until, [&](const std::string &stop) { return llvm::StringRef(text).contains(stop); }))
          unfinished.push_back(i);
      }
      active = std::move(unfinished);
    }
    for (size_t i = first; i < first + outs.size(); ++i) {
      const std::vector<uint32_t> &out = outs[i - first];
      generated[static_cast<int64_t>(i)][0] = static_cast<double>(out.size());
      for (size_t t = 0; t < out.size(); ++t)
        generated[static_cast<int64_t>(i)][static_cast<int64_t>(t + 1)] = static_cast<double>(out[t]);
    }
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
      std::vector<std::string> outputs = generate(ctx, m, task, p, seqLen, microBatch);
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
