//===- Tasks.h - downstream task files, prompts and scores ------*- C++ -*-===//
//
// A task file holds one item per line (docs/tasks.md): choice items
// {"context", "choices", "gold"} and generate items {"context", "answer"}, each with an
// optional "description". What lm-eval-harness does between such an item and the model is
// here, torch-free, so planning counts the same tokens the runtime scores: few-shot
// contexts, the (context, continuation) token pairs of a choice, stop strings, and the
// metrics from per-choice log-likelihoods or generated text.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/data/Tokenizer.h"
#include "mixtape/plan/Plan.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mixtape::data {

struct TaskItem {
  uint64_t Line = 0; ///< 0-based line in its file: the item's index in per-item outputs
  std::string Description, Context;
  std::vector<std::string> Choices; ///< choice items
  uint64_t Gold = 0;                ///< choice items: index into Choices
  std::string Answer;               ///< generate items
  /// What follows the context in a few-shot example: the gold choice or the answer.
  const std::string &target() const { return Choices.empty() ? Answer : Choices[Gold]; }
};

/// The tokenizer of the plan's model ("bytes", or "hf:PATH" relative to its recipe_dir).
llvm::Expected<std::unique_ptr<Tokenizer>> modelTokenizer(const plan::Plan &plan);

/// Parses a task file of `kind`; every malformed line or field is an error
/// "FILE:LINE: ...". Blank lines are not items (and keep their line numbers).
llvm::Expected<std::vector<TaskItem>> parseTaskItems(llvm::StringRef text, llvm::StringRef file,
                                                     plan::TaskKind kind);
llvm::Expected<std::vector<TaskItem>> readTaskItems(llvm::StringRef path, plan::TaskKind kind);

/// A task's items (the first `limit`) and few-shot pool, read from the files its plan
/// entry names relative to `recipeDir`.
struct TaskFiles {
  std::vector<TaskItem> Items;
  std::vector<TaskItem> Fewshot; ///< empty when examples come from the item file
  /// The full item file: the pool when `fewshot` is absent (limit does not shrink it).
  std::vector<TaskItem> All;
};
llvm::Expected<TaskFiles> readTaskFiles(const plan::Task &task, llvm::StringRef recipeDir);

/// "sha256:<hex>" over the item file's bytes and, when the task has one, the few-shot
/// file's: the content the node hash covers.
llvm::Expected<std::string> taskFingerprint(const plan::Task &task, llvm::StringRef recipeDir);

/// The text the model sees before item `index` of `files.Items` is continued: its
/// description, then `task.Shots` examples (context, target delimiter, target), each
/// followed by the few-shot delimiter, then the item's context. Examples are drawn without
/// replacement from the pool with a generator seeded by the task's seed and the item's
/// line, never the item itself.
std::string taskContext(const plan::Task &task, const TaskFiles &files, size_t index);

/// lm-eval-harness's _encode_pair: trailing whitespace of the context (Python's rstrip())
/// moves to the continuation; the continuation's tokens are those of
/// tokens(context + continuation) past the first len(tokens(context)). An empty context is the end-of-text token.
struct ScoredPair {
  std::vector<uint32_t> Context, Continuation;
};
ScoredPair encodePair(const Tokenizer &tokenizer, llvm::StringRef context, llvm::StringRef continuation);

/// The window a forward pass scores a pair in: the last `maxLength + 1` tokens of context
/// and continuation, without the last; its final Continuation.size() positions predict
/// the continuation.
std::vector<uint32_t> scoringInput(const ScoredPair &pair, size_t maxLength);

/// The tokens a task's forward passes read, for the plan's cost: choice items once per
/// choice, generate items their context plus max_new_tokens.
uint64_t taskTokens(const plan::Task &task, const TaskFiles &files, const Tokenizer &tokenizer, size_t maxLength);

/// Which choice wins: by log-likelihood (acc), and by log-likelihood per code point of the
/// choice text (acc_norm); ties go to the lowest index, as numpy's argmax.
struct ChoiceOutcome {
  size_t Best = 0, BestNorm = 0;
};
ChoiceOutcome chooseAnswer(llvm::ArrayRef<double> logliks, llvm::ArrayRef<std::string> choices);

/// Generated text up to the first stop string.
std::string cutAtStop(llvm::StringRef text, llvm::ArrayRef<std::string> until);
/// Exact match after stripping whitespace both sides (Python's strip()), and whether the stripped answer
/// occurs in the output.
struct GenerateOutcome {
  bool ExactMatch = false, Contains = false;
};
GenerateOutcome judgeGenerated(llvm::StringRef output, llvm::StringRef answer);

/// The mean of 0/1 (or any) scores and its standard error: the sample standard deviation
/// (n - 1) over sqrt(n), as lm-eval's mean_stderr; 0 for fewer than two.
struct MeanStderr {
  double Mean = 0, Stderr = 0;
};
MeanStderr meanStderr(llvm::ArrayRef<double> values);

/// Code points of UTF-8 text (Python's len of a str).
size_t codePoints(llvm::StringRef text);

} // namespace mixtape::data
