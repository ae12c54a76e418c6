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

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

using namespace mixtape;

namespace {

const char *Usage =
    "usage: mixtape merge --method M [--weights W1,W2,...] [--no-normalize] [--density D] [--t T]\n"
    "                     [--seed S] [--base BASE.safetensors] --out OUT.safetensors IN1.safetensors IN2...\n"
    "  merge safetensors files tensor by tensor (memory: about one tensor per input)\n"
    "  methods: linear, slerp (two models, t from the first to the second), task_arithmetic,\n"
    "           ties, dare_linear, dare_ties (the last four need --base; ties and dare_* --density)\n"
    "  the output keeps the first model's tensor names, order and dtypes, and takes the base's\n"
    "  metadata and config.json, else the first model's\n";

int usageError(const llvm::Twine &what) {
  llvm::errs() << "mixtape merge: " << what << "\n" << Usage;
  return cli::Usage;
}

/// config.json next to the model the merged config comes from, copied next to `out` when
/// there is none yet.
void copyConfig(llvm::StringRef from, llvm::StringRef out) {
  llvm::SmallString<256> source = llvm::sys::path::parent_path(from), target = llvm::sys::path::parent_path(out);
  if (source.empty())
    source = ".";
  if (target.empty())
    target = ".";
  llvm::sys::path::append(source, "config.json");
  llvm::sys::path::append(target, "config.json");
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
  merge::MergeOptions options;
  std::optional<std::string> base;
  std::string out;
  std::vector<std::string> models;
  bool haveMethod = false;
  for (size_t i = 0; i < args.size(); ++i) {
    llvm::StringRef a = args[i];
    if (a == "--help" || a == "-h") {
      llvm::outs() << Usage;
      return Success;
    }
    if (a == "--no-normalize") {
      options.normalize = false;
      continue;
    }
    bool takesValue = a == "--method" || a == "--weights" || a == "--density" || a == "--t" || a == "--seed" ||
                      a == "--base" || a == "--out";
    if (takesValue && i + 1 == args.size())
      return usageError("'" + a + "' needs a value");
    if (!takesValue && a.startswith("-"))
      return usageError("unknown option '" + a + "'");
    if (!takesValue) {
      models.push_back(a.str());
      continue;
    }
    llvm::StringRef v = args[++i];
    if (a == "--method") {
      std::optional<merge::Method> m = merge::methodFromName(v);
      if (!m)
        return usageError("unknown method '" + v + "'");
      options.method = *m;
      haveMethod = true;
    } else if (a == "--weights") {
      llvm::SmallVector<llvm::StringRef, 8> parts;
      v.split(parts, ',');
      for (llvm::StringRef p : parts) {
        double w;
        if (p.trim().getAsDouble(w))
          return usageError("--weights: '" + p + "' is not a number");
        options.weights.push_back(w);
      }
    } else if (a == "--density" || a == "--t") {
      double x;
      if (v.getAsDouble(x))
        return usageError(a + ": '" + v + "' is not a number");
      (a == "--density" ? options.density : options.t) = x;
    } else if (a == "--seed") {
      if (v.getAsInteger(10, options.seed))
        return usageError("--seed: '" + v + "' is not a non-negative integer");
    } else if (a == "--base") {
      base = v.str();
    } else {
      out = v.str();
    }
  }
  if (!haveMethod)
    return usageError("--method is required");
  if (out.empty())
    return usageError("--out is required");
  if (models.empty())
    return usageError("no models to merge");
  if (llvm::Error e = merge::mergeFiles(options, models, base, out)) {
    llvm::errs() << "mixtape merge: error: " << llvm::toString(std::move(e)) << "\n";
    return Failure;
  }
  llvm::outs() << "merged " << models.size() << " model" << (models.size() == 1 ? "" : "s") << " ("
               << merge::methodName(options.method) << (base ? ", base " + *base : std::string()) << ") into " << out
               << "\n";
  copyConfig(base ? *base : models.front(), out);
  return Success;
}
