//===- JSON.h - JSON text parsed without exhausting the stack ---*- C++ -*-===//
//
// llvm::json::parse recurses once per level of nesting, so a file of a hundred thousand '['
// overflows the stack before it can fail. Every JSON text Mixtape reads (plans, manifests,
// checkpoints' config.json and index, tokenizer.json, metrics.jsonl, safetensors headers)
// goes through parseJSON, which refuses deep nesting before parsing.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <cstddef>
#include <cstdint>

namespace mixtape {

/// The deepest nesting of arrays and objects parseJSON accepts: Mixtape's own files and
/// Hugging Face's nest fewer than ten levels.
constexpr size_t kMaxJSONDepth = 512;

/// `text`, which begins at byte `base` of `file`, parsed. A failure names the file and the
/// byte: "<file>: byte <N>: invalid JSON: <what>" or "<file>: byte <N>: JSON nested deeper
/// than 512 levels".
llvm::Expected<llvm::json::Value> parseJSON(llvm::StringRef text, const llvm::Twine &file, uint64_t base = 0);

/// Calls `visit(offset, c, depth)` for every byte of `text` outside strings and for the
/// opening quote of each string, with the nesting depth after that byte (an opening bracket
/// counts itself, a closing one is gone); `visit` returns false to stop. Scans JSON that is
/// not parsed yet, without recursion.
void walkJSONStructure(llvm::StringRef text, llvm::function_ref<bool(size_t offset, char c, size_t depth)> visit);

/// `value` as JSON text, as Python's json.dump(indent=2, sort_keys=True) lays it out: keys
/// sorted, `indent` spaces a level (0: one line), a final newline; but every float in its
/// shortest form (formatNumber: 1e-6, where llvm::json writes 9.9999999999999995e-07), and
/// NaN and infinities, which JSON cannot hold, as null.
std::string formatJSON(const llvm::json::Value &value, unsigned indent = 2);

} // namespace mixtape
