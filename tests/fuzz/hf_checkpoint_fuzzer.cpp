//===- hf_checkpoint_fuzzer.cpp - libFuzzer target for a checkpoint's JSON ---===//
//
// The first byte picks the reader, the rest is the file: a Hugging Face config.json
// (parseHFConfig, what readHFConfig and planning read) or model.safetensors.index.json
// (parseShardIndex). Each must reject bad input with an llvm::Error, never crash or
// recurse without bound; an accepted config written by formatHFConfig reads back to the
// same config, and an accepted index maps each tensor to one shard.
//
//===----------------------------------------------------------------------===//
#include "mixtape/model/ModelConfig.h"
#include "mixtape/model/ShardIndex.h"

#include "llvm/Support/FormatVariadic.h"

#include <cstdlib>

using namespace mixtape;

static void fuzzIndex(llvm::StringRef text) {
  llvm::Expected<model::ShardIndex> index = model::parseShardIndex(text, "fuzz.index.json");
  if (!index) {
    llvm::consumeError(index.takeError());
    return;
  }
  size_t tensors = 0;
  for (const auto &[shard, names] : index->TensorsOfShard)
    for (const std::string &name : names) {
      auto it = index->ShardOfTensor.find(name);
      if (it == index->ShardOfTensor.end() || it->second != shard)
        abort();
      ++tensors;
    }
  if (tensors != index->ShardOfTensor.size())
    abort();
}

static void fuzzConfig(llvm::StringRef text) {
  llvm::Expected<model::ModelConfig> config = model::parseHFConfig(text, "fuzz.config.json");
  if (!config) {
    llvm::consumeError(config.takeError());
    return;
  }
  std::string written = llvm::formatv("{0}", llvm::json::Value(model::formatHFConfig(*config, "float32"))).str();
  llvm::Expected<model::ModelConfig> again = model::parseHFConfig(written, "again.config.json");
  if (!again)
    abort();
  if (llvm::formatv("{0}", llvm::json::Value(model::formatHFConfig(*again, "float32"))).str() != written)
    abort();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  llvm::StringRef text(reinterpret_cast<const char *>(data) + 1, size - 1);
  if (data[0] & 1)
    fuzzIndex(text);
  else
    fuzzConfig(text);
  return 0;
}
