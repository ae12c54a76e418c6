//===- Convert.h - Hugging Face task exports to Mixtape task items -*- C++ -*-===//
//
// `mixtape data tasks convert` maps the rows of a Hugging Face dataset, as `to_json` writes
// them (one JSON object per line, the dataset's columns as keys), to choice items
// {"context": str, "choices": [str, ...], "gold": int} and, for MMLU, "description": the
// text placed once before the few-shot examples. Prompts and preprocessing are those of
// lm-eval-harness's default task configs (lm_eval/tasks/{arc,hellaswag,piqa,sciq,mmlu}),
// so that scores carry over; docs/tasks.md lists them.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>

namespace mixtape::tasks {

/// The datasets convert reads: ai2_arc (Easy and Challenge), hellaswag, piqa, sciq and
/// cais/mmlu.
enum class TaskSource { Arc, HellaSwag, Piqa, SciQ, Mmlu };

/// "arc", "hellaswag", "piqa", "sciq", "mmlu", in TaskSource's order.
llvm::ArrayRef<llvm::StringRef> taskSourceNames();
std::optional<TaskSource> taskSourceFromName(llvm::StringRef name);

/// One row (a JSON object) as an item: a JSON object on one line, without the newline.
/// Errors start with `where` ("in.jsonl:3") and name the field.
llvm::Expected<std::string> convertTaskLine(TaskSource from, llvm::StringRef line, const llvm::Twine &where);

/// Converts every non-blank line of `inPath` into `outPath`, written whole or not at all;
/// returns the number of items. Errors name "<inPath>:<line>".
llvm::Expected<uint64_t> convertTaskFile(TaskSource from, llvm::StringRef inPath, llvm::StringRef outPath);

/// What Python's str.capitalize() gives: the first character in title case, the rest
/// lowercased (a capital sigma that ends a word becoming ς), with the tables of the Python
/// that scripts/gen_case_tables.py ran under (3.11, Unicode 14).
std::string pythonCapitalize(llvm::StringRef text);

} // namespace mixtape::tasks
