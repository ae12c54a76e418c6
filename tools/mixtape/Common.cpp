//===- Common.cpp - what both executables share ---------------------------===//
#include "Commands.h"

#include "mixtape/compiler/Lower.h"
#include "mixtape/compiler/Sema.h"
#include "mixtape/compiler/Verify.h"
#include "mixtape/data/ShardCatalog.h"
#include "mixtape/plan/PlanJSON.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/Options.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

using namespace mixtape;

const char *const cli::kRunSummary = "compile a recipe and execute its plan: train, evaluate, merge";
const char *const cli::kExecSummary = "execute a compiled plan, or one node of it";
const char *const cli::kExportSummary = "write a node's model as a Hugging Face folder";
const char *const cli::kMergeSummary = "merge safetensors files: linear, slerp, task_arithmetic, ties, dare_*";

std::string cli::defaultRunDir(llvm::StringRef recipeName) {
  std::string safe;
  for (char c : recipeName)
    safe += llvm::isAlnum(c) || c == '-' || c == '_' || c == '.' ? c : '_';
  if (safe.empty() || llvm::StringRef(safe).startswith("."))
    safe = "_" + safe;
  return "runs/" + safe;
}

std::optional<plan::Plan> cli::compileRecipe(llvm::StringRef recipePath, std::string &runDir, const plan::Cost &cost,
                                             const PlanOverrides &overrides, plan::Cluster *cluster,
                                             bool *verified) {
  llvm::SourceMgr sources;
  DiagnosticEngine diags(sources);
  auto report = [&] {
    if (!verified)
      diags.print(llvm::errs(), useColor(llvm::errs(), std::nullopt));
    else if (sources.getNumBuffers())
      *verified = verifyDiagnostics(diags, sources.getNumBuffers(), llvm::errs());
    else
      diags.print(llvm::errs(), false); // unreadable: nothing to verify against
  };
  // The data layer, opened on first use: checking a stage whose length is in epochs reads
  // the streams' sizes; the catalog's caches live in the run directory (made absolute: the
  // plan records them).
  std::optional<data::ShardCatalog> catalog;
  auto openCatalog = [&](llvm::StringRef recipeName) -> data::ShardCatalog & {
    if (!catalog) {
      if (runDir.empty())
        runDir = defaultRunDir(recipeName);
      llvm::SmallString<256> cache(joinPath(runDir, "cache"));
      llvm::sys::fs::make_absolute(cache);
      catalog.emplace(std::string(cache), data::defaultManifestCacheDir(cache), &llvm::errs());
    }
    return *catalog;
  };
  StreamSizer sizer = [&](const CheckedRecipe &r) { return lowerStreamSizes(r, openCatalog(r.Name), diags); };
  std::unique_ptr<CheckedRecipe> recipe = loadRecipe(recipePath, diags, sizer);
  if (!recipe) {
    report();
    return std::nullopt;
  }
  ResourcesSpec &r = recipe->Resources;
  r.Gpus = overrides.Gpus ? overrides.Gpus : r.Gpus;
  r.GpuMemory = overrides.GpuMemory ? static_cast<double>(overrides.GpuMemory) : r.GpuMemory;
  r.InterconnectGbps = overrides.InterconnectGbps ? overrides.InterconnectGbps : r.InterconnectGbps;
  if (overrides.Shard)
    for (StageSpec &stage : recipe->Stages)
      for (StageVariant &v : stage.Variants)
        v.Shard = overrides.Shard;
  if (cluster)
    *cluster = r.Gpus && r.GpuMemory ? plan::Cluster{r.Gpus, r.GpuMemory, r.InterconnectGbps} : plan::Cluster{};
  std::optional<plan::Plan> plan = lowerToPlan(*recipe, openCatalog(recipe->Name), cost, diags);
  report();
  return plan;
}

bool cli::writePlan(llvm::StringRef command, const plan::Plan &plan, llvm::StringRef path) {
  llvm::StringRef parent = llvm::sys::path::parent_path(path);
  if (!parent.empty())
    if (std::error_code ec = llvm::sys::fs::create_directories(parent)) {
      llvm::errs() << command << ": " << parent << ": " << ec.message() << "\n";
      return false;
    }
  // Streamed: a 10,000-variant sweep's plan is tens of megabytes.
  llvm::Expected<DurableFile> file = DurableFile::create(path);
  llvm::Error e = file.takeError();
  if (!e) {
    plan::writePlan(plan, file->os());
    e = file->commit();
  }
  if (e) {
    llvm::errs() << command << ": " << llvm::toString(std::move(e)) << "\n";
    return false;
  }
  return true;
}

cli::Captured cli::runCapturing(llvm::StringRef program, llvm::ArrayRef<std::string> args, bool quietErrors) {
  Captured c;
  llvm::SmallString<128> outFile;
  if (std::error_code ec = llvm::sys::fs::createTemporaryFile("mixtape-child", "out", outFile)) {
    c.Message = "cannot create a temporary file: " + ec.message();
    return c;
  }
  std::vector<llvm::StringRef> argv{program};
  argv.insert(argv.end(), args.begin(), args.end());
  const llvm::Optional<llvm::StringRef> discard = llvm::StringRef(""), ours = llvm::None;
  const llvm::Optional<llvm::StringRef> redirects[] = {discard, llvm::StringRef(outFile), quietErrors ? discard : ours};
  c.Status = llvm::sys::ExecuteAndWait(program, argv, llvm::None, redirects, 0, 0, &c.Message);
  if (auto text = llvm::MemoryBuffer::getFile(outFile))
    c.Out = (*text)->getBuffer().str();
  llvm::sys::fs::remove(outFile);
  return c;
}
