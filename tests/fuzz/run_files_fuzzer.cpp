//===- run_files_fuzzer.cpp - libFuzzer target for plan.json and metrics.jsonl -===//
//
// The first byte picks the reader, the rest is the file: plan.json (the strict plan
// reader) or metrics.jsonl (the typed record reader). Each must reject bad input with an
// llvm::Error, never crash or recurse without bound; an accepted plan writes and reads
// back to the same text.
//
//===----------------------------------------------------------------------===//
#include "mixtape/plan/PlanJSON.h"
#include "mixtape/rundir/Metrics.h"

#include <cstdlib>

using namespace mixtape;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  llvm::StringRef text(reinterpret_cast<const char *>(data) + 1, size - 1);
  if (data[0] & 1) {
    llvm::Expected<rundir::Metrics> metrics = rundir::parseMetrics(text, "fuzz.jsonl");
    if (!metrics)
      llvm::consumeError(metrics.takeError());
    return 0;
  }
  llvm::Expected<plan::Plan> plan = plan::parsePlan(text, "fuzz.plan.json");
  if (!plan) {
    llvm::consumeError(plan.takeError());
    return 0;
  }
  std::string written = plan::planText(*plan);
  llvm::Expected<plan::Plan> again = plan::parsePlan(written, "again.plan.json");
  if (!again || plan::planText(*again) != written)
    abort();
  return 0;
}
