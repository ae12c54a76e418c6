//===- Growth.h - a larger model that computes what a smaller one does -*- C++ -*-===//
//
// Function-preserving growth (docs/language.md, "Model growth"). Depth as LLaMA Pro (Wu et
// al. 2024): new blocks are copies of the block before them whose output projections (and
// their biases) are zero, so each starts as the identity. Width by an integer factor k as
// bert2BERT's function-preserving initialization (Chen et al. 2022): the residual stream, the
// heads, the KV heads and the feed-forward units are duplicated k times (head size unchanged,
// so RoPE is untouched), norm weights and biases duplicated, and every weight that reads
// a duplicated input divided by k. RMSNorm and LayerNorm see k copies of the same values,
// so their statistics are exact; a tied head is untied (the head divides, the embedding not).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/model/Model.h"

#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace mixtape::model {

struct GrowOptions {
  /// Symmetry breaking: each weight matrix gets normal noise of this times its own standard
  /// deviation (0: the grown model computes exactly the small one's function).
  double Noise = 0;
  /// Seed of the noise.
  uint64_t Seed = 0;
};

/// For each block of a model grown from `fromLayers` to `toLayers` blocks: the block it
/// copies, and whether it is new (an identity copy). New blocks are spread evenly, each after
/// the block it copies, as LLaMA Pro inserts one after every group of blocks.
std::vector<std::pair<int64_t, bool>> grownBlockSources(int64_t fromLayers, int64_t toLayers);

/// `from` grown to `to`: same family, vocabulary and head size; at least as many blocks; a
/// width, heads, KV heads and feed-forward size that are all the same integer multiple of
/// `from`'s. Anything else is an error that says which size breaks the rule.
llvm::Expected<std::unique_ptr<Model>> growModel(const Model &from, const ModelConfig &to,
                                                 const GrowOptions &options = {});

} // namespace mixtape::model
