//===- DeviceMemory.cpp - a device's peak memory ----------------------------===//
//
// Only CUDA builds see c10's CUDA allocator (MIXTAPE_HAVE_CUDA_ALLOCATOR, set by CMake when
// LibTorch has torch_cuda and the header); the CPU build compiles the fallback alone.
//
//===----------------------------------------------------------------------===//
#include "mixtape/train/DeviceMemory.h"

#ifdef MIXTAPE_HAVE_CUDA_ALLOCATOR
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

std::optional<uint64_t> mixtape::train::peakMemoryBytes(c10::Device device) {
#ifdef MIXTAPE_HAVE_CUDA_ALLOCATOR
  if (device.is_cuda()) {
    const c10::DeviceIndex index = device.has_index() ? device.index() : c10::cuda::current_device();
    // Entry 0 of each StatArray is StatType::AGGREGATE, both pools together, in LibTorch
    // 1.13 and 2.x alike.
    return static_cast<uint64_t>(c10::cuda::CUDACachingAllocator::getDeviceStats(index).allocated_bytes[0].peak);
  }
#endif
  (void)device;
  return std::nullopt;
}
