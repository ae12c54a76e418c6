//===- HostMemory.h - keep freed host memory for the next step -*- C++ -*-===//
//
// A training step frees and allocates the same tensors every step. glibc's malloc serves
// blocks above its mmap threshold (128 KiB, rising only as far as the freed sizes it has
// seen) with fresh mmaps and trims freed heap tops back to the kernel, so every step page-
// faults its activations in again: on a 2-vCPU AMD EPYC that was most of a quickstart step
// at 2 threads, and two threads faulting at once serialize on the kernel's memory map.
// Raising both thresholds keeps freed blocks in malloc's arenas — what PyTorch's CUDA
// caching allocator does on the GPU. The cost: a process keeps its peak resident size.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cstddef>

namespace mixtape::train {

/// Blocks up to this size come from malloc's arenas and stay there when freed.
constexpr size_t kRetainedBlockBytes = size_t(1) << 30;
/// The same where ranks shard the model (ZeRO-1, full): their large blocks — gathered units,
/// whole gradients, the step's temporaries — come in sizes that change from one to the
/// next, and kept in the arena they fragmented it: a 134M Llama fully sharded over 4 ranks
/// peaked at 1181 MiB resident for 932 MiB of live tensors with 1 GiB, 865–890 MiB with
/// 8 MiB (docs/performance.md).
constexpr size_t kShardedRetainedBlockBytes = size_t(8) << 20;

/// Sets malloc's mmap threshold to `largestBlock` and turns heap trimming off, for the
/// whole process (every thread's arena). Returns false where the C library refuses (or is
/// not glibc): then allocation behaves as before, only slower.
bool retainFreedHostMemory(size_t largestBlock = kRetainedBlockBytes);

} // namespace mixtape::train
