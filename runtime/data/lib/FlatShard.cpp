//===- FlatShard.cpp - nanoGPT-style flat token files ---------------------===//
#include "mixtape/data/FlatShard.h"

#include "AtomicFile.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "TokenEncoding.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"

using namespace mixtape;
using namespace mixtape::data;

FlatShard::FlatShard(std::unique_ptr<llvm::MemoryBuffer> data, uint32_t eot)
    : Data(std::move(data)), Eot(eot) {}

FlatShard::~FlatShard() = default;

llvm::StringRef FlatShard::path() const { return Data->getBufferIdentifier(); }

TokenSpan FlatShard::document(uint64_t i) const {
  const Range &r = Documents[i];
  return TokenSpan(reinterpret_cast<const uint8_t *>(Data->getBufferStart()) + 2 * r.Begin,
                   r.End - r.Begin, DType::UInt16, 2 * r.Begin);
}

llvm::Expected<std::unique_ptr<FlatShard>>
FlatShard::fromBuffer(std::unique_ptr<llvm::MemoryBuffer> data, uint32_t eot) {
  llvm::StringRef name = data->getBufferIdentifier();
  uint64_t size = data->getBufferSize();
  if (eot > 0xffff)
    return fileError(name, "end-of-text id " + llvm::Twine(eot) +
                               " does not fit the uint16 tokens of a flat .bin");
  if (size % 2 != 0)
    return fileError(name, size - 1,
                     "file size " + llvm::Twine(size) +
                         " is odd; a flat .bin holds 2-byte tokens (truncated?)");
  std::unique_ptr<FlatShard> shard(new FlatShard(std::move(data), eot));
  const uint16_t *tokens = reinterpret_cast<const uint16_t *>(shard->Data->getBufferStart());
  uint64_t count = size / 2, begin = 0;
  for (uint64_t i = 0; i <= count; ++i) {
    if (i < count && tokens[i] != eot)
      continue;
    if (i > begin) {
      shard->Documents.push_back({begin, i});
      shard->Tokens += i - begin;
    }
    begin = i + 1;
  }
  return shard;
}

llvm::Expected<std::unique_ptr<FlatShard>> FlatShard::open(llvm::StringRef path, uint32_t eot) {
  llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> data = mapFile(path);
  if (!data)
    return data.takeError();
  return fromBuffer(std::move(*data), eot);
}

FlatShardWriter::FlatShardWriter(std::unique_ptr<AtomicFile> bin, uint32_t eot)
    : Bin(std::move(bin)), Eot(eot) {}

FlatShardWriter::~FlatShardWriter() = default;

llvm::Expected<std::unique_ptr<FlatShardWriter>> FlatShardWriter::create(llvm::StringRef path,
                                                                        uint32_t eot) {
  if (eot > 0xffff)
    return fileError(path, "end-of-text id " + llvm::Twine(eot) +
                               " does not fit the uint16 tokens of a flat .bin");
  if (std::error_code ec = llvm::sys::fs::remove(path))
    return fileError(path, "cannot remove the old file: " + ec.message());
  llvm::Expected<AtomicFile> bin = AtomicFile::create(path);
  if (!bin)
    return bin.takeError();
  return std::unique_ptr<FlatShardWriter>(
      new FlatShardWriter(std::make_unique<AtomicFile>(std::move(*bin)), eot));
}

llvm::Error FlatShardWriter::addDocument(llvm::ArrayRef<uint32_t> tokens) {
  uint64_t at = Bin->bytesWritten();
  if (tokens.empty())
    return fileError(Bin->path(), at,
                     "document " + llvm::Twine(Documents) +
                         " is empty; a flat .bin cannot represent empty documents");
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] == Eot)
      return fileError(Bin->path(), at + 2 * i,
                       "document " + llvm::Twine(Documents) +
                           " contains the end-of-text id " + llvm::Twine(Eot) +
                           ", which would split it in a flat .bin");
  if (std::optional<size_t> bad = encodeTokens(tokens, DType::UInt16, Scratch))
    return fileError(Bin->path(), at + 2 * *bad,
                     "token id " + llvm::Twine(tokens[*bad]) + " of document " +
                         llvm::Twine(Documents) + " does not fit uint16");
  Scratch.push_back(static_cast<uint8_t>(Eot));
  Scratch.push_back(static_cast<uint8_t>(Eot >> 8));
  Bin->write(Scratch);
  ++Documents;
  Tokens += tokens.size();
  return llvm::Error::success();
}

llvm::Expected<FileDigest> FlatShardWriter::finish() { return Bin->commit(); }
