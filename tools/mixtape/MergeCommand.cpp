//===- MergeCommand.cpp - `mixtape merge` ---------------------------------===//
//
// A merge of safetensors files outside any recipe, with the methods (and code) of a plan's
// merge nodes. The merged file takes the base's metadata, else the first model's; when
// that model's folder has a config.json and the output's folder has none, it is copied
// there, so merging Hugging Face folders gives a loadable folder.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/merge/Merge.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/Options.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

using namespace mixtape;

namespace {

/// config.json next to the model the merged config comes from, copied next to `out` when
/// there is none yet.
void copyConfig(llvm::StringRef from, llvm::StringRef out) {
  llvm::StringRef fromDir = llvm::sys::path::parent_path(from), outDir = llvm::sys::path::parent_path(out);
  std::string source = joinPath(fromDir.empty() ? "." : fromDir, "config.json"),
              target = joinPath(outDir.empty() ? "." : outDir, "config.json");
  if (!llvm::sys::fs::exists(source) || llvm::sys::fs::exists(target))
    return;
  if (std::error_code ec = llvm::sys::fs::copy_file(source, target))
    llvm::errs() << "mixtape merge: warning: cannot copy " << source << " to " << target << ": " << ec.message()
                 << "\n";
  else
    llvm::outs() << "config: " << target << " (from " << source << ")\n";
}

} // namespace

int mixtape::cli::mergeMain(llvm::ArrayRef<llvm::StringRef> args) {
  merge::MergeOptions settings;
  std::string method, baseFile, out;
  std::vector<std::string> models;
  bool normalize = false, noNormalize = false;
  OptionParser options("mixtape merge", "IN.safetensors...",
                       "Merges safetensors files tensor by tensor (memory: about one tensor per input). The output\n"
                       "keeps the first model's tensor names, order and dtypes, and takes the base's metadata and\n"
                       "config.json, else the first model's.");
  std::vector<llvm::StringRef> methods;
  for (const char *name : plan::EnumNames<plan::MergeMethod>::Names)
    methods.push_back(name);
  options.choice("--method", methods, method,
                 "slerp merges two models (t from the first to the second); task_arithmetic, ties and dare_* need "
                 "--base; ties and dare_* --density")
      .required()
      .value("--weights", "W1,W2,...",
             [&](llvm::StringRef list) -> std::string {
               llvm::SmallVector<llvm::StringRef, 8> parts;
               list.split(parts, ',');
               for (llvm::StringRef p : parts) {
                 double w;
                 if (p.trim().getAsDouble(w))
                   return "--weights: '" + p.str() + "' is not a number";
                 settings.Weights.push_back(w);
               }
               return "";
             },
             "one weight per model (default 1 each)")
      .flag("--normalize", normalize,
            "divide by the sum of the weights (the default of linear and ties, as in MergeKit; not slerp)")
      .flag("--no-normalize", noNormalize, "do not divide by the sum of the weights")
      .number("--density", "D", settings.Density, "ties, dare_*: the fraction of each task vector kept")
      .number("--t", "T", settings.T, "slerp: where between the two models (default 0.5)")
      .integer("--seed", "S", settings.Seed, 0, UINT64_MAX, "dare_*: the seed of the drop mask")
      .value("--base", "BASE.safetensors", baseFile, "the base model task vectors are taken from")
      .value("--out", "OUT.safetensors", out, "the merged file")
      .required()
      .positional("IN.safetensors...", models, 1, OptionParser::Unlimited)
      .epilog("exit status: 0 merged, 1 errors, 2 usage");
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  settings.Method = *plan::enumFromName<plan::MergeMethod>(method);
  if (normalize && noNormalize)
    return options.usageError("--normalize and --no-normalize contradict each other");
  if ((normalize || noNormalize) && settings.Method == plan::MergeMethod::Slerp)
    return options.usageError("slerp has no weights: --normalize and --no-normalize do not apply");
  if (normalize || noNormalize)
    settings.Normalize = normalize;
  std::optional<std::string> base;
  if (!baseFile.empty())
    base = baseFile;
  if (llvm::Error e = merge::mergeFiles(settings, models, base, out)) {
    llvm::errs() << "mixtape merge: error: " << llvm::toString(std::move(e)) << "\n";
    return Failure;
  }
  llvm::outs() << "merged " << models.size() << " model" << (models.size() == 1 ? "" : "s") << " ("
               << method << (base ? ", base " + *base : std::string()) << ") into " << out
               << "\n";
  copyConfig(base ? *base : models.front(), out);
  return Success;
}
