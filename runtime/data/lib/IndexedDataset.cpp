//===- IndexedDataset.cpp - Megatron-LM .bin/.idx -------------------------===//
#include "mixtape/data/IndexedDataset.h"

#include "AtomicFile.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "TokenEncoding.h"

#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"

#include <limits>

using namespace mixtape;
using namespace mixtape::data;
namespace endian = llvm::support::endian;

static const char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
static constexpr uint64_t kVersionAt = 9, kDTypeAt = 17, kSequenceCountAt = 18,
                          kDocumentCountAt = 26;

IndexedDataset::IndexedDataset(std::unique_ptr<llvm::MemoryBuffer> index,
                               std::unique_ptr<llvm::MemoryBuffer> data)
    : Index(std::move(index)), Data(std::move(data)) {}

IndexedDataset::~IndexedDataset() = default;

llvm::StringRef IndexedDataset::path() const { return Data->getBufferIdentifier(); }
llvm::StringRef IndexedDataset::indexPath() const { return Index->getBufferIdentifier(); }

static const uint8_t *bytesAt(const llvm::MemoryBuffer &buffer, uint64_t offset) {
  return reinterpret_cast<const uint8_t *>(buffer.getBufferStart()) + offset;
}

uint32_t IndexedDataset::sequenceLength(uint64_t i) const {
  return endian::read32le(bytesAt(*Index, HeaderSize + 4 * i));
}

uint64_t IndexedDataset::sequencePointer(uint64_t i) const {
  return endian::read64le(bytesAt(*Index, HeaderSize + 4 * SequenceCount + 8 * i));
}

uint64_t IndexedDataset::documentIndex(uint64_t i) const {
  return endian::read64le(bytesAt(*Index, HeaderSize + 12 * SequenceCount + 8 * i));
}

uint64_t IndexedDataset::sequenceStart(uint64_t i) const {
  return i < SequenceCount ? sequencePointer(i) : Data->getBufferSize();
}

uint64_t IndexedDataset::numTokens() const { return Data->getBufferSize() / dtypeSize(Type); }

TokenSpan IndexedDataset::sequence(uint64_t i) const {
  uint64_t start = sequencePointer(i);
  return TokenSpan(bytesAt(*Data, start), sequenceLength(i), Type, start);
}

TokenSpan IndexedDataset::document(uint64_t i) const {
  uint64_t start = sequenceStart(documentIndex(i));
  uint64_t end = sequenceStart(documentIndex(i + 1));
  return TokenSpan(bytesAt(*Data, start), (end - start) / dtypeSize(Type), Type, start);
}

llvm::Error IndexedDataset::validate() {
  llvm::StringRef idx = indexPath(), bin = path();
  uint64_t size = Index->getBufferSize();
  if (size < HeaderSize)
    return fileError(idx, size, "file ends inside the " + llvm::Twine(HeaderSize) +
                                    "-byte header of a Megatron index (" + llvm::Twine(size) +
                                    " bytes)");
  if (std::memcmp(Index->getBufferStart(), kMagic, sizeof kMagic) != 0)
    return fileError(idx, 0, "not a Megatron index: the magic is not \"MMIDIDX\\0\\0\"");
  uint64_t version = endian::read64le(bytesAt(*Index, kVersionAt));
  if (version != 1)
    return fileError(idx, kVersionAt,
                     "index version " + llvm::Twine(version) + "; only version 1 is supported");
  uint8_t code = *bytesAt(*Index, kDTypeAt);
  std::optional<DType> type = dtypeFromCode(code);
  if (!type)
    return fileError(idx, kDTypeAt,
                     "unknown dtype code " + llvm::Twine(unsigned(code)) + " (Megatron's codes are 1 to 8)");
  if (dtypeTokenCapacity(*type) == 0)
    return fileError(idx, kDTypeAt, "dtype " + dtypeName(*type) + " cannot hold token ids");
  Type = *type;

  SequenceCount = endian::read64le(bytesAt(*Index, kSequenceCountAt));
  DocumentIndexCount = endian::read64le(bytesAt(*Index, kDocumentCountAt));
  // Each sequence takes 12 bytes (length + pointer), each document index 8.
  uint64_t room = size - HeaderSize;
  if (SequenceCount > room / 12)
    return fileError(idx, kSequenceCountAt,
                     "sequence count " + llvm::Twine(SequenceCount) +
                         " but the index holds room for at most " + llvm::Twine(room / 12));
  room -= 12 * SequenceCount;
  if (DocumentIndexCount == 0)
    return fileError(idx, kDocumentCountAt,
                     "document index count 0; the document index always starts with an entry 0");
  if (DocumentIndexCount > room / 8)
    return fileError(idx, kDocumentCountAt,
                     "document index count " + llvm::Twine(DocumentIndexCount) +
                         " but the index holds room for " + llvm::Twine(room / 8));
  room -= 8 * DocumentIndexCount;
  if (room != 0)
    return fileError(idx, size - room,
                     llvm::Twine(room) + " bytes after the document indices (multimodal "
                                         "sequence modes are not supported)");

  unsigned elementSize = dtypeSize(Type);
  uint64_t binSize = Data->getBufferSize();
  uint64_t expected = 0;
  for (uint64_t i = 0; i < SequenceCount; ++i) {
    int32_t length = static_cast<int32_t>(sequenceLength(i));
    if (length < 0)
      return fileError(idx, HeaderSize + 4 * i,
                       "sequence " + llvm::Twine(i) + " has negative length " + llvm::Twine(length));
    uint64_t pointerAt = HeaderSize + 4 * SequenceCount + 8 * i;
    uint64_t pointer = sequencePointer(i);
    if (pointer > binSize)
      return fileError(idx, pointerAt,
                       "sequence " + llvm::Twine(i) + " points at byte " +
                           llvm::Twine(static_cast<int64_t>(pointer)) + ", past the end of " +
                           bin + " (" + llvm::Twine(binSize) + " bytes)");
    if (pointer != expected)
      return fileError(idx, pointerAt,
                       "sequence " + llvm::Twine(i) + " points at byte " + llvm::Twine(pointer) +
                           " but the sequences before it end at byte " + llvm::Twine(expected) +
                           " (sequences must be contiguous)");
    expected += static_cast<uint64_t>(length) * elementSize;
  }
  if (expected > binSize)
    return fileError(bin, binSize,
                     "file ends at byte " + llvm::Twine(binSize) + " but " + idx +
                         " needs " + llvm::Twine(expected) + " bytes of tokens (truncated?)");
  if (expected < binSize)
    return fileError(bin, expected,
                     llvm::Twine(binSize - expected) + " bytes after the last sequence of " + idx);

  uint64_t documentsAt = HeaderSize + 12 * SequenceCount;
  uint64_t previous = 0;
  for (uint64_t i = 0; i < DocumentIndexCount; ++i) {
    uint64_t entry = documentIndex(i);
    if (i == 0 && entry != 0)
      return fileError(idx, documentsAt,
                       "the document index starts with " + llvm::Twine(entry) + ", not 0");
    if (entry < previous || entry > SequenceCount)
      return fileError(idx, documentsAt + 8 * i,
                       "document index " + llvm::Twine(i) + " is " +
                           llvm::Twine(static_cast<int64_t>(entry)) + "; entries must rise from " +
                           llvm::Twine(previous) + " to the sequence count " +
                           llvm::Twine(SequenceCount));
    previous = entry;
  }
  if (previous != SequenceCount)
    return fileError(idx, documentsAt + 8 * (DocumentIndexCount - 1),
                     "the last document index is " + llvm::Twine(previous) +
                         " but there are " + llvm::Twine(SequenceCount) + " sequences");
  return llvm::Error::success();
}

llvm::Expected<std::unique_ptr<IndexedDataset>>
IndexedDataset::fromBuffers(std::unique_ptr<llvm::MemoryBuffer> index,
                            std::unique_ptr<llvm::MemoryBuffer> data) {
  std::unique_ptr<IndexedDataset> dataset(new IndexedDataset(std::move(index), std::move(data)));
  if (llvm::Error err = dataset->validate())
    return err;
  return dataset;
}

llvm::Expected<std::unique_ptr<IndexedDataset>> IndexedDataset::open(llvm::StringRef prefix) {
  llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> index = mapFile(prefix + ".idx");
  if (!index)
    return index.takeError();
  llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> data = mapFile(prefix + ".bin");
  if (!data)
    return data.takeError();
  return fromBuffers(std::move(*index), std::move(*data));
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

IndexedDatasetWriter::IndexedDatasetWriter(std::string prefix, DType dtype,
                                           std::unique_ptr<AtomicFile> bin)
    : Prefix(std::move(prefix)), Type(dtype), Bin(std::move(bin)) {}

IndexedDatasetWriter::~IndexedDatasetWriter() = default;

llvm::Expected<std::unique_ptr<IndexedDatasetWriter>>
IndexedDatasetWriter::create(llvm::StringRef prefix, DType dtype) {
  if (dtypeTokenCapacity(dtype) == 0)
    return fileError(prefix + ".bin", "dtype " + dtypeName(dtype) + " cannot hold token ids");
  for (const char *suffix : {".idx", ".bin"})
    if (std::error_code ec = llvm::sys::fs::remove(prefix + suffix))
      return fileError(prefix + suffix, "cannot remove the old file: " + ec.message());
  llvm::Expected<AtomicFile> bin = AtomicFile::create(prefix.str() + ".bin");
  if (!bin)
    return bin.takeError();
  return std::unique_ptr<IndexedDatasetWriter>(new IndexedDatasetWriter(
      prefix.str(), dtype, std::make_unique<AtomicFile>(std::move(*bin))));
}

llvm::Error IndexedDatasetWriter::addDocument(llvm::ArrayRef<uint32_t> tokens) {
  if (tokens.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    return fileError(Bin->path(), Bin->bytesWritten(),
                     "document " + llvm::Twine(Lengths.size()) + " has " +
                         llvm::Twine(tokens.size()) + " tokens; a Megatron sequence holds < 2^31");
  if (std::optional<size_t> bad = encodeTokens(tokens, Type, Scratch))
    return fileError(Bin->path(), Bin->bytesWritten() + *bad * dtypeSize(Type),
                     "token id " + llvm::Twine(tokens[*bad]) + " of document " +
                         llvm::Twine(Lengths.size()) + " does not fit dtype " + dtypeName(Type));
  Bin->write(Scratch);
  Lengths.push_back(static_cast<int32_t>(tokens.size()));
  Tokens += tokens.size();
  return llvm::Error::success();
}

static void appendLE(std::vector<uint8_t> &out, uint64_t value, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i)
    out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

llvm::Expected<std::vector<FileDigest>> IndexedDatasetWriter::finish() {
  std::vector<FileDigest> digests;
  llvm::Expected<FileDigest> bin = Bin->commit();
  if (!bin)
    return bin.takeError();
  digests.push_back(*bin);

  llvm::Expected<AtomicFile> idx = AtomicFile::create(Prefix + ".idx");
  if (!idx)
    return idx.takeError();
  uint64_t sequences = Lengths.size();
  std::vector<uint8_t> header(kMagic, kMagic + sizeof kMagic);
  appendLE(header, 1, 8);
  header.push_back(static_cast<uint8_t>(Type));
  appendLE(header, sequences, 8);
  appendLE(header, sequences + 1, 8); // one document per sequence, plus the leading 0
  idx->write(header);
  std::vector<uint8_t> block;
  block.reserve(4 * sequences);
  for (int32_t length : Lengths)
    appendLE(block, static_cast<uint32_t>(length), 4);
  idx->write(block);
  block.clear();
  block.reserve(8 * (sequences + 1));
  uint64_t pointer = 0;
  for (int32_t length : Lengths) {
    appendLE(block, pointer, 8);
    pointer += static_cast<uint64_t>(length) * dtypeSize(Type);
  }
  idx->write(block);
  block.clear();
  for (uint64_t i = 0; i <= sequences; ++i)
    appendLE(block, i, 8);
  idx->write(block);
  llvm::Expected<FileDigest> idxDigest = idx->commit();
  if (!idxDigest)
    return idxDigest.takeError();
  digests.push_back(*idxDigest);
  return digests;
}
