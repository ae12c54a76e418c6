//===- Checkpoints.cpp ----------------------------------------------------===//
#include "mixtape/rundir/Checkpoints.h"

#include "JSONFile.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

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

/// The state of the checkpoint in `dir`; nullopt unless its state.json parses.
static std::optional<CheckpointState> readState(llvm::StringRef dir) {
  std::optional<llvm::json::Object> o = readJSONObject(joinPath(dir, "state.json"));
  if (!o || !o->get("step") || !o->get("step")->getAsUINT64())
    return std::nullopt;
  auto count = [&](llvm::StringRef key) {
    const llvm::json::Value *v = o->get(key);
    return v ? v->getAsUINT64().getValueOr(0) : 0;
  };
  return CheckpointState{count("step"),           count("metrics_bytes"),     o->getString("numerics").getValueOr("").str(),
                         count("skipped_steps"),  count("consecutive_skips"), count("world_size"),
                         count("micro_batch")};
}

std::optional<Checkpoint> CheckpointStore::latest() const {
  std::optional<Checkpoint> best;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(joinPath(NodeDir, "checkpoints"), ec), end; it != end && !ec;
       it.increment(ec))
    if (std::optional<CheckpointState> state = readState(it->path()))
      if (!best || state->Step > best->State.Step)
        best = Checkpoint{it->path(), *state};
  return best;
}

bool CheckpointStore::complete(uint64_t step) const {
  std::string dir = dirFor(step);
  return readState(dir).has_value() && llvm::sys::fs::exists(joinPath(dir, "model.safetensors"));
}
