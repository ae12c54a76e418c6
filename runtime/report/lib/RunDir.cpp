//===- RunDir.cpp - read a run directory: plan.json, metrics.jsonl, DONE --===//
//
// The formats are in docs/run-format.md. The runtime appends metrics as it goes, so a run
// killed mid-write leaves a truncated last line: that one is skipped with a warning; anything
// else malformed is an error naming the file and line.
//
//===----------------------------------------------------------------------===//
#include "mixtape/report/Report.h"

#include "llvm/ADT/Twine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

using namespace mixtape::report;
namespace json = llvm::json;

const PlanNode *RunPlan::find(llvm::StringRef name) const {
  for (const PlanNode &node : nodes)
    if (node.name == name)
      return &node;
  return nullptr;
}

llvm::StringRef mixtape::report::stateName(NodeState state) {
  switch (state) {
  case NodeState::Done:
    return "done";
  case NodeState::Partial:
    return "partial";
  case NodeState::NotRun:
    return "not run";
  }
  llvm_unreachable("unknown node state");
}

static llvm::Error errorAt(const llvm::Twine &where, const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), where + ": " + message);
}

static std::vector<std::string> stringList(const json::Object &object, llvm::StringRef key) {
  std::vector<std::string> out;
  if (const json::Array *array = object.getArray(key))
    for (const json::Value &v : *array)
      if (llvm::Optional<llvm::StringRef> s = v.getAsString())
        out.push_back(s->str());
  return out;
}

llvm::Expected<RunPlan> mixtape::report::parsePlan(llvm::StringRef text, llvm::StringRef file) {
  llvm::Expected<json::Value> root = json::parse(text);
  if (!root)
    return errorAt(file, "invalid JSON: " + llvm::toString(root.takeError()));
  const json::Object *object = root->getAsObject();
  if (!object || object->getString("format") != llvm::StringRef("mixtape-plan"))
    return errorAt(file, "not a mixtape plan (\"format\": \"mixtape-plan\")");
  const json::Array *nodes = object->getArray("nodes");
  if (!nodes)
    return errorAt(file, "the plan has no \"nodes\" array");
  RunPlan plan;
  plan.recipe = object->getString("recipe").getValueOr("").str();
  if (const json::Array *ablations = object->getArray("ablations"))
    for (const json::Value &a : *ablations)
      if (const json::Object *o = a.getAsObject())
        if (auto name = o->getString("name"))
          plan.ablations.push_back(name->str());
  for (size_t i = 0; i < nodes->size(); ++i) {
    const json::Object *entry = (*nodes)[i].getAsObject();
    llvm::Optional<llvm::StringRef> name = entry ? entry->getString("name") : llvm::None;
    llvm::Optional<llvm::StringRef> kind = entry ? entry->getString("kind") : llvm::None;
    llvm::Optional<llvm::StringRef> dir = entry ? entry->getString("dir") : llvm::None;
    if (!name || !kind || !dir)
      return errorAt(file, "nodes[" + llvm::Twine(i) + "] lacks a string name, kind or dir");
    // A dir is one path component under the run directory, never a way out of it.
    if (dir->empty() || *dir == "." || *dir == ".." || dir->contains('/') || dir->contains('\\'))
      return errorAt(file, "node '" + *name + "': dir '" + *dir + "' is not a plain name");
    PlanNode node;
    node.name = name->str();
    node.kind = kind->str();
    node.dir = dir->str();
    node.inputs = stringList(*entry, "inputs");
    node.variants = stringList(*entry, "variants");
    if (const json::Object *exec = entry->getObject("exec")) {
      node.stage = exec->getString("stage").getValueOr("").str();
      node.stageStart = exec->getBoolean("stage_start").getValueOr(false);
      node.chainTokens = exec->getNumber("chain_tokens").getValueOr(0);
    }
    plan.nodes.push_back(std::move(node));
  }
  return plan;
}

namespace {

/// Reads the fields of one metrics record; the first problem becomes the line's error.
class RecordReader {
public:
  RecordReader(const json::Object &record, const llvm::Twine &where)
      : Record(record), Where(where.str()) {}

  std::string string(llvm::StringRef key) {
    if (llvm::Optional<llvm::StringRef> s = Record.getString(key))
      return s->str();
    fail(key, "a string");
    return "";
  }
  /// A string or null (null reads as "").
  std::string optionalString(llvm::StringRef key) {
    const json::Value *v = Record.get(key);
    if (v && v->getAsNull())
      return "";
    return string(key);
  }
  /// An optional object of numbers, in key order.
  std::vector<std::pair<std::string, double>> optionalNumbers(llvm::StringRef key) {
    std::vector<std::pair<std::string, double>> out;
    const json::Value *v = Record.get(key);
    if (!v)
      return out;
    const json::Object *o = v->getAsObject();
    if (!o) {
      fail(key, "an object of numbers");
      return out;
    }
    for (const auto &kv : *o) {
      llvm::Optional<double> x = kv.second.getAsNumber();
      if (!x) {
        fail(key, "an object of numbers");
        return {};
      }
      out.emplace_back(kv.first.str(), *x);
    }
    llvm::sort(out);
    return out;
  }
  double number(llvm::StringRef key) {
    if (llvm::Optional<double> x = Record.getNumber(key))
      return *x;
    fail(key, "a number");
    return 0;
  }
  llvm::Error takeError() {
    return Problem.empty() ? llvm::Error::success() : errorAt(Where, Problem);
  }

private:
  void fail(llvm::StringRef key, llvm::StringRef what) {
    if (Problem.empty())
      Problem = ("\"" + key + "\" must be " + what).str();
  }
  const json::Object &Record;
  std::string Where, Problem;
};

} // namespace

llvm::Expected<Metrics> mixtape::report::parseMetrics(llvm::StringRef text, llvm::StringRef file,
                                                      const RunPlan *plan) {
  llvm::SmallVector<llvm::StringRef, 0> lines;
  text.split(lines, '\n');
  // The last line with any content: the only one that may be cut short.
  size_t last = lines.size();
  while (last > 0 && lines[last - 1].trim().empty())
    --last;

  Metrics metrics;
  for (size_t i = 0; i < last; ++i) {
    llvm::StringRef line = lines[i].trim();
    if (line.empty())
      continue;
    std::string where = (file + ":" + llvm::Twine(i + 1)).str();
    llvm::Expected<json::Value> value = json::parse(line);
    if (!value) {
      std::string message = llvm::toString(value.takeError());
      if (i + 1 == last) {
        metrics.warnings.push_back(where + ": skipped a truncated last line (" + message + ")");
        break;
      }
      return errorAt(where, "invalid JSON: " + message);
    }
    const json::Object *record = value->getAsObject();
    if (!record)
      return errorAt(where, "a metrics record is a JSON object");
    llvm::Optional<llvm::StringRef> type = record->getString("type");
    if (!type)
      return errorAt(where, "\"type\" must be a string");
    RecordReader read(*record, where);
    if (*type == "train") {
      TrainRecord r;
      r.node = read.string("node");
      r.stage = read.string("stage");
      r.step = static_cast<int64_t>(read.number("step"));
      r.stageTokens = read.number("stage_tokens");
      r.chainTokens = read.number("chain_tokens");
      r.loss = read.number("loss");
      r.lr = read.number("lr");
      r.lossByStream = read.optionalNumbers("loss_by_stream");
      if (llvm::Error error = read.takeError())
        return error;
      if (plan && !plan->find(r.node))
        return errorAt(where, "node '" + r.node + "' is not in the plan (a stale run directory?)");
      metrics.train.push_back(std::move(r));
    } else if (*type == "eval") {
      EvalRecord r;
      r.model = read.string("node");
      r.eval = read.string("eval");
      std::string point = read.string("point");
      read.optionalString("stage");
      read.number("stage_tokens");
      r.chainTokens = read.number("chain_tokens");
      r.stream = read.string("stream");
      r.split = read.string("split");
      r.loss = read.number("loss");
      r.ppl = read.number("ppl");
      if (llvm::Error error = read.takeError())
        return error;
      if (point != "during" && point != "final")
        return errorAt(where, "\"point\" must be \"during\" or \"final\", not '" + point + "'");
      r.final = point == "final";
      if (plan && !plan->find(r.model))
        return errorAt(where, "node '" + r.model + "' is not in the plan (a stale run directory?)");
      metrics.evals.push_back(std::move(r));
    }
    // Other record types are for other readers: the report ignores them.
  }
  return metrics;
}

llvm::Expected<Run> mixtape::report::loadRun(llvm::StringRef runDir) {
  llvm::SmallString<256> planPath(runDir);
  llvm::sys::path::append(planPath, "plan.json");
  auto planText = llvm::MemoryBuffer::getFile(planPath);
  if (!planText)
    return errorAt(planPath, planText.getError().message() +
                                 " (is this a run directory? `mixtape run` writes it)");
  llvm::Expected<RunPlan> plan = parsePlan((*planText)->getBuffer(), planPath);
  if (!plan)
    return plan.takeError();

  Run run;
  run.plan = std::move(*plan);
  for (const PlanNode &node : run.plan.nodes) {
    llvm::SmallString<256> dir(runDir);
    llvm::sys::path::append(dir, node.dir);
    llvm::SmallString<256> done(dir), metricsPath(dir);
    llvm::sys::path::append(done, "DONE");
    llvm::sys::path::append(metricsPath, "metrics.jsonl");
    NodeState state = llvm::sys::fs::exists(done)         ? NodeState::Done
                      : llvm::sys::fs::is_directory(dir) ? NodeState::Partial
                                                         : NodeState::NotRun;
    run.states.push_back(state);
    if (!llvm::sys::fs::exists(metricsPath))
      continue;
    auto text = llvm::MemoryBuffer::getFile(metricsPath);
    if (!text)
      return errorAt(metricsPath, text.getError().message());
    llvm::Expected<Metrics> metrics = parseMetrics((*text)->getBuffer(), metricsPath, &run.plan);
    if (!metrics)
      return metrics.takeError();
    bool partial = state != NodeState::Done;
    for (TrainRecord &r : metrics->train) {
      r.partial = partial;
      run.metrics.train.push_back(std::move(r));
    }
    for (EvalRecord &r : metrics->evals) {
      r.partial = partial;
      run.metrics.evals.push_back(std::move(r));
    }
    for (std::string &w : metrics->warnings)
      run.metrics.warnings.push_back(std::move(w));
  }
  return run;
}
