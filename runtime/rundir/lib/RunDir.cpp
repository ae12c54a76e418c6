//===- RunDir.cpp - nodes in a run directory: done markers, node.json, status -===//
#include "mixtape/rundir/RunDir.h"

#include "mixtape/plan/PlanJSON.h"
#include "mixtape/rundir/DuringEvals.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/JSON.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

using namespace mixtape;
using namespace mixtape::rundir;
using llvm::json::Object;

std::string mixtape::rundir::nodeDir(llvm::StringRef runDir, const plan::Node &node) {
  return joinPath(runDir, node.Dir);
}

bool mixtape::rundir::isDone(llvm::StringRef runDir, const plan::Node &node) {
  return llvm::sys::fs::exists(joinPath(nodeDir(runDir, node), "DONE"));
}

llvm::Error mixtape::rundir::markDone(llvm::StringRef runDir, const plan::Node &node) {
  return writeFileDurably(joinPath(nodeDir(runDir, node), "DONE"), node.Hash + "\n");
}

llvm::Error mixtape::rundir::startNode(llvm::StringRef runDir, const plan::Plan &plan, const plan::Node &node) {
  std::string dir = nodeDir(runDir, node);
  if (std::error_code ec = llvm::sys::fs::create_directories(dir))
    return fileError(dir, "cannot create: " + ec.message());
  return writeFileDurably(joinPath(dir, "node.json"), plan::nodeText(plan, node));
}

//===----------------------------------------------------------------------===//
// Status
//===----------------------------------------------------------------------===//

/// The object the JSON file at `path` holds; nullopt when it is missing, unreadable, not
/// JSON or not an object (a node.json cut short reads as "not there").
static std::optional<Object> readJSONObject(llvm::StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return std::nullopt;
  llvm::Expected<llvm::json::Value> v = parseJSON((*buffer)->getBuffer(), path);
  if (!v) {
    llvm::consumeError(v.takeError());
    return std::nullopt;
  }
  if (Object *o = v->getAsObject())
    return std::move(*o);
  return std::nullopt;
}

/// Which settings and inputs differ between `n` and its earlier run `before` (a node.json).
static std::string whyChanged(const plan::Plan &plan, const plan::Node &n, const Object &before) {
  std::vector<std::string> reasons;
  std::optional<Object> now;
  if (llvm::Expected<llvm::json::Value> v = parseJSON(plan::nodeText(plan, n), "node.json of " + n.Name))
    now = std::move(*v->getAsObject());
  else
    llvm::consumeError(v.takeError());
  const Object *then = before.getObject("settings"), *current = now ? now->getObject("settings") : nullptr;
  if (then && current) {
    std::vector<std::string> keys;
    for (const auto &kv : *current)
      keys.push_back(kv.first.str());
    for (const auto &kv : *then)
      if (!current->get(kv.first))
        keys.push_back(kv.first.str());
    llvm::sort(keys);
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    for (const std::string &k : keys) {
      const llvm::json::Value *a = current->get(k), *b = then->get(k);
      if (!a || !b || *a != *b)
        reasons.push_back("setting '" + k + "' changed");
    }
  }
  if (const llvm::json::Array *hashes = before.getArray("input_hashes"))
    for (size_t i = 0; i < n.Inputs.size() && i < hashes->size(); ++i)
      if ((*hashes)[i].getAsString() != llvm::StringRef(n.InputHashes[i]))
        reasons.push_back("input '" + plan.Nodes[n.Inputs[i].Index].Name + "' changed");
  if (reasons.empty())
    reasons.push_back("format, semantics version or data changed");
  return llvm::join(reasons, "; ");
}

std::vector<plan::NodeStatus> mixtape::rundir::planStatus(const plan::Plan &plan, llvm::StringRef runDir) {
  std::vector<plan::NodeStatus> out;
  for (const plan::Node &n : plan.Nodes) {
    plan::NodeStatus s;
    std::string dir = nodeDir(runDir, n);
    if (isDone(runDir, n)) {
      s.Current = plan::NodeStatus::Done;
      s.Why = "done";
    } else if (llvm::sys::fs::is_directory(dir)) {
      s.Current = plan::NodeStatus::Partial;
      s.Why = "started, not done: resumes from its last checkpoint";
    } else {
      s.Why = "never run";
      // An earlier run of a node by this name, under another hash: say what changed.
      std::string prefix = n.Dir.substr(0, n.Dir.size() - 12);
      std::error_code ec;
      for (llvm::sys::fs::directory_iterator it(runDir, ec), end; it != end && !ec; it.increment(ec)) {
        llvm::StringRef entry = llvm::sys::path::filename(it->path());
        if (!entry.startswith(prefix) || entry.size() != prefix.size() + 12)
          continue;
        if (std::optional<Object> before = readJSONObject(joinPath(it->path(), "node.json"))) {
          s.Why = whyChanged(plan, n, *before);
          break;
        }
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

void mixtape::rundir::explainDuringEvals(const plan::Plan &plan, const plan::Node &n, llvm::StringRef runDir,
                                         llvm::raw_ostream &os) {
  const plan::TrainNode *t = n.train();
  if (!t || t->Exec.EvalDuring.empty())
    return;
  if (!isDone(runDir, n)) {
    os << "  in-loop evals: the node is not done; its training loop evaluates them\n";
    return;
  }
  llvm::Expected<std::vector<MissingDuringEval>> missing =
      missingDuringEvals(*t, nodeDir(runDir, n), nodeDir(runDir, plan.Nodes[n.Inputs.front().Index]),
                         CheckpointStore::Check::Sizes);
  if (!missing) {
    os << "  in-loop evals: " << llvm::toString(missing.takeError()) << "\n";
    return;
  }
  if (missing->empty()) {
    os << "  in-loop evals: the node is done and every point is logged\n";
    return;
  }
  size_t served =
      llvm::count_if(*missing, [](const MissingDuringEval &m) { return m.From != MissingDuringEval::Unavailable; });
  os << llvm::formatv("  in-loop evals: the node is done; {0} points are not logged: `mixtape run` evaluates {1} from "
                      "retained weights without training, {2} would need retraining\n",
                      missing->size(), served, missing->size() - served);
  for (const MissingDuringEval &m : *missing) {
    std::vector<std::string> splits;
    for (const plan::EvalSplit &split : m.Splits)
      splits.push_back(split.Stream + "." + plan::enumName(split.Split).str());
    for (const std::string &task : m.Tasks)
      splits.push_back("task " + task);
    os << llvm::formatv("    {0} at stage tokens {1} (step {2}; {3}): {4}\n", m.Eval, m.StageTokens, m.Step,
                        llvm::join(splits, ", "), describeSource(m));
  }
}
