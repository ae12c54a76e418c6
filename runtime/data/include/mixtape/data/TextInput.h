//===- TextInput.h - the text files `data prepare` reads ------*- C++ -*-===//
//
// A text or JSONL file, plain or compressed, read as a stream of its text. What a file is
// comes from its first bytes, never its name: gzip (1f 8b, any number of members, as
// `pigz` and `cat a.gz b.gz` make them) and zstd (28 b5 2f fd, any number of frames) are
// decompressed as they are read; Parquet (PAR1) and other binary files are refused, since
// tokenizing their bytes as text would make a dataset of noise without a word of warning.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <string>

namespace mixtape::data {

enum class Compression { None, Gzip, Zstd };

class TextInput {
public:
  /// Opens `path` and checks its first 64 KiB of text: a NUL byte or bytes that are not
  /// UTF-8 make it binary, refused naming the file and the byte. Parquet, zip, xz and
  /// bzip2 files are refused by their magic with a message that says what they are.
  static llvm::Expected<std::unique_ptr<TextInput>> open(llvm::StringRef path);
  ~TextInput();

  Compression compression() const { return Kind; }
  /// The file in messages about its text: the path, with " (decompressed)" when the byte
  /// offsets are those of the decompressed text.
  const std::string &textName() const { return TextName; }

  /// Appends up to `max` bytes of text to `out` and returns how many; 0 at the end. A
  /// corrupt or truncated gzip or zstd stream is an error naming the file and the byte of
  /// it where decompression failed.
  llvm::Expected<size_t> read(std::string &out, size_t max);
  /// Bytes of the file read so far (compressed bytes for gzip and zstd), for progress.
  uint64_t fileOffset() const { return Consumed; }

  /// gzip or zstd (TextInput.cpp).
  struct Decoder;

private:
  TextInput() = default;
  llvm::Expected<size_t> readText(char *out, size_t max);
  llvm::Error refill();

  std::string Path, TextName;
  Compression Kind = Compression::None;
  int FD = -1;
  std::string In;            ///< bytes of the file read but not yet decoded: In[InPos, InEnd)
  size_t InPos = 0, InEnd = 0;
  bool FileEnded = false;
  uint64_t Consumed = 0;     ///< file bytes decoded (or, plain, handed out)
  std::string Sniffed;       ///< the text open() checked, handed out first
  size_t SniffedPos = 0;
  std::unique_ptr<Decoder> Decode;
};

} // namespace mixtape::data
