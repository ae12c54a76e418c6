//===- Scoring.h - log-likelihoods of continuations ---------------*- C++ -*-===//
//
// The forward passes behind choice tasks (docs/tasks.md), public for the tests that check
// them against transformers' logits and for bench/eval_bench.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/ArrayRef.h"

#include <cstdint>
#include <vector>

namespace mixtape::dist {
class Collectives;
}
namespace mixtape::model {
class Model;
}

namespace mixtape::exec {

/// One forward pass: `Input` (at most the model's window), whose last Continuation.size()
/// positions predict `Continuation` (data::scoringInput makes both from a context and a
/// continuation).
struct ScoringRequest {
  std::vector<uint32_t> Input, Continuation;
};

/// The summed log-probability of each request's continuation, in request order, on every
/// rank. Consecutive requests whose inputs share at least half of each one's tokens (an
/// item's choices) are one row of a batch: the shared prefix once, then each request's rest,
/// which attends to the prefix and itself, with its own positions — the same attention as
/// apart, at a fraction of the tokens — and the head runs only at scored positions. Rows run
/// longest first, a batch holding about `batchSize` of the longest requests' tokens; batch k
/// runs on rank k mod W, so every number comes from the same batch whatever the world size.
std::vector<double> continuationLogLikelihoods(const model::Model &m, llvm::ArrayRef<ScoringRequest> requests,
                                               dist::Collectives &collectives, uint64_t batchSize);

} // namespace mixtape::exec
