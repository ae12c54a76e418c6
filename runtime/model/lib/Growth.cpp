//===- Growth.cpp - function-preserving depth and width growth ------------===//
//
// Every parameter of the grown model is made from the parameter of the same role in the
// small one. A dimension that grew k-fold is the small one tiled k times: the residual
// stream [x, x, ..., x], the heads (q/k/v rows, head-major in every family's layout),
// the feed-forward units. Where that dimension is a matrix's input, the copies are divided
// by k, so the product sums k equal halves back to the small model's value. Tiling whole
// head blocks keeps grouped-query attention's mapping: query head c H + h of copy c reads
// KV head c KV + h / (H / KV), the copy of the one it read.
//
//===----------------------------------------------------------------------===//
#include "mixtape/model/Growth.h"

#include "mixtape/support/Error.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FormatVariadic.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

using namespace mixtape;
using namespace mixtape::model;

std::vector<std::pair<int64_t, bool>> model::grownBlockSources(int64_t fromLayers, int64_t toLayers) {
  std::vector<std::pair<int64_t, bool>> sources;
  const int64_t added = toLayers - fromLayers;
  for (int64_t i = 0; i < fromLayers; ++i) {
    sources.push_back({i, false});
    // Block i is followed by its share of the new blocks: floor((i+1) n / L) - floor(i n / L).
    for (int64_t c = (i * added) / fromLayers; c < ((i + 1) * added) / fromLayers; ++c)
      sources.push_back({i, true});
  }
  return sources;
}

namespace {

/// Where a family's blocks keep their parameters.
llvm::StringRef blockPrefix(Family family) {
  switch (family) {
  case Family::GPT2: return "transformer.h.";
  case Family::Llama: return "model.layers.";
  case Family::GPTNeoX: return "gpt_neox.layers.";
  }
  return "";
}

/// GPT-2's Conv1D weights store [in, out]; every other matrix is [out, in].
bool isConv1D(llvm::StringRef rest) {
  static constexpr llvm::StringLiteral kConv1D[] = {"attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight",
                                                    "mlp.c_proj.weight"};
  return llvm::is_contained(kConv1D, rest);
}

/// The projections that write into the residual stream: zero in a new block, which then
/// adds nothing to the stream it reads.
bool writesResidual(llvm::StringRef rest) {
  static constexpr llvm::StringLiteral kOutputs[] = {
      "self_attn.o_proj.weight", "mlp.down_proj.weight",   "attn.c_proj.weight",       "attn.c_proj.bias",
      "mlp.c_proj.weight",       "mlp.c_proj.bias",        "attention.dense.weight",   "attention.dense.bias",
      "mlp.dense_4h_to_h.weight", "mlp.dense_4h_to_h.bias"};
  return llvm::is_contained(kOutputs, rest);
}

/// `t` tiled `times` times along `dim`; with `blocks` > 1, each of `blocks` equal parts of
/// that dimension is tiled on its own (GPT-2's c_attn holds [q | k | v] side by side).
at::Tensor tile(const at::Tensor &t, int64_t dim, int64_t times, int64_t blocks) {
  std::vector<int64_t> shape = t.sizes().vec();
  std::vector<int64_t> split = shape;
  split[dim] = shape[dim] / blocks;
  split.insert(split.begin() + dim, blocks);
  std::vector<int64_t> repeats(split.size(), 1);
  repeats[dim + 1] = times;
  shape[dim] *= times;
  return t.reshape(split).repeat(repeats).reshape(shape);
}

} // namespace

llvm::Expected<std::unique_ptr<Model>> model::growModel(const Model &from, const ModelConfig &to,
                                                        const GrowOptions &options) {
  const ModelConfig &f = from.config();
  if (from.hasLora())
    return makeError("growth: merge the LoRA adapters first");
  if (to.Family != f.Family || to.VocabSize != f.VocabSize)
    return makeError("growth keeps the family and the vocabulary");
  if (to.NumLayers < f.NumLayers)
    return makeError(llvm::formatv("growth cannot remove blocks ({0} to {1} layers)", f.NumLayers, to.NumLayers).str());
  const int64_t k = to.DModel / f.DModel;
  if (k < 1 || to.DModel != k * f.DModel)
    return makeError(llvm::formatv("growth: d_model {0} is not a whole multiple of {1}", to.DModel, f.DModel).str());
  if (to.NumHeads != k * f.NumHeads || to.NumKVHeads != k * f.NumKVHeads || to.FfnHidden != k * f.FfnHidden ||
      to.effectiveHeadDim() != f.effectiveHeadDim())
    return makeError(llvm::formatv("growth by {0}x in width duplicates the heads ({1}), KV heads ({2}) and "
                                   "feed-forward units ({3}) with the same head size",
                                   k, k * f.NumHeads, k * f.NumKVHeads, k * f.FfnHidden)
                         .str());
  if (k > 1 && to.TieEmbeddings)
    return makeError("growth in width unties the head: the grown head reads the duplicated stream divided by k");
  llvm::Expected<std::unique_ptr<Model>> grown = Model::create(to, options.Seed, from.dtype());
  if (!grown)
    return grown.takeError();

  at::NoGradGuard noGrad;
  const llvm::StringRef prefix = blockPrefix(f.Family);
  const std::vector<std::pair<int64_t, bool>> sources = grownBlockSources(f.NumLayers, to.NumLayers);
  at::Generator gen = at::detail::createCPUGenerator(options.Seed);
  for (const NamedParameter &p : (*grown)->parameters()) {
    llvm::StringRef name = p.Name, rest;
    std::string sourceName = p.Name;
    bool fresh = false;
    if (name.startswith(prefix)) {
      auto [index, tail] = name.drop_front(prefix.size()).split('.');
      int64_t block = 0;
      index.getAsInteger(10, block);
      rest = tail;
      sourceName = (prefix + llvm::Twine(sources[block].first) + "." + rest).str();
      fresh = sources[block].second;
    }
    // A tied small head is its embedding.
    const NamedParameter *source = from.findParameter(sourceName);
    const bool head = name == "lm_head.weight" || name == "embed_out.weight";
    at::Tensor s = source ? source->Tensor : head ? from.headWeight() : at::Tensor();
    if (!s.defined())
      return makeError("growth: '" + sourceName + "' is not in the model grown");
    s = s.detach().to(p.Tensor.device());
    const int64_t inputDim = p.Kind != ParamKind::Matrix ? -1 : isConv1D(rest) ? 0 : 1;
    for (int64_t dim = 0; dim < s.dim(); ++dim) {
      const int64_t times = p.Tensor.size(dim) / s.size(dim);
      if (times == 1)
        continue;
      const bool qkvColumns = rest == "attn.c_attn.bias" || (rest == "attn.c_attn.weight" && dim == 1);
      s = tile(s, dim, times, qkvColumns ? 3 : 1);
      if (dim == inputDim)
        s = s / static_cast<double>(times);
    }
    if (fresh && writesResidual(rest))
      s = at::zeros_like(s);
    if (options.Noise > 0 && p.Kind == ParamKind::Matrix && s.numel() > 1)
      s = s + at::empty_like(s).normal_(0.0, 1.0, gen) * (options.Noise * s.std().item<double>());
    p.Tensor.copy_(s);
  }
  return grown;
}
