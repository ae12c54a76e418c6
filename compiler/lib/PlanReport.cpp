//===- PlanReport.cpp - summary, Graphviz, explain, run status ------------===//
#include "mixtape/compiler/PlanReport.h"

#include "mixtape/compiler/DuringEvals.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

using namespace mixtape;
using llvm::json::Object;

std::string mixtape::humanCount(double n) {
  const char *suffix[] = {"", "k", "M", "B", "T"};
  int i = 0;
  while (n >= 1000 && i < 4) {
    n /= 1000;
    ++i;
  }
  return i == 0 ? llvm::formatv("{0}", static_cast<uint64_t>(n)).str() : llvm::formatv("{0:f2}{1}", n, suffix[i]).str();
}

static double gpuHours(const Plan &plan, const PlanNode &n) {
  return n.flops / (plan.cost.peakFlops * plan.cost.mfu) / 3600;
}

//===----------------------------------------------------------------------===//
// Run directory status
//===----------------------------------------------------------------------===//

static std::optional<Object> readNodeJSON(llvm::StringRef dir) {
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, "node.json");
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return std::nullopt;
  llvm::Expected<llvm::json::Value> v = llvm::json::parse((*buffer)->getBuffer());
  if (!v) {
    llvm::consumeError(v.takeError());
    return std::nullopt;
  }
  if (const Object *o = v->getAsObject())
    return *o;
  return std::nullopt;
}

static std::string whyChanged(const Plan &plan, const PlanNode &n, const Object &before) {
  std::vector<std::string> reasons;
  const Object *settings = before.getObject("settings");
  if (settings) {
    std::vector<std::string> keys;
    for (const auto &kv : n.settings)
      keys.push_back(kv.first.str());
    for (const auto &kv : *settings)
      if (!n.settings.get(kv.first))
        keys.push_back(kv.first.str());
    llvm::sort(keys);
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    for (const std::string &k : keys) {
      const llvm::json::Value *now = n.settings.get(k), *then = settings->get(k);
      if (!now || !then || *now != *then)
        reasons.push_back("setting '" + k + "' changed");
    }
  }
  if (const llvm::json::Array *hashes = before.getArray("input_hashes")) {
    for (size_t i = 0; i < n.inputs.size() && i < hashes->size(); ++i)
      if ((*hashes)[i].getAsString() != llvm::StringRef(plan.nodes[n.inputs[i]].hash))
        reasons.push_back("input '" + plan.nodes[n.inputs[i]].name + "' changed");
  }
  if (reasons.empty())
    reasons.push_back("format, semantics version or data changed");
  return llvm::join(reasons, "; ");
}

std::vector<NodeStatus> mixtape::planStatus(const Plan &plan, llvm::StringRef runDir) {
  std::vector<NodeStatus> out;
  for (const PlanNode &n : plan.nodes) {
    NodeStatus s;
    llvm::SmallString<256> dir(runDir);
    llvm::sys::path::append(dir, n.dirName());
    llvm::SmallString<256> done(dir);
    llvm::sys::path::append(done, "DONE");
    if (llvm::sys::fs::exists(done)) {
      s.state = NodeStatus::Done;
      s.why = "done";
    } else if (llvm::sys::fs::is_directory(dir)) {
      s.state = NodeStatus::Partial;
      s.why = "started, not done: resumes from its last checkpoint";
    } else {
      s.why = "never run";
      // An earlier run of a node by this name, under another hash: say what changed.
      std::string prefix = n.dirName().substr(0, n.dirName().size() - 12);
      std::error_code ec;
      for (llvm::sys::fs::directory_iterator it(runDir, ec), end; it != end && !ec; it.increment(ec)) {
        llvm::StringRef entry = llvm::sys::path::filename(it->path());
        if (!entry.startswith(prefix) || entry.size() != prefix.size() + 12)
          continue;
        if (std::optional<Object> before = readNodeJSON(it->path())) {
          s.why = whyChanged(plan, n, *before);
          break;
        }
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

//===----------------------------------------------------------------------===//
// Summary
//===----------------------------------------------------------------------===//

void mixtape::printPlanSummary(const Plan &plan, llvm::raw_ostream &os, const std::vector<NodeStatus> *status) {
  std::map<NodeKind, unsigned> kinds;
  for (const PlanNode &n : plan.nodes)
    ++kinds[n.kind];
  os << llvm::formatv("plan '{0}': {1} nodes ({2} init, {3} train, {4} merge, {5} eval)\n", plan.recipe,
                      plan.nodes.size(), kinds[NodeKind::Init], kinds[NodeKind::Train], kinds[NodeKind::Merge],
                      kinds[NodeKind::Eval]);
  if (plan.provisional) {
    os << "provisional: hashes are not final and `mixtape exec` refuses this plan:\n";
    for (const std::string &r : plan.provisionalReasons)
      os << "  - " << r << "\n";
  }
  size_t width = 4;
  for (const PlanNode &n : plan.nodes)
    width = std::max(width, n.name.size());
  width = std::min<size_t>(width, 48);
  os << "\n"
     << llvm::left_justify("kind", 6) << llvm::left_justify("name", width + 2) << llvm::left_justify("hash", 10)
     << llvm::right_justify("tokens", 9) << "  " << llvm::right_justify("GPU-h", 9) << "  "
     << (status ? llvm::left_justify("status", 9) : llvm::left_justify("", 0)) << "inputs\n";
  double totalFlops = 0;
  for (size_t i = 0; i < plan.nodes.size(); ++i) {
    const PlanNode &n = plan.nodes[i];
    std::vector<std::string> inputs;
    for (size_t in : n.inputs)
      inputs.push_back(plan.nodes[in].name);
    std::string name = n.name + (n.variants.size() > 1 ? " *" : "");
    os << llvm::left_justify(nodeKindName(n.kind), 6) << llvm::left_justify(name, width + 2)
       << llvm::left_justify(llvm::StringRef(n.hash).take_front(8), 10)
       << llvm::right_justify(n.kind == NodeKind::Train ? humanCount(static_cast<double>(n.tokens)) : "-", 9) << "  "
       << llvm::right_justify(n.flops ? llvm::formatv("{0:f1}", gpuHours(plan, n)).str() : "-", 9) << "  ";
    if (status) {
      const char *state[] = {"done", "partial", "to run"};
      os << llvm::left_justify(state[(*status)[i].state], 9);
    }
    os << llvm::join(inputs, ", ") << "\n";
    totalFlops += n.flops;
  }
  os << "(* shared by several variants)\n";

  // Ledger: tokens per stream over the plan, and per variant's whole chain.
  std::map<std::string, uint64_t> byStream;
  std::map<std::string, double> epochs;
  for (const PlanNode &n : plan.nodes) {
    for (const auto &[s, t] : n.tokensByStream)
      byStream[s] += t;
    for (const auto &[s, e] : n.epochsAtEnd)
      epochs[s] = std::max(epochs[s], e);
  }
  os << "\nledger (tokens trained, once each):\n";
  uint64_t total = 0;
  for (const auto &[s, t] : byStream) {
    os << "  " << llvm::left_justify(s, 24) << llvm::right_justify(humanCount(static_cast<double>(t)), 9);
    if (epochs.count(s))
      os << llvm::formatv("   up to {0:f2} epochs", epochs[s]);
    else if (!llvm::StringRef(s).contains('%'))
      os << "   epochs unknown (no data)";
    os << "\n";
    total += t;
  }
  os << "  " << llvm::left_justify("total", 24) << llvm::right_justify(humanCount(static_cast<double>(total)), 9)
     << llvm::formatv("   {0:f1} GPU-hours at {1:f0} TFLOP/s and {2:f0}% MFU\n", totalFlops / (plan.cost.peakFlops * plan.cost.mfu) / 3600,
                      plan.cost.peakFlops / 1e12, plan.cost.mfu * 100);
  auto byVariant = plan.tokensByVariant();
  if (byVariant.size() > 1 && byVariant.size() <= 40) {
    os << "\nper variant (its whole chain from the init):\n";
    for (const auto &[variant, byStream] : byVariant) {
      uint64_t sum = 0;
      std::string parts;
      for (const auto &[s, t] : byStream) {
        sum += t;
        parts += (parts.empty() ? "" : ", ") + s + " " + humanCount(static_cast<double>(t));
      }
      os << "  " << llvm::left_justify(variant, 32) << llvm::right_justify(humanCount(static_cast<double>(sum)), 9)
         << "   " << parts << "\n";
    }
  }
  for (const PlanNode &n : plan.nodes)
    if (n.kind == NodeKind::Train && n.replayFraction > 0 && n.replayFraction < 1)
      os << llvm::formatv("  replay in {0}: {1:f1}% of its tokens\n", n.name, n.replayFraction * 100);
  for (const AblationLedger &a : plan.ablations)
    os << llvm::formatv("ablation {0}: its units train {1} tokens once; training its {2} candidate mixtures "
                        "directly would take {3}\n",
                        a.name, humanCount(static_cast<double>(a.unitTokens)), a.combinations,
                        humanCount(static_cast<double>(a.directTokens)));
  os << llvm::formatv("\nsharing: variants trained alone would take {0} tokens; shared prefixes save {1}\n",
                      humanCount(static_cast<double>(plan.variantTokens)), humanCount(static_cast<double>(plan.sharedTokens)));
}

//===----------------------------------------------------------------------===//
// Graphviz
//===----------------------------------------------------------------------===//

static std::string dotEscape(llvm::StringRef s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  return out;
}

void mixtape::writePlanDot(const Plan &plan, llvm::raw_ostream &os) {
  os << "digraph \"" << dotEscape(plan.recipe) << "\" {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n";
  for (size_t i = 0; i < plan.nodes.size(); ++i) {
    const PlanNode &n = plan.nodes[i];
    const char *style = n.kind == NodeKind::Init    ? "shape=cylinder, style=filled, fillcolor=\"#dddddd\""
                        : n.kind == NodeKind::Train ? "shape=box, style=filled, fillcolor=\"#cfe2ff\""
                        : n.kind == NodeKind::Merge ? "shape=hexagon, style=filled, fillcolor=\"#ffe5b4\""
                                                    : "shape=note, style=filled, fillcolor=\"#e2f0d9\"";
    std::string label = dotEscape(n.name);
    if (n.kind == NodeKind::Train)
      label += "\\n" + humanCount(static_cast<double>(n.tokens)) + " tokens";
    os << "  n" << i << " [label=\"" << label << "\", " << style
       << (n.variants.size() > 1 ? ", penwidth=3, color=\"#c0392b\"" : "") << "];\n";
  }
  for (size_t i = 0; i < plan.nodes.size(); ++i)
    for (size_t in : plan.nodes[i].inputs)
      os << "  n" << in << " -> n" << i << ";\n";
  os << "}\n";
}

//===----------------------------------------------------------------------===//
// Explain
//===----------------------------------------------------------------------===//

/// Eval points are not hashed: a done node is not retrained for new ones, and what it
/// retained evaluates those it can.
static void explainDuringEvals(const Plan &plan, const PlanNode &n, llvm::StringRef runDir, llvm::raw_ostream &os) {
  auto dirOf = [&](const PlanNode &node) {
    llvm::SmallString<256> dir(runDir);
    llvm::sys::path::append(dir, node.dirName());
    return std::string(dir);
  };
  std::string dir = dirOf(n);
  if (!llvm::sys::fs::exists(dir + "/DONE")) {
    os << "  in-loop evals: the node is not done; its training loop evaluates them\n";
    return;
  }
  std::vector<MissingDuringEval> missing = missingDuringEvals(n.settings, n.exec, dir, dirOf(plan.nodes[n.inputs.front()]));
  if (missing.empty()) {
    os << "  in-loop evals: the node is done and every point is logged\n";
    return;
  }
  size_t served = llvm::count_if(missing, [](const MissingDuringEval &m) { return m.source != MissingDuringEval::Unavailable; });
  os << llvm::formatv("  in-loop evals: the node is done; {0} points are not logged: `mixtape run` evaluates {1} from "
                      "retained weights without training, {2} would need retraining\n",
                      missing.size(), served, missing.size() - served);
  for (const MissingDuringEval &m : missing) {
    std::vector<std::string> splits;
    for (const auto &[stream, split] : m.splits)
      splits.push_back(stream + "." + split);
    os << llvm::formatv("    {0} at stage tokens {1} (step {2}; {3}): {4}\n", m.eval, m.stageTokens, m.step,
                        llvm::join(splits, ", "), describeSource(m));
  }
}

bool mixtape::explainNode(const Plan &plan, llvm::StringRef name, llvm::raw_ostream &os, llvm::StringRef runDir) {
  int index = plan.findNode(name);
  if (index < 0)
    return false;
  const PlanNode &n = plan.nodes[index];
  os << llvm::formatv("{0} '{1}'\n  hash {2}\n  output <run dir>/{3}/\n", nodeKindName(n.kind), n.name, n.hash,
                      n.dirName());
  if (!n.variants.empty())
    os << "  variants through it: " << llvm::join(n.variants, ", ") << "\n";
  for (size_t in : n.inputs)
    os << llvm::formatv("  input {0} ({1})\n", plan.nodes[in].name, llvm::StringRef(plan.nodes[in].hash).take_front(12));
  if (n.kind == NodeKind::Train) {
    const llvm::json::Array &steps = *n.settings.getArray("steps");
    int64_t begin = *steps[0].getAsInteger(), end = *steps[1].getAsInteger();
    int64_t seqs = *n.settings.getInteger("batch_sequences"), seqLen = *n.settings.getInteger("seq_len");
    os << llvm::formatv("  steps {0}..{1} of its stage; a step is {2} sequences x {3} tokens = {4} tokens\n", begin, end,
                        seqs, seqLen, seqs * seqLen);
    if (auto requested = n.exec.getInteger("requested_tokens"))
      os << llvm::formatv("  the stage asks for {0} tokens: ceil({0} / {1}) = {2} steps = {3} tokens (rounded up)\n",
                          *requested, seqs * seqLen, (*requested + seqs * seqLen - 1) / (seqs * seqLen),
                          (*requested + seqs * seqLen - 1) / (seqs * seqLen) * seqs * seqLen);
    os << llvm::formatv("  trains {0} tokens", n.tokens);
    for (const auto &[s, t] : n.tokensByStream)
      os << llvm::formatv("; {0}: {1}", s, t);
    os << "\n";
  }
  os << "  settings (resolved, inherited included; hashed):\n";
  std::string settings = llvm::formatv("{0:2}", llvm::json::Value(Object(n.settings))).str();
  for (llvm::StringRef line : llvm::split(settings, '\n'))
    os << "    " << line << "\n";
  os << "  execution only (not hashed):\n";
  std::string exec = llvm::formatv("{0:2}", llvm::json::Value(Object(n.exec))).str();
  for (llvm::StringRef line : llvm::split(exec, '\n'))
    os << "    " << line << "\n";
  os << llvm::formatv("  the hash covers: plan format {0}, the {1} semantics version, the settings above, the hashes "
                      "of its inputs and the fingerprints of the data it reads; not names, comments, key order or "
                      "the execution-only settings\n",
                      kPlanFormatVersion, nodeKindName(n.kind));
  if (const Object *during = n.exec.getObject("eval_during")) {
    for (const auto &kv : *during)
      os << "  eval points: [[eval]] '" << kv.first
         << "' during.every: step 0 of each stage, then every interval of stage tokens (exec.eval_during)\n";
    if (!runDir.empty())
      explainDuringEvals(plan, n, runDir, os);
  }
  if (n.provisional)
    os << "  provisional: some data or checkpoint it depends on is absent, so this hash is not final\n";
  return true;
}
