//===- DeviceMemory.h - a device's peak memory, for the train records -*- C++ -*-===//
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <optional>

namespace mixtape::train {

/// The most bytes LibTorch's CUDA caching allocator has held allocated on `device` since the
/// process started (torch.cuda.max_memory_allocated); nullopt on the CPU and in builds
/// without CUDA.
std::optional<uint64_t> peakMemoryBytes(c10::Device device);

} // namespace mixtape::train
