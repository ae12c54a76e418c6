//===- TinyModel.h - a model of a few hundred weights, and a state for it -*- C++ -*-===//
//
// The sharding tests' model: a Llama of 3 blocks, width 8, vocabulary 11, untied head (a
// unit per part), and an optimizer state whose every element differs.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/model/Model.h"
#include "mixtape/train/AdamW.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <memory>

namespace mixtape::test {

inline std::unique_ptr<model::Model> tinyModel(uint64_t seed) {
  model::ModelConfig c = model::ModelConfig::defaults(model::Family::Llama, /*vocab=*/11, /*layers=*/3, /*d=*/8,
                                                      /*heads=*/2, /*positions=*/12);
  c.FfnHidden = 12;
  llvm::Expected<std::unique_ptr<model::Model>> m = model::Model::create(c, seed);
  EXPECT_TRUE(bool(m)) << (m ? "" : llvm::toString(m.takeError()));
  return m ? std::move(*m) : nullptr;
}

/// Moments derived from the weights (each element its own), and `steps` steps taken.
inline void giveState(train::AdamW &optimizer, int64_t steps) {
  at::NoGradGuard noGrad;
  llvm::ArrayRef<model::NamedParameter> params = optimizer.parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    at::Tensor p = params[i].Tensor.detach();
    optimizer.setMoments(i, p * 0.5 + double(i), p.square() + 1.0 / double(i + 1));
  }
  optimizer.setSteps(steps);
}

} // namespace mixtape::test
