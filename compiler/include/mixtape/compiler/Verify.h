//===- Verify.h - check diagnostics against expect comments ----*- C++ -*-===//
//
// Golden diagnostic tests, in the manner of MLIR's -verify-diagnostics: a recipe states
// what it must produce next to the input that produces it,
//
//   # expect-error@+1: mixture weights sum to 0.9, not 1 [mixture-sum]
//   mix = "0.85 med + 0.05 web"
//
// `@+N` / `@-N` is relative to the comment's line, no `@` means the comment's own line.
// Each expectation must match a diagnostic of that severity on that line: its text a
// substring of the message and, when it ends in "[code]", that code, and every error and warning must be expected. Notes are checked
// when a note is expected.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/compiler/Diagnostics.h"

namespace mixtape {

/// Compare the diagnostics in `diags` for buffer `bufferId` with its expect comments;
/// prints every mismatch to `os` and returns true when all match.
bool verifyDiagnostics(const DiagnosticEngine &diags, unsigned bufferId, llvm::raw_ostream &os);

} // namespace mixtape
