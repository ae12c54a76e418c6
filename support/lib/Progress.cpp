//===- Progress.cpp -------------------------------------------------------===//
#include "mixtape/support/Progress.h"

using namespace mixtape;

ProgressLine::ProgressLine(llvm::raw_ostream &os)
    : Out(os), Terminal(os.is_displayed()), Start(std::chrono::steady_clock::now()) {}

double ProgressLine::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - Start).count();
}

void ProgressLine::show(llvm::StringRef text) {
  if (!Terminal)
    return;
  auto now = std::chrono::steady_clock::now();
  if (Shown && now - LastDraw < std::chrono::milliseconds(100))
    return;
  LastDraw = now;
  Out << "\r" << text;
  if (text.size() < Shown)
    Out.indent(static_cast<unsigned>(Shown - text.size()));
  Shown = text.size();
  Out.flush();
}

void ProgressLine::print(llvm::StringRef text) {
  if (Terminal && Shown) {
    Out << "\r" << text;
    if (text.size() < Shown)
      Out.indent(static_cast<unsigned>(Shown - text.size()));
    Shown = 0;
  } else {
    Out << text;
  }
  Out << "\n";
  Out.flush();
}
