//===- Signals.h - SIGINT, SIGTERM and SIGUSR1 stop a run cleanly -*- C++ -*-===//
//
// A run asked to stop (Ctrl-C, a scheduler's SIGTERM before it kills the job, SIGUSR1 as
// Slurm's --signal sends it) finishes its step, writes a checkpoint and exits with 128 +
// the signal's number. The handler only records the signal; the training loop and the
// launcher look at it. A second signal of the same kind acts as if none were caught.
//
//===----------------------------------------------------------------------===//
#pragma once

namespace mixtape {

/// Installs the handlers (once per process).
void catchStopSignals();
/// The signal that asked this process to stop, or 0.
int stopSignal();
/// "SIGTERM" and the like.
const char *signalName(int signal);

} // namespace mixtape
