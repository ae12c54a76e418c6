//===- Growth.cpp - the shapes a model may grow into ----------------------===//
#include "mixtape/plan/Growth.h"

#include "llvm/Support/FormatVariadic.h"

using namespace mixtape;
using namespace mixtape::plan;

GrownArchitecture plan::growArchitecture(const Architecture &from, uint64_t layers, uint64_t dModel) {
  GrownArchitecture g{from, "", ""};
  layers = layers ? layers : from.Layers;
  dModel = dModel ? dModel : from.DModel;
  if (layers < from.Layers) {
    g.Key = "layers";
    g.Problem = llvm::formatv("growth cannot remove blocks: the model has {0} and layers = {1}", from.Layers, layers);
    return g;
  }
  if (!from.DModel || dModel % from.DModel) {
    g.Key = "d_model";
    g.Problem = llvm::formatv("d_model = {0} is not a whole multiple of the model's {1}: width grows by an integer "
                              "factor only (each dimension, head and feed-forward unit duplicated)",
                              dModel, from.DModel);
    return g;
  }
  if (layers == from.Layers && dModel == from.DModel) {
    g.Key = "grow";
    g.Problem = llvm::formatv("grows nothing: the model already has {0} layers of width {1}", layers, dModel);
    return g;
  }
  const uint64_t k = dModel / from.DModel;
  g.Model.Layers = layers;
  g.Model.DModel = dModel;
  g.Model.Heads = from.Heads * k;
  g.Model.KVHeads = from.KVHeads * k;
  g.Model.Ffn = from.Ffn * k;
  // The grown head reads k copies of the stream divided by k; the embedding writes them whole.
  g.Model.TieEmbeddings = from.TieEmbeddings && k == 1;
  return g;
}
