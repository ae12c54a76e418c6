//===- Prepare.h - text and JSONL files to a token dataset -----*- C++ -*-===//
//
// `mixtape data prepare`: every document of the input files, in order, tokenized on many
// threads into one dataset. A JSONL line (in a file whose name, less .gz or .zst, ends in
// .jsonl) is a document: its text field, and its other fields as metadata columns; a line
// without one but with "prompt" and "response" strings is a supervised example: the
// prompt's tokens then the response's, and the column "prompt_tokens". Any
// other file is one document. Files are read through TextInput (compressed or not, binary
// refused). The reader cuts the text into batches of whole lines; workers parse and
// tokenize them; the batches are written in the order they were read, so the dataset is
// the same, byte for byte, whatever the number of threads.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/data/Dataset.h"
#include "mixtape/data/Tokenizer.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace mixtape::data {

/// A document's tokens as a dataset stores them: the tokenizer's BOS if its post-processor
/// adds one (Tokenizer::bos), then the text encoded as HF's encode(text,
/// add_special_tokens=False) does. The end-of-text is not stored (manifests say eod
/// "append": sampling appends it).
std::vector<uint32_t> tokenizeDocument(const Tokenizer &tokenizer, llvm::StringRef text);

struct PrepareOptions {
  /// The JSONL field that holds the text; "a.b.c" is field c of object b of object a
  /// (a key that itself holds dots is found as written first).
  std::string TextKey = "text";
  /// Tokenizing threads; 0: every core.
  unsigned Threads = 0;
};

struct PrepareResult {
  uint64_t SkippedEmpty = 0;             ///< documents with empty text, not stored
  std::set<std::string> SkippedFields;   ///< JSONL fields holding arrays or objects
};

/// How far prepare is: bytes of the input files read (compressed bytes for compressed
/// files) and bytes of text tokenized.
using PrepareProgress = llvm::function_ref<void(uint64_t fileBytes, uint64_t textBytes)>;

/// Adds the documents of `files` to `writer`, which the caller then finishes. A failure
/// names the file and the line or byte; the writer is then not to be finished.
llvm::Expected<PrepareResult> prepareFiles(llvm::ArrayRef<std::string> files, const Tokenizer &tokenizer,
                                           DatasetWriter &writer, const PrepareOptions &options,
                                           PrepareProgress progress);

} // namespace mixtape::data
