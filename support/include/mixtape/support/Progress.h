//===- Progress.h - one line of progress on stderr --------------*- C++ -*-===//
//
// On a terminal the line is redrawn in place (at most ten times a second); in a log, only
// the lines the caller asks for are written, so a Slurm log holds a readable history.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

namespace mixtape {

class ProgressLine {
public:
  explicit ProgressLine(llvm::raw_ostream &os = llvm::errs());

  /// Whether the line is redrawn in place (a terminal).
  bool redraws() const { return Terminal; }
  /// The current state: redrawn on a terminal, dropped in a log.
  void show(llvm::StringRef text);
  /// A line that stays: it replaces the redrawn one on a terminal.
  void print(llvm::StringRef text);
  /// Seconds since the line was made.
  double elapsed() const;

private:
  llvm::raw_ostream &Out;
  bool Terminal;
  size_t Shown = 0; ///< width of the redrawn line, to blank it
  std::chrono::steady_clock::time_point Start, LastDraw;
};

} // namespace mixtape
