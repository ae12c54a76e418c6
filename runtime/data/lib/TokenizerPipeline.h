//===- TokenizerPipeline.h - tokenizer.json's stages -----------*- C++ -*-===//
//
// The stages of a Hugging Face tokenizer.json around its BPE model, as `tokenizers` runs
// them: normalizers (rewrite the text between added tokens), pre-tokenizers (cut it into
// the words the model encodes one by one), decoders (turn tokens back into text) and the
// post-processor's template (the BOS it adds). Each is read from its JSON object; what
// Mixtape does not implement is refused with the JSON path that names it.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "Unicode.h"

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mixtape::data::hf {

/// Declares `decl` as the value of the llvm::Expected `expr`, or returns its error.
#define TRY(decl, expr)                                                                            \
  auto decl##OrErr = (expr);                                                                       \
  if (!decl##OrErr)                                                                                \
    return decl##OrErr.takeError();                                                                \
  auto decl = std::move(*decl##OrErr)

/// Reports a problem at `where` in a JSON file (a path such as "model.vocab", or "").
using ErrorAt = std::function<llvm::Error(const llvm::Twine &where, const llvm::Twine &message)>;

/// `s` quoted and escaped for an error message, cut after 40 bytes.
std::string quotedText(llvm::StringRef s);

/// Reads optional fields of a JSON object, naming them by their JSON path in errors.
class JsonFields {
public:
  JsonFields(ErrorAt error, const llvm::json::Object &object, std::string path)
      : Error(std::move(error)), Object(object), Path(std::move(path)) {}

  std::string at(llvm::StringRef key) const { return Path.empty() ? key.str() : Path + "." + key.str(); }
  /// The field, none when it is missing or null.
  const llvm::json::Value *get(llvm::StringRef key) const;
  llvm::Expected<bool> flag(llvm::StringRef key, bool fallback) const;
  llvm::Expected<llvm::StringRef> string(llvm::StringRef key) const;
  llvm::Expected<uint64_t> count(llvm::StringRef key, uint64_t fallback) const;
  llvm::Expected<const llvm::json::Object *> object(llvm::StringRef key) const;
  llvm::Expected<const llvm::json::Array *> array(llvm::StringRef key) const;

  ErrorAt Error;

private:
  const llvm::json::Object &Object;
  std::string Path;
};

/// GPT-2's byte alphabet (bytes_to_unicode in openai/gpt-2 src/encoder.py).
struct ByteAlphabet {
  std::array<uint32_t, 256> CharOf{};
  /// Code point -> byte, -1 for characters outside the alphabet (all are below 324).
  std::array<int16_t, 324> ByteOf{};

  ByteAlphabet();
  /// The bytes a token written in the alphabet stands for; characters outside it stand
  /// for their own UTF-8 (as the `tokenizers` ByteLevel decoder does). `token` is UTF-8.
  std::string bytesOf(llvm::StringRef token) const;
  std::string textOf(llvm::StringRef bytes) const;
};
const ByteAlphabet &byteAlphabet();

/// Calls emit(piece) for each match of GPT-2's pre-tokenization regex
///   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
/// as Oniguruma finds them: the first alternative that matches at a position wins.
template <typename Emit> void forEachGpt2Pretoken(llvm::StringRef text, Emit &&emit) {
  using unicode::CharClass;
  const uint8_t *p = text.bytes_begin(), *end = text.bytes_end();
  auto piece = [](const uint8_t *from, const uint8_t *to) {
    return llvm::StringRef(reinterpret_cast<const char *>(from), to - from);
  };
  while (p < end) {
    // Contractions, case-sensitive as in GPT-2 ("'S" is not one).
    if (*p == '\'' && end - p >= 2) {
      uint8_t a = p[1], b = end - p >= 3 ? p[2] : 0;
      size_t n = (a == 's' || a == 't' || a == 'm' || a == 'd') ? 2
                 : ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) ? 3
                                                                                                  : 0;
      if (n) {
        emit(piece(p, p + n));
        p += n;
        continue;
      }
    }
    size_t len;
    CharClass cls = unicode::classAt(p, end, len);
    const uint8_t *run = p;
    // " ?X+": a space joins a following run of letters, numbers or other symbols.
    if (*p == ' ' && end - p >= 2) {
      size_t nextLen;
      CharClass next = unicode::classAt(p + 1, end, nextLen);
      if (next != CharClass::Space) {
        cls = next;
        run = p + 1;
      }
    }
    const uint8_t *q = run, *lastStart = run;
    while (q < end) {
      size_t n;
      if (unicode::classAt(q, end, n) != cls)
        break;
      lastStart = q;
      q += n;
    }
    // "\s+(?!\S)": a whitespace run followed by a non-space leaves its last character
    // to the next piece (" ?\p{L}+" then takes a plain space); a run of one is "\s+".
    if (cls == CharClass::Space && q < end && lastStart > p)
      q = lastStart;
    emit(piece(p, q));
    p = q;
  }
}

/// Rewrites the text between added tokens.
class Normalizer {
public:
  virtual ~Normalizer();
  virtual void normalize(std::string &text) const = 0;
};

/// The normalizer `value` at `path` ("normalizer"); none for null.
llvm::Expected<std::unique_ptr<Normalizer>> readNormalizer(const llvm::json::Value &value, const std::string &path,
                                                           const ErrorAt &error);

/// One step of pre-tokenization: cuts a piece into smaller ones (or rewrites it). `first`
/// says the piece starts the text (Metaspace's prepend_scheme "first").
class PreTokenizer {
public:
  using Emit = llvm::function_ref<void(llvm::StringRef piece, bool first)>;
  virtual ~PreTokenizer();
  virtual void split(llvm::StringRef piece, bool first, Emit emit) const = 0;
};

/// A pre_tokenizer: its steps in order (a Sequence flattened), then the ByteLevel step
/// that must come last when there is one: it maps the pieces to GPT-2's byte alphabet,
/// which the model's vocabulary is then written in.
struct PreTokenizers {
  std::vector<std::unique_ptr<PreTokenizer>> Steps;
  bool ByteLevel = false, AddPrefixSpace = false, UseRegex = false;

  /// Calls emit(word) for each word the steps cut `piece` into (before ByteLevel).
  void run(llvm::StringRef piece, bool first, llvm::function_ref<void(llvm::StringRef)> emit, size_t step = 0) const;
};

llvm::Expected<PreTokenizers> readPreTokenizers(const llvm::json::Value &value, const std::string &path,
                                                const ErrorAt &error);

/// Turns tokens (as the vocabulary writes them) back into text, `tokenizers`' decode_chain.
class Decoder {
public:
  virtual ~Decoder();
  virtual void decodeChain(std::vector<std::string> &tokens) const = 0;
};

/// A decoder's steps in order (a Sequence flattened); `byteLevelOnly` is set when the
/// decoder is exactly ByteLevel.
llvm::Expected<std::vector<std::unique_ptr<Decoder>>>
readDecoders(const llvm::json::Value &value, const std::string &path, const ErrorAt &error, bool &byteLevelOnly);

/// What a post_processor adds around a single text: the ids before it and after it.
struct Template {
  std::vector<uint32_t> Before, After;
  /// Where `single` is, for errors about what it adds.
  std::string Path;
};

/// The post_processor `value` at `path`; ByteLevel adds nothing, TemplateProcessing what
/// its `single` says, Sequence both.
llvm::Expected<Template> readPostProcessor(const llvm::json::Value &value, const std::string &path,
                                           const ErrorAt &error);

} // namespace mixtape::data::hf
