//===- ShardIndex.cpp - model.safetensors.index.json ----------------------===//
#include "mixtape/model/ShardIndex.h"

#include "mixtape/safetensors/SafeTensors.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/JSON.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/JSON.h"

using namespace mixtape;

/// The keys of the object under the top-level key `member` of a JSON text, duplicates
/// included (raw, as written), which the parsed object no longer shows.
static std::vector<llvm::StringRef> keysOf(llvm::StringRef json, llvm::StringRef member) {
  std::vector<llvm::StringRef> keys;
  bool inMember = false, keyExpected = false;
  llvm::StringRef lastTopKey;
  walkJSONStructure(json, [&](size_t i, char c, size_t depth) {
    if (c == '"') {
      size_t end = i + 1;
      for (; end < json.size() && json[end] != '"'; ++end)
        if (json[end] == '\\')
          ++end;
      llvm::StringRef text = json.slice(i + 1, end);
      if (keyExpected && depth == 1)
        lastTopKey = text;
      else if (keyExpected && depth == 2 && inMember)
        keys.push_back(text);
      keyExpected = false;
    } else if (c == '{' || c == '[') {
      if (depth == 2)
        inMember = c == '{' && lastTopKey == member;
      keyExpected = c == '{';
    } else if (c == ',') {
      keyExpected = depth == 1 || (depth == 2 && inMember);
    }
    return true;
  });
  return keys;
}

llvm::Expected<model::ShardIndex> mixtape::model::parseShardIndex(llvm::StringRef text, llvm::StringRef fileName) {
  auto bad = [&](const llvm::Twine &what) { return fileError(fileName, what); };
  if (text.size() > safetensors::MaxHeaderBytes)
    return bad("index of " + llvm::Twine(text.size()) + " bytes exceeds the limit of " +
               llvm::Twine(safetensors::MaxHeaderBytes));
  llvm::Expected<llvm::json::Value> json = parseJSON(text, fileName);
  if (!json)
    return json.takeError();
  const llvm::json::Object *index = json->getAsObject();
  const llvm::json::Object *weightMap = index ? index->getObject("weight_map") : nullptr;
  if (!weightMap)
    return bad("no \"weight_map\" object");
  llvm::StringSet<> listed;
  for (llvm::StringRef key : keysOf(text, "weight_map"))
    if (!listed.insert(key).second)
      return bad("tensor '" + key + "' is listed twice in weight_map");

  ShardIndex out;
  for (const auto &[tensor, shardValue] : *weightMap) {
    llvm::Optional<llvm::StringRef> shard = shardValue.getAsString();
    if (!shard)
      return bad("weight_map['" + tensor.str() + "'] is not a file name");
    // A shard is a file of the folder: no separators, no "..", nothing absolute.
    if (shard->empty() || *shard == "." || *shard == ".." || shard->find_first_of("/\\") != llvm::StringRef::npos ||
        shard->contains('\0'))
      return bad("shard '" + *shard + "' of tensor '" + tensor.str() + "' is not a file in the checkpoint's folder");
    out.TensorsOfShard[shard->str()].push_back(tensor.str());
    out.ShardOfTensor[tensor.str()] = shard->str();
  }
  return out;
}
