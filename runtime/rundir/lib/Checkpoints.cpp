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

#include <cstdio>
#include <vector>

using namespace mixtape;
using namespace mixtape::rundir;

std::string CheckpointStore::dirFor(uint64_t step) const {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08llu", static_cast<unsigned long long>(step));
  return joinPath(joinPath(NodeDir, "checkpoints"), name);
}

llvm::Expected<std::string> CheckpointStore::begin(uint64_t step) const {
  std::string dir = dirFor(step);
  if (std::error_code ec = llvm::sys::fs::create_directories(dir))
    return fileError(dir, "cannot create: " + ec.message());
  return dir;
}

llvm::Error CheckpointStore::commit(const CheckpointState &s, uint64_t keep) const {
  llvm::json::Object state{{"step", s.Step},
                           {"metrics_bytes", s.MetricsBytes},
                           {"numerics", s.Numerics},
                           {"skipped_steps", s.SkippedSteps},
                           {"consecutive_skips", s.ConsecutiveSkips},
                           {"world_size", s.WorldSize},
                           {"micro_batch", s.MicroBatch}};
  if (llvm::Error e = writeFileDurably(joinPath(dirFor(s.Step), "state.json"),
                                       llvm::formatv("{0}\n", llvm::json::Value(std::move(state))).str()))
    return e;
  std::string root = joinPath(NodeDir, "checkpoints");
  std::vector<std::string> all;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(root, ec), end; it != end && !ec; it.increment(ec))
    all.push_back(it->path());
  llvm::sort(all); // zero-padded steps: oldest first
  for (size_t i = 0; i + std::max<uint64_t>(keep, 1) < all.size(); ++i)
    llvm::sys::fs::remove_directories(all[i]);
  return llvm::Error::success();
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
  const std::string remedy = ("; remove " + dir + " to resume from the checkpoint before it").str();
  auto damaged = [&](const llvm::Twine &what) { return fileError(path, what + remedy); };
  llvm::Expected<llvm::json::Value> json = parseJSON((*buffer)->getBuffer(), path);
  if (!json)
    return makeError(llvm::toString(json.takeError()) + remedy);
  const llvm::json::Object *o = json->getAsObject();
  if (!o)
    return damaged("not a JSON object");
  CheckpointState state;
  const std::pair<llvm::StringRef, uint64_t *> counts[] = {
      {"step", &state.Step},           {"metrics_bytes", &state.MetricsBytes},
      {"skipped_steps", &state.SkippedSteps}, {"consecutive_skips", &state.ConsecutiveSkips},
      {"world_size", &state.WorldSize}, {"micro_batch", &state.MicroBatch}};
  for (const auto &[key, field] : counts) {
    const llvm::json::Value *v = o->get(key);
    if (!v || !v->getAsUINT64())
      return damaged(llvm::formatv("\"{0}\" is {1}, not a count", key, v ? "something else" : "missing"));
    *field = *v->getAsUINT64();
  }
  llvm::Optional<llvm::StringRef> numerics = o->getString("numerics");
  if (!numerics)
    return damaged("\"numerics\" is missing or not a string");
  state.Numerics = numerics->str();
  return state;
}

llvm::Expected<std::optional<Checkpoint>> CheckpointStore::latest() const {
  std::optional<Checkpoint> best;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(joinPath(NodeDir, "checkpoints"), ec), end; it != end && !ec;
       it.increment(ec)) {
    llvm::Expected<std::optional<CheckpointState>> state = readState(it->path());
    if (!state)
      return state.takeError();
    if (*state && (!best || (*state)->Step > best->State.Step))
      best = Checkpoint{it->path(), **state};
  }
  return best;
}

bool CheckpointStore::complete(uint64_t step) const {
  std::string dir = dirFor(step);
  llvm::Expected<std::optional<CheckpointState>> state = readState(dir);
  if (!state) {
    llvm::consumeError(state.takeError()); // damaged: its weights serve nothing
    return false;
  }
  return state->has_value() && llvm::sys::fs::exists(joinPath(dir, "model.safetensors"));
}
