//===- VocabExtension.h - a model moved to a tokenizer that extends its own -*- C++ -*-===//
//
// Vocabulary extension (language and domain adaptation: Swallow, Fujii et al. 2024; Learned
// Embedding Propagation, Tikhomirov and Chernyshev 2024): the new tokenizer keeps every old
// token at its id and adds tokens after them, so the model keeps each old row of its
// embedding and head as it is, and only the new tokens' rows need a start.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/model/Model.h"
#include "mixtape/plan/Plan.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace mixtape::model {

struct VocabExtensionOptions {
  int64_t Vocab = 0;     ///< the embedding rows of the extended model
  int64_t FirstNew = 0;  ///< the old tokenizer's vocabulary: the first new token's id
  int64_t EndNew = 0;    ///< the new tokenizer's vocabulary: new tokens are FirstNew..EndNew-1
  plan::NewTokenInit Init = plan::NewTokenInit::Mean;
  /// subword_mean: per new token, the old tokenizer's ids of its text (empty: the mean).
  std::vector<std::vector<int64_t>> Pieces;
  uint64_t Seed = 0;     ///< random: the seed of the fresh model whose rows they take
};

/// `old` with `options.Vocab` rows in each parameter with one row per token (the embedding,
/// and an untied head). Rows of ids below FirstNew are old's, bit for bit, so the logits of
/// old tokens do not change. Each new token's row is, by Init:
///   mean          the mean of the old tokens' rows (ids below FirstNew)
///   subword_mean  the mean of the rows of its pieces under the old tokenizer
///   random        that of a model of the same architecture freshly made with Seed
///                 (Model::create: the model's own init distribution)
/// Rows past EndNew (padding) are the fresh model's.
llvm::Expected<std::unique_ptr<Model>> extendVocabulary(const Model &old, const VocabExtensionOptions &options);

} // namespace mixtape::model
