//===- Files.h - paths, and writes no crash can leave half done -*- C++ -*-===//
//
// Every file Mixtape writes for another program or a later run to trust (plans, done
// markers, checkpoints, models, manifests, reports) is written to a temporary file beside
// it, fsynced, renamed into place and its folder fsynced: a reader sees the old file or
// the whole new one, never half, also after a power cut.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <memory>
#include <string>

namespace mixtape {

/// "<dir>/<name>"
std::string joinPath(llvm::StringRef dir, llvm::StringRef name);

/// Maps a file read-only (small files are read); the buffer's identifier is the path.
llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> mapFile(const llvm::Twine &path);

/// fsync a file or folder written through another API.
llvm::Error syncPath(llvm::StringRef path);

/// A file written whole or not at all: "<path>.tmp-XXXXXX" until commit() renames it onto
/// `path`. Destroyed uncommitted, it removes the temporary file and leaves `path` as it was.
class DurableFile {
public:
  static llvm::Expected<DurableFile> create(llvm::StringRef path);
  DurableFile(DurableFile &&other);
  DurableFile &operator=(DurableFile &&) = delete;
  ~DurableFile();

  /// Buffered output to the temporary file; write errors surface at commit().
  llvm::raw_ostream &os() { return *Out; }
  /// The temporary file's descriptor, for writes at offsets (flush os() first).
  int fd() const;
  llvm::StringRef path() const { return Path; }

  /// Flushes, fsyncs, renames onto the path and fsyncs its folder.
  llvm::Error commit();

private:
  DurableFile(std::string path, llvm::sys::fs::TempFile temp);

  std::string Path;
  std::unique_ptr<llvm::sys::fs::TempFile> Temp;
  std::unique_ptr<llvm::raw_fd_ostream> Out;
};

/// Writes `text` to `path` as a DurableFile.
llvm::Error writeFileDurably(llvm::StringRef path, llvm::StringRef text);

} // namespace mixtape
