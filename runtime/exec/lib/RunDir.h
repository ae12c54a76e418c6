//===- RunDir.h - a run directory's files, written durably ------*- C++ -*-===//
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <cstdio>
#include <optional>
#include <string>

namespace mixtape::exec {

/// Write `text` to `path` via a temporary file in the same folder, fsynced, then renamed:
/// a reader sees the old file or the whole new one, never half.
llvm::Error writeFileDurably(llvm::StringRef path, llvm::StringRef text);
/// fsync a file or folder that was written through another API (safetensors, renames).
llvm::Error syncPath(llvm::StringRef path);
/// "<dir>/<name>"
std::string joinPath(llvm::StringRef dir, llvm::StringRef name);

/// Appends JSON lines to a node's metrics.jsonl, flushed line by line; a killed run leaves
/// at most one partial last line (readers skip it).
class MetricsLog {
public:
  MetricsLog() = default;
  ~MetricsLog();
  MetricsLog(const MetricsLog &) = delete;
  MetricsLog &operator=(const MetricsLog &) = delete;
  /// Opens `path` for appending after cutting it to `keepBytes` (a resumed node drops
  /// what it logged after its checkpoint) or to its last complete line.
  llvm::Error open(llvm::StringRef path, std::optional<uint64_t> keepBytes = std::nullopt);
  /// A log never opened (a data-parallel rank other than 0) drops the record.
  void write(const llvm::json::Object &record);
  /// Bytes written so far (recorded in checkpoints).
  uint64_t size() const { return Bytes; }

private:
  std::FILE *File = nullptr;
  uint64_t Bytes = 0;
};

} // namespace mixtape::exec
