//===- Growth.h - the shapes a model may grow into --------------*- C++ -*-===//
//
// `after = { stage, grow = { layers, d_model } }`: the compiler checks the shape and writes
// the grown architecture into the plan (settings.grow); the runtime builds it (model/Growth.h).
// Only function-preserving growth: more blocks (LLaMA Pro), width by an integer factor with
// heads, KV heads and ffn duplicated alike (bert2BERT).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Plan.h"

#include <cstdint>
#include <string>

namespace mixtape::plan {

/// `from` grown to `layers` blocks and width `dModel` (0: as `from`), or why not: Key names
/// the setting at fault ("layers", "d_model" or "grow" when nothing grows) and Problem says why.
struct GrownArchitecture {
  Architecture Model;
  std::string Key, Problem;
};
GrownArchitecture growArchitecture(const Architecture &from, uint64_t layers, uint64_t dModel);

} // namespace mixtape::plan
