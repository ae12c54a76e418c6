//===- Metrics.h - a node's metrics.jsonl, written and read -----*- C++ -*-===//
//
// One JSON record per line, appended as a node runs (docs/run-format.md). The runtime
// writes typed records through MetricsLog; the report, `mixtape plan --explain` and the
// executor's served evals read them back through readMetrics. A run killed mid-write
// leaves at most one partial last line: readers skip it with a warning, and a resumed
// node cuts it off before appending.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Plan.h"

#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace mixtape::rundir {

/// "train": one optimizer step.
struct TrainRecord {
  std::string Node, Stage;
  uint64_t Step = 0;        ///< the stage's step count after this update
  uint64_t StageTokens = 0, ChainTokens = 0;
  double Loss = 0, LR = 0;
  std::optional<double> GradNorm;
  std::map<std::string, double> LossByStream;
  std::map<std::string, uint64_t> LossTokensByStream;
  std::optional<uint64_t> SkippedSteps; ///< nodes that skip non-finite steps: how many so far
  /// Wall clock (absent in files written before they were logged): when the step ended, in
  /// unix seconds (UTC, millisecond precision); the node's training seconds through it,
  /// resumes included; and the step's tokens per second (all ranks).
  std::optional<double> Time, ElapsedS, TokensPerS;
  /// CUDA only: model FLOPs utilization of the step, and the device's peak allocated bytes.
  std::optional<double> Mfu;
  std::optional<uint64_t> PeakMemoryBytes;
  /// With distill or l2_to_init: the parts of `loss` (loss_lm + weight * loss_distill + loss_l2).
  std::optional<double> LossLM, LossDistill, LossL2;
};

/// "skip": a step dropped for a non-finite loss.
struct SkipRecord {
  std::string Node, Stage;
  uint64_t Step = 0, StageTokens = 0, ChainTokens = 0;
  /// Which was not finite: the loss ("NaN", "inf" or "-inf"), or else the gradient norm
  /// (then `Loss` holds the finite loss).
  std::string NonFiniteLoss, NonFiniteGradNorm;
  double Loss = 0;
  uint64_t SkippedSteps = 0;
};

/// "eval" with a "stream": one (stream, split) of one eval of one model.
struct EvalRecord {
  /// The model evaluated: a train node for in-loop points, input 0 of the eval node for
  /// final ones.
  std::string Node, Eval;
  bool Final = false;               ///< "point": "final", else "during"
  std::optional<std::string> Stage; ///< null for the init and merges
  uint64_t StageTokens = 0, ChainTokens = 0;
  std::string Stream;
  plan::SplitKind Split = plan::SplitKind::Val;
  double Loss = 0, Ppl = 0;
  std::optional<uint64_t> Tokens;
  /// Bits per byte of the split's text: comparable across tokenizers (a vocabulary
  /// extension), where the loss per token is not.
  std::optional<double> BitsPerByte;
  bool FromCheckpoint = false;      ///< served later from retained weights
};

/// "eval" with a "task": one downstream task of one eval of one model (docs/tasks.md).
struct TaskRecord {
  std::string Node, Eval, Task; ///< Node as in EvalRecord
  bool Final = false;
  std::optional<std::string> Stage;
  uint64_t StageTokens = 0, ChainTokens = 0;
  plan::TaskKind Kind = plan::TaskKind::Choice;
  uint64_t Items = 0;
  /// taskMetrics(Kind), each with its standard error under "<metric>_stderr": fractions.
  std::map<std::string, double> Scores;
  bool FromCheckpoint = false;
};

/// The metrics a task kind reports: choice "acc", "acc_norm"; generate "exact_match",
/// "contains".
llvm::ArrayRef<llvm::StringLiteral> taskMetrics(plan::TaskKind kind);

using Record = std::variant<TrainRecord, SkipRecord, EvalRecord, TaskRecord>;

/// A record as its line of metrics.jsonl (without the newline).
std::string recordLine(const Record &record);
/// How a non-finite number is written (JSON has none): "NaN", "inf" or "-inf".
llvm::StringRef nonFiniteName(double value);

/// Appends records to a node's metrics.jsonl, each line flushed as it is written.
class MetricsLog {
public:
  MetricsLog() = default;
  ~MetricsLog();
  MetricsLog(const MetricsLog &) = delete;
  MetricsLog &operator=(const MetricsLog &) = delete;
  /// Opens `path` for appending after cutting it to `keepBytes` (a resumed node drops what
  /// it logged after its checkpoint) and then to its last complete line.
  llvm::Error open(llvm::StringRef path, std::optional<uint64_t> keepBytes = std::nullopt);
  /// A log never opened (a data-parallel rank other than 0) drops the record. A failed
  /// write (a full disk) is an error naming the file.
  llvm::Error write(const Record &record);
  /// Bytes in the file so far (recorded in checkpoints).
  uint64_t size() const { return Bytes; }

private:
  int Fd = -1;
  std::string Path;
  uint64_t Bytes = 0;
};

struct Metrics {
  std::vector<TrainRecord> Train;
  std::vector<SkipRecord> Skips;
  std::vector<EvalRecord> Evals;
  std::vector<TaskRecord> Tasks;
  /// "file:line: message" for a skipped truncated last line.
  std::vector<std::string> Warnings;
};

/// Parses one metrics.jsonl. An unparsable last line is skipped with a warning; any other
/// bad line, a blank line before the last and a second train record of one node and step
/// are errors "file:line: message". Records of other types are skipped.
llvm::Expected<Metrics> parseMetrics(llvm::StringRef text, llvm::StringRef file);
/// The same from a file; no file is no records.
llvm::Expected<Metrics> readMetrics(llvm::StringRef path);

} // namespace mixtape::rundir
