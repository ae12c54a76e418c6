//===- state_fuzzer.cpp - libFuzzer target for a checkpoint's state.json ----===//
//
// Any input is a candidate state.json (CheckpointStore reads it before it trusts a
// checkpoint). The reader must reject bad input with an llvm::Error, never crash or recurse
// without bound; an accepted state written back and read again gives the same text.
//
//===----------------------------------------------------------------------===//
#include "mixtape/rundir/Checkpoints.h"

#include <cstdlib>

using namespace mixtape::rundir;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::StringRef text(reinterpret_cast<const char *>(data), size);
  llvm::Expected<CheckpointState> state = parseCheckpointState(text, "fuzz.state.json");
  if (!state) {
    llvm::consumeError(state.takeError());
    return 0;
  }
  std::string written = checkpointStateText(*state);
  llvm::Expected<CheckpointState> again = parseCheckpointState(written, "again.state.json");
  if (!again || checkpointStateText(*again) != written)
    abort();
  return 0;
}
