//===- TensorBoard.cpp - TFRecord event files, encoded by hand --------------===//
//
// The encoding follows tensorflow/core/util/event.proto and summary.proto (Event:
// wall_time = 1 double, step = 2 int64, file_version = 3 string, summary = 5; Summary: value
// = 1 repeated; Value: tag = 1 string, simple_value = 2 float) and TFRecord's framing
// (tensorflow/core/lib/io/record_writer.cc). Nothing else of protobuf is needed.
//
//===----------------------------------------------------------------------===//
#include "mixtape/report/TensorBoard.h"

#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <map>

using namespace mixtape;
using namespace mixtape::report;

uint32_t mixtape::report::crc32c(llvm::StringRef data) {
  static const std::array<uint32_t, 256> kTable = [] {
    std::array<uint32_t, 256> table{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k)
        c = c & 1 ? 0x82F63B78u ^ (c >> 1) : c >> 1; // the Castagnoli polynomial, reflected
      table[i] = c;
    }
    return table;
  }();
  uint32_t crc = ~0u;
  for (unsigned char byte : data)
    crc = kTable[(crc ^ byte) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

namespace {

/// TFRecord stores CRCs rotated and offset, so that a CRC of bytes holding CRCs stays strong.
uint32_t maskedCrc(llvm::StringRef data) {
  const uint32_t crc = crc32c(data);
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

template <typename T> void littleEndian(std::string &out, T value) {
  for (size_t i = 0; i < sizeof(T); ++i)
    out += static_cast<char>((value >> (8 * i)) & 0xFF);
}

/// Protocol buffer wire format: varints, fixed-width numbers and length-delimited fields.
class Message {
public:
  void varint(uint64_t value) {
    do {
      Bytes += static_cast<char>((value & 0x7F) | (value > 0x7F ? 0x80 : 0));
      value >>= 7;
    } while (value);
  }
  void key(unsigned field, unsigned wireType) { varint(field << 3 | wireType); }
  void integer(unsigned field, uint64_t value) {
    key(field, 0);
    varint(value);
  }
  void float64(unsigned field, double value) {
    key(field, 1);
    uint64_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    littleEndian(Bytes, bits);
  }
  void float32(unsigned field, float value) {
    key(field, 5);
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    littleEndian(Bytes, bits);
  }
  void bytes(unsigned field, llvm::StringRef value) {
    key(field, 2);
    varint(value.size());
    Bytes += value.str();
  }
  const std::string &str() const { return Bytes; }

private:
  std::string Bytes;
};

void frame(std::string &out, llvm::StringRef record) {
  std::string length;
  littleEndian(length, static_cast<uint64_t>(record.size()));
  out += length;
  littleEndian(out, maskedCrc(length));
  out += record.str();
  littleEndian(out, maskedCrc(record));
}

/// Train records' time by model, in step order: what an eval of the model borrows.
using Times = std::map<std::string, std::map<uint64_t, double>>;

} // namespace

std::vector<NodeScalars> mixtape::report::tensorBoardScalars(const Run &run) {
  std::map<std::string, std::vector<Scalar>> byNode;
  Times times;
  for (const Logged<rundir::TrainRecord> &logged : run.Logs.Train) {
    const rundir::TrainRecord &r = logged.Record;
    const double wall = r.Time.value_or(0);
    std::vector<Scalar> &out = byNode[r.Node];
    auto add = [&](std::string tag, double value) {
      out.push_back({std::move(tag), r.ChainTokens, wall, static_cast<float>(value)});
    };
    if (r.Time)
      times[r.Node][r.ChainTokens] = *r.Time;
    add("train/loss", r.Loss);
    add("train/lr", r.LR);
    if (r.GradNorm)
      add("train/grad_norm", *r.GradNorm);
    for (const auto &[stream, loss] : r.LossByStream)
      add("train/loss_by_stream/" + stream, loss);
    if (r.TokensPerS)
      add("train/tokens_per_s", *r.TokensPerS);
    if (r.Mfu)
      add("train/mfu", *r.Mfu);
    if (r.PeakMemoryBytes)
      add("train/peak_memory_gib", static_cast<double>(*r.PeakMemoryBytes) / (1u << 30));
  }
  auto timeOf = [&](const std::string &node, uint64_t step) {
    auto it = times.find(node);
    if (it == times.end() || it->second.empty())
      return 0.0;
    auto at = it->second.upper_bound(step);
    return at == it->second.begin() ? at->second : std::prev(at)->second;
  };
  for (const Logged<rundir::EvalRecord> &logged : run.Logs.Evals) {
    const rundir::EvalRecord &r = logged.Record;
    const std::string prefix = "eval/" + r.Eval + "/" + r.Stream + "." + plan::enumName(r.Split).str() + "/";
    for (const auto &[name, value] : {std::pair{"loss", r.Loss}, std::pair{"ppl", r.Ppl}})
      byNode[r.Node].push_back(
          {prefix + name, r.ChainTokens, timeOf(r.Node, r.ChainTokens), static_cast<float>(value)});
  }
  for (const Logged<rundir::TaskRecord> &logged : run.Logs.Tasks) {
    const rundir::TaskRecord &r = logged.Record;
    for (llvm::StringRef metric : rundir::taskMetrics(r.Kind))
      if (auto it = r.Scores.find(metric.str()); it != r.Scores.end())
        byNode[r.Node].push_back({"task/" + r.Eval + "/" + r.Task + "/" + metric.str(), r.ChainTokens,
                                  timeOf(r.Node, r.ChainTokens), static_cast<float>(it->second)});
  }

  std::vector<NodeScalars> out;
  for (const plan::Node &node : run.Plan.Nodes) {
    auto it = byNode.find(node.Name);
    if (it == byNode.end())
      continue;
    NodeScalars n{node.Name, 0, std::move(it->second)};
    std::stable_sort(n.Scalars.begin(), n.Scalars.end(),
                     [](const Scalar &a, const Scalar &b) { return a.Step < b.Step; });
    for (const Scalar &s : n.Scalars)
      if (s.WallTime > 0 && (n.WallTime == 0 || s.WallTime < n.WallTime))
        n.WallTime = s.WallTime;
    out.push_back(std::move(n));
  }
  return out;
}

std::string mixtape::report::eventFile(const NodeScalars &node) {
  std::string out;
  Message version;
  version.float64(1, node.WallTime);
  version.bytes(3, "brain.Event:2");
  frame(out, version.str());
  for (const Scalar &s : node.Scalars) {
    Message value, summary, event;
    value.bytes(1, s.Tag);
    value.float32(2, s.Value);
    summary.bytes(1, value.str());
    event.float64(1, s.WallTime);
    event.integer(2, s.Step);
    event.bytes(5, summary.str());
    frame(out, event.str());
  }
  return out;
}

llvm::Error mixtape::report::writeTensorBoard(const Run &run, llvm::StringRef dir, llvm::StringRef host) {
  for (const NodeScalars &node : tensorBoardScalars(run)) {
    const std::string folder = joinPath(dir, node.Node);
    if (std::error_code ec = llvm::sys::fs::create_directories(folder))
      return fileError(folder, "cannot create: " + ec.message());
    const std::string name =
        llvm::formatv("events.out.tfevents.{0}.{1}", static_cast<uint64_t>(std::floor(node.WallTime)), host).str();
    // TensorBoard reads every event file of a folder: an earlier one would draw each point twice.
    std::error_code ec;
    for (llvm::sys::fs::directory_iterator it(folder, ec), end; it != end && !ec; it.increment(ec)) {
      llvm::StringRef file = llvm::sys::path::filename(it->path());
      if (file.startswith("events.out.tfevents.") && file != name)
        if (std::error_code removed = llvm::sys::fs::remove(it->path()))
          return fileError(it->path(), "cannot remove an earlier event file: " + removed.message());
    }
    if (ec)
      return fileError(folder, "cannot list: " + ec.message());
    if (llvm::Error e = writeFileDurably(joinPath(folder, name), eventFile(node)))
      return e;
  }
  return llvm::Error::success();
}
