//===- Tasks.cpp - downstream task files, prompts and scores --------------===//
#include "mixtape/data/Tasks.h"

#include "mixtape/data/Random.h"
#include "mixtape/plan/Environment.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/JSON.h"
#include "mixtape/support/PythonText.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SHA256.h"

#include <algorithm>
#include <cmath>

using namespace mixtape;
using namespace mixtape::data;
namespace json = llvm::json;

llvm::Expected<std::unique_ptr<Tokenizer>> mixtape::data::modelTokenizer(const plan::Plan &plan) {
  return createTokenizer(resolveTokenizerName(plan.Model.Tokenizer, plan.RecipeDir));
}

llvm::Expected<std::vector<TaskItem>> mixtape::data::parseTaskItems(llvm::StringRef text, llvm::StringRef file,
                                                                    plan::TaskKind kind) {
  llvm::SmallVector<llvm::StringRef, 0> lines;
  text.split(lines, '\n');
  std::vector<TaskItem> items;
  for (size_t i = 0; i < lines.size(); ++i) {
    llvm::StringRef line = lines[i].trim();
    if (line.empty())
      continue;
    std::string where = (file + ":" + llvm::Twine(i + 1)).str();
    llvm::Expected<json::Value> value = parseJSON(line, where);
    if (!value)
      return value.takeError();
    const json::Object *o = value->getAsObject();
    if (!o)
      return fileError(where, "an item is a JSON object");
    auto text = [&](llvm::StringRef key, std::string &out, bool required) -> llvm::Error {
      const json::Value *v = o->get(key);
      if (!v && !required)
        return llvm::Error::success();
      if (!v || !v->getAsString())
        return fileError(where, "\"" + key + "\" must be a string");
      out = v->getAsString()->str();
      return llvm::Error::success();
    };
    TaskItem item;
    item.Line = i;
    if (llvm::Error e = text("context", item.Context, true))
      return std::move(e);
    if (llvm::Error e = text("description", item.Description, false))
      return std::move(e);
    if (kind == plan::TaskKind::Generate) {
      if (llvm::Error e = text("answer", item.Answer, true))
        return std::move(e);
    } else {
      const json::Array *choices = o->getArray("choices");
      if (!choices || choices->size() < 2)
        return fileError(where, "\"choices\" must be a list of at least two strings");
      for (const json::Value &c : *choices) {
        if (!c.getAsString())
          return fileError(where, "\"choices\" must be a list of at least two strings");
        item.Choices.push_back(c.getAsString()->str());
      }
      const json::Value *gold = o->get("gold");
      llvm::Optional<int64_t> g = gold ? gold->getAsInteger() : llvm::None;
      if (!g || *g < 0 || static_cast<uint64_t>(*g) >= item.Choices.size())
        return fileError(where, llvm::formatv("\"gold\" must be the index of the right choice, 0 to {0}",
                                              item.Choices.size() - 1));
      item.Gold = static_cast<uint64_t>(*g);
    }
    items.push_back(std::move(item));
  }
  if (items.empty())
    return fileError(file, "no items: a task file holds one JSON object per line");
  return items;
}

llvm::Expected<std::vector<TaskItem>> mixtape::data::readTaskItems(llvm::StringRef path, plan::TaskKind kind) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return fileError(path, "cannot read the task file: " + buffer.getError().message());
  return parseTaskItems((*buffer)->getBuffer(), path, kind);
}

llvm::Expected<TaskFiles> mixtape::data::readTaskFiles(const plan::Task &task, llvm::StringRef recipeDir) {
  TaskFiles files;
  llvm::Expected<std::vector<TaskItem>> all = readTaskItems(plan::resolvePath(recipeDir, task.Path), task.Kind);
  if (!all)
    return all.takeError();
  files.All = std::move(*all);
  files.Items = files.All;
  if (task.Limit && task.Limit < files.Items.size())
    files.Items.resize(task.Limit);
  if (task.Fewshot) {
    llvm::Expected<std::vector<TaskItem>> pool = readTaskItems(plan::resolvePath(recipeDir, *task.Fewshot), task.Kind);
    if (!pool)
      return pool.takeError();
    files.Fewshot = std::move(*pool);
  }
  const size_t pool = task.Fewshot ? files.Fewshot.size() : files.All.size() - 1;
  if (task.Shots > pool)
    return fileError(plan::resolvePath(recipeDir, task.Fewshot.value_or(task.Path)),
                     llvm::formatv("{0} shots, but the few-shot pool holds {1} other items", task.Shots, pool));
  return files;
}

llvm::Expected<std::string> mixtape::data::taskFingerprint(const plan::Task &task, llvm::StringRef recipeDir) {
  llvm::SHA256 hash;
  for (const std::string *path : {&task.Path, task.Fewshot ? &*task.Fewshot : nullptr}) {
    if (!path)
      continue;
    std::string file = plan::resolvePath(recipeDir, *path);
    auto buffer = llvm::MemoryBuffer::getFile(file);
    if (!buffer)
      return fileError(file, "cannot read the task file: " + buffer.getError().message());
    llvm::StringRef bytes = (*buffer)->getBuffer();
    // Length-prefixed, so the two files' boundary is part of what is hashed.
    hash.update(std::to_string(bytes.size()) + ":");
    hash.update(bytes);
  }
  return "sha256:" + llvm::toHex(hash.final(), /*LowerCase=*/true);
}

std::string mixtape::data::taskContext(const plan::Task &task, const TaskFiles &files, size_t index) {
  const TaskItem &item = files.Items[index];
  const std::vector<TaskItem> &pool = task.Fewshot ? files.Fewshot : files.All;
  std::string out = item.Description;
  if (task.Shots) {
    // A partial Fisher-Yates draw of shots + 1 (one may be the item itself, dropped).
    SplitMix64 rng(mixSeed(task.FewshotSeed, item.Line));
    std::vector<size_t> order(pool.size());
    for (size_t i = 0; i < order.size(); ++i)
      order[i] = i;
    const size_t draw = std::min<size_t>(task.Shots + 1, order.size());
    uint64_t taken = 0;
    for (size_t i = 0; i < draw && taken < task.Shots; ++i) {
      std::swap(order[i], order[i + rng.below(order.size() - i)]);
      const TaskItem &example = pool[order[i]];
      if (!task.Fewshot && example.Line == item.Line)
        continue;
      out += example.Context + task.TargetDelimiter + example.target() + task.FewshotDelimiter;
      ++taken;
    }
  }
  return out + item.Context;
}

ScoredPair mixtape::data::encodePair(const Tokenizer &tokenizer, llvm::StringRef context,
                                     llvm::StringRef continuation) {
  llvm::StringRef trimmed = pythonRStrip(context); // Python's rstrip(), as lm-eval
  std::string moved = context.drop_front(trimmed.size()).str() + continuation.str();
  ScoredPair pair;
  pair.Context = tokenizer.encode(trimmed);
  std::vector<uint32_t> whole = tokenizer.encode((trimmed + moved).str());
  const size_t shared = std::min(pair.Context.size(), whole.size());
  pair.Continuation.assign(whole.begin() + static_cast<ptrdiff_t>(shared), whole.end());
  if (pair.Context.empty())
    pair.Context.push_back(tokenizer.eot());
  return pair;
}

std::vector<uint32_t> mixtape::data::scoringInput(const ScoredPair &pair, size_t maxLength) {
  std::vector<uint32_t> all = pair.Context;
  all.insert(all.end(), pair.Continuation.begin(), pair.Continuation.end());
  const size_t keep = std::min(all.size(), maxLength + 1);
  return std::vector<uint32_t>(all.end() - static_cast<ptrdiff_t>(keep), all.end() - 1);
}

uint64_t mixtape::data::taskTokens(const plan::Task &task, const TaskFiles &files, const Tokenizer &tokenizer,
                                   size_t maxLength) {
  uint64_t tokens = 0;
  for (size_t i = 0; i < files.Items.size(); ++i) {
    const std::string context = taskContext(task, files, i);
    if (task.Kind == plan::TaskKind::Generate) {
      tokens += std::min<uint64_t>(tokenizer.encode(context).size() + task.MaxNewTokens, maxLength);
      continue;
    }
    for (const std::string &choice : files.Items[i].Choices)
      tokens += scoringInput(encodePair(tokenizer, context, task.TargetDelimiter + choice), maxLength).size();
  }
  return tokens;
}

size_t mixtape::data::codePoints(llvm::StringRef text) {
  // Every byte but UTF-8 continuation bytes starts a code point.
  return static_cast<size_t>(llvm::count_if(text, [](char c) { return (static_cast<uint8_t>(c) & 0xC0) != 0x80; }));
}

ChoiceOutcome mixtape::data::chooseAnswer(llvm::ArrayRef<double> logliks, llvm::ArrayRef<std::string> choices) {
  ChoiceOutcome out;
  double best = -INFINITY, bestNorm = -INFINITY;
  for (size_t i = 0; i < logliks.size(); ++i) {
    const double norm = logliks[i] / static_cast<double>(std::max<size_t>(codePoints(choices[i]), 1));
    if (logliks[i] > best)
      best = logliks[i], out.Best = i;
    if (norm > bestNorm)
      bestNorm = norm, out.BestNorm = i;
  }
  return out;
}

std::string mixtape::data::cutAtStop(llvm::StringRef text, llvm::ArrayRef<std::string> until) {
  size_t end = text.size();
  for (const std::string &stop : until)
    if (!stop.empty())
      end = std::min(end, text.find(stop));
  return text.take_front(end).str();
}

GenerateOutcome mixtape::data::judgeGenerated(llvm::StringRef output, llvm::StringRef answer) {
  llvm::StringRef out = pythonStrip(output), want = pythonStrip(answer);
  return {out == want, !want.empty() && out.contains(want)};
}

MeanStderr mixtape::data::meanStderr(llvm::ArrayRef<double> values) {
  MeanStderr r;
  if (values.empty())
    return r;
  const double n = static_cast<double>(values.size());
  for (double v : values)
    r.Mean += v;
  r.Mean /= n;
  if (values.size() < 2)
    return r;
  double squares = 0;
  for (double v : values)
    squares += (v - r.Mean) * (v - r.Mean);
  r.Stderr = std::sqrt(squares / (n - 1)) / std::sqrt(n);
  return r;
}
