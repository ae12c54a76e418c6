//===- Trainable.h - what a train node trains, and how fast --------------===//
//
// A train node's freeze, lr_scale and lora settings applied to its model: adapters added,
// frozen groups no longer requiring grad, and the LR scale of each trained parameter.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/model/Model.h"
#include "mixtape/plan/Plan.h"

#include "llvm/Support/Error.h"

#include <vector>

namespace mixtape::exec {

/// Applies `settings` to `m` (adapters first, so that a frozen group freezes its factors
/// too); returns the LR scale of each of m.trainableParameters(). A group that names no
/// parameter of the model (a layer it lacks, a head tied to the embeddings) is an error.
llvm::Expected<std::vector<double>> applyTrainable(const plan::TrainSettings &settings, model::Model &m);

} // namespace mixtape::exec
