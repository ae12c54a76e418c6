//===- Batches.h - samples as tensors ---------------------------*- C++ -*-===//
#pragma once

#include "mixtape/data/Sampler.h"
#include "mixtape/train/Trainer.h"

#include <ATen/ATen.h>

namespace mixtape::exec {

/// Samples [first, first + count) of a sample source as one micro-batch of tensors;
/// `withDocuments`: with the positions where documents start (within-document attention).
template <typename ReadSample>
train::MicroBatch makeMicroBatch(ReadSample read, uint64_t first, uint64_t count, uint64_t seqLen, bool withDocuments,
                                 data::Sample &scratch) {
  const int64_t B = static_cast<int64_t>(count), L = static_cast<int64_t>(seqLen);
  at::Tensor tokens = at::empty({B, L + 1}, at::kLong);
  at::Tensor mask = at::empty({B, L}, at::kFloat);
  at::Tensor starts = withDocuments ? at::zeros({B, L}, at::kBool) : at::Tensor();
  at::Tensor streams = at::empty({B}, at::kLong);
  int64_t *t = tokens.data_ptr<int64_t>();
  float *m = mask.data_ptr<float>();
  bool *s = withDocuments ? starts.data_ptr<bool>() : nullptr;
  for (int64_t b = 0; b < B; ++b) {
    read(first + static_cast<uint64_t>(b), scratch);
    streams.data_ptr<int64_t>()[b] = scratch.Stream;
    for (int64_t i = 0; i <= L; ++i)
      t[b * (L + 1) + i] = scratch.Tokens[i];
    for (int64_t i = 0; i < L; ++i)
      m[b * L + i] = scratch.LossMask[i];
    if (s)
      for (uint32_t start : scratch.DocumentStarts)
        if (start < static_cast<uint32_t>(L))
          s[b * L + start] = true;
  }
  train::MicroBatch mb;
  mb.Inputs = tokens.narrow(1, 0, L).contiguous();
  mb.Targets = tokens.narrow(1, 1, L).contiguous();
  mb.LossMask = mask;
  mb.DocumentStarts = starts;
  mb.Streams = streams;
  return mb;
}

} // namespace mixtape::exec
