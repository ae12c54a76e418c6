//===- ShardedCheckpoint.cpp - shard files, their index, resharding -------===//
#include "mixtape/dist/ShardedCheckpoint.h"
#include "ShardLayout.h"

#include "mixtape/model/Model.h"
#include "mixtape/model/TensorTypes.h"
#include "mixtape/safetensors/SafeTensors.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/JSON.h"
#include "mixtape/train/AdamW.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cstdio>
#include <cstring>
#include <optional>

using namespace mixtape;
using namespace mixtape::dist;
namespace st = mixtape::safetensors;

namespace {

constexpr llvm::StringLiteral kIndexFormat = "mixtape-sharded-checkpoint-v1";
constexpr llvm::StringLiteral kShardFormat = "mixtape-checkpoint-shard-v1";

int64_t elements(llvm::ArrayRef<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

/// A file name of the checkpoint's folder, nothing that points out of it.
bool plainName(llvm::StringRef name) {
  return !name.empty() && name != "." && name != ".." && name.find_first_of("/\\") == llvm::StringRef::npos &&
         !name.contains('\0');
}

} // namespace

std::string mixtape::dist::shardFileName(int rank, int worldSize) {
  char name[64];
  std::snprintf(name, sizeof name, "shard-%05d-of-%05d.safetensors", rank, worldSize);
  return name;
}

std::string mixtape::dist::expAvgName(llvm::StringRef param) { return param.str() + ".exp_avg"; }
std::string mixtape::dist::expAvgSqName(llvm::StringRef param) { return param.str() + ".exp_avg_sq"; }

std::vector<StateSlice> mixtape::dist::replicatedSlices(train::AdamW &optimizer, int rank, int worldSize,
                                                        SlicePurpose purpose) {
  at::NoGradGuard noGrad;
  llvm::ArrayRef<model::NamedParameter> params = optimizer.parameters();
  for (size_t i = 0; i < params.size(); ++i)
    if (!optimizer.expAvg(i).defined()) // a parameter that never had a gradient: zero moments
      optimizer.setMoments(i, at::zeros_like(params[i].Tensor.detach()), at::zeros_like(params[i].Tensor.detach()));
  std::vector<StateSlice> out;
  auto add = [&](std::string name, const at::Tensor &whole, const at::Tensor &shapeOf, int64_t begin,
                 int64_t length) {
    out.push_back({std::move(name), shapeOf.sizes().vec(), begin, whole.detach().view({-1}).narrow(0, begin, length)});
  };
  auto addAll = [&](size_t i, int64_t begin, int64_t length) {
    const at::Tensor &p = params[i].Tensor;
    add(params[i].Name, p, p, begin, length);
    add(expAvgName(params[i].Name), optimizer.expAvg(i), p, begin, length);
    add(expAvgSqName(params[i].Name), optimizer.expAvgSq(i), p, begin, length);
  };
  if (purpose == SlicePurpose::Load) {
    for (size_t i = 0; i < params.size(); ++i)
      addAll(i, 0, params[i].Tensor.numel());
    return out;
  }
  std::vector<int64_t> numels;
  for (const model::NamedParameter &p : params)
    numels.push_back(p.Tensor.numel());
  for (const ShardLayout::Piece &piece : ShardLayout(numels, rank, worldSize).Pieces)
    addAll(piece.Tensor, piece.InTensor, piece.Length);
  return out;
}

std::vector<StateSlice> mixtape::dist::frozenSlices(llvm::ArrayRef<model::NamedParameter> params, int rank,
                                                    int worldSize) {
  std::vector<const model::NamedParameter *> frozen;
  std::vector<int64_t> numels;
  for (const model::NamedParameter &p : params)
    if (!p.Tensor.requires_grad()) {
      frozen.push_back(&p);
      numels.push_back(p.Tensor.numel());
    }
  std::vector<StateSlice> out;
  for (const ShardLayout::Piece &piece : ShardLayout(numels, rank, worldSize).Pieces) {
    const model::NamedParameter &p = *frozen[piece.Tensor];
    out.push_back({p.Name, p.Tensor.sizes().vec(), piece.InTensor,
                   p.Tensor.detach().view({-1}).narrow(0, piece.InTensor, piece.Length)});
  }
  return out;
}

std::optional<std::string> mixtape::dist::firstNonFinite(llvm::ArrayRef<StateSlice> slices) {
  at::NoGradGuard noGrad;
  for (const StateSlice &s : slices)
    if (!at::isfinite(s.View).all().item<bool>())
      return s.Name;
  return std::nullopt;
}

llvm::Error mixtape::dist::writeShard(llvm::StringRef dir, int rank, int worldSize,
                                      llvm::ArrayRef<StateSlice> slices) {
  const std::string path = joinPath(dir, shardFileName(rank, worldSize));
  std::vector<st::TensorLayout> layouts;
  llvm::json::Object placed;
  for (const StateSlice &s : slices) {
    std::optional<st::DType> type = model::safetensorsType(s.View.scalar_type());
    if (!type)
      return fileError(path, "tensor '" + s.Name + "' is of a dtype a checkpoint does not hold");
    layouts.push_back({s.Name, *type, {s.View.numel()}});
    placed[s.Name] = llvm::json::Object{{"shape", llvm::json::Array(s.Shape)}, {"begin", s.Begin}};
  }
  const std::map<std::string, std::string> metadata = {
      {"format", kShardFormat.str()},
      {"rank", std::to_string(rank)},
      {"world_size", std::to_string(worldSize)},
      {"slices", llvm::formatv("{0}", llvm::json::Value(std::move(placed))).str()}};
  llvm::Expected<st::Writer> writer = st::Writer::create(path, layouts, metadata);
  if (!writer)
    return writer.takeError();
  at::NoGradGuard noGrad;
  for (const StateSlice &s : slices) {
    at::Tensor t = s.View.detach().cpu().contiguous();
    if (llvm::Error e = writer->add(s.Name, {static_cast<const uint8_t *>(t.data_ptr()), t.nbytes()}))
      return e;
  }
  return writer->commit();
}

llvm::Error mixtape::dist::writeShardIndex(llvm::StringRef dir, int worldSize, llvm::StringRef shardMode,
                                           int64_t optimizerSteps) {
  llvm::json::Array files;
  std::map<std::string, llvm::json::Object> tensors;
  for (int rank = 0; rank < worldSize; ++rank) {
    const std::string name = shardFileName(rank, worldSize), path = joinPath(dir, name);
    llvm::Expected<st::File> file = st::File::open(path);
    if (!file)
      return file.takeError();
    auto slices = file->metadata().find("slices");
    llvm::Expected<llvm::json::Value> placed =
        slices == file->metadata().end() ? llvm::Expected<llvm::json::Value>(fileError(path, "no slices in its metadata"))
                                         : parseJSON(slices->second, path);
    if (!placed)
      return placed.takeError();
    for (const st::TensorInfo &t : file->tensors()) {
      const llvm::json::Object *place = placed->getAsObject() ? placed->getAsObject()->getObject(t.Name) : nullptr;
      if (!place || !place->get("shape") || !place->getInteger("begin"))
        return fileError(path, "tensor '" + t.Name + "' has no place in the metadata's slices");
      llvm::json::Object &entry = tensors[t.Name];
      if (entry.empty()) {
        entry["shape"] = *place->get("shape");
        entry["dtype"] = st::dtypeName(t.Dtype);
        entry["slices"] = llvm::json::Array();
      }
      entry.getArray("slices")->push_back(llvm::json::Object{{"file", name},
                                                             {"rank", rank},
                                                             {"begin", *place->getInteger("begin")},
                                                             {"length", static_cast<int64_t>(t.numElements())},
                                                             {"data_offsets", llvm::json::Array{t.Begin, t.End}}});
    }
    files.push_back(name);
  }
  llvm::json::Object byName;
  for (auto &[name, entry] : tensors)
    byName[name] = std::move(entry);
  llvm::json::Object index{{"format", kIndexFormat},
                           {"world_size", worldSize},
                           {"shard_mode", shardMode},
                           {"optimizer_steps", optimizerSteps},
                           {"files", std::move(files)},
                           {"tensors", std::move(byName)}};
  return writeFileDurably(joinPath(dir, kCheckpointIndex), formatJSON(std::move(index)));
}

llvm::Expected<CheckpointIndex> CheckpointIndex::open(llvm::StringRef indexPath) {
  llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> bytes = mapFile(indexPath);
  if (!bytes)
    return bytes.takeError();
  llvm::Expected<llvm::json::Value> json = parseJSON((*bytes)->getBuffer(), indexPath);
  if (!json)
    return json.takeError();
  const llvm::json::Object *o = json->getAsObject();
  if (!o || o->getString("format") != llvm::Optional<llvm::StringRef>(kIndexFormat))
    return fileError(indexPath, "not a sharded checkpoint's index (its \"format\" is not '" + kIndexFormat + "')");
  CheckpointIndex index;
  index.Path = indexPath.str();
  index.Dir = llvm::sys::path::parent_path(indexPath).str();
  llvm::Optional<int64_t> world = o->getInteger("world_size"), steps = o->getInteger("optimizer_steps");
  llvm::Optional<llvm::StringRef> mode = o->getString("shard_mode");
  const llvm::json::Object *tensors = o->getObject("tensors");
  if (!world || *world < 1 || !steps || *steps < 0 || !mode || !tensors)
    return fileError(indexPath, "\"world_size\", \"optimizer_steps\", \"shard_mode\" or \"tensors\" is missing or "
                                "not what it should be");
  index.WorldSize = *world;
  index.OptimizerSteps = *steps;
  index.ShardMode = mode->str();
  for (const auto &[key, value] : *tensors) {
    const std::string name = key.str();
    auto bad = [&](const llvm::Twine &why) { return fileError(indexPath, "tensor '" + name + "': " + why); };
    const llvm::json::Object *t = value.getAsObject();
    const llvm::json::Array *shape = t ? t->getArray("shape") : nullptr;
    const llvm::json::Array *slices = t ? t->getArray("slices") : nullptr;
    llvm::Optional<llvm::StringRef> dtype = t ? t->getString("dtype") : llvm::None;
    if (!shape || !slices || !dtype)
      return bad("\"shape\", \"dtype\" or \"slices\" is missing");
    Tensor &out = index.Tensors[name];
    out.Dtype = dtype->str();
    for (const llvm::json::Value &d : *shape) {
      if (!d.getAsInteger() || *d.getAsInteger() < 0)
        return bad("a dimension of its shape is not a count");
      out.Shape.push_back(*d.getAsInteger());
    }
    for (const llvm::json::Value &s : *slices) {
      const llvm::json::Object *slice = s.getAsObject();
      llvm::Optional<llvm::StringRef> file = slice ? slice->getString("file") : llvm::None;
      llvm::Optional<int64_t> begin = slice ? slice->getInteger("begin") : llvm::None;
      llvm::Optional<int64_t> length = slice ? slice->getInteger("length") : llvm::None;
      if (!file || !plainName(*file) || !begin || !length || *begin < 0 || *length < 0)
        return bad("a slice lacks a plain \"file\" of the folder, its \"begin\" or its \"length\"");
      out.Pieces.push_back({file->str(), *begin, *length});
    }
    llvm::sort(out.Pieces, [](const Piece &a, const Piece &b) { return a.Begin < b.Begin; });
    int64_t covered = 0;
    for (const Piece &p : out.Pieces) {
      if (p.Begin != covered)
        return bad(llvm::formatv("its slices do not cover elements {0} to {1} exactly once", covered, p.Begin));
      covered += p.Length;
    }
    if (covered != elements(out.Shape))
      return bad(llvm::formatv("its slices hold {0} of its {1} elements", covered, elements(out.Shape)));
  }
  return index;
}

llvm::Error CheckpointIndex::read(llvm::ArrayRef<StateSlice> slices) const {
  at::NoGradGuard noGrad;
  std::map<std::string, st::File> files; // only the files some slice needs
  for (const StateSlice &want : slices) {
    auto found = Tensors.find(want.Name);
    if (found == Tensors.end())
      return fileError(Path, "has no tensor '" + want.Name + "'");
    const Tensor &t = found->second;
    if (t.Shape != want.Shape)
      return fileError(Path, "tensor '" + want.Name + "' is " + st::shapeText(t.Shape) + ", not " +
                                 st::shapeText(want.Shape) + " as this model's");
    const int64_t begin = want.Begin, end = want.Begin + want.View.numel();
    for (const Piece &p : t.Pieces) {
      const int64_t lo = std::max(begin, p.Begin), hi = std::min(end, p.Begin + p.Length);
      if (lo >= hi)
        continue;
      const std::string path = joinPath(Dir, p.File);
      auto file = files.find(p.File);
      if (file == files.end()) {
        llvm::Expected<st::File> opened = st::File::open(path);
        if (!opened) // the error names the file
          return makeError(llvm::toString(opened.takeError()) + " (a shard of " + Path + ")");
        file = files.emplace(p.File, std::move(*opened)).first;
      }
      const st::TensorInfo *info = file->second.find(want.Name);
      std::optional<c10::ScalarType> type = info ? model::scalarType(info->Dtype) : std::nullopt;
      if (!info || !type || static_cast<int64_t>(info->numElements()) != p.Length)
        return fileError(path, llvm::formatv("holds no {0}-element tensor '{1}' of a dtype a checkpoint holds, as {2} "
                                             "says",
                                             p.Length, want.Name, Path));
      // Staged on the CPU (file data need not be aligned), converted to the view's dtype.
      at::Tensor staging = at::empty({hi - lo}, at::TensorOptions(*type));
      const size_t size = static_cast<size_t>(staging.element_size());
      std::memcpy(staging.data_ptr(), info->Bytes.data() + static_cast<size_t>(lo - p.Begin) * size,
                  static_cast<size_t>(hi - lo) * size);
      want.View.narrow(0, lo - begin, hi - lo).copy_(staging);
    }
  }
  return llvm::Error::success();
}

llvm::Error mixtape::dist::everyRankSucceeded(Collectives &collectives, llvm::Error local, llvm::StringRef what) {
  at::Tensor failed = at::full({1}, local ? 1.0 : 0.0, at::TensorOptions(at::kFloat).device(collectives.deviceType()));
  collectives.allReduceSum(failed);
  if (local)
    return local;
  if (const int64_t ranks = static_cast<int64_t>(failed.item<float>()))
    return makeError(llvm::formatv("{0} other rank(s) failed while {1}", ranks, what));
  return llvm::Error::success();
}

llvm::Error mixtape::dist::loadCheckpointSlices(Collectives &collectives, llvm::StringRef indexPath,
                                                llvm::ArrayRef<StateSlice> slices, train::AdamW &optimizer) {
  llvm::Error loaded = [&]() -> llvm::Error {
    llvm::Expected<CheckpointIndex> index = CheckpointIndex::open(indexPath);
    if (!index)
      return index.takeError();
    if (llvm::Error e = index->read(slices))
      return e;
    optimizer.setSteps(index->optimizerSteps());
    return llvm::Error::success();
  }();
  return everyRankSucceeded(collectives, std::move(loaded), "loading the checkpoint " + indexPath.str());
}

llvm::Error mixtape::dist::loadShardedWeights(model::Model &model, llvm::StringRef indexPath) {
  llvm::Expected<CheckpointIndex> index = CheckpointIndex::open(indexPath);
  if (!index)
    return index.takeError();
  // One parameter at a time: nothing but the model is held.
  for (const model::NamedParameter &p : model.parameters())
    if (llvm::Error e = index->read({{p.Name, p.Tensor.sizes().vec(), 0, p.Tensor.detach().view({-1})}}))
      return e;
  return llvm::Error::success();
}
