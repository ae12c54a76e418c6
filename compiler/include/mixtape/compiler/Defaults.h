//===- Defaults.h - what a recipe gets where it omits a key ----*- C++ -*-===//
//
// Generated from grammar/keys.def's DEFAULT rows: the one place a default is written.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>

namespace mixtape::defaults {

#define DEFAULT(SECTION, KEY, NAME, CPPTYPE, VALUE) inline constexpr CPPTYPE NAME = VALUE;
#include "keys.def"

} // namespace mixtape::defaults
