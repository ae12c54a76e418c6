//===- Forgetting.h - forgetting, transfer and the stability gap as numbers -*- C++ -*-===//
//
// What the eval charts show, as numbers (docs/run-format.md, "forgetting.json"): each
// stage's change against the model it started from, the backward/forward transfer matrix of
// each chain of stages (Lopez-Paz & Ranzato 2017), and the stability gap of in-loop evals.
// forgettingOf is pure (plan and records in, numbers out); forgettingJSON and
// printForgetting only format them.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/report/Report.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mixtape::report {

/// One eval metric: "EVAL STREAM.SPLIT loss" or "EVAL TASK acc" (exact_match for generate).
struct MetricKey {
  std::string Name, Eval;
  std::string Stream, Task; ///< one of them set
  plan::SplitKind Split = plan::SplitKind::Val;
  std::string Metric;
  bool HigherIsBetter = false; ///< accuracies; loss is lower-is-better
};

/// (a) A stage's end against the model it started from, for one key.
struct StageChange {
  std::string Key;
  double Start = 0, End = 0;
  double Change = 0; ///< End - Start
  bool Better = false;
  bool StartDuring = false; ///< the start is the stage's in-loop point at 0, not a final eval
};

struct StageForgetting {
  std::string Model, Stage, StartModel; ///< Model: the stage's last train node
  std::vector<std::string> Variants;
  bool Partial = false;
  std::vector<StageChange> Changes;
};

/// (b) The transfer of one column of a chain's matrix.
struct Transfer {
  std::string Key;
  size_t LearnedAt = 0; ///< the row that improved it most over the row before (>= 1)
  double Bwt = 0, Fwt = 0; ///< signed so that positive is better
};

struct ChainForgetting {
  std::string Variant;
  struct Row {
    std::string Model;
    std::optional<std::string> Stage; ///< null for row 0, the chain's first model
  };
  std::vector<Row> Rows;
  std::vector<std::string> Columns;
  std::vector<std::vector<double>> R; ///< R[row][column]
  std::vector<Transfer> Transfers;    ///< per column
  /// Means over the columns learned before the last row (BWT) and after row 1 (FWT), as in
  /// GEM; null with none.
  std::optional<double> Bwt, Fwt;
  bool Partial = false;
};

/// (c) The stability gap of one key over one stage's in-loop points.
struct StabilityGap {
  std::string Key;
  double Start = 0, Deepest = 0;
  double Drop = 0; ///< Deepest - Start: 0 when no point is worse than the start
  uint64_t AtStageTokens = 0;
  /// Stage tokens from the deepest point to the first later one at least as good as the
  /// start; null if none is.
  std::optional<uint64_t> TokensToRecover;
};

struct StageGaps {
  std::string Model, Stage;
  bool Partial = false;
  std::vector<StabilityGap> Gaps;
};

struct Forgetting {
  std::vector<MetricKey> Keys; ///< in order of first appearance in the records
  std::vector<StageForgetting> Stages;
  std::vector<ChainForgetting> Chains;
  std::vector<StageGaps> Gaps;
};

/// The eval keys of the records, stream evals first, each in order of first appearance.
std::vector<MetricKey> metricKeys(const Metrics &logs);

Forgetting forgettingOf(const plan::Plan &plan, const Metrics &logs);

/// forgetting.json: deterministic (keys in a fixed order, numbers as JSON writes doubles).
std::string forgettingJSON(const Forgetting &forgetting);

/// The text form the report prints after the table.
void printForgetting(const Forgetting &forgetting, llvm::raw_ostream &os);

} // namespace mixtape::report
