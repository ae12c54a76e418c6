//===- VocabExtension.cpp - new rows for new tokens -----------------------===//
#include "mixtape/model/VocabExtension.h"

#include "mixtape/support/Error.h"

#include "llvm/ADT/Twine.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

using namespace mixtape;
using namespace mixtape::model;

/// The new tokens' rows of a parameter with one row per token; `fresh` holds the fresh
/// model's rows (random), `old` the trained ones.
static at::Tensor newRows(const at::Tensor &old, const at::Tensor &fresh, const VocabExtensionOptions &options) {
  const int64_t count = options.EndNew - options.FirstNew;
  const at::Tensor oldTokens = old.narrow(0, 0, options.FirstNew);
  switch (options.Init) {
  case plan::NewTokenInit::Random:
    return fresh.narrow(0, options.FirstNew, count).clone();
  case plan::NewTokenInit::Mean:
    return oldTokens.mean(0, /*keepdim=*/true).expand({count, old.size(1)}).clone();
  case plan::NewTokenInit::SubwordMean: {
    at::Tensor rows = at::empty({count, old.size(1)}, old.options());
    const at::Tensor mean = oldTokens.mean(0);
    for (int64_t i = 0; i < count; ++i) {
      const std::vector<int64_t> &pieces = options.Pieces[static_cast<size_t>(i)];
      if (pieces.empty()) {
        rows[i].copy_(mean);
        continue;
      }
      at::Tensor ids = at::tensor(pieces, at::TensorOptions().dtype(at::kLong));
      rows[i].copy_(oldTokens.index_select(0, ids).mean(0));
    }
    return rows;
  }
  }
  return {};
}

llvm::Expected<std::unique_ptr<Model>> mixtape::model::extendVocabulary(const Model &old,
                                                                        const VocabExtensionOptions &options) {
  const int64_t oldVocab = old.config().VocabSize;
  if (options.FirstNew <= 0 || options.FirstNew > oldVocab || options.EndNew <= options.FirstNew ||
      options.Vocab < std::max(options.EndNew, oldVocab))
    return makeError("vocabulary extension: new tokens " + llvm::Twine(options.FirstNew) + ".." +
                     llvm::Twine(options.EndNew - 1) + " and " + llvm::Twine(options.Vocab) +
                     " rows do not extend a model of " + llvm::Twine(oldVocab) + " rows");
  if (options.Init == plan::NewTokenInit::SubwordMean &&
      options.Pieces.size() != static_cast<size_t>(options.EndNew - options.FirstNew))
    return makeError("vocabulary extension: subword_mean needs the pieces of every new token");
  for (const std::vector<int64_t> &pieces : options.Pieces)
    for (int64_t id : pieces)
      if (id < 0 || id >= options.FirstNew)
        return makeError("vocabulary extension: piece id " + llvm::Twine(id) + " is not an old token");
  ModelConfig config = old.config();
  config.VocabSize = options.Vocab;
  llvm::Expected<std::unique_ptr<Model>> extended = Model::create(config, options.Seed, old.dtype());
  if (!extended)
    return extended.takeError();
  at::NoGradGuard noGrad;
  for (const NamedParameter &p : (*extended)->parameters()) {
    const NamedParameter *from = old.findParameter(p.Name);
    if (!from)
      return makeError("vocabulary extension: the old model has no parameter '" + p.Name + "'");
    const at::Tensor &source = from->Tensor;
    if (source.sizes() == p.Tensor.sizes()) {
      p.Tensor.copy_(source);
      continue;
    }
    // One row per token: the old rows, then the new tokens'.
    if (source.dim() != 2 || source.size(0) != oldVocab || p.Tensor.size(0) != options.Vocab ||
        source.size(1) != p.Tensor.size(1))
      return makeError("vocabulary extension: parameter '" + p.Name + "' changes shape in a way a new vocabulary does not explain");
    at::Tensor rows = newRows(source, p.Tensor, options);
    p.Tensor.narrow(0, 0, oldVocab).copy_(source);
    p.Tensor.narrow(0, options.FirstNew, options.EndNew - options.FirstNew).copy_(rows);
  }
  return extended;
}
