//===- LossKernels.h - the chunked loss's two row kernels on CUDA -*- C++ -*-===//
//
// Built only where CMake finds a CUDA compiler and LibTorch has CUDA (MIXTAPE_CUDA_KERNELS).
// Plain pointers and no CUDA header, so ChunkedLoss.cpp includes this without nvcc. Logits
// are bf16 or fp32 ([n, V] row-major, contiguous); every sum runs in fp32.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>

namespace mixtape::model::cuda {

enum class LogitType { BFloat16, Float32 };

/// Per row i: logSumExp[i] = log sum_j exp(logits[i, j]) and loss[i] = logSumExp[i] -
/// logits[i, targets[i]], in one pass over the row (no fp32 copy of bf16 logits).
void rowLogSumExpLoss(const void *logits, LogitType type, int64_t rows, int64_t vocab, const int64_t *targets,
                      float *logSumExp, float *loss, void *stream);

/// In place: logits[i, j] := coefficient[i] * (exp(logits[i, j] - logSumExp[i]) - [j == targets[i]]),
/// 0 on rows whose coefficient is 0 (masked positions: no 0 * inf).
void softmaxMinusOneHot(void *logits, LogitType type, int64_t rows, int64_t vocab, const int64_t *targets,
                        const float *logSumExp, const float *coefficient, void *stream);

} // namespace mixtape::model::cuda
