//===- Numerics.h - threads and the numerics fingerprint -------*- C++ -*-===//
//
// CPU results are bit-identical from run to run only for the same LibTorch, BLAS, thread
// count and CPU kernels. The fingerprint names all four, so that a resumed run can tell
// whether it may expect the same bits. CUDA runs are reproducible only up to the order of
// atomic additions, so there the fingerprint names the device and no more is promised.
// Only c10's light Device header here.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <c10/core/Device.h>

#include <string>

namespace mixtape::train {

/// Environment variable that overrides the intra-op thread count.
constexpr const char *ThreadsEnvVar = "MIXTAPE_NUM_THREADS";

/// Sets LibTorch's intra-op threads to $MIXTAPE_NUM_THREADS if it is a positive integer,
/// else to std::thread::hardware_concurrency(); returns the count set.
unsigned configureThreads();

/// Environment variable that gives `--device`'s default.
constexpr const char *DeviceEnvVar = "MIXTAPE_DEVICE";

/// The device named by `spec`: "cpu", "cuda", "cuda:N", or "auto" (and "" — then
/// $MIXTAPE_DEVICE, else "auto"): the first CUDA device when this build and machine have
/// one, else the CPU. Errors say why a CUDA device cannot be had.
llvm::Expected<c10::Device> resolveDevice(llvm::StringRef spec);

/// "libtorch 1.13.0; blas OpenBLAS 0.3.21 ...; threads 2; cpu AVX2" — one line; on a CUDA
/// device "...; device cuda:0" follows.
std::string numericsFingerprint(c10::Device device = c10::Device(c10::kCPU));

} // namespace mixtape::train
