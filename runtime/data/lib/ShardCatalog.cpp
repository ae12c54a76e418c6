//===- ShardCatalog.cpp ---------------------------------------------------===//
#include "mixtape/data/ShardCatalog.h"

#include "Files.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/GlobPattern.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <set>

using namespace mixtape::data;
namespace fs = llvm::sys::fs;
namespace path = llvm::sys::path;

static bool isTokenFile(llvm::StringRef file) { return file.endswith(".idx") || file.endswith(".bin"); }

llvm::Expected<std::optional<std::vector<std::string>>> mixtape::data::expandShards(llvm::StringRef shards,
                                                                                     llvm::StringRef baseDir) {
  if (shards.startswith("synth:"))
    return std::vector<std::string>{shards.str()};
  llvm::SmallString<256> full;
  if (path::is_absolute(shards))
    full = shards;
  else {
    full = baseDir;
    path::append(full, shards);
  }
  std::string pattern(full);
  size_t wild = pattern.find_first_of("*?[");
  std::set<std::string> prefixes;
  if (wild == std::string::npos && fs::is_directory(pattern)) {
    std::error_code ec;
    for (fs::directory_iterator it(pattern, ec), end; it != end && !ec; it.increment(ec))
      if (isTokenFile(it->path()))
        prefixes.insert(datasetPrefix(it->path()));
    if (ec)
      return fileError(pattern, "cannot list the directory: " + ec.message());
  } else if (wild == std::string::npos) {
    std::string prefix = datasetPrefix(pattern);
    if (fs::exists(prefix + ".manifest.json") || fs::exists(prefix + ".idx") || fs::exists(prefix + ".bin"))
      prefixes.insert(prefix);
  } else {
    llvm::Expected<llvm::GlobPattern> glob = llvm::GlobPattern::create(pattern);
    if (!glob)
      return fileError(shards, "bad glob: " + llvm::toString(glob.takeError()));
    // Walk from the last directory before the first wildcard.
    size_t slash = pattern.rfind('/', wild);
    std::string dir = slash == std::string::npos ? "." : pattern.substr(0, slash == 0 ? 1 : slash);
    bool deep = pattern.find('/', wild) != std::string::npos;
    std::error_code ec;
    auto visit = [&](const std::string &file) {
      if (isTokenFile(file) && glob->match(file))
        prefixes.insert(datasetPrefix(file));
    };
    if (fs::is_directory(dir)) {
      if (deep)
        for (fs::recursive_directory_iterator it(dir, ec), end; it != end && !ec; it.increment(ec))
          visit(it->path());
      else
        for (fs::directory_iterator it(dir, ec), end; it != end && !ec; it.increment(ec))
          visit(it->path());
      if (ec)
        return fileError(dir, "cannot list the directory: " + ec.message());
    }
  }
  if (prefixes.empty())
    return std::nullopt;
  return std::vector<std::string>(prefixes.begin(), prefixes.end());
}

llvm::Expected<DataDeclaration> mixtape::data::streamDeclaration(llvm::StringRef stream, llvm::StringRef tokenizer,
                                                                 llvm::StringRef eod, llvm::StringRef format,
                                                                 llvm::StringRef baseDir) {
  DataDeclaration declared;
  std::optional<EodMode> mode = eodModeFromName(eod);
  if (!mode)
    return fileError("stream '" + stream + "'", "eod = \"" + eod + "\" is not auto, present or append");
  declared.eod = *mode;
  if (!format.empty() && format != "auto") {
    declared.format = shardFormatFromName(format);
    if (!declared.format)
      return fileError("stream '" + stream + "'", "format = \"" + format + "\" is not auto, megatron or flat");
  }
  llvm::StringRef file = tokenizer;
  bool hf = file.consume_front("hf:");
  if (tokenizer.empty() || tokenizer == "bytes" || path::is_absolute(file)) {
    declared.tokenizer = tokenizer.str();
  } else {
    llvm::SmallString<256> full(baseDir);
    path::append(full, file);
    declared.tokenizer = (hf ? "hf:" : "") + std::string(full);
  }
  return declared;
}

std::vector<std::string> mixtape::data::streamFilters(const mixtape::StreamSpec &stream,
                                                      const mixtape::CheckedRecipe &recipe) {
  std::vector<std::string> filters;
  std::set<std::string> seen; // a derivation cycle is the linter's to report
  for (const mixtape::StreamSpec *s = &stream; s && seen.insert(s->name).second;
       s = s->parent.empty() ? nullptr : recipe.stream(s->parent))
    if (s->where)
      filters.push_back(s->where->canonical());
  std::reverse(filters.begin(), filters.end());
  return filters;
}

llvm::Expected<const StreamView *> ShardCatalog::view(const mixtape::StreamSpec &stream,
                                                      const mixtape::CheckedRecipe &recipe) {
  const mixtape::StreamSpec *root = recipe.stream(stream.root.empty() ? stream.name : stream.root);
  if (!root || root->shards.empty())
    return nullptr;
  llvm::Expected<std::optional<std::vector<std::string>>> prefixes = expandShards(root->shards, recipe.baseDir);
  if (!prefixes)
    return prefixes.takeError();
  if (!*prefixes)
    return nullptr;
  std::unique_ptr<DataSources> &sources = BySeed[recipe.seed];
  if (!sources)
    sources = std::make_unique<DataSources>(recipe.seed, CacheDir, ManifestCacheDir, Notes);
  llvm::Expected<DataDeclaration> declared = streamDeclaration(root->name, root->tokenizer, root->eod, root->format, recipe.baseDir);
  if (!declared)
    return declared.takeError();
  RootSpec spec{root->name, std::move(**prefixes), root->val, std::move(*declared)};
  return sources->view(spec, stream.name, StreamSelection{streamFilters(stream, recipe), std::nullopt});
}

llvm::Expected<std::optional<mixtape::StreamStats>> ShardCatalog::stats(const mixtape::StreamSpec &stream,
                                                                        const mixtape::CheckedRecipe &recipe) {
  llvm::Expected<const StreamView *> view = this->view(stream, recipe);
  if (!view)
    return view.takeError();
  if (!*view)
    return std::nullopt;
  const StreamView &v = **view;
  mixtape::StreamStats stats;
  stats.fingerprint = v.root().fingerprint();
  stats.trainDocuments = v.trainDocuments();
  stats.trainTokens = v.trainTokens();
  stats.valDocuments = v.valDocuments();
  stats.valTokens = v.valTokens();
  stats.vocabSize = v.root().vocabSize();
  stats.tokenizer = v.root().tokenizer();
  return stats;
}

llvm::Expected<std::optional<uint64_t>> ShardCatalog::leakedDocuments(const mixtape::StreamSpec &val,
                                                                      const mixtape::StreamSpec &train,
                                                                      const mixtape::CheckedRecipe &recipe) {
  llvm::Expected<const StreamView *> held = view(val, recipe);
  if (!held)
    return held.takeError();
  if (!*held)
    return std::nullopt;
  llvm::Expected<const StreamView *> trained = view(train, recipe);
  if (!trained)
    return trained.takeError();
  if (!*trained)
    return std::nullopt;
  const RootStream &trainRoot = (*trained)->root();
  std::vector<uint64_t> trainHashes;
  for (uint32_t d : trainRoot.trainDocuments())
    if ((*trained)->selected(d))
      trainHashes.push_back(trainRoot.documentHash(d));
  llvm::sort(trainHashes);
  const RootStream &valRoot = (*held)->root();
  uint64_t leaked = 0;
  for (uint32_t d : valRoot.valDocuments())
    if ((*held)->selected(d) && std::binary_search(trainHashes.begin(), trainHashes.end(), valRoot.documentHash(d)))
      ++leaked;
  return leaked;
}

llvm::Expected<std::optional<mixtape::ColumnGroups>>
ShardCatalog::groupBy(const mixtape::StreamSpec &stream, llvm::StringRef column, const mixtape::CheckedRecipe &recipe) {
  llvm::Expected<const StreamView *> view = this->view(stream, recipe);
  if (!view)
    return view.takeError();
  if (!*view)
    return std::nullopt;
  mixtape::ColumnGroups out;
  out.columns = (*view)->root().columns();
  out.groups = (*view)->groupBy(column);
  return out;
}
