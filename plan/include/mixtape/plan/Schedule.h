//===- Schedule.h - a learning-rate schedule as a pure function -*- C++ -*-===//
//
// The one evaluation of every LR schedule: the linter uses it for continuity checks and
// plots, the trainer at every optimizer step. A resolved schedule (plan `settings.lr`) is
// phases at absolute stage tokens, each starting where the previous one ended; the
// compiler resolves what a recipe writes into it (compiler/Schedule.h). Formulas and
// their sources: docs/schedules.md.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Plan.h"

namespace mixtape::plan {

/// Where `phase` ends in stage tokens; infinity for an open-ended phase.
double phaseEnd(const Phase &phase);

/// Index of the phase that covers `tokens` (the first one before it starts).
size_t phaseAt(const LRSchedule &schedule, double tokens);

/// LR after `tokens` tokens of the stage (evaluated at the start of each optimizer step).
/// Past the last phase the LR stays where it ended; 0 without phases.
double learningRate(const LRSchedule &schedule, double tokens);

/// Where the finite phases end; infinity if the last one is open-ended.
double scheduleEnd(const LRSchedule &schedule);

} // namespace mixtape::plan
