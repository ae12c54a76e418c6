//===- Checkpoint.cpp - a Hugging Face checkpoint folder, for planning ----===//
#include "mixtape/model/Checkpoint.h"

#include "mixtape/model/ModelConfig.h"
#include "mixtape/model/ShardIndex.h"
#include "mixtape/safetensors/SafeTensors.h"
#include "mixtape/support/Checksum.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/JSON.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SHA256.h"

using namespace mixtape;

/// Adds the weights' part of the fingerprint; false when the folder has no weights.
static llvm::Expected<bool> addWeights(llvm::StringRef folder, llvm::SHA256 &sha, model::FileChecksum checksum) {
  auto addFile = [&](llvm::StringRef name) -> llvm::Error {
    std::string path = joinPath(folder, name);
    // Opened first so that a file that is no safetensors fails here, naming itself.
    llvm::Expected<safetensors::File> file = safetensors::File::open(path);
    if (!file)
      return file.takeError();
    uint64_t size = 0;
    if (std::error_code ec = llvm::sys::fs::file_size(path, size))
      return fileError(path, ec.message());
    llvm::Expected<uint64_t> contents = checksum(path);
    if (!contents)
      return contents.takeError();
    sha.update(llvm::formatv("{0}\n{1}\n{2}\n", name, size, formatChecksum(*contents)).str());
    return llvm::Error::success();
  };
  if (llvm::sys::fs::exists(joinPath(folder, "model.safetensors"))) {
    if (llvm::Error e = addFile("model.safetensors"))
      return std::move(e);
    return true;
  }
  std::string indexPath = joinPath(folder, "model.safetensors.index.json");
  auto buffer = llvm::MemoryBuffer::getFile(indexPath);
  if (!buffer)
    return false;
  llvm::StringRef text = (*buffer)->getBuffer();
  sha.update(llvm::formatv("model.safetensors.index.json\n{0}\n", text.size()).str());
  sha.update(text);
  llvm::Expected<model::ShardIndex> index = model::parseShardIndex(text, indexPath);
  if (!index)
    return index.takeError();
  for (const auto &shard : index->TensorsOfShard)
    if (llvm::Error e = addFile(shard.first))
      return std::move(e);
  return true;
}

llvm::Expected<std::optional<plan::CheckpointInfo>> mixtape::model::inspectCheckpoint(llvm::StringRef folder,
                                                                                      FileChecksum checksum) {
  std::string configPath = joinPath(folder, "config.json");
  auto config = llvm::MemoryBuffer::getFile(configPath);
  if (!config)
    return std::nullopt;
  llvm::StringRef text = (*config)->getBuffer();
  plan::CheckpointInfo info;
  info.ConfigPath = configPath;
  llvm::Expected<llvm::json::Value> json = parseJSON(text, configPath);
  if (!json)
    return json.takeError();
  if (const llvm::json::Object *o = json->getAsObject())
    info.ModelType = o->getString("model_type").getValueOr("").str();
  info.Family = familyFromModelType(info.ModelType);
  if (info.Family) {
    llvm::Expected<ModelConfig> c = parseHFConfig(text, configPath);
    if (!c)
      return c.takeError();
    info.Vocab = c->VocabSize;
    info.Layers = c->NumLayers;
    info.DModel = c->DModel;
    info.Heads = c->NumHeads;
    info.KVHeads = c->NumKVHeads;
    info.Ffn = c->FfnHidden;
    info.MaxPositions = *info.Family == plan::ModelFamily::GPT2 ? c->MaxPositions : 0;
    info.RopeTheta = c->RopeTheta;
    info.RotaryPct = c->RotaryPct;
  }
  llvm::SHA256 sha;
  sha.update(llvm::formatv("config.json\n{0}\n", text.size()).str());
  sha.update(text);
  llvm::Expected<bool> weights = addWeights(folder, sha, checksum);
  if (!weights)
    return weights.takeError();
  if (*weights)
    info.Fingerprint = "sha256:" + llvm::toHex(sha.final(), /*LowerCase=*/true);
  return info;
}
