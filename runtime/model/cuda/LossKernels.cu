//===- LossKernels.cu - logsumexp and softmax - onehot over bf16 logits ----===//
//
// What torch.compile fuses in the classifier + cross-entropy: ATen's path converts each
// chunk's bf16 logits to fp32 and then reads that copy several times (max, exp-sum, gather;
// in backward sub, exp, scatter, mul, and a conversion back). Here the forward reads the bf16
// row once with an online max/sum, and the backward reads and writes it once.
//
//===----------------------------------------------------------------------===//
#include "LossKernels.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <stdexcept>
#include <string>

namespace {

constexpr int kRowThreads = 512;

__device__ __forceinline__ float toFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float toFloat(float x) { return x; }
template <typename T> __device__ __forceinline__ T fromFloat(float x);
template <> __device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float x) { return __float2bfloat16(x); }
template <> __device__ __forceinline__ float fromFloat<float>(float x) { return x; }

/// A running (max, sum of exp(x - max)) pair; merging two is exact up to rounding.
struct MaxSum {
  float Max, Sum;
};
__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
  if (a.Max < b.Max) {
    MaxSum t = a;
    a = b;
    b = t;
  }
  if (b.Max == -INFINITY)
    return a;
  return {a.Max, a.Sum + b.Sum * __expf(b.Max - a.Max)};
}

template <typename T>
__global__ void rowLogSumExpLossKernel(const T *logits, int64_t vocab, const int64_t *targets, float *logSumExp,
                                       float *loss) {
  const int64_t row = blockIdx.x;
  const T *x = logits + row * vocab;
  MaxSum own{-INFINITY, 0.f};
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
    const float v = toFloat(x[j]);
    own = merge(own, MaxSum{v, 1.f});
  }
  // Warp, then block reduction of the pairs.
  for (int offset = 16; offset > 0; offset /= 2)
    own = merge(own, MaxSum{__shfl_down_sync(0xffffffff, own.Max, offset), __shfl_down_sync(0xffffffff, own.Sum, offset)});
  __shared__ MaxSum warps[kRowThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0)
    warps[warp] = own;
  __syncthreads();
  if (warp == 0) {
    own = lane < blockDim.x / 32 ? warps[lane] : MaxSum{-INFINITY, 0.f};
    for (int offset = 16; offset > 0; offset /= 2)
      own = merge(own, MaxSum{__shfl_down_sync(0xffffffff, own.Max, offset),
                              __shfl_down_sync(0xffffffff, own.Sum, offset)});
    if (lane == 0) {
      const float lse = own.Max + logf(own.Sum);
      logSumExp[row] = lse;
      loss[row] = lse - toFloat(x[targets[row]]);
    }
  }
}

template <typename T>
__global__ void softmaxMinusOneHotKernel(T *logits, int64_t vocab, const int64_t *targets, const float *logSumExp,
                                         const float *coefficient) {
  const int64_t row = blockIdx.x; // rows on x: a chunk may have more than y's 65,535
  const int64_t j = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (j >= vocab)
    return;
  const float c = coefficient[row];
  T &x = logits[row * vocab + j];
  if (c == 0.f) {
    x = fromFloat<T>(0.f);
    return;
  }
  const float p = __expf(toFloat(x) - logSumExp[row]);
  x = fromFloat<T>(c * (p - (j == targets[row] ? 1.f : 0.f)));
}

void check(const char *what) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

} // namespace

void mixtape::model::cuda::rowLogSumExpLoss(const void *logits, LogitType type, int64_t rows, int64_t vocab,
                                            const int64_t *targets, float *logSumExp, float *loss, void *stream) {
  if (rows == 0)
    return;
  auto s = static_cast<cudaStream_t>(stream);
  if (type == LogitType::BFloat16)
    rowLogSumExpLossKernel<<<unsigned(rows), kRowThreads, 0, s>>>(static_cast<const __nv_bfloat16 *>(logits), vocab,
                                                                   targets, logSumExp, loss);
  else
    rowLogSumExpLossKernel<<<unsigned(rows), kRowThreads, 0, s>>>(static_cast<const float *>(logits), vocab, targets,
                                                                   logSumExp, loss);
  check("rowLogSumExpLoss");
}

void mixtape::model::cuda::softmaxMinusOneHot(void *logits, LogitType type, int64_t rows, int64_t vocab,
                                              const int64_t *targets, const float *logSumExp, const float *coefficient,
                                              void *stream) {
  if (rows == 0)
    return;
  constexpr unsigned threads = 256;
  const dim3 grid(unsigned(rows), unsigned((vocab + threads - 1) / threads));
  auto s = static_cast<cudaStream_t>(stream);
  if (type == LogitType::BFloat16)
    softmaxMinusOneHotKernel<<<grid, threads, 0, s>>>(static_cast<__nv_bfloat16 *>(logits), vocab, targets, logSumExp,
                                                      coefficient);
  else
    softmaxMinusOneHotKernel<<<grid, threads, 0, s>>>(static_cast<float *>(logits), vocab, targets, logSumExp,
                                                      coefficient);
  check("softmaxMinusOneHot");
}
