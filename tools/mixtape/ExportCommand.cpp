//===- ExportCommand.cpp - `mixtape export` -------------------------------===//
//
// `mixtape export RUN_DIR NODE --hf DIR` writes the model a finished node left (or, with
// --checkpoint STEP, a train node's retained checkpoint, sharded or not) as a Hugging Face
// folder. The node's directory comes from RUN_DIR/plan.json, the plan the run executed.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/compiler/Quantity.h"
#include "mixtape/exec/Executor.h"
#include "mixtape/plan/PlanJSON.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/Options.h"

#include "llvm/Support/raw_ostream.h"

using namespace mixtape;

/// A size as save_pretrained's max_shard_size spells it: "5GB" (10^9 bytes), "500MiB"
/// (2^20), "100KB", or bytes; units in any case, as transformers reads them.
static std::string parseSize(llvm::StringRef text, uint64_t &bytes) {
  std::optional<uint64_t> size = parseByteSize(text);
  if (!size || *size == 0)
    return "--max-shard-size needs a size like 5GB, 500MB, 2GiB or bytes, not '" + text.str() + "'";
  bytes = *size;
  return "";
}

int mixtape::cli::exportMain(llvm::ArrayRef<llvm::StringRef> args) {
  std::vector<std::string> positional;
  std::string hfDir, dtype = "fp32";
  uint64_t checkpointStep = 0;
  exec::ExportOptions exportOptions;
  OptionParser options("mixtape export", "RUN_DIR NODE",
                       "Writes the model that NODE of the run left as the Hugging Face folder save_pretrained\n"
                       "writes: config.json, generation_config.json, the weights (model.safetensors, or shards\n"
                       "and model.safetensors.index.json) and the run's tokenizer files.");
  options.value("--hf", "DIR", hfDir, "the folder to write; it must not exist")
      .required()
      .choice("--dtype", {"fp32", "bf16"}, dtype, "the weights' dtype (default fp32)")
      .value("--max-shard-size", "SIZE",
             [&](llvm::StringRef text) { return parseSize(text, exportOptions.MaxShardBytes); },
             "weights above SIZE are sharded (default 5GB, as save_pretrained; 500MB, 2GiB, bytes)")
      .integer("--checkpoint", "STEP", checkpointStep, 1, UINT64_MAX,
               "the train node's retained checkpoint at stage step STEP instead of its final model (a sharded\n"
               "checkpoint is consolidated tensor by tensor)")
      .positional("RUN_DIR NODE", positional, 2, 2)
      .epilog("exit status: 0 written, 1 errors, 2 usage");
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  const std::string &runDir = positional[0], &node = positional[1];
  llvm::Expected<plan::Plan> plan = plan::readPlanFile(joinPath(runDir, "plan.json"));
  if (!plan) {
    llvm::errs() << "mixtape export: error: " << llvm::toString(plan.takeError()) << "\n";
    return Failure;
  }
  exportOptions.Bf16 = dtype == "bf16";
  if (checkpointStep)
    exportOptions.CheckpointStep = checkpointStep;
  if (llvm::Error e = exec::exportNode(*plan, runDir, node, hfDir, exportOptions)) {
    llvm::errs() << "mixtape export: error: " << llvm::toString(std::move(e)) << "\n";
    return Failure;
  }
  llvm::errs() << "mixtape export: " << node << " -> " << hfDir << "\n";
  return Success;
}
