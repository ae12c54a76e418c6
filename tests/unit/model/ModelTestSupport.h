//===- ModelTestSupport.h - fixtures, tiny models, temp folders -*- C++ -*-===//
#pragma once

#include "Fixtures.h"
#include "TempDir.h"
#include "mixtape/model/Model.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <string>

namespace mixtape::model::test {

using mixtape::test::fixturesDir;
using mixtape::test::TempDir;

/// A model small enough for finite differences: 2 layers, width 8, 2 heads (Llama: 1 KV
/// head, so grouped-query attention is exercised), vocabulary 11, 12 positions.
inline ModelConfig tinyConfig(Family family) {
  ModelConfig c = ModelConfig::defaults(family, /*vocab=*/11, /*layers=*/2, /*d=*/8,
                                        /*heads=*/2, /*positions=*/12);
  c.FfnHidden = 12;
  if (family == Family::Llama)
    c.NumKVHeads = 1;
  if (family == Family::GPTNeoX)
    c.RotaryPct = 0.5;
  return c;
}

inline std::unique_ptr<Model> makeModel(const ModelConfig &c, uint64_t seed = 1,
                                        c10::ScalarType dtype = at::kFloat) {
  llvm::Expected<std::unique_ptr<Model>> m = Model::create(c, seed, dtype);
  if (!m) {
    ADD_FAILURE() << llvm::toString(m.takeError());
    return nullptr;
  }
  return std::move(*m);
}

/// Deterministic token ids in [0, vocab).
inline at::Tensor tokens(int64_t batch, int64_t time, int64_t vocab, uint64_t seed = 7) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randint(vocab, {batch, time}, gen, at::TensorOptions().dtype(at::kLong));
}

/// Two rows of `time` packed tokens and targets (seeds `seed` and `seed + 1`): row 0 holds
/// documents starting at 0 and time / 2 + 1, row 1 at 0 and 2; row 0's position 2 does not
/// count for the loss.
struct PackedBatch {
  at::Tensor Inputs, Targets, LossMask, DocumentStarts;
};
inline PackedBatch packedBatch(int64_t time, int64_t vocab, uint64_t seed) {
  PackedBatch b{tokens(2, time, vocab, seed), tokens(2, time, vocab, seed + 1), at::ones({2, time}),
                at::zeros({2, time}, at::kLong)};
  b.LossMask[0][2] = 0;
  b.DocumentStarts[0][time / 2 + 1] = 1;
  b.DocumentStarts[1][2] = 1;
  return b;
}

inline const Family AllFamilies[] = {Family::GPT2, Family::Llama, Family::GPTNeoX};

inline std::string familyLabel(const testing::TestParamInfo<Family> &info) {
  return mixtape::plan::enumName(info.param).str();
}

} // namespace mixtape::model::test
