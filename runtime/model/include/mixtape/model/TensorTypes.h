//===- TensorTypes.h - LibTorch's floating types and safetensors' -*- C++ -*-===//
#pragma once

#include "mixtape/safetensors/SafeTensors.h"

#include <c10/core/ScalarType.h>

#include <optional>

namespace mixtape::model {

/// The safetensors dtype of a floating LibTorch type, and back (nullopt: not a type that
/// weights or optimizer state are kept in; integer tensors are never parameters).
std::optional<safetensors::DType> safetensorsType(c10::ScalarType type);
std::optional<c10::ScalarType> scalarType(safetensors::DType type);

} // namespace mixtape::model
