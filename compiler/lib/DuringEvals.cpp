//===- DuringEvals.cpp - in-loop eval points of done train nodes ----------===//
#include "mixtape/compiler/DuringEvals.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <set>
#include <tuple>

using namespace mixtape;
using llvm::json::Object;

int64_t mixtape::duringEvalStep(uint64_t stageTokens, uint64_t tokensPerStep) {
  return static_cast<int64_t>((stageTokens + tokensPerStep - 1) / tokensPerStep);
}

static std::string join(llvm::StringRef dir, llvm::StringRef name) {
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, name);
  return std::string(path);
}

std::string mixtape::checkpointDir(llvm::StringRef nodeDir, int64_t step) {
  std::string digits = std::to_string(step);
  return join(join(nodeDir, "checkpoints"), "step-" + std::string(digits.size() < 8 ? 8 - digits.size() : 0, '0') + digits);
}

namespace {
using LoggedKey = std::tuple<std::string, int64_t, std::string, std::string>; // eval, stage tokens, stream, split

/// The "during" eval records a node's metrics.jsonl holds; unparsable lines (a killed
/// run's last one) hold none.
std::set<LoggedKey> loggedDuringEvals(llvm::StringRef nodeDir) {
  std::set<LoggedKey> logged;
  auto buffer = llvm::MemoryBuffer::getFile(join(nodeDir, "metrics.jsonl"));
  if (!buffer)
    return logged;
  llvm::SmallVector<llvm::StringRef, 0> lines;
  (*buffer)->getBuffer().split(lines, '\n', -1, false);
  for (llvm::StringRef line : lines) {
    if (!line.contains("\"during\""))
      continue;
    llvm::Expected<llvm::json::Value> v = llvm::json::parse(line);
    if (!v) {
      llvm::consumeError(v.takeError());
      continue;
    }
    const Object *o = v->getAsObject();
    if (!o || o->getString("type") != llvm::StringRef("eval") || o->getString("point") != llvm::StringRef("during"))
      continue;
    auto eval = o->getString("eval"), stream = o->getString("stream"), split = o->getString("split");
    auto tokens = o->getInteger("stage_tokens");
    if (eval && stream && split && tokens)
      logged.emplace(eval->str(), *tokens, stream->str(), split->str());
  }
  return logged;
}

bool isCompleteCheckpoint(llvm::StringRef dir) {
  // state.json is written last.
  return llvm::sys::fs::exists(join(dir, "state.json")) && llvm::sys::fs::exists(join(dir, "model.safetensors"));
}
} // namespace

std::vector<MissingDuringEval> mixtape::missingDuringEvals(const Object &settings, const Object &exec,
                                                           llvm::StringRef nodeDir, llvm::StringRef inputDir) {
  std::vector<MissingDuringEval> out;
  const Object *during = exec.getObject("eval_during");
  const llvm::json::Array *steps = settings.getArray("steps");
  const uint64_t perStep = static_cast<uint64_t>(settings.getInteger("batch_sequences").getValueOr(0) *
                                                 settings.getInteger("seq_len").getValueOr(0));
  if (!during || !steps || steps->size() != 2 || !perStep)
    return out;
  const int64_t first = (*steps)[0].getAsInteger().getValueOr(0), last = (*steps)[1].getAsInteger().getValueOr(0);
  const std::set<LoggedKey> logged = loggedDuringEvals(nodeDir);
  for (const auto &kv : *during) {
    const Object *e = kv.second.getAsObject();
    const llvm::json::Array *points = e ? e->getArray("stage_tokens") : nullptr;
    const llvm::json::Array *splits = e ? e->getArray("splits") : nullptr;
    if (!points || !splits)
      continue;
    for (const llvm::json::Value &p : *points) {
      auto tokens = p.getAsInteger();
      if (!tokens || *tokens < 0)
        continue;
      MissingDuringEval m;
      m.eval = kv.first.str();
      m.step = duringEvalStep(static_cast<uint64_t>(*tokens), perStep);
      m.stageTokens = m.step * static_cast<int64_t>(perStep);
      for (const llvm::json::Value &split : *splits) {
        const llvm::json::Array *pair = split.getAsArray();
        if (!pair || pair->size() != 2 || !(*pair)[0].getAsString() || !(*pair)[1].getAsString())
          continue;
        std::string stream = (*pair)[0].getAsString()->str(), which = (*pair)[1].getAsString()->str();
        if (!logged.count({m.eval, m.stageTokens, stream, which}))
          m.splits.emplace_back(std::move(stream), std::move(which));
      }
      if (m.splits.empty())
        continue;
      std::string checkpoint = checkpointDir(nodeDir, m.step);
      if (m.step == first && llvm::sys::fs::exists(join(inputDir, "model.safetensors"))) {
        m.source = MissingDuringEval::InputModel;
        m.weights = join(inputDir, "model.safetensors");
      } else if (m.step == last && llvm::sys::fs::exists(join(nodeDir, "model.safetensors"))) {
        m.source = MissingDuringEval::FinalModel;
        m.weights = join(nodeDir, "model.safetensors");
      } else if (isCompleteCheckpoint(checkpoint)) {
        m.source = MissingDuringEval::Checkpoint;
        m.weights = join(checkpoint, "model.safetensors");
      }
      out.push_back(std::move(m));
    }
  }
  return out;
}

std::string mixtape::describeSource(const MissingDuringEval &point) {
  switch (point.source) {
  case MissingDuringEval::InputModel: return "from the input's model (the weights at the node's first step)";
  case MissingDuringEval::Checkpoint: return llvm::formatv("from the retained checkpoint at step {0}", point.step).str();
  case MissingDuringEval::FinalModel: return "from the node's final model";
  case MissingDuringEval::Unavailable: break;
  }
  return llvm::formatv("needs retraining: no checkpoint was retained at step {0}", point.step).str();
}
