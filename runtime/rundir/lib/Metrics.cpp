//===- Metrics.cpp - metrics.jsonl records, written and read --------------===//
#include "mixtape/rundir/Metrics.h"

#include "mixtape/support/Error.h"
#include "mixtape/support/Format.h"
#include "mixtape/support/JSON.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cerrno>
#include <cmath>
#include <limits>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <unistd.h>

using namespace mixtape;
using namespace mixtape::rundir;
namespace json = llvm::json;

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

namespace {

/// Numbers in shortest round-trip form; JSON has no NaN or infinity, so those are the
/// strings "NaN", "inf" and "-inf".
void number(json::OStream &out, llvm::StringRef key, double value) {
  out.attributeBegin(key);
  if (std::isfinite(value))
    out.rawValue(formatNumber(value));
  else
    out.value(nonFiniteName(value));
  out.attributeEnd();
}

template <typename T> void numbers(json::OStream &out, llvm::StringRef key, const std::map<std::string, T> &values) {
  out.attributeObject(key, [&] {
    for (const auto &[name, value] : values)
      number(out, name, static_cast<double>(value));
  });
}

void where(json::OStream &out, const std::string &node, const std::optional<std::string> &stage, uint64_t step,
           bool withStep, uint64_t stageTokens, uint64_t chainTokens) {
  out.attribute("node", node);
  out.attributeBegin("stage");
  out.value(stage ? json::Value(*stage) : json::Value(nullptr));
  out.attributeEnd();
  if (withStep)
    out.attribute("step", step);
  out.attribute("stage_tokens", stageTokens);
  out.attribute("chain_tokens", chainTokens);
}

/// What every eval record starts with, stream or task: the eval, the point and where.
template <typename R> void evalPoint(json::OStream &out, const R &r) {
  out.attribute("type", "eval");
  out.attribute("eval", r.Eval);
  out.attribute("point", r.Final ? "final" : "during");
  where(out, r.Node, r.Stage, 0, false, r.StageTokens, r.ChainTokens);
}

} // namespace

llvm::ArrayRef<llvm::StringLiteral> mixtape::rundir::taskMetrics(plan::TaskKind kind) {
  static constexpr llvm::StringLiteral Choice[] = {"acc", "acc_norm"}, Generate[] = {"exact_match", "contains"};
  if (kind == plan::TaskKind::Choice)
    return Choice;
  return Generate;
}

llvm::StringRef mixtape::rundir::nonFiniteName(double value) {
  return std::isnan(value) ? "NaN" : value > 0 ? "inf" : "-inf";
}

std::string mixtape::rundir::recordLine(const Record &record) {
  std::string line;
  llvm::raw_string_ostream os(line);
  json::OStream out(os);
  out.object([&] {
    if (const auto *r = std::get_if<TrainRecord>(&record)) {
      out.attribute("type", "train");
      where(out, r->Node, r->Stage, r->Step, true, r->StageTokens, r->ChainTokens);
      number(out, "loss", r->Loss);
      for (const auto &[key, value] : {std::pair{"loss_lm", r->LossLM}, std::pair{"loss_distill", r->LossDistill},
                                       std::pair{"loss_l2", r->LossL2}})
        if (value)
          number(out, key, *value);
      number(out, "lr", r->LR);
      if (r->GradNorm)
        number(out, "grad_norm", *r->GradNorm);
      numbers(out, "loss_by_stream", r->LossByStream);
      numbers(out, "loss_tokens_by_stream", r->LossTokensByStream);
      if (r->SkippedSteps)
        out.attribute("skipped_steps", *r->SkippedSteps);
      for (const auto &[key, value] : {std::pair{"time", r->Time}, std::pair{"elapsed_s", r->ElapsedS},
                                       std::pair{"tokens_per_s", r->TokensPerS}, std::pair{"mfu", r->Mfu}})
        if (value)
          number(out, key, *value);
      if (r->PeakMemoryBytes)
        out.attribute("peak_memory_bytes", *r->PeakMemoryBytes);
    } else if (const auto *r = std::get_if<SkipRecord>(&record)) {
      out.attribute("type", "skip");
      where(out, r->Node, r->Stage, r->Step, true, r->StageTokens, r->ChainTokens);
      if (r->NonFiniteLoss.empty()) {
        number(out, "loss", r->Loss);
        out.attribute("nonfinite_grad_norm", r->NonFiniteGradNorm);
      } else {
        out.attribute("nonfinite_loss", r->NonFiniteLoss);
      }
      out.attribute("skipped_steps", r->SkippedSteps);
    } else if (const auto *t = std::get_if<TaskRecord>(&record)) {
      evalPoint(out, *t);
      out.attribute("task", t->Task);
      out.attribute("kind", plan::enumName(t->Kind));
      for (llvm::StringRef metric : taskMetrics(t->Kind))
        for (std::string key : {metric.str(), metric.str() + "_stderr"})
          if (auto it = t->Scores.find(key); it != t->Scores.end())
            number(out, key, it->second);
      out.attribute("items", t->Items);
      if (t->FromCheckpoint)
        out.attribute("from_checkpoint", true);
    } else {
      const EvalRecord &e = std::get<EvalRecord>(record);
      evalPoint(out, e);
      out.attribute("stream", e.Stream);
      out.attribute("split", plan::enumName(e.Split));
      number(out, "loss", e.Loss);
      number(out, "ppl", e.Ppl);
      if (e.Tokens)
        out.attribute("tokens", *e.Tokens);
      if (e.BitsPerByte)
        number(out, "bpb", *e.BitsPerByte);
      if (e.FromCheckpoint)
        out.attribute("from_checkpoint", true);
    }
  });
  return line;
}

MetricsLog::~MetricsLog() {
  if (Fd >= 0)
    ::close(Fd);
}

llvm::Error MetricsLog::open(llvm::StringRef path, std::optional<uint64_t> keepBytes) {
  Path = path.str();
  uint64_t size = 0;
  if (llvm::sys::fs::is_regular_file(path)) {
    auto buffer = llvm::MemoryBuffer::getFile(path);
    if (!buffer)
      return fileError(path, "cannot read: " + buffer.getError().message());
    llvm::StringRef text = (*buffer)->getBuffer();
    // A checkpoint's records end at a line's end; a shorter file lost some after it was
    // written, and resuming would leave a gap in the log.
    if (keepBytes && *keepBytes > 0 && (*keepBytes > text.size() || text[*keepBytes - 1] != '\n'))
      return fileError(path, llvm::formatv("the checkpoint resumed from recorded {0} bytes of records, but the file "
                                           "{1}; restore it, or remove the node's folder to train the node again",
                                           *keepBytes,
                                           *keepBytes > text.size()
                                               ? llvm::formatv("holds {0}: records were lost", text.size()).str()
                                               : std::string("has no line end there: it was changed")));
    size = keepBytes ? *keepBytes : text.size();
    // Never keep a partial last line.
    size_t lastNewline = text.take_front(size).rfind('\n');
    size = lastNewline == llvm::StringRef::npos ? 0 : lastNewline + 1;
    if (::truncate(Path.c_str(), static_cast<off_t>(size)) != 0)
      return fileError(path, std::string("cannot cut to the last checkpoint: ") + std::strerror(errno));
  }
  // Appending: every write lands at the end, whatever else has the file open.
  Fd = ::open(Path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (Fd < 0)
    return fileError(path, std::string("cannot open for appending: ") + std::strerror(errno));
  Bytes = size;
  return llvm::Error::success();
}

llvm::Error MetricsLog::write(const Record &record) {
  if (Fd < 0)
    return llvm::Error::success();
  std::string line = recordLine(record) + "\n";
  const char *p = line.data();
  size_t left = line.size();
  while (left) {
    ssize_t n = ::write(Fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return fileError(Path, std::string("cannot append a record: ") + (n < 0 ? std::strerror(errno) : "no space"));
    p += n;
    left -= static_cast<size_t>(n);
  }
  Bytes += line.size();
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

namespace {

/// A JSON number, or one of the strings number() writes for NaN and infinities.
std::optional<double> numberValue(const json::Value *v) {
  if (!v)
    return std::nullopt;
  if (llvm::Optional<double> x = v->getAsNumber())
    return *x;
  if (llvm::Optional<llvm::StringRef> s = v->getAsString())
    for (double x : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                     -std::numeric_limits<double>::infinity()})
      if (*s == nonFiniteName(x))
        return x;
  return std::nullopt;
}

/// Reads the fields of one record; the first problem becomes the line's error.
class RecordReader {
public:
  RecordReader(const json::Object &record, std::string where) : Record(record), Where(std::move(where)) {}

  std::string string(llvm::StringRef key) {
    if (llvm::Optional<llvm::StringRef> s = Record.getString(key))
      return s->str();
    fail(key, "a string");
    return "";
  }
  std::optional<std::string> stringOrNull(llvm::StringRef key) {
    const json::Value *v = Record.get(key);
    if (v && v->getAsNull())
      return std::nullopt;
    return string(key);
  }
  bool has(llvm::StringRef key) const { return Record.get(key); }
  double number(llvm::StringRef key) {
    if (std::optional<double> x = numberValue(Record.get(key)))
      return *x;
    fail(key, "a number (or \"NaN\", \"inf\", \"-inf\")");
    return 0;
  }
  /// Absent or null: nullopt.
  std::optional<double> optionalNumber(llvm::StringRef key) {
    const json::Value *v = Record.get(key);
    if (!v || v->getAsNull())
      return std::nullopt;
    return number(key);
  }
  uint64_t count(llvm::StringRef key) {
    if (const json::Value *v = Record.get(key))
      if (llvm::Optional<uint64_t> x = v->getAsUINT64())
        return *x;
    fail(key, "a non-negative integer");
    return 0;
  }
  std::optional<uint64_t> optionalCount(llvm::StringRef key) {
    if (!Record.get(key))
      return std::nullopt;
    return count(key);
  }
  template <typename T> std::map<std::string, T> numbers(llvm::StringRef key) {
    std::map<std::string, T> out;
    const json::Value *v = Record.get(key);
    if (!v)
      return out;
    const json::Object *o = v->getAsObject();
    if (!o) {
      fail(key, "an object of numbers");
      return out;
    }
    for (const auto &kv : *o) {
      std::optional<double> x = numberValue(&kv.second);
      if (!x) {
        fail(key, "an object of numbers");
        return {};
      }
      out[kv.first.str()] = static_cast<T>(*x);
    }
    return out;
  }
  llvm::Error takeError() { return Problem.empty() ? llvm::Error::success() : fileError(Where, Problem); }
  void fail(llvm::StringRef key, llvm::StringRef what) {
    if (Problem.empty())
      Problem = ("\"" + key + "\" must be " + what).str();
  }

private:
  const json::Object &Record;
  std::string Where, Problem;
};

/// The fields every eval record has, stream or task: the model, the eval and where.
template <typename R> void readEvalPoint(RecordReader &read, const json::Object &record, R &r) {
  r.Node = read.string("node");
  r.Eval = read.string("eval");
  const std::string point = read.string("point");
  if (point != "during" && point != "final")
    read.fail("point", "\"during\" or \"final\"");
  r.Final = point == "final";
  r.Stage = read.stringOrNull("stage");
  r.StageTokens = read.count("stage_tokens");
  r.ChainTokens = read.count("chain_tokens");
  r.FromCheckpoint = record.getBoolean("from_checkpoint").getValueOr(false);
}

} // namespace

llvm::Expected<Metrics> mixtape::rundir::parseMetrics(llvm::StringRef text, llvm::StringRef file) {
  llvm::SmallVector<llvm::StringRef, 0> lines;
  text.split(lines, '\n');
  // The newline that ends the last line starts no line; the last line may be blank.
  if (!lines.empty() && lines.back().empty())
    lines.pop_back();
  if (!lines.empty() && lines.back().trim().empty())
    lines.pop_back();

  Metrics metrics;
  std::map<std::pair<std::string, uint64_t>, size_t> trainLines; // node and step -> line
  for (size_t i = 0; i < lines.size(); ++i) {
    llvm::StringRef line = lines[i].trim();
    std::string where = (file + ":" + llvm::Twine(i + 1)).str();
    // Records are appended whole, one per line: a blank line among them was put there by
    // something else.
    if (line.empty())
      return fileError(where, "a blank line; each line of metrics.jsonl is one record");
    llvm::Expected<json::Value> value = parseJSON(line, where);
    if (!value) {
      // Only the last line may be cut short (a run killed mid-write).
      if (i + 1 == lines.size()) {
        metrics.Warnings.push_back(llvm::toString(value.takeError()) + " (a truncated last line: skipped)");
        break;
      }
      return value.takeError();
    }
    const json::Object *record = value->getAsObject();
    if (!record)
      return fileError(where, "a metrics record is a JSON object");
    llvm::Optional<llvm::StringRef> type = record->getString("type");
    if (!type)
      return fileError(where, "\"type\" must be a string");
    RecordReader read(*record, where);
    if (*type == "train") {
      TrainRecord r;
      r.Node = read.string("node");
      r.Stage = read.string("stage");
      r.Step = read.count("step");
      r.StageTokens = read.count("stage_tokens");
      r.ChainTokens = read.count("chain_tokens");
      r.Loss = read.number("loss");
      r.LR = read.number("lr");
      r.GradNorm = read.optionalNumber("grad_norm");
      r.LossByStream = read.numbers<double>("loss_by_stream");
      r.LossTokensByStream = read.numbers<uint64_t>("loss_tokens_by_stream");
      r.SkippedSteps = read.optionalCount("skipped_steps");
      r.Time = read.optionalNumber("time");
      r.ElapsedS = read.optionalNumber("elapsed_s");
      r.TokensPerS = read.optionalNumber("tokens_per_s");
      r.Mfu = read.optionalNumber("mfu");
      r.PeakMemoryBytes = read.optionalCount("peak_memory_bytes");
      r.LossLM = read.optionalNumber("loss_lm");
      r.LossDistill = read.optionalNumber("loss_distill");
      r.LossL2 = read.optionalNumber("loss_l2");
      if (llvm::Error error = read.takeError())
        return error;
      // A resumed node cuts its metrics back to its checkpoint first, so no step repeats.
      auto [first, fresh] = trainLines.try_emplace({r.Node, r.Step}, i + 1);
      if (!fresh)
        return fileError(where, "a second train record of node '" + r.Node + "' step " + llvm::Twine(r.Step) +
                                    " (the first is on line " + llvm::Twine(first->second) + ")");
      metrics.Train.push_back(std::move(r));
    } else if (*type == "skip") {
      SkipRecord r;
      r.Node = read.string("node");
      r.Stage = read.string("stage");
      r.Step = read.count("step");
      r.StageTokens = read.count("stage_tokens");
      r.ChainTokens = read.count("chain_tokens");
      if (read.has("nonfinite_loss")) {
        r.NonFiniteLoss = read.string("nonfinite_loss");
      } else {
        r.NonFiniteGradNorm = read.string("nonfinite_grad_norm");
        r.Loss = read.number("loss");
      }
      r.SkippedSteps = read.count("skipped_steps");
      if (llvm::Error error = read.takeError())
        return error;
      metrics.Skips.push_back(std::move(r));
    } else if (*type == "eval" && read.has("task")) {
      TaskRecord r;
      readEvalPoint(read, *record, r);
      r.Task = read.string("task");
      std::optional<plan::TaskKind> kind = plan::enumFromName<plan::TaskKind>(read.string("kind"));
      if (!kind)
        read.fail("kind", "\"choice\" or \"generate\"");
      for (llvm::StringRef metric : taskMetrics(kind.value_or(plan::TaskKind::Choice)))
        for (std::string key : {metric.str(), metric.str() + "_stderr"})
          r.Scores[key] = read.number(key);
      r.Items = read.count("items");
      if (llvm::Error error = read.takeError())
        return error;
      r.Kind = *kind;
      metrics.Tasks.push_back(std::move(r));
    } else if (*type == "eval") {
      EvalRecord r;
      readEvalPoint(read, *record, r);
      r.Stream = read.string("stream");
      std::string split = read.string("split");
      r.Loss = read.number("loss");
      r.Ppl = read.number("ppl");
      r.Tokens = read.optionalCount("tokens");
      r.BitsPerByte = read.optionalNumber("bpb");
      std::optional<plan::SplitKind> kind = plan::enumFromName<plan::SplitKind>(split);
      if (!kind)
        read.fail("split", "\"val\" or \"train\"");
      if (llvm::Error error = read.takeError())
        return error;
      r.Split = *kind;
      metrics.Evals.push_back(std::move(r));
    }
    // Other record types are for other readers.
  }
  return metrics;
}

llvm::Expected<Metrics> mixtape::rundir::readMetrics(llvm::StringRef path) {
  if (!llvm::sys::fs::exists(path))
    return Metrics();
  auto text = llvm::MemoryBuffer::getFile(path);
  if (!text)
    return fileError(path, text.getError().message());
  return parseMetrics((*text)->getBuffer(), path);
}
