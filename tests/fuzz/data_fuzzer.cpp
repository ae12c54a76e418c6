//===- data_fuzzer.cpp - libFuzzer target for the data layer's readers ----===//
//
// The first byte picks a reader: Megatron .idx (with a .bin of the size the next two bytes
// give), manifest JSON, metadata sidecar, or flat .bin. Every reader must reject bad input
// with an llvm::Error, never crash, and every view of an accepted input must be in bounds.
//
//===----------------------------------------------------------------------===//
#include "mixtape/data/FlatShard.h"
#include "mixtape/data/IndexedDataset.h"
#include "mixtape/data/Manifest.h"
#include "mixtape/data/Metadata.h"

#include "llvm/Support/MemoryBuffer.h"

#include <cmath>

using namespace mixtape::data;

/// Touches every token so that ASan sees any out-of-bounds view.
static uint64_t readAll(const TokenShard &shard) {
  uint64_t sum = 0;
  for (uint64_t d = 0; d < shard.numDocuments(); ++d) {
    TokenSpan span = shard.document(d);
    for (uint64_t i = 0; i < span.size(); ++i)
      sum += span[i];
  }
  llvm::consumeError(shard.checkTokenRange(300));
  return sum;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint8_t selector = data[0] % 4;
  llvm::StringRef rest(reinterpret_cast<const char *>(data + 1), size - 1);
  volatile uint64_t sink = 0;
  switch (selector) {
  case 0: {
    if (rest.size() < 2)
      return 0;
    size_t binSize = static_cast<uint8_t>(rest[0]) | (static_cast<uint8_t>(rest[1]) << 8);
    std::string bin(binSize, '\x07');
    auto index = llvm::MemoryBuffer::getMemBufferCopy(rest.drop_front(2), "fuzz.idx");
    auto tokens = llvm::MemoryBuffer::getMemBufferCopy(bin, "fuzz.bin");
    llvm::Expected<std::unique_ptr<IndexedDataset>> dataset =
        IndexedDataset::fromBuffers(std::move(index), std::move(tokens));
    if (!dataset) {
      llvm::consumeError(dataset.takeError());
      return 0;
    }
    for (uint64_t s = 0; s < (*dataset)->numSequences(); ++s)
      sink = sink + (*dataset)->sequence(s).size();
    sink = sink + readAll(**dataset);
    break;
  }
  case 1: {
    llvm::Expected<Manifest> manifest = parseManifest(rest, "fuzz.manifest.json");
    if (!manifest) {
      llvm::consumeError(manifest.takeError());
      return 0;
    }
    sink = sink + formatManifest(*manifest).size();
    break;
  }
  case 2: {
    llvm::Expected<std::unique_ptr<MetadataTable>> table =
        MetadataTable::fromBuffer(llvm::MemoryBuffer::getMemBufferCopy(rest, "fuzz.meta"));
    if (!table) {
      llvm::consumeError(table.takeError());
      return 0;
    }
    const MetadataTable &t = **table;
    for (uint64_t r = 0; r < t.numRows(); ++r) {
      sink = sink + t.documentHash(r);
      for (size_t c = 0; c < t.numColumns(); ++c)
        sink = sink + (t.columnKind(c) == ColumnKind::Number ? std::isnan(t.number(c, r))
                                                             : t.string(c, r).size());
    }
    break;
  }
  default: {
    llvm::Expected<std::unique_ptr<FlatShard>> shard =
        FlatShard::fromBuffer(llvm::MemoryBuffer::getMemBufferCopy(rest, "fuzz.bin"), 256);
    if (!shard) {
      llvm::consumeError(shard.takeError());
      return 0;
    }
    sink = sink + readAll(**shard);
    break;
  }
  }
  return 0;
}
