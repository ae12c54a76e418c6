//===- Checkpoints.cpp ----------------------------------------------------===//
#include "mixtape/rundir/Checkpoints.h"

#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/JSON.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <cstdio>
#include <vector>

using namespace mixtape;
using namespace mixtape::rundir;

std::string mixtape::rundir::checkpointStateText(const CheckpointState &s) {
  llvm::json::Array files;
  for (const FileDigest &f : s.Files)
    files.push_back(llvm::json::Object{{"name", f.Name}, {"bytes", f.Bytes}, {"xxh3_64", formatChecksum(f.Xxh3)}});
  llvm::json::Object state{{"step", s.Step},
                           {"metrics_bytes", s.MetricsBytes},
                           {"numerics", s.Numerics},
                           {"skipped_steps", s.SkippedSteps},
                           {"consecutive_skips", s.ConsecutiveSkips},
                           {"world_size", s.WorldSize},
                           {"micro_batch", s.MicroBatch},
                           {"files", std::move(files)}};
  return llvm::formatv("{0}\n", llvm::json::Value(std::move(state))).str();
}

llvm::Expected<CheckpointState> mixtape::rundir::parseCheckpointState(llvm::StringRef text, llvm::StringRef path) {
  llvm::Expected<llvm::json::Value> json = parseJSON(text, path);
  if (!json)
    return json.takeError();
  const llvm::json::Object *o = json->getAsObject();
  if (!o)
    return fileError(path, "not a JSON object");
  auto count = [&](const llvm::json::Object &in, llvm::StringRef key, uint64_t &out) -> llvm::Error {
    const llvm::json::Value *v = in.get(key);
    if (!v || !v->getAsUINT64())
      return fileError(path, llvm::formatv("\"{0}\" is {1}, not a count", key, v ? "something else" : "missing"));
    out = *v->getAsUINT64();
    return llvm::Error::success();
  };
  CheckpointState state;
  const std::pair<llvm::StringRef, uint64_t *> counts[] = {
      {"step", &state.Step},           {"metrics_bytes", &state.MetricsBytes},
      {"skipped_steps", &state.SkippedSteps}, {"consecutive_skips", &state.ConsecutiveSkips},
      {"world_size", &state.WorldSize}, {"micro_batch", &state.MicroBatch}};
  for (const auto &[key, field] : counts)
    if (llvm::Error e = count(*o, key, *field))
      return e;
  llvm::Optional<llvm::StringRef> numerics = o->getString("numerics");
  if (!numerics)
    return fileError(path, "\"numerics\" is missing or not a string");
  state.Numerics = numerics->str();
  const llvm::json::Array *files = o->getArray("files");
  if (!files)
    return fileError(path, "\"files\" is missing or not an array");
  for (const llvm::json::Value &f : *files) {
    const llvm::json::Object *file = f.getAsObject();
    FileDigest digest;
    llvm::Optional<llvm::StringRef> name = file ? file->getString("name") : llvm::None;
    llvm::Optional<llvm::StringRef> xxh3 = file ? file->getString("xxh3_64") : llvm::None;
    if (!name || !xxh3 || xxh3->getAsInteger(16, digest.Xxh3))
      return fileError(path, "an entry of \"files\" lacks its \"name\" or its \"xxh3_64\" (16 hex digits)");
    // Checked files are read from the checkpoint's folder: nothing may point out of it.
    if (name->empty() || *name == "." || *name == ".." || name->find_first_of("/\\") != llvm::StringRef::npos ||
        name->contains('\0'))
      return fileError(path, "\"files\" names '" + *name + "', which is not a file of the checkpoint's folder");
    digest.Name = name->str();
    if (llvm::Error e = count(*file, "bytes", digest.Bytes))
      return e;
    state.Files.push_back(std::move(digest));
  }
  return state;
}

std::string CheckpointStore::dirFor(uint64_t step) const {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08llu", static_cast<unsigned long long>(step));
  return joinPath(joinPath(NodeDir, "checkpoints"), name);
}

llvm::Expected<std::string> CheckpointStore::begin(uint64_t step) const {
  std::string dir = dirFor(step);
  // What an earlier attempt at this step left (cut short, or of another world size) goes.
  if (std::error_code ec = llvm::sys::fs::remove_directories(dir))
    return fileError(dir, "cannot remove what an earlier attempt left: " + ec.message());
  if (std::error_code ec = llvm::sys::fs::create_directories(dir))
    return fileError(dir, "cannot create: " + ec.message());
  return dir;
}

llvm::Error CheckpointStore::commit(const CheckpointState &s, uint64_t keep) const {
  const std::string dir = dirFor(s.Step);
  std::vector<std::string> names;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec; it.increment(ec))
    if (llvm::sys::path::filename(it->path()) != "state.json")
      names.push_back(it->path());
  if (ec)
    return fileError(dir, "cannot list: " + ec.message());
  llvm::sort(names);
  CheckpointState written = s;
  written.Files.clear();
  for (const std::string &path : names) {
    llvm::Expected<FileDigest> digest = digestFile(path);
    if (!digest)
      return digest.takeError();
    written.Files.push_back(std::move(*digest));
  }
  if (llvm::Error e = writeFileDurably(joinPath(dir, "state.json"), checkpointStateText(written)))
    return e;
  std::vector<std::string> all = checkpointDirs();
  for (size_t i = 0; i + std::max<uint64_t>(keep, 1) < all.size(); ++i)
    llvm::sys::fs::remove_directories(all[i]);
  return llvm::Error::success();
}

std::vector<std::string> CheckpointStore::checkpointDirs() const {
  std::vector<std::string> all;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(joinPath(NodeDir, "checkpoints"), ec), end; it != end && !ec;
       it.increment(ec))
    all.push_back(it->path());
  llvm::sort(all); // zero-padded steps: oldest first
  return all;
}

/// The state of the checkpoint in `dir`: nullopt while its state.json is not there (a
/// checkpoint cut short before it was committed); an error naming the file when it is there
/// but damaged, since commit writes it whole, so something else changed it.
static llvm::Expected<std::optional<CheckpointState>> readState(llvm::StringRef dir) {
  const std::string path = joinPath(dir, "state.json");
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer) {
    if (buffer.getError() == std::errc::no_such_file_or_directory)
      return std::nullopt;
    return fileError(path, "cannot read: " + buffer.getError().message());
  }
  llvm::Expected<CheckpointState> state = parseCheckpointState((*buffer)->getBuffer(), path);
  if (!state)
    return state.takeError();
  return std::move(*state);
}

/// Whether every file `state` lists is there as it was written, the weights among them.
static llvm::Error checkFiles(llvm::StringRef dir, const CheckpointState &state,
                              CheckpointStore::Check depth = CheckpointStore::Check::Contents) {
  // The weights: a sharded checkpoint's index (which names its shards), or a whole file.
  if (llvm::none_of(state.Files, [](const FileDigest &f) { return f.Name == "index.json" || f.Name == "model.safetensors"; }))
    return fileError(joinPath(dir, "state.json"), "lists neither index.json nor model.safetensors");
  for (const FileDigest &want : state.Files) {
    const std::string path = joinPath(dir, want.Name);
    if (depth == CheckpointStore::Check::Sizes) {
      uint64_t bytes = 0;
      if (std::error_code ec = llvm::sys::fs::file_size(path, bytes))
        return fileError(path, "cannot read: " + ec.message());
      if (bytes != want.Bytes)
        return fileError(path, llvm::formatv("{0} bytes where state.json says {1}: cut or changed after it "
                                             "was written",
                                             bytes, want.Bytes));
      continue;
    }
    llvm::Expected<FileDigest> got = digestFile(path);
    if (!got)
      return got.takeError();
    if (got->Bytes != want.Bytes)
      return fileError(joinPath(dir, want.Name),
                       llvm::formatv("{0} bytes where state.json says {1}: cut or changed after it was written",
                                     got->Bytes, want.Bytes));
    if (got->Xxh3 != want.Xxh3)
      return fileError(joinPath(dir, want.Name),
                       llvm::formatv("XXH3-64 {0} where state.json says {1}: changed after it was written",
                                     formatChecksum(got->Xxh3), formatChecksum(want.Xxh3)));
  }
  return llvm::Error::success();
}

LatestCheckpoint CheckpointStore::latest() const {
  LatestCheckpoint out;
  std::vector<std::string> all = checkpointDirs();
  for (auto dir = all.rbegin(); dir != all.rend() && !out.Found; ++dir) {
    llvm::Expected<std::optional<CheckpointState>> state = readState(*dir);
    llvm::Error problem = state ? (*state ? checkFiles(*dir, **state) : llvm::Error::success()) : state.takeError();
    if (problem)
      out.PassedOver.push_back(llvm::toString(std::move(problem)));
    else if (*state)
      out.Found = Checkpoint{*dir, **state};
  }
  return out;
}

llvm::Error CheckpointStore::validate(uint64_t step, Check depth) const {
  const std::string dir = dirFor(step);
  llvm::Expected<std::optional<CheckpointState>> state = readState(dir);
  if (!state)
    return state.takeError();
  if (!*state)
    return fileError(joinPath(dir, "state.json"), "missing: the checkpoint was cut short");
  return checkFiles(dir, **state, depth);
}
