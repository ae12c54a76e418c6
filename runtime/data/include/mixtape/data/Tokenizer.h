//===- Tokenizer.h - text to token ids and back ----------------*- C++ -*-===//
//
// The interface every tokenizer implements, and the embedded byte-level tokenizer that
// needs no files: ids 0-255 are the bytes of the UTF-8 text, then special tokens. BPE
// tokenizers plug in behind the same interface.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mixtape::data {

class Tokenizer {
public:
  virtual ~Tokenizer();
  /// Stable name recorded in manifests, e.g. "bytes-v1".
  virtual llvm::StringRef id() const = 0;
  /// Ids are below this; it may include reserved ids the tokenizer never produces.
  virtual uint32_t vocabSize() const = 0;
  virtual std::vector<uint32_t> encode(llvm::StringRef text) const = 0;
  /// Total: every id decodes to something (special and unknown ids as "<|...|>").
  virtual std::string decode(llvm::ArrayRef<uint32_t> ids) const = 0;
  /// The end-of-text id that separates documents.
  virtual uint32_t eot() const = 0;
  /// The knot id that joins chunks of a document cut by Untie-the-Knots; none when the
  /// tokenizer has no such token.
  virtual std::optional<uint32_t> knot() const { return std::nullopt; }
  /// The beginning-of-text id the tokenizer's own files put before each text (a Hugging
  /// Face post_processor's template); encode() never adds it. None when there is none.
  virtual std::optional<uint32_t> bos() const { return std::nullopt; }
};

/// "bytes-v1": ids 0-255 are bytes, 256 <|endoftext|>, 257 <|knot|> (Untie-the-Knots),
/// 258 <|pad|>, 259-263 reserved for control tokens (259 <|good|>, 260 <|bad|>, then
/// <|261|> to <|263|>: plan::kByteControlTokens), so the vocabulary is 264, a multiple of 8.
/// Text never encodes to a special id: "<|endoftext|>" in a document is 13 bytes.
class ByteTokenizer final : public Tokenizer {
public:
  static constexpr uint32_t EndOfText = 256;
  static constexpr uint32_t Knot = 257;
  static constexpr uint32_t Pad = 258;
  static constexpr uint32_t VocabSize = 264;

  llvm::StringRef id() const override { return "bytes-v1"; }
  uint32_t vocabSize() const override { return VocabSize; }
  std::vector<uint32_t> encode(llvm::StringRef text) const override;
  std::string decode(llvm::ArrayRef<uint32_t> ids) const override;
  uint32_t eot() const override { return EndOfText; }
  std::optional<uint32_t> knot() const override { return Knot; }
};

/// Tokenizers by name: "bytes" or "bytes-v1" (the byte tokenizer), or a Hugging Face
/// BPE tokenizer (BpeTokenizer.h) as "hf:PATH" or an existing PATH: a
/// tokenizer.json or a directory with tokenizer.json or vocab.json + merges.txt.
llvm::Expected<std::unique_ptr<Tokenizer>> createTokenizer(llvm::StringRef name);

/// A tokenizer name as a recipe writes it, with its path made relative to the recipe's
/// folder `baseDir` ("bytes" and "" stay as they are; "hf:" is kept).
std::string resolveTokenizerName(llvm::StringRef name, llvm::StringRef baseDir);

} // namespace mixtape::data
