//===- Executor.cpp - nodes in order, done markers, skips -----------------===//
#include "mixtape/exec/Executor.h"

#include "ExecContext.h"

#include "mixtape/compiler/Plan.h"
#include "mixtape/data/ShardCatalog.h"
#include "mixtape/dist/Collectives.h"
#include "mixtape/train/Numerics.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

using namespace mixtape;
using namespace mixtape::exec;
using llvm::json::Object;

static llvm::Error planError(const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), what);
}

llvm::Expected<data::NodeStream> ExecContext::stream(llvm::StringRef name, uint64_t cursor) const {
  const Object *streams = plan->getObject("streams");
  const Object *s = streams ? streams->getObject(name) : nullptr;
  if (!s)
    return planError("the plan has no stream '" + name + "'");
  data::NodeStream out;
  out.name = name.str();
  out.cursor = cursor;
  // A derived stream's filters are its own and its ancestors', root first.
  std::vector<std::string> filters;
  const Object *at = s;
  for (unsigned depth = 0; at && depth < 64; ++depth) {
    if (auto where = at->getString("where"))
      filters.insert(filters.begin(), where->str());
    auto from = at->getString("from");
    at = from ? streams->getObject(*from) : nullptr;
  }
  out.selection.where = std::move(filters);
  if (const Object *unit = s->getObject("unit")) {
    data::AblationUnit u;
    u.units = static_cast<uint64_t>(unit->getInteger("count").getValueOr(0));
    u.index = static_cast<uint64_t>(unit->getInteger("index").getValueOr(0));
    u.by = unit->getString("by").getValueOr("").str();
    const llvm::json::Value *value = unit->get("value");
    if (u.units == 0 && (u.by.empty() || !value))
      return planError("stream '" + name + "': a unit needs a count and an index, or a column and a value");
    if (!u.units) {
      if (auto number = value->getAsNumber())
        u.value = ColumnValue{MetadataValue::Kind::Number, *number, {}};
      else if (auto string = value->getAsString())
        u.value = ColumnValue{MetadataValue::Kind::String, 0, string->str()};
      else if (value->kind() != llvm::json::Value::Null)
        return planError("stream '" + name + "': a unit's value is a number, a string or null (missing)");
    }
    out.selection.unit = u;
  }
  if (const Object *transform = s->getObject("transform"))
    if (const Object *utk = transform->getObject("untie_knots")) {
      UntieKnots t;
      t.keepOrder = utk->getBoolean("keep_order").getValueOr(false);
      if (const Object *chunks = utk->getObject("chunks"))
        for (const auto &kv : *chunks) {
          uint64_t count = 0;
          if (llvm::StringRef(kv.first).getAsInteger(10, count) || !kv.second.getAsNumber())
            return planError("stream '" + name + "': malformed untie_knots chunks");
          t.chunkProbabilities.emplace_back(count, *kv.second.getAsNumber());
        }
      llvm::sort(t.chunkProbabilities);
      out.transform = t;
    }
  auto rootName = s->getString("root");
  const Object *root = rootName ? streams->getObject(*rootName) : nullptr;
  auto shards = root ? root->getString("shards") : llvm::None;
  if (!shards)
    return planError("stream '" + name + "': its root has no shards");
  llvm::Expected<std::optional<std::vector<std::string>>> prefixes = data::expandShards(*shards, recipeDir);
  if (!prefixes)
    return prefixes.takeError();
  if (!*prefixes)
    return planError("stream '" + name + "': no data at '" + *shards + "' (relative to " + recipeDir + ")");
  llvm::Expected<data::DataDeclaration> declared =
      data::streamDeclaration(*rootName, root->getString("tokenizer").getValueOr(""),
                              root->getString("eod").getValueOr("auto"),
                              root->getString("format").getValueOr("auto"), recipeDir);
  if (!declared)
    return declared.takeError();
  out.root = data::RootSpec{rootName->str(), std::move(**prefixes), root->getNumber("val").getValueOr(0),
                            std::move(*declared), root->getString("fingerprint").getValueOr("").str()};
  return out;
}

static llvm::Expected<std::vector<ExecNode>> readNodes(const Object &plan) {
  const llvm::json::Array *nodes = plan.getArray("nodes");
  if (!nodes)
    return planError("malformed plan: no nodes");
  std::vector<ExecNode> out;
  std::map<std::string, size_t> byName;
  for (const llvm::json::Value &v : *nodes) {
    const Object *o = v.getAsObject();
    ExecNode n;
    if (!o || !o->getString("name") || !o->getString("kind") || !o->getString("dir") || !o->getString("hash") ||
        !o->getObject("settings") || !o->getArray("inputs"))
      return planError("malformed plan: node " + llvm::Twine(out.size()) + " lacks name, kind, dir, hash, settings or inputs");
    n.name = o->getString("name")->str();
    if (byName.count(n.name))
      return planError("malformed plan: two nodes are named '" + n.name + "'");
    n.kind = o->getString("kind")->str();
    n.dir = o->getString("dir")->str();
    n.hash = o->getString("hash")->str();
    n.entry = o;
    n.settings = o->getObject("settings");
    n.exec = o->getObject("exec");
    static const Object empty;
    if (!n.exec)
      n.exec = &empty;
    if (n.dir.empty() || n.dir == "." || n.dir == ".." || n.dir.find('/') != std::string::npos)
      return planError("malformed plan: node '" + n.name + "' has a directory outside the run directory");
    for (const llvm::json::Value &in : *o->getArray("inputs")) {
      auto name = in.getAsString();
      if (!name || !byName.count(name->str()))
        return planError("malformed plan: node '" + n.name + "' reads a node that does not come before it");
      n.inputs.push_back(byName[name->str()]);
    }
    byName[n.name] = out.size();
    out.push_back(std::move(n));
  }
  return out;
}

/// LibTorch reports failures as exceptions (c10::Error): they become errors here, at the
/// node boundary, without LibTorch's C++ backtrace.
static llvm::Error catchTorchErrors(llvm::function_ref<llvm::Error()> work) {
  try {
    return work();
  } catch (const std::exception &e) {
    return planError(dist::firstLines(e));
  }
}

/// Init and merge nodes are rank 0's alone; train and eval nodes share their work among the ranks.
static bool rankZeroAloneRuns(const ExecNode &n) { return n.kind == "init" || n.kind == "merge"; }

static llvm::Error runNode(ExecContext &ctx, const ExecNode &n) {
  return catchTorchErrors([&] {
    return n.kind == "init"    ? runInit(ctx, n)
           : n.kind == "train" ? runTrain(ctx, n)
           : n.kind == "eval"  ? runEval(ctx, n)
           : n.kind == "merge" ? runMerge(ctx, n)
                               : planError("unknown node kind '" + n.kind + "'");
  });
}

/// Whether rank 0 finds `mine` true (a node done, say); a rank that died surfaces here.
static llvm::Expected<bool> rankZeroSays(ExecContext &ctx, bool mine) {
  try {
    return ctx.collectives->broadcastValue(mine) != 0;
  } catch (const std::exception &e) {
    return planError(e.what());
  }
}

llvm::Error mixtape::exec::executePlan(const Object &plan, const ExecOptions &options) {
  if (plan.getString("format") != llvm::StringRef("mixtape-plan") || plan.getInteger("version") != kPlanFormatVersion)
    return planError(llvm::formatv("not a Mixtape plan of format version {0}", kPlanFormatVersion).str());
  if (plan.getBoolean("provisional").getValueOr(true)) {
    std::string reasons;
    if (const llvm::json::Array *list = plan.getArray("provisional_reasons"))
      for (const llvm::json::Value &r : *list)
        reasons += "\n  - " + r.getAsString().getValueOr("").str();
    return planError("the plan is provisional (made without its data); plan again once the data is there:" + reasons);
  }
  ExecContext ctx;
  ctx.plan = &plan;
  ctx.runDir = options.runDir;
  ctx.recipeDir = plan.getString("recipe_dir").getValueOr(".").str();
  ctx.seed = static_cast<uint64_t>(plan.getInteger("seed").getValueOr(0));
  llvm::Expected<c10::Device> device = train::resolveDevice(options.device);
  if (!device)
    return device.takeError();
  // One GPU per rank: a worker trains on the GPU of its local rank (NCCL needs its own).
  ctx.device = *device;
  if (device->is_cuda() && options.world.size > 1) {
    if (llvm::StringRef(options.device).startswith("cuda:"))
      return planError("--device " + options.device + " names one GPU, but each of the " +
                       llvm::Twine(options.world.size) + " ranks trains on the GPU of its local rank: use --device cuda");
    ctx.device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(options.world.localRank));
  }
  llvm::Expected<std::unique_ptr<dist::Collectives>> collectives = dist::connect(
      options.world, ctx.device.is_cuda() ? dist::Device::CUDA : dist::Device::CPU, options.timeout);
  if (!collectives)
    return collectives.takeError();
  ctx.collectives = collectives->get();
  ctx.writesFiles = options.world.rank == 0;
  ctx.zero1 = options.zero1;
  ctx.progress = options.progress && ctx.writesFiles;
  llvm::Expected<std::vector<ExecNode>> nodes = readNodes(plan);
  if (!nodes)
    return nodes.takeError();
  ctx.nodes = std::move(*nodes);
  for (const std::string &want : options.nodes)
    if (llvm::none_of(ctx.nodes, [&](const ExecNode &n) { return n.name == want; }))
      return planError("the plan has no node '" + want + "'");
  if (std::error_code ec = llvm::sys::fs::create_directories(ctx.runDir))
    return planError(ctx.runDir + ": cannot create the run directory: " + ec.message());
  std::string cache = joinPath(ctx.runDir, "cache");
  ctx.sources = std::make_unique<data::DataSources>(ctx.seed, cache, data::defaultManifestCacheDir(cache),
                                                    ctx.progress ? &llvm::errs() : nullptr);
  train::configureThreads();

  auto done = [&](const ExecNode &n) { return llvm::sys::fs::exists(joinPath(ctx.nodeDir(n), "DONE")); };
  for (const ExecNode &n : ctx.nodes) {
    if (!options.nodes.empty() && !llvm::is_contained(options.nodes, n.name))
      continue;
    // Rank 0's view of the run directory decides for every rank.
    llvm::Expected<bool> isDone = rankZeroSays(ctx, done(n));
    if (!isDone)
      return isDone.takeError();
    auto nodeError = [&](llvm::Error e) {
      return llvm::createStringError(llvm::inconvertibleErrorCode(), "node '" + n.name + "': " + llvm::toString(std::move(e)));
    };
    // In-loop eval points are not hashed: a done node's new ones come from what it retained.
    auto serveEvals = [&] { return catchTorchErrors([&] { return serveDuringEvals(ctx, n); }); };
    if (*isDone) {
      if (ctx.progress)
        llvm::errs() << llvm::formatv("[{0}] done, skipped ({1})\n", n.name, llvm::StringRef(n.hash).take_front(12));
      if (llvm::Error e = serveEvals())
        return nodeError(std::move(e));
      continue;
    }
    for (size_t in : n.inputs)
      if (!done(ctx.nodes[in]))
        return planError("node '" + n.name + "' needs '" + ctx.nodes[in].name + "', which is not done");
    std::string dir = ctx.nodeDir(n);
    if (std::error_code ec = llvm::sys::fs::create_directories(dir))
      return planError(dir + ": cannot create: " + ec.message());
    if (ctx.writesFiles)
      if (llvm::Error e = writeFileDurably(joinPath(dir, "node.json"),
                                          llvm::formatv("{0:2}\n", llvm::json::Value(Object(*n.entry))).str()))
        return e;
    if (!rankZeroAloneRuns(n))
      if (llvm::Error e = runNode(ctx, n))
        return nodeError(std::move(e));
    // Every rank waits here, however long it takes, until rank 0's files of the node are
    // written; the done marker comes last, after the outputs are durable.
    if (llvm::Error e = ctx.collectives->rankZeroAlone("finishing the node", [&]() -> llvm::Error {
          if (rankZeroAloneRuns(n))
            if (llvm::Error e = runNode(ctx, n))
              return e;
          return writeFileDurably(joinPath(dir, "DONE"), n.hash + "\n");
        }))
      return nodeError(std::move(e));
    // A resumed node whose earlier points changed.
    if (llvm::Error e = serveEvals())
      return nodeError(std::move(e));
  }
  return llvm::Error::success();
}

llvm::Error mixtape::exec::exportNode(const Object &plan, llvm::StringRef runDir, llvm::StringRef node,
                                      llvm::StringRef outDir) {
  ExecContext ctx;
  ctx.plan = &plan;
  ctx.runDir = runDir.str();
  ctx.recipeDir = plan.getString("recipe_dir").getValueOr(".").str();
  ctx.seed = static_cast<uint64_t>(plan.getInteger("seed").getValueOr(0));
  llvm::Expected<std::vector<ExecNode>> nodes = readNodes(plan);
  if (!nodes)
    return nodes.takeError();
  ctx.nodes = std::move(*nodes);
  auto it = llvm::find_if(ctx.nodes, [&](const ExecNode &n) { return n.name == node; });
  if (it == ctx.nodes.end())
    return planError("the plan has no node '" + node + "'");
  if (!llvm::sys::fs::exists(joinPath(ctx.nodeDir(*it), "DONE")))
    return planError("node '" + node + "' is not done (no " + joinPath(ctx.nodeDir(*it), "DONE") + ")");
  return exportModel(ctx, *it, outDir);
}
