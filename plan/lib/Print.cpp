//===- Print.cpp - summary, Graphviz and explain of a plan ----------------===//
#include "mixtape/plan/Print.h"

#include "mixtape/plan/MemoryPlan.h"
#include "mixtape/plan/PlanJSON.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mixtape::plan;

std::string mixtape::plan::humanCount(double n) {
  const char *suffix[] = {"", "k", "M", "B", "T"};
  int i = 0;
  while (n >= 1000 && i < 4) {
    n /= 1000;
    ++i;
  }
  return i == 0 ? llvm::formatv("{0}", static_cast<uint64_t>(n)).str() : llvm::formatv("{0:f2}{1}", n, suffix[i]).str();
}

//===----------------------------------------------------------------------===//
// Summary
//===----------------------------------------------------------------------===//

/// The tokens an eval node's tasks score, or "-" (splits only, or tasks without files).
static std::string taskTokens(const Node &n) {
  const EvalNode *e = n.eval();
  uint64_t tokens = 0;
  if (e && e->Settings.Tasks)
    for (const auto &[name, task] : *e->Settings.Tasks)
      tokens += task.Tokens.value_or(0);
  return tokens ? humanCount(static_cast<double>(tokens)) : "-";
}

/// "grows its input to 4 layers of width 128 (8 heads, 8 KV heads, ffn 384): 1.2M parameters".
static std::string growthText(const Grow &g) {
  const Architecture &m = g.Model;
  return llvm::formatv("grows its input to {0} layers of width {1} ({2} heads, {3} KV heads, ffn {4}): {5} parameters",
                       m.Layers, m.DModel, m.Heads, m.KVHeads, m.Ffn, humanCount(countParameters(m).total()))
      .str();
}

/// "trainable 1.2M of 124M" for a node that freezes groups or trains adapters; "" otherwise.
static std::string trainableText(const Ledger &ledger) {
  if (!ledger.Parameters || !ledger.TrainableParameters)
    return "";
  return "trainable " + humanCount(static_cast<double>(*ledger.TrainableParameters)) + " of " +
         humanCount(static_cast<double>(*ledger.Parameters));
}

void mixtape::plan::printPlanSummary(const Plan &plan, llvm::raw_ostream &os, const std::vector<NodeStatus> *status) {
  std::map<NodeKind, unsigned> kinds;
  for (const Node &n : plan.Nodes)
    ++kinds[n.Kind];
  os << llvm::formatv("plan '{0}': {1} nodes ({2} init, {3} train, {4} merge, {5} eval)\n", plan.Recipe,
                      plan.Nodes.size(), kinds[NodeKind::Init], kinds[NodeKind::Train], kinds[NodeKind::Merge],
                      kinds[NodeKind::Eval]);
  if (plan.Provisional) {
    os << "provisional: hashes are not final and `mixtape exec` refuses this plan:\n";
    for (const std::string &r : plan.ProvisionalReasons)
      os << "  - " << r << "\n";
  }
  size_t width = 4;
  for (const Node &n : plan.Nodes)
    width = std::max(width, n.Name.size());
  width = std::min<size_t>(width, 48);
  os << "\n"
     << llvm::left_justify("kind", 6) << llvm::left_justify("name", width + 2) << llvm::left_justify("hash", 10)
     << llvm::right_justify("tokens", 9) << "  " << llvm::right_justify("GPU-h", 9) << "  "
     << (status ? llvm::left_justify("status", 9) : llvm::left_justify("", 0)) << "inputs\n";
  double totalFlops = 0;
  for (size_t i = 0; i < plan.Nodes.size(); ++i) {
    const Node &n = plan.Nodes[i];
    const TrainNode *t = n.train();
    std::vector<std::string> inputs;
    for (const NodeRef &in : n.Inputs)
      inputs.push_back(plan.Nodes[in.Index].Name + (in.Average ? kAverageSuffix.str() : ""));
    std::string name = n.Name + (n.Variants.size() > 1 ? " *" : "");
    os << llvm::left_justify(enumName(n.Kind), 6) << llvm::left_justify(name, width + 2)
       << llvm::left_justify(llvm::StringRef(n.Hash).take_front(8), 10)
       << llvm::right_justify(t ? humanCount(static_cast<double>(t->Ledger.Tokens)) : taskTokens(n), 9) << "  "
       << llvm::right_justify(t && t->Ledger.Flops ? llvm::formatv("{0:f1}", t->Ledger.GpuHours).str() : "-", 9)
       << "  ";
    if (status) {
      const char *state[] = {"done", "partial", "to run"};
      os << llvm::left_justify(state[(*status)[i].Current], 9);
    }
    os << llvm::join(inputs, ", ") << "\n";
    if (t)
      totalFlops += t->Ledger.Flops;
  }
  os << "(* shared by several variants; an eval's tokens are those its tasks score, forward only)\n";

  // Ledger: tokens per stream over the plan, and per variant's whole chain.
  std::map<std::string, uint64_t> byStream;
  std::map<std::string, double> epochs;
  for (const Node &n : plan.Nodes)
    if (const TrainNode *t = n.train()) {
      for (const auto &[s, tokens] : t->Ledger.TokensByStream)
        byStream[s] += tokens;
      for (const auto &[s, e] : t->Ledger.EpochsAtEnd)
        epochs[s] = std::max(epochs[s], e);
    }
  os << "\nledger (tokens trained, once each):\n";
  uint64_t total = 0;
  for (const auto &[s, tokens] : byStream) {
    os << "  " << llvm::left_justify(s, 24) << llvm::right_justify(humanCount(static_cast<double>(tokens)), 9);
    if (epochs.count(s))
      os << llvm::formatv("   up to {0:f2} epochs", epochs[s]);
    else if (!llvm::StringRef(s).contains('%'))
      os << "   epochs unknown (no data)";
    os << "\n";
    total += tokens;
  }
  os << "  " << llvm::left_justify("total", 24) << llvm::right_justify(humanCount(static_cast<double>(total)), 9)
     << llvm::formatv("   {0:f1} GPU-hours at {1:f0} TFLOP/s and {2:f0}% MFU\n",
                      totalFlops / (plan.Cost.PeakFlops * plan.Cost.Mfu) / 3600, plan.Cost.PeakFlops / 1e12,
                      plan.Cost.Mfu * 100);
  if (plan.Variants.size() > 1 && plan.Variants.size() <= 40) {
    os << "\nper variant (its whole chain from the init):\n";
    for (const auto &[variant, ledger] : plan.Variants) {
      std::string parts;
      for (const auto &[s, tokens] : ledger.TokensByStream)
        parts += (parts.empty() ? "" : ", ") + s + " " + humanCount(static_cast<double>(tokens));
      os << "  " << llvm::left_justify(variant, 32)
         << llvm::right_justify(humanCount(static_cast<double>(ledger.Tokens)), 9) << "   " << parts << "\n";
    }
  }
  for (const Node &n : plan.Nodes)
    if (const TrainNode *t = n.train(); t && t->Ledger.ReplayFraction > 0 && t->Ledger.ReplayFraction < 1)
      os << llvm::formatv("  replay in {0}: {1:f1}% of its tokens\n", n.Name, t->Ledger.ReplayFraction * 100);
  for (const Node &n : plan.Nodes)
    if (const TrainNode *t = n.train(); t && !trainableText(t->Ledger).empty())
      os << llvm::formatv("  {0}: {1} parameters\n", n.Name, trainableText(t->Ledger));
  for (const Node &n : plan.Nodes)
    if (const TrainNode *t = n.train(); t && t->Settings.Grow)
      os << "  " << n.Name << ": " << growthText(*t->Settings.Grow) << "\n";
  for (const AblationLedger &a : plan.Ablations)
    os << llvm::formatv("ablation {0}: its units train {1} tokens once; training its {2} candidate mixtures "
                        "directly would take {3}\n",
                        a.Name, humanCount(static_cast<double>(a.UnitTokens)), a.Combinations,
                        humanCount(static_cast<double>(a.DirectTokens)));
  os << llvm::formatv("\nsharing: variants trained alone would take {0} tokens; shared prefixes save {1}\n",
                      humanCount(static_cast<double>(plan.Sharing.VariantTokens)),
                      humanCount(static_cast<double>(plan.Sharing.SharedTokens)));
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

void mixtape::plan::writePlanDot(const Plan &plan, llvm::raw_ostream &os) {
  os << "digraph \"" << dotEscape(plan.Recipe)
     << "\" {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n";
  for (size_t i = 0; i < plan.Nodes.size(); ++i) {
    const Node &n = plan.Nodes[i];
    const char *style = n.Kind == NodeKind::Init    ? "shape=cylinder, style=filled, fillcolor=\"#dddddd\""
                        : n.Kind == NodeKind::Train ? "shape=box, style=filled, fillcolor=\"#cfe2ff\""
                        : n.Kind == NodeKind::Merge ? "shape=hexagon, style=filled, fillcolor=\"#ffe5b4\""
                                                    : "shape=note, style=filled, fillcolor=\"#e2f0d9\"";
    std::string label = dotEscape(n.Name);
    if (const TrainNode *t = n.train())
      label += "\\n" + humanCount(static_cast<double>(t->Ledger.Tokens)) + " tokens";
    os << "  n" << i << " [label=\"" << label << "\", " << style
       << (n.Variants.size() > 1 ? ", penwidth=3, color=\"#c0392b\"" : "") << "];\n";
  }
  for (size_t i = 0; i < plan.Nodes.size(); ++i)
    for (const NodeRef &in : plan.Nodes[i].Inputs)
      os << "  n" << in.Index << " -> n" << i << ";\n";
  os << "}\n";
}

//===----------------------------------------------------------------------===//
// Explain
//===----------------------------------------------------------------------===//

void mixtape::plan::explainNode(const Plan &plan, const Node &n, llvm::raw_ostream &os) {
  os << llvm::formatv("{0} '{1}'\n  hash {2}\n  output <run dir>/{3}/\n", enumName(n.Kind), n.Name, n.Hash, n.Dir);
  if (!n.Variants.empty())
    os << "  variants through it: " << llvm::join(n.Variants, ", ") << "\n";
  for (const NodeRef &in : n.Inputs)
    os << llvm::formatv("  input {0}{1} ({2})\n", plan.Nodes[in.Index].Name,
                        in.Average ? kAverageSuffix : llvm::StringLiteral(""),
                        llvm::StringRef(plan.Nodes[in.Index].Hash).take_front(12));
  const TrainNode *t = n.train();
  if (t) {
    const TrainSettings &s = t->Settings;
    const uint64_t perStep = tokensPerStep(s);
    os << llvm::formatv("  steps {0}..{1} of its stage; a step is {2} sequences x {3} tokens = {4} tokens\n",
                        s.Steps.Begin, s.Steps.End, s.BatchSequences, s.SeqLen, perStep);
    if (t->Exec.RequestedTokens) {
      uint64_t requested = *t->Exec.RequestedTokens, steps = (requested + perStep - 1) / perStep;
      os << llvm::formatv("  the stage asks for {0} tokens: ceil({0} / {1}) = {2} steps = {3} tokens (rounded up)\n",
                          requested, perStep, steps, steps * perStep);
    }
    os << llvm::formatv("  trains {0} tokens", t->Ledger.Tokens);
    for (const auto &[stream, tokens] : t->Ledger.TokensByStream)
      os << llvm::formatv("; {0}: {1}", stream, tokens);
    os << "\n";
    if (std::string trainable = trainableText(t->Ledger); !trainable.empty())
      os << "  " << trainable << " parameters\n";
    if (s.Grow)
      os << "  " << growthText(*s.Grow) << "\n";
    if (s.Mixture.Streams.size() > 0)
      for (const auto &[stream, def] : plan.Streams)
        if (def.Where && llvm::is_contained(s.Mixture.Streams, stream))
          os << "  stream '" << stream << "' keeps documents where " << def.Where->canonical() << "\n";
  }
  auto indented = [&](llvm::StringRef title, const std::string &json) {
    os << "  " << title << ":\n";
    for (llvm::StringRef line : llvm::split(llvm::StringRef(json).rtrim(), '\n'))
      os << "    " << line << "\n";
  };
  indented("settings (resolved, inherited included; hashed)", settingsText(plan, n));
  indented("execution only (not hashed)", execText(plan, n));
  os << llvm::formatv("  the hash covers: plan format {0}, the {1} semantics version, the settings above, the hashes "
                      "of its inputs and the fingerprints of the data it reads; not names, comments, key order or "
                      "the execution-only settings\n",
                      kPlanFormatVersion, enumName(n.Kind));
  if (t)
    for (const auto &[eval, points] : t->Exec.EvalDuring)
      os << "  eval points: [[eval]] '" << eval
         << "' during.every: step 0 of each stage, then every interval of stage tokens (exec.eval_during)\n";
  if (n.Provisional)
    os << "  provisional: some data or checkpoint it depends on is absent, so this hash is not final\n";
}
