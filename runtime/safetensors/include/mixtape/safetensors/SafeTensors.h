//===- SafeTensors.h - the safetensors file format -------------*- C++ -*-===//
//
// The one home of the safetensors format (https://github.com/huggingface/safetensors):
//
//   [u64 little-endian N] [N bytes of JSON header] [data region]
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets relative to the data region) and may hold "__metadata__" (string -> string).
// Writers pad the header with spaces so the data region starts at a multiple of 8, as
// Hugging Face's writer does. Tensors are laid out in header-key order, bytes little-endian.
//
// The reader trusts nothing: every length, offset, dtype and shape is checked against the
// mapped file before a byte of tensor data is handed out, and every failure is an
// llvm::Error naming the file and the byte offset or tensor at fault. No LibTorch here.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace llvm {
class MemoryBuffer;
} // namespace llvm

namespace mixtape::safetensors {

enum class DType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool };

/// The header's spelling: "F32", "BF16", "BOOL", ...
llvm::StringRef dtypeName(DType type);
std::optional<DType> dtypeFromName(llvm::StringRef name);
/// Bytes per element.
unsigned dtypeSize(DType type);
/// A shape for messages: "[2, 3]", "[]".
std::string shapeText(llvm::ArrayRef<int64_t> shape);

/// Headers longer than this are refused before they are parsed (a hostile length field
/// would otherwise make the reader allocate or scan gigabytes).
constexpr uint64_t MaxHeaderBytes = 100u << 20;

/// One tensor of a file: where its bytes are, and what they mean.
struct TensorInfo {
  std::string Name;
  DType Dtype = DType::F32;
  std::vector<int64_t> Shape;
  uint64_t Begin = 0, End = 0; ///< data_offsets, relative to the data region
  llvm::ArrayRef<uint8_t> Bytes; ///< the tensor's bytes in the mapped file

  uint64_t numElements() const;
};

/// A checked, read-only view of a safetensors file (mapped, not copied).
class File {
public:
  /// Maps and checks `path`; errors read "<path>: byte <offset>: <what>".
  static llvm::Expected<File> open(llvm::StringRef path);
  /// Checks bytes already in memory; `name` stands for the file in messages.
  static llvm::Expected<File> fromBuffer(std::unique_ptr<llvm::MemoryBuffer> buffer,
                                         llvm::StringRef name);

  File(File &&) noexcept;
  File &operator=(File &&) noexcept;
  ~File();

  llvm::StringRef path() const { return Path; }
  /// Tensors in the order of their data (which is the order a writer emitted them).
  llvm::ArrayRef<TensorInfo> tensors() const { return Tensors; }
  /// nullptr if the file has no tensor of that name.
  const TensorInfo *find(llvm::StringRef name) const;
  const std::map<std::string, std::string> &metadata() const { return Metadata; }
  /// Where the data region starts in the file (8 + header length).
  uint64_t dataOffset() const { return DataOffset; }
  /// The file's first dataOffset() bytes: the header's length and the header, which fix
  /// every tensor's name, dtype, shape and place.
  llvm::StringRef headerBytes() const;

private:
  File() = default;

  std::string Path;
  std::unique_ptr<llvm::MemoryBuffer> Buffer;
  std::vector<TensorInfo> Tensors;
  std::map<std::string, size_t> ByName;
  std::map<std::string, std::string> Metadata;
  uint64_t DataOffset = 0;
};

/// What a header says of one tensor: enough to place it before its bytes exist.
struct TensorLayout {
  std::string Name;
  DType Dtype = DType::F32;
  std::vector<int64_t> Shape;

  /// dtype size x the product of the shape.
  uint64_t byteSize() const;
};

/// One tensor to write: its bytes are streamed to the file as they are.
struct TensorData {
  std::string Name;
  DType Dtype = DType::F32;
  std::vector<int64_t> Shape;
  llvm::ArrayRef<uint8_t> Bytes; ///< numElements * dtypeSize bytes, little-endian
};

/// The bytes of a header for `tensors`, in the given order, with `metadata`, padded with
/// spaces to a multiple of 8 (without the 8-byte length in front). Fails on duplicate or
/// empty names, or a name "__metadata__".
llvm::Expected<std::string> formatHeader(llvm::ArrayRef<TensorLayout> tensors,
                                         const std::map<std::string, std::string> &metadata);
/// The same for tensors whose bytes are at hand; also fails on bytes that do not match
/// dtype x shape.
llvm::Expected<std::string> formatHeader(llvm::ArrayRef<TensorData> tensors,
                                         const std::map<std::string, std::string> &metadata);

/// Writes a file whose tensors arrive one at a time, so that only one tensor need be in
/// memory (a streamed merge). The header, with every tensor's name, dtype and shape, is
/// written first; then add() takes each tensor's bytes in the header's order, and commit()
/// makes the file durable: "<path>.tmp-XXXXXX" is fsynced and renamed onto `path`, and the
/// directory fsynced. A writer destroyed before commit() removes its temporary file and
/// leaves `path` untouched.
class Writer {
public:
  static llvm::Expected<Writer> create(llvm::StringRef path, llvm::ArrayRef<TensorLayout> tensors,
                                       const std::map<std::string, std::string> &metadata = {});
  Writer(Writer &&) noexcept;
  Writer &operator=(Writer &&) noexcept;
  ~Writer();

  /// The bytes of the next tensor of the header, which must be called `name`.
  llvm::Error add(llvm::StringRef name, llvm::ArrayRef<uint8_t> bytes);
  /// After the last tensor.
  llvm::Error commit();

private:
  struct Impl;
  explicit Writer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> PImpl;
};

/// Writes a file whose tensors are all in memory, through a Writer.
llvm::Error write(llvm::StringRef path, llvm::ArrayRef<TensorData> tensors,
                  const std::map<std::string, std::string> &metadata = {});

} // namespace mixtape::safetensors
