//===- ScoringTest.cpp - continuation log-likelihoods against transformers -===//
//
// continuationLogLikelihoods on the tiny Hugging Face models of tests/fixtures, against a
// reference computed here in double from the logits transformers wrote (expected.json):
// the log-probability of token t is logits[t-1][ids[t]] - logsumexp(logits[t-1]), and a
// continuation's score is their sum. A causal model's logits at a position depend only on
// the tokens up to it, so every prefix of the fixture's 16 ids is scored against the same
// rows. Requests of several lengths make batches that pad; batch sizes 1 and 3 and a
// two-rank Gloo world must give the same numbers.
//
//===----------------------------------------------------------------------===//
#include "Fixtures.h"
#include "TwoRanks.h"

#include "mixtape/dist/Collectives.h"
#include "mixtape/exec/Scoring.h"
#include "mixtape/model/Model.h"
#include "mixtape/support/JSON.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

using namespace mixtape;

namespace {

struct Reference {
  std::vector<uint32_t> Ids;              // the fixture's 16 input ids
  std::vector<std::vector<double>> Logits; // [16][256], transformers' float32 rounded to 6 decimals
};

Reference readReference(const std::string &path) {
  Reference r;
  auto buffer = llvm::MemoryBuffer::getFile(path);
  EXPECT_TRUE(bool(buffer)) << path;
  if (!buffer)
    return r;
  llvm::Expected<llvm::json::Value> root = parseJSON((*buffer)->getBuffer(), path);
  EXPECT_TRUE(bool(root)) << llvm::toString(root.takeError());
  if (!root)
    return r;
  const llvm::json::Object &o = *root->getAsObject();
  for (const llvm::json::Value &v : *o.getArray("input_ids"))
    r.Ids.push_back(static_cast<uint32_t>(*v.getAsInteger()));
  for (const llvm::json::Value &row : *o.getArray("logits")) {
    r.Logits.emplace_back();
    for (const llvm::json::Value &v : *row.getAsArray())
      r.Logits.back().push_back(*v.getAsNumber());
  }
  return r;
}

/// Independent of the code under test: sum over t in [k, j) of log softmax(logits[t-1])[ids[t]].
double referenceLogLikelihood(const Reference &r, size_t k, size_t j) {
  double sum = 0;
  for (size_t t = k; t < j; ++t) {
    const std::vector<double> &row = r.Logits[t - 1];
    const double top = *std::max_element(row.begin(), row.end());
    double exps = 0;
    for (double x : row)
      exps += std::exp(x - top);
    sum += row[r.Ids[t]] - (top + std::log(exps));
  }
  return sum;
}

/// (j, k): the request that reads ids[0:j-1] and scores ids[k:j].
struct Span {
  size_t End, Start;
};
// The full window with continuations of 15, 11, 5 and 1 tokens, then shorter inputs, so
// that batches of 3 mix lengths and pad; the same span twice is scored the same.
const Span kSpans[] = {{16, 1}, {16, 5}, {16, 11}, {16, 15}, {4, 1},  {9, 6},
                       {13, 3}, {7, 6},  {2, 1},   {12, 11}, {16, 5}, {10, 2}};

std::vector<exec::ScoringRequest> requestsFor(const Reference &r) {
  std::vector<exec::ScoringRequest> requests;
  for (const Span &s : kSpans)
    requests.push_back({std::vector<uint32_t>(r.Ids.begin(), r.Ids.begin() + static_cast<ptrdiff_t>(s.End - 1)),
                        std::vector<uint32_t>(r.Ids.begin() + static_cast<ptrdiff_t>(s.Start),
                                              r.Ids.begin() + static_cast<ptrdiff_t>(s.End))});
  return requests;
}

class Scoring : public testing::TestWithParam<std::string> {
protected:
  std::string dir() const {
    std::string d = test::fixturesDir(); // appended, not operator+: GCC 12 -Warray-bounds bug
    d += "/hf-tiny-";
    d += GetParam();
    return d;
  }
};

} // namespace

TEST_P(Scoring, MatchesTransformersLogitsForAnyBatchSize) {
  MIXTAPE_REQUIRE_FIXTURES(dir());
  llvm::Expected<std::unique_ptr<model::Model>> model = model::Model::fromHuggingFace(dir());
  ASSERT_TRUE(bool(model)) << llvm::toString(model.takeError());
  const Reference ref = readReference(dir() + "/expected.json");
  ASSERT_EQ(ref.Ids.size(), 16u);
  ASSERT_EQ(ref.Logits.size(), 16u);
  const std::vector<exec::ScoringRequest> requests = requestsFor(ref);

  llvm::Expected<std::unique_ptr<dist::Collectives>> one =
      dist::connect(dist::World{}, dist::Device::CPU, std::chrono::seconds(5));
  ASSERT_TRUE(bool(one)) << llvm::toString(one.takeError());

  std::vector<std::vector<double>> byBatch;
  for (uint64_t batchSize : {1, 3, 5, 64}) {
    std::vector<double> got = exec::continuationLogLikelihoods(**model, requests, **one, batchSize);
    ASSERT_EQ(got.size(), requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      const double want = referenceLogLikelihood(ref, kSpans[i].Start, kSpans[i].End);
      EXPECT_NEAR(got[i], want, 1e-3) << GetParam() << ", batch size " << batchSize << ", request " << i
                                      << " (ids[0:" << kSpans[i].End - 1 << "] scoring ids[" << kSpans[i].Start
                                      << ":" << kSpans[i].End << "])";
    }
    byBatch.push_back(std::move(got));
  }
  // Padding and batch composition do not change a number beyond float rounding.
  for (size_t b = 1; b < byBatch.size(); ++b)
    for (size_t i = 0; i < requests.size(); ++i)
      EXPECT_NEAR(byBatch[b][i], byBatch[0][i], 1e-5) << GetParam() << ", request " << i;
  // The same request twice in one call, in different rows: the same number up to float
  // rounding (the head's GEMM runs over each batch's scored positions, whose count differs).
  EXPECT_NEAR(byBatch[0][1], byBatch[0][10], 1e-5);
}

TEST_P(Scoring, TwoRanksGiveTheNumbersOfOne) {
  MIXTAPE_REQUIRE_FIXTURES(dir());
  if (!dist::hasBackend(dist::Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  llvm::Expected<std::unique_ptr<model::Model>> model = model::Model::fromHuggingFace(dir());
  ASSERT_TRUE(bool(model)) << llvm::toString(model.takeError());
  const Reference ref = readReference(dir() + "/expected.json");
  ASSERT_EQ(ref.Ids.size(), 16u);
  const std::vector<exec::ScoringRequest> requests = requestsFor(ref);

  llvm::Expected<std::unique_ptr<dist::Collectives>> one =
      dist::connect(dist::World{}, dist::Device::CPU, std::chrono::seconds(5));
  ASSERT_TRUE(bool(one)) << llvm::toString(one.takeError());
  for (uint64_t batchSize : {1, 3}) {
    const std::vector<double> single = exec::continuationLogLikelihoods(**model, requests, **one, batchSize);
    std::vector<double> ranks[2];
    test::twoRanks([&](dist::Collectives &c) {
      // Each rank its own model, as each process of a real run has.
      llvm::Expected<std::unique_ptr<model::Model>> own = model::Model::fromHuggingFace(dir());
      if (!own)
        throw std::runtime_error(llvm::toString(own.takeError()));
      ranks[c.rank()] = exec::continuationLogLikelihoods(**own, requests, c, batchSize);
    });
    for (int r = 0; r < 2; ++r) {
      ASSERT_EQ(ranks[r].size(), single.size()) << "rank " << r;
      for (size_t i = 0; i < single.size(); ++i)
        EXPECT_EQ(ranks[r][i], single[i]) << GetParam() << ", batch size " << batchSize << ", rank " << r
                                          << ", request " << i;
    }
  }
}

/// The log-likelihood of `q` from Model::forward on its input alone (not the packed path).
static double separateForward(const model::Model &m, const exec::ScoringRequest &q) {
  at::NoGradGuard noGrad;
  at::Tensor input = at::tensor(std::vector<int64_t>(q.Input.begin(), q.Input.end()), at::kLong).unsqueeze(0);
  at::Tensor logProbs = at::log_softmax(m.forward(input)[0].to(at::kDouble), -1);
  const int64_t end = static_cast<int64_t>(q.Input.size()), n = static_cast<int64_t>(q.Continuation.size());
  double sum = 0;
  for (int64_t j = 0; j < n; ++j)
    sum += logProbs[end - n + j][q.Continuation[static_cast<size_t>(j)]].item<double>();
  return sum;
}

// Choices of one item share their context: they are scored in one row (the context once,
// each choice reading it and itself). Each number must equal the choice's own forward pass,
// also where the continuation begins inside the shared tokens (its first terms come from
// the shared positions) and where a row is padded beside a longer one.
TEST_P(Scoring, PackedChoicesMatchSeparateForwards) {
  MIXTAPE_REQUIRE_FIXTURES(dir());
  llvm::Expected<std::unique_ptr<model::Model>> model = model::Model::fromHuggingFace(dir());
  ASSERT_TRUE(bool(model)) << llvm::toString(model.takeError());
  const Reference ref = readReference(dir() + "/expected.json");
  ASSERT_EQ(ref.Ids.size(), 16u);
  const uint32_t vocab = static_cast<uint32_t>((*model)->config().VocabSize);
  std::vector<exec::ScoringRequest> requests;
  for (size_t item = 0; item < 3; ++item) {
    const size_t contextLength = 12 - 3 * item; // 12, 9, 6 shared tokens
    const std::vector<uint32_t> context(ref.Ids.begin(), ref.Ids.begin() + static_cast<ptrdiff_t>(contextLength));
    for (uint32_t choice = 0; choice < 4; ++choice) {
      std::vector<uint32_t> all = context, continuation;
      for (uint32_t t = 0; t <= choice; ++t)
        all.push_back((ref.Ids[choice] + 37 * t + 11 * choice + 1) % vocab);
      // Continuations that start 0, 1 or 2 tokens inside the context.
      const size_t start = contextLength - choice % 3;
      continuation.assign(all.begin() + static_cast<ptrdiff_t>(start), all.end());
      all.pop_back();
      requests.push_back({all, continuation});
    }
  }
  llvm::Expected<std::unique_ptr<dist::Collectives>> one =
      dist::connect(dist::World{}, dist::Device::CPU, std::chrono::seconds(5));
  ASSERT_TRUE(bool(one)) << llvm::toString(one.takeError());
  for (uint64_t batchSize : {1, 4, 64}) {
    const std::vector<double> got = exec::continuationLogLikelihoods(**model, requests, **one, batchSize);
    ASSERT_EQ(got.size(), requests.size());
    for (size_t i = 0; i < requests.size(); ++i)
      EXPECT_NEAR(got[i], separateForward(**model, requests[i]), 1e-4)
          << GetParam() << ", batch size " << batchSize << ", request " << i;
  }
}

// Greedy generation reads each row's last position through forwardAt with the causal mask
// (no `allowed`): the logits there are forward's, padding after a shorter row unread.
TEST_P(Scoring, ForwardAtLastPositionsIsForwardsCausalLogits) {
  MIXTAPE_REQUIRE_FIXTURES(dir());
  llvm::Expected<std::unique_ptr<model::Model>> model = model::Model::fromHuggingFace(dir());
  ASSERT_TRUE(bool(model)) << llvm::toString(model.takeError());
  const Reference ref = readReference(dir() + "/expected.json");
  ASSERT_EQ(ref.Ids.size(), 16u);
  at::NoGradGuard noGrad;
  const std::vector<int64_t> ids(ref.Ids.begin(), ref.Ids.end());
  at::Tensor tokens = at::tensor(ids, at::kLong).view({2, 8});
  tokens[1].narrow(0, 5, 3).fill_(0); // row 1 holds 5 tokens, then padding
  at::Tensor got = (*model)->forwardAt(tokens, at::arange(8, at::kLong).expand({2, 8}), {},
                                       at::tensor(std::vector<int64_t>{7, 8 + 4}, at::kLong));
  at::Tensor row0 = (*model)->forward(tokens.narrow(0, 0, 1))[0][7];
  at::Tensor row1 = (*model)->forward(tokens.narrow(0, 1, 1).narrow(1, 0, 5))[0][4];
  EXPECT_TRUE(at::allclose(got[0], row0, 1e-5, 1e-5)) << GetParam();
  EXPECT_TRUE(at::allclose(got[1], row1, 1e-5, 1e-5)) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(HuggingFace, Scoring, testing::Values("gpt2", "llama", "gpt_neox"),
                         [](const testing::TestParamInfo<std::string> &info) { return info.param; });
