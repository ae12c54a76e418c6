//===- Numerics.h - threads and the numerics fingerprint -------*- C++ -*-===//
//
// CPU results are bit-identical from run to run only for the same LibTorch, BLAS, thread
// count and CPU kernels. The fingerprint names all four, so that a resumed run can tell
// whether it may expect the same bits. No LibTorch in this header.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <string>

namespace mixtape::train {

/// Environment variable that overrides the intra-op thread count.
constexpr const char *ThreadsEnvVar = "MIXTAPE_NUM_THREADS";

/// Sets LibTorch's intra-op threads to $MIXTAPE_NUM_THREADS if it is a positive integer,
/// else to std::thread::hardware_concurrency(); returns the count set.
unsigned configureThreads();

/// "libtorch 1.13.0; blas OpenBLAS 0.3.21 ...; threads 2; cpu AVX2" — one line.
std::string numericsFingerprint();

} // namespace mixtape::train
