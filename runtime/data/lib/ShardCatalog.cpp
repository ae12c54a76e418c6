//===- ShardCatalog.cpp ---------------------------------------------------===//
#include "mixtape/data/ShardCatalog.h"
#include "mixtape/data/Tasks.h"

#include "mixtape/data/BpeTokenizer.h"
#include "mixtape/data/Dataset.h"
#include "mixtape/data/Verify.h"
#include "mixtape/model/Checkpoint.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/GlobPattern.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <set>

using namespace mixtape;
using namespace mixtape::data;
namespace fs = llvm::sys::fs;
namespace path = llvm::sys::path;

static bool isTokenFile(llvm::StringRef file) { return file.endswith(".idx") || file.endswith(".bin"); }

llvm::Expected<std::optional<std::vector<std::string>>> mixtape::data::expandShards(llvm::StringRef shards,
                                                                                     llvm::StringRef baseDir) {
  if (shards.startswith("synth:"))
    return std::vector<std::string>{shards.str()};
  std::string pattern = path::is_absolute(shards) ? shards.str() : joinPath(baseDir, shards);
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

/// What root stream `root` declares of its datasets, tokenizer paths resolved against
/// `baseDir`.
static DataDeclaration declaration(const plan::Stream &root, llvm::StringRef baseDir) {
  DataDeclaration declared;
  declared.Eod = root.Eod;
  if (root.Format == plan::ShardFormat::Megatron)
    declared.Format = ShardFormat::Megatron;
  else if (root.Format == plan::ShardFormat::Flat)
    declared.Format = ShardFormat::Flat;
  declared.Tokenizer = resolveTokenizerName(root.Tokenizer.value_or(""), baseDir);
  return declared;
}

llvm::Expected<std::optional<NodeStream>> mixtape::data::nodeStream(const plan::Plan &plan, llvm::StringRef name,
                                                                    uint64_t cursor) {
  auto stream = plan.Streams.find(name.str());
  if (stream == plan.Streams.end())
    return makeError("the plan has no stream '" + name + "'");
  const plan::Stream &s = stream->second;
  NodeStream out;
  out.Name = name.str();
  out.Cursor = cursor;
  // A derived stream's filters are its own and its ancestors', root first.
  std::set<std::string> visited{name.str()}; // a hand-made plan may hold a cycle
  for (const plan::Stream *at = &s;;) {
    if (at->Where)
      out.Selection.Where.insert(out.Selection.Where.begin(), *at->Where);
    auto parent = at->From ? plan.Streams.find(*at->From) : plan.Streams.end();
    if (parent == plan.Streams.end() || !visited.insert(parent->first).second)
      break;
    at = &parent->second;
  }
  if (const std::optional<plan::AblationUnit> &unit = s.Unit) {
    AblationUnit u;
    u.Units = unit->Count.value_or(0);
    u.Index = unit->Index.value_or(0);
    u.By = unit->By.value_or("");
    u.Value = unit->Value.value_or(plan::ColumnValue());
    out.Selection.Unit = u;
  }
  if (s.Transform) {
    if (s.Transform->UntieKnots.has_value() == s.Transform->ControlTokens.has_value())
      return makeError("stream '" + name + "': its transform needs exactly one of untie_knots and control_tokens");
    out.Transform = s.Transform->UntieKnots;
    out.Selection.Control = s.Transform->ControlTokens;
  }
  const plan::Stream &root = plan.Streams.at(s.Root);
  llvm::Expected<std::optional<std::vector<std::string>>> prefixes = expandShards(root.Shards, plan.RecipeDir);
  if (!prefixes)
    return prefixes.takeError();
  if (!*prefixes)
    return std::nullopt;
  out.Root = RootSpec{s.Root, std::move(**prefixes), root.Val, declaration(root, plan.RecipeDir),
                      root.Fingerprint.value_or("")};
  return std::optional<NodeStream>(std::move(out));
}

llvm::Expected<const StreamView *> ShardCatalog::view(const plan::Plan &plan, llvm::StringRef name) {
  llvm::Expected<std::optional<NodeStream>> stream = nodeStream(plan, name);
  if (!stream)
    return stream.takeError();
  if (!*stream)
    return nullptr;
  std::unique_ptr<DataSources> &sources = BySeed[plan.Seed];
  if (!sources)
    sources = std::make_unique<DataSources>(plan.Seed, CacheDir, ManifestCacheDir, Notes);
  // Planning views a stream as a whole: its ablation units are counted by groupBy.
  return sources->view((*stream)->Root, name,
                       StreamSelection{(*stream)->Selection.Where, std::nullopt, (*stream)->Selection.Control});
}

llvm::Expected<std::optional<plan::StreamStats>> ShardCatalog::streamStats(const plan::Plan &plan,
                                                                           llvm::StringRef name) {
  llvm::Expected<const StreamView *> view = this->view(plan, name);
  if (!view)
    return view.takeError();
  if (!*view)
    return std::nullopt;
  const StreamView &v = **view;
  plan::StreamStats stats;
  stats.Fingerprint = v.root().fingerprint();
  stats.TrainDocuments = v.trainDocuments();
  stats.TrainTokens = v.trainTokens();
  stats.ValDocuments = v.valDocuments();
  stats.ValTokens = v.valTokens();
  stats.VocabSize = v.root().vocabSize();
  stats.Tokenizer = v.root().tokenizer();
  stats.Columns = v.root().columns();
  return stats;
}

llvm::Expected<std::optional<uint64_t>> ShardCatalog::leakedDocuments(const plan::Plan &plan, llvm::StringRef val,
                                                                      llvm::StringRef train) {
  llvm::Expected<const StreamView *> held = view(plan, val);
  if (!held)
    return held.takeError();
  if (!*held)
    return std::nullopt;
  llvm::Expected<const StreamView *> trained = view(plan, train);
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

llvm::Expected<std::optional<plan::SharedDocuments>>
ShardCatalog::sharedDocuments(const plan::Plan &plan, llvm::StringRef name, llvm::ArrayRef<std::string> others) {
  std::vector<uint64_t> seen;
  for (const std::string &other : others) {
    llvm::Expected<const StreamView *> view = this->view(plan, other);
    if (!view)
      return view.takeError();
    if (!*view)
      return std::nullopt;
    const RootStream &root = (*view)->root();
    for (uint32_t d : root.trainDocuments())
      if ((*view)->selected(d))
        seen.push_back(root.documentHash(d));
  }
  llvm::sort(seen);
  llvm::Expected<const StreamView *> view = this->view(plan, name);
  if (!view)
    return view.takeError();
  if (!*view)
    return std::nullopt;
  const RootStream &root = (*view)->root();
  plan::SharedDocuments shared;
  for (uint32_t d : root.trainDocuments())
    if ((*view)->selected(d) && std::binary_search(seen.begin(), seen.end(), root.documentHash(d))) {
      ++shared.Documents;
      shared.Tokens += (*view)->documentTokens(d);
    }
  return shared;
}

llvm::Expected<std::optional<plan::ColumnGroups>> ShardCatalog::groupBy(const plan::Plan &plan, llvm::StringRef name,
                                                                       llvm::StringRef column) {
  llvm::Expected<const StreamView *> view = this->view(plan, name);
  if (!view)
    return view.takeError();
  if (!*view)
    return std::nullopt;
  plan::ColumnGroups out;
  out.Columns = (*view)->root().columns();
  out.Groups = (*view)->groupBy(column);
  return out;
}

llvm::Expected<std::optional<plan::CheckpointInfo>> mixtape::data::inspectCheckpoint(llvm::StringRef folder,
                                                                                     DataVerifier &verifier) {
  return model::inspectCheckpoint(folder, [&](llvm::StringRef path) { return verifier.checksum(path); });
}

llvm::Expected<std::optional<plan::CheckpointInfo>> ShardCatalog::checkpoint(llvm::StringRef folder) {
  DataVerifier checksums({VerifyMode::Cached, ManifestCacheDir.empty() ? "" : verificationCacheFile(ManifestCacheDir)},
                         Notes);
  return inspectCheckpoint(folder, checksums);
}

llvm::Expected<std::optional<uint64_t>> ShardCatalog::tokenizerVocabulary(llvm::StringRef file) {
  if (!llvm::sys::fs::exists(file))
    return std::nullopt;
  llvm::Expected<uint64_t> vocabulary = BpeTokenizer::vocabularySize(file);
  if (!vocabulary)
    return vocabulary.takeError();
  return std::optional<uint64_t>(*vocabulary);
}

llvm::Expected<std::optional<std::vector<std::string>>> ShardCatalog::tokenizerTokens(llvm::StringRef file) {
  if (!llvm::sys::fs::exists(file))
    return std::nullopt;
  llvm::Expected<std::vector<std::string>> tokens = BpeTokenizer::vocabularyTokens(file);
  if (!tokens)
    return tokens.takeError();
  return std::optional<std::vector<std::string>>(std::move(*tokens));
}

namespace {
/// A task's files and the plan's tokenizer.
struct OpenedTask {
  TaskFiles Files;
  std::unique_ptr<Tokenizer> Tokens;
};
} // namespace

/// nullopt when the task's item file is absent.
static llvm::Expected<std::optional<OpenedTask>> openTask(const plan::Plan &plan, const plan::Task &task) {
  if (!llvm::sys::fs::exists(plan::resolvePath(plan.RecipeDir, task.Path)))
    return std::nullopt;
  llvm::Expected<TaskFiles> files = readTaskFiles(task, plan.RecipeDir);
  if (!files)
    return files.takeError();
  llvm::Expected<std::unique_ptr<Tokenizer>> tokenizer = modelTokenizer(plan);
  if (!tokenizer)
    return tokenizer.takeError();
  return std::optional<OpenedTask>(OpenedTask{std::move(*files), std::move(*tokenizer)});
}

llvm::Expected<std::optional<plan::TaskStats>> ShardCatalog::taskStats(const plan::Plan &plan, const plan::Task &task) {
  llvm::Expected<std::optional<OpenedTask>> opened = openTask(plan, task);
  if (!opened)
    return opened.takeError();
  if (!*opened)
    return std::nullopt;
  llvm::Expected<std::string> fingerprint = taskFingerprint(task, plan.RecipeDir);
  if (!fingerprint)
    return fingerprint.takeError();
  plan::TaskStats stats;
  stats.Fingerprint = std::move(*fingerprint);
  stats.Items = (*opened)->Files.Items.size();
  stats.Tokens = taskTokens(task, (*opened)->Files, *(*opened)->Tokens, plan.Model.MaxPositions);
  return std::optional<plan::TaskStats>(std::move(stats));
}

llvm::Expected<std::optional<uint64_t>> ShardCatalog::taskLeakage(const plan::Plan &plan, const plan::Task &task,
                                                                  llvm::StringRef train) {
  llvm::Expected<const StreamView *> trained = view(plan, train);
  if (!trained)
    return trained.takeError();
  llvm::Expected<std::optional<OpenedTask>> opened = openTask(plan, task);
  if (!opened)
    return opened.takeError();
  if (!*trained || !*opened)
    return std::nullopt;
  const RootStream &root = (*trained)->root();
  std::vector<uint64_t> hashes;
  for (uint32_t d : root.trainDocuments())
    if ((*trained)->selected(d))
      hashes.push_back(root.documentHash(d));
  llvm::sort(hashes);
  auto isTrained = [&](const std::string &text) {
    return std::binary_search(hashes.begin(), hashes.end(), documentHash((*opened)->Tokens->encode(text)));
  };
  uint64_t leaked = 0;
  for (const TaskItem &item : (*opened)->Files.Items)
    leaked += isTrained(item.Context) || isTrained(item.Context + task.TargetDelimiter + item.target());
  return std::optional<uint64_t>(leaked);
}
