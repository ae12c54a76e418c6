//===- BpeTokenizer.cpp ---------------------------------------------------===//
//
// Mirrors Hugging Face `tokenizers` (models/bpe, pre_tokenizers/byte_level,
// tokenizer/added_vocabulary): where a choice below looks arbitrary, it is theirs.
//
//===----------------------------------------------------------------------===//
#include "mixtape/data/BpeTokenizer.h"

#include "mixtape/data/Manifest.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/JSON.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <functional>

#include <xxhash.h>

using namespace mixtape;
using namespace mixtape::data;
namespace json = llvm::json;
namespace fs = llvm::sys::fs;

//===----------------------------------------------------------------------===//
// Unicode: UTF-8 and the character classes of the GPT-2 regex
//===----------------------------------------------------------------------===//

namespace {
enum class CharClass : uint8_t { Other, Letter, Number, Space };
struct CharRange {
  uint32_t First, Last;
  CharClass Cls;
};
#include "UnicodeCategories.inc"

constexpr std::array<CharClass, 128> makeAsciiClasses() {
  std::array<CharClass, 128> classes{};
  for (const CharRange &range : CharRanges)
    for (uint32_t c = range.First; c <= range.Last && c < 128; ++c)
      classes[c] = range.Cls;
  return classes;
}
constexpr std::array<CharClass, 128> AsciiClasses = makeAsciiClasses();

CharClass classifyCodePoint(uint32_t cp) {
  const CharRange *end = std::end(CharRanges);
  const CharRange *after = std::upper_bound(std::begin(CharRanges), end, cp,
                                            [](uint32_t c, const CharRange &r) { return c < r.First; });
  if (after == std::begin(CharRanges))
    return CharClass::Other;
  const CharRange &range = after[-1];
  return cp <= range.Last ? range.Cls : CharClass::Other;
}

bool isContinuation(uint8_t b) { return (b & 0xC0) == 0x80; }

/// The length of the well-formed UTF-8 sequence at p (Unicode 14, table 3-7), with its
/// code point; 0 when the bytes there are not one.
size_t decodeUtf8(const uint8_t *p, const uint8_t *end, uint32_t &cp) {
  uint8_t b = p[0];
  size_t avail = end - p;
  if (b < 0x80) {
    cp = b;
    return 1;
  }
  if (b >= 0xC2 && b <= 0xDF) {
    if (avail < 2 || !isContinuation(p[1]))
      return 0;
    cp = (b & 0x1Fu) << 6 | (p[1] & 0x3Fu);
    return 2;
  }
  if (b >= 0xE0 && b <= 0xEF) {
    uint8_t lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
    if (avail < 3 || p[1] < lo || p[1] > hi || !isContinuation(p[2]))
      return 0;
    cp = (b & 0x0Fu) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3Fu);
    return 3;
  }
  if (b >= 0xF0 && b <= 0xF4) {
    uint8_t lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
    if (avail < 4 || p[1] < lo || p[1] > hi || !isContinuation(p[2]) || !isContinuation(p[3]))
      return 0;
    cp = (b & 0x07u) << 18 | (p[1] & 0x3Fu) << 12 | (p[2] & 0x3Fu) << 6 | (p[3] & 0x3Fu);
    return 4;
  }
  return 0;
}

/// The class of the character at p (< end) and its length in bytes; a byte that starts
/// no well-formed sequence is one Other character.
inline CharClass classAt(const uint8_t *p, const uint8_t *end, size_t &len) {
  if (*p < 0x80) {
    len = 1;
    return AsciiClasses[*p];
  }
  uint32_t cp;
  len = decodeUtf8(p, end, cp);
  if (len == 0) {
    len = 1;
    return CharClass::Other;
  }
  return classifyCodePoint(cp);
}

void appendUtf8(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | cp >> 6));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | cp >> 12));
    out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | cp >> 18));
    out.push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

//===----------------------------------------------------------------------===//
// Pre-tokenization
//===----------------------------------------------------------------------===//

/// Calls emit(piece) for each match of
///   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
/// as Oniguruma finds them: the first alternative that matches at a position wins.
template <typename Emit> void forEachPretoken(llvm::StringRef text, Emit &&emit) {
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
    CharClass cls = classAt(p, end, len);
    const uint8_t *run = p;
    // " ?X+": a space joins a following run of letters, numbers or other symbols.
    if (*p == ' ' && end - p >= 2) {
      size_t nextLen;
      CharClass next = classAt(p + 1, end, nextLen);
      if (next != CharClass::Space) {
        cls = next;
        run = p + 1;
      }
    }
    const uint8_t *q = run, *lastStart = run;
    while (q < end) {
      size_t n;
      if (classAt(q, end, n) != cls)
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

//===----------------------------------------------------------------------===//
// GPT-2's byte alphabet (bytes_to_unicode in openai/gpt-2 src/encoder.py)
//===----------------------------------------------------------------------===//

struct ByteAlphabet {
  std::array<uint32_t, 256> CharOf{};
  /// Code point -> byte, -1 for characters outside the alphabet (all are below 324).
  std::array<int16_t, 324> ByteOf{};

  ByteAlphabet() {
    ByteOf.fill(-1);
    uint32_t extra = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      CharOf[b] = printable ? b : extra++;
      ByteOf[CharOf[b]] = static_cast<int16_t>(b);
    }
  }

  /// The bytes a token written in the alphabet stands for; characters outside it stand
  /// for their own UTF-8 (as the `tokenizers` ByteLevel decoder does). `token` is UTF-8.
  std::string bytesOf(llvm::StringRef token) const {
    std::string out;
    const uint8_t *p = token.bytes_begin(), *end = token.bytes_end();
    while (p < end) {
      uint32_t cp;
      size_t len = decodeUtf8(p, end, cp);
      if (len == 0)
        len = 1, cp = ~0u;
      if (cp < ByteOf.size() && ByteOf[cp] >= 0)
        out.push_back(static_cast<char>(ByteOf[cp]));
      else
        out.append(reinterpret_cast<const char *>(p), len);
      p += len;
    }
    return out;
  }

  std::string textOf(llvm::StringRef bytes) const {
    std::string out;
    for (uint8_t b : bytes.bytes())
      appendUtf8(out, CharOf[b]);
    return out;
  }
};

const ByteAlphabet &byteAlphabet() {
  static const ByteAlphabet alphabet;
  return alphabet;
}

/// Names of the end-of-text token, first found wins.
constexpr llvm::StringLiteral EndOfTextNames[] = {"<|endoftext|>", "<|end_of_text|>", "</s>"};
constexpr size_t CacheCapacity = 1 << 16;
constexpr size_t CachedWordBytes = 64;
constexpr uint64_t MaxFileBytes = uint64_t(1) << 30;

std::string quotedText(llvm::StringRef s) {
  std::string out;
  llvm::raw_string_ostream os(out);
  os << '"';
  os.write_escaped(s.take_front(40), /*UseHexEscapes=*/true);
  os << (s.size() > 40 ? "...\"" : "\"");
  return out;
}
} // namespace

std::vector<llvm::StringRef> mixtape::data::gpt2Pretokens(llvm::StringRef text) {
  std::vector<llvm::StringRef> pieces;
  forEachPretoken(text, [&](llvm::StringRef piece) { pieces.push_back(piece); });
  return pieces;
}

llvm::StringRef mixtape::data::unicodeTablesVersion() { return UnicodeVersion; }

//===----------------------------------------------------------------------===//
// Building from either file format
//===----------------------------------------------------------------------===//

namespace {
/// Reports a problem at `where` in a JSON file (a path such as "model.vocab", or "").
using ErrorAt = std::function<llvm::Error(const llvm::Twine &where, const llvm::Twine &message)>;
} // namespace

/// Collects the vocabulary, merges and added tokens that either format provides and
/// checks them, each error naming the file and where in it.
class BpeTokenizer::Builder {
public:
  explicit Builder(std::string fileName) : FileName(std::move(fileName)), T(new BpeTokenizer) {}

  llvm::Error error(const llvm::Twine &where, const llvm::Twine &message) const {
    std::string at = where.str();
    return fileError(FileName, at.empty() ? message : at + ": " + message);
  }
  /// error(), for the readers of JSON fields.
  ErrorAt errorAt() const {
    return [this](const llvm::Twine &where, const llvm::Twine &message) { return error(where, message); };
  }

  /// `where` names the vocabulary ("model.vocab"). Ids must be 0..n-1, each once.
  llvm::Error setVocab(llvm::StringRef where, std::vector<std::pair<std::string, uint64_t>> entries) {
    llvm::sort(entries, [](const auto &a, const auto &b) { return std::tie(a.second, a.first) < std::tie(b.second, b.first); });
    if (!entries.empty() && entries.back().second >= entries.size()) {
      size_t unused = 0;
      while (entries[unused].second == unused)
        ++unused;
      return error(where + "[" + quotedText(entries.back().first) + "]",
                   "id " + llvm::Twine(entries.back().second) + " is out of range: " +
                       llvm::Twine(entries.size()) + " tokens have ids 0 to " + llvm::Twine(entries.size() - 1) +
                       " (id " + llvm::Twine(unused) + " is not used)");
    }
    for (size_t i = 0; i < entries.size(); ++i) {
      const auto &[token, id] = entries[i];
      if (token.empty())
        return error(where, "the empty string is not a token (id " + llvm::Twine(id) + ")");
      if (i > 0 && entries[i - 1].second == id)
        return error(where, "id " + llvm::Twine(id) + " is given to both " + quotedText(entries[i - 1].first) +
                                " and " + quotedText(token));
      T->Vocab[token] = static_cast<uint32_t>(id);
    }
    ModelSize = entries.size();
    const ByteAlphabet &alphabet = byteAlphabet();
    for (unsigned b = 0; b < 256; ++b) {
      std::string text;
      appendUtf8(text, alphabet.CharOf[b]);
      auto it = T->Vocab.find(text);
      if (it == T->Vocab.end())
        return error(where, "byte 0x" + llvm::utohexstr(b) + " has no token (" + quotedText(text) +
                                "): a byte-level vocabulary has all 256");
      T->ByteIds[b] = it->second;
    }
    return llvm::Error::success();
  }

  /// What is wrong with the merge, "" when nothing is.
  std::string addMerge(llvm::StringRef left, llvm::StringRef right) {
    auto idOf = [&](llvm::StringRef token) -> std::optional<uint32_t> {
      auto it = T->Vocab.find(token);
      return it == T->Vocab.end() ? std::nullopt : std::optional<uint32_t>(it->second);
    };
    std::optional<uint32_t> l = idOf(left), r = idOf(right), merged = idOf((left + right).str());
    for (auto [token, id] : {std::pair(left.str(), l), std::pair(right.str(), r), std::pair((left + right).str(), merged)})
      if (!id)
        return quotedText(token) + " is not in the vocabulary";
    // A pair listed twice keeps its last rank, as `tokenizers` builds its merge map.
    T->Merges[uint64_t(*l) << 32 | *r] = MergeRule{Rank++, *merged};
    return "";
  }

  llvm::Error addAddedToken(const llvm::Twine &where, llvm::StringRef content, uint64_t id, bool normalized,
                            bool lstrip, bool rstrip) {
    if (content.empty())
      return error(where, "an added token's content is empty");
    auto inVocab = T->Vocab.find(content);
    if (inVocab != T->Vocab.end() && inVocab->second != id)
      return error(where, quotedText(content) + " has id " + llvm::Twine(id) + " but id " +
                              llvm::Twine(inVocab->second) + " in the vocabulary");
    if (inVocab == T->Vocab.end() && id < ModelSize)
      return error(where, "id " + llvm::Twine(id) + " of " + quotedText(content) + " is already " +
                              quotedText(tokenOf(id)) + "'s");
    if (id >= ModelSize + MaxAdded)
      return error(where, "id " + llvm::Twine(id) + " is out of range (" + llvm::Twine(ModelSize) +
                              " tokens and " + llvm::Twine(MaxAdded) + " added, so ids below " +
                              llvm::Twine(ModelSize + MaxAdded) + ")");
    for (const AddedToken *other : allAdded())
      if (other->Id == id || other->Content == content)
        return error(where, quotedText(content) + " (id " + llvm::Twine(id) + ") repeats the added token " +
                                quotedText(other->Content) + " (id " + llvm::Twine(other->Id) + ")");
    AddedTokenSet &set = normalized ? T->NormalizedAdded : T->RawAdded;
    set.Tokens.push_back(AddedToken{content.str(), static_cast<uint32_t>(id), lstrip, rstrip});
    return llvm::Error::success();
  }

  /// How many added tokens there will be: their ids go up to the vocabulary size plus this.
  void expectAdded(size_t count) { MaxAdded = count; }
  void setPreTokenizer(bool addPrefixSpace, bool useRegex) {
    T->AddPrefixSpace = addPrefixSpace;
    T->UseRegex = useRegex;
  }
  void setIgnoreMerges(bool ignore) { T->IgnoreMerges = ignore; }

  llvm::Expected<std::unique_ptr<BpeTokenizer>> finish(uint64_t fileHash) {
    BpeTokenizer &t = *T;
    t.Id = "bpe:" + formatChecksum(fileHash);
    uint64_t size = ModelSize;
    for (const AddedToken *added : allAdded())
      size = std::max<uint64_t>(size, added->Id + 1);
    t.VocabSize = static_cast<uint32_t>(size);

    std::vector<std::string> bytes(size);
    t.Known.assign(size, false);
    const ByteAlphabet &alphabet = byteAlphabet();
    for (const auto &entry : t.Vocab) {
      bytes[entry.second] = alphabet.bytesOf(entry.first());
      t.Known[entry.second] = true;
      if (alphabet.textOf(bytes[entry.second]) == entry.first())
        t.WordIds[bytes[entry.second]] = entry.second;
    }
    for (AddedTokenSet *set : {&t.RawAdded, &t.NormalizedAdded}) {
      llvm::stable_sort(set->Tokens, [](const AddedToken &a, const AddedToken &b) {
        return a.Content.size() > b.Content.size();
      });
      for (const AddedToken &added : set->Tokens) {
        set->FirstBytes[static_cast<uint8_t>(added.Content[0])] = true;
        bytes[added.Id] = added.Content;
        t.Known[added.Id] = true;
      }
    }
    t.TokenOffsets.reserve(size + 1);
    for (const std::string &b : bytes) {
      t.TokenOffsets.push_back(static_cast<uint32_t>(t.TokenBytes.size()));
      t.TokenBytes += b;
    }
    t.TokenOffsets.push_back(static_cast<uint32_t>(t.TokenBytes.size()));

    std::optional<uint32_t> eot;
    for (llvm::StringRef name : EndOfTextNames)
      if (!eot)
        eot = t.tokenId(name);
    if (!eot)
      return error("", "no end-of-text token (<|endoftext|>, <|end_of_text|> or </s>): documents "
                       "need one to separate them");
    t.EndOfText = *eot;
    t.Knot = t.tokenId("<|knot|>");
    return std::move(T);
  }

  /// The model vocabulary's token with `id`.
  std::string tokenOf(uint64_t id) const {
    for (const auto &entry : T->Vocab)
      if (entry.second == id)
        return entry.first().str();
    return "";
  }

private:
  std::vector<const AddedToken *> allAdded() const {
    std::vector<const AddedToken *> all;
    for (const AddedTokenSet *set : {&T->RawAdded, &T->NormalizedAdded})
      for (const AddedToken &added : set->Tokens)
        all.push_back(&added);
    return all;
  }

  std::string FileName;
  std::unique_ptr<BpeTokenizer> T;
  uint64_t ModelSize = 0, MaxAdded = 0;
  uint32_t Rank = 0;
};

namespace {
/// Reads optional fields of a JSON object, naming them by their JSON path in errors.
class JsonFields {
public:
  JsonFields(ErrorAt error, const json::Object &object, std::string path)
      : Error(std::move(error)), Object(object), Path(std::move(path)) {}

  std::string at(llvm::StringRef key) const { return Path.empty() ? key.str() : Path + "." + key.str(); }
  const json::Value *get(llvm::StringRef key) const {
    const json::Value *v = Object.get(key);
    return v && !v->getAsNull() ? v : nullptr;
  }
  llvm::Expected<bool> flag(llvm::StringRef key, bool fallback) const {
    const json::Value *v = get(key);
    if (!v)
      return fallback;
    if (llvm::Optional<bool> b = v->getAsBoolean())
      return *b;
    return Error(at(key), "expected true or false");
  }
  llvm::Expected<llvm::StringRef> string(llvm::StringRef key) const {
    const json::Value *v = get(key);
    if (!v)
      return Error(at(key), "missing");
    if (llvm::Optional<llvm::StringRef> s = v->getAsString())
      return *s;
    return Error(at(key), "expected a string");
  }
  llvm::Expected<const json::Object *> object(llvm::StringRef key) const {
    const json::Value *v = get(key);
    if (!v)
      return Error(at(key), "missing");
    if (const json::Object *o = v->getAsObject())
      return o;
    return Error(at(key), "expected an object");
  }

  ErrorAt Error;

private:
  const json::Object &Object;
  std::string Path;
};

llvm::Expected<std::vector<std::pair<std::string, uint64_t>>>
vocabEntries(const json::Object &vocab, const ErrorAt &error, llvm::StringRef where) {
  std::vector<std::pair<std::string, uint64_t>> entries;
  entries.reserve(vocab.size());
  for (const auto &[key, value] : vocab) {
    llvm::Optional<uint64_t> id = value.getAsUINT64();
    if (!id)
      return error(llvm::Twine(where) + "[" + quotedText(key) + "]", "expected a non-negative integer id");
    entries.emplace_back(key.str(), *id);
  }
  return entries;
}
} // namespace

#define TRY(decl, expr)                                                                            \
  auto decl##OrErr = (expr);                                                                       \
  if (!decl##OrErr)                                                                                \
    return decl##OrErr.takeError();                                                                \
  auto decl = std::move(*decl##OrErr)

llvm::Expected<std::unique_ptr<BpeTokenizer>>
BpeTokenizer::fromTokenizerJson(llvm::StringRef fileName, llvm::StringRef contents) {
  TRY(root, parseJSON(contents, fileName));
  Builder builder(fileName.str());
  ErrorAt error = builder.errorAt();
  const json::Object *rootObject = root.getAsObject();
  if (!rootObject)
    return error("", "expected a JSON object");
  JsonFields top(error, *rootObject, "");

  if (top.get("normalizer"))
    return error("normalizer", "not supported (byte-level BPE without a normalizer only)");
  TRY(preTokenizer, top.object("pre_tokenizer"));
  JsonFields pre(error, *preTokenizer, "pre_tokenizer");
  TRY(preType, pre.string("type"));
  if (preType != "ByteLevel")
    return error("pre_tokenizer.type", "'" + preType + "' is not supported (only ByteLevel)");
  TRY(addPrefixSpace, pre.flag("add_prefix_space", true));
  TRY(useRegex, pre.flag("use_regex", true));
  builder.setPreTokenizer(addPrefixSpace, useRegex);
  if (top.get("decoder")) {
    TRY(decoder, top.object("decoder"));
    TRY(decoderType, JsonFields(error, *decoder, "decoder").string("type"));
    if (decoderType != "ByteLevel")
      return error("decoder.type", "'" + decoderType + "' is not supported (only ByteLevel)");
  }

  TRY(model, top.object("model"));
  JsonFields fields(error, *model, "model");
  if (fields.get("type")) {
    TRY(type, fields.string("type"));
    if (type != "BPE")
      return error("model.type", "'" + type + "' is not supported (only BPE)");
  }
  if (const json::Value *dropout = fields.get("dropout"))
    if (dropout->getAsNumber().getValueOr(1.0) != 0.0)
      return error("model.dropout", "BPE dropout is not supported");
  for (llvm::StringRef affix : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json::Value *v = fields.get(affix))
      if (v->getAsString().getValueOr("x") != "")
        return error(fields.at(affix), "not supported by byte-level BPE");
  TRY(ignoreMerges, fields.flag("ignore_merges", false));
  builder.setIgnoreMerges(ignoreMerges);

  TRY(vocab, fields.object("vocab"));
  TRY(entries, vocabEntries(*vocab, error, "model.vocab"));
  if (llvm::Error err = builder.setVocab("model.vocab", std::move(entries)))
    return err;

  const json::Value *mergesValue = fields.get("merges");
  const json::Array *merges = mergesValue ? mergesValue->getAsArray() : nullptr;
  if (!merges)
    return error("model.merges", mergesValue ? "expected an array" : "missing");
  for (size_t i = 0; i < merges->size(); ++i) {
    std::string where = "model.merges[" + std::to_string(i) + "]";
    const json::Value &merge = (*merges)[i];
    llvm::StringRef left, right;
    if (llvm::Optional<llvm::StringRef> s = merge.getAsString()) {
      // The older "left right" form; byte-level tokens never hold a space.
      std::tie(left, right) = s->split(' ');
      if (left.empty() || right.empty() || right.contains(' '))
        return error(where, "expected two tokens separated by a space, got " + quotedText(*s));
    } else if (const json::Array *pair = merge.getAsArray();
               pair && pair->size() == 2 && (*pair)[0].getAsString() && (*pair)[1].getAsString()) {
      left = *(*pair)[0].getAsString();
      right = *(*pair)[1].getAsString();
    } else {
      return error(where, "expected \"left right\" or [\"left\", \"right\"]");
    }
    if (std::string problem = builder.addMerge(left, right); !problem.empty())
      return error(where, problem);
  }

  if (const json::Value *addedValue = top.get("added_tokens")) {
    const json::Array *added = addedValue->getAsArray();
    if (!added)
      return error("added_tokens", "expected an array");
    builder.expectAdded(added->size());
    for (size_t i = 0; i < added->size(); ++i) {
      std::string where = "added_tokens[" + std::to_string(i) + "]";
      const json::Object *token = (*added)[i].getAsObject();
      if (!token)
        return error(where, "expected an object");
      JsonFields f(error, *token, where);
      TRY(content, f.string("content"));
      const json::Value *idValue = f.get("id");
      llvm::Optional<uint64_t> id = idValue ? idValue->getAsUINT64() : llvm::None;
      if (!id)
        return error(f.at("id"), idValue ? "expected a non-negative integer" : "missing");
      TRY(special, f.flag("special", false));
      TRY(normalized, f.flag("normalized", !special));
      TRY(lstrip, f.flag("lstrip", false));
      TRY(rstrip, f.flag("rstrip", false));
      TRY(singleWord, f.flag("single_word", false));
      if (singleWord)
        return error(f.at("single_word"), "single-word added tokens are not supported");
      if (llvm::Error err = builder.addAddedToken(where, content, *id, normalized, lstrip, rstrip))
        return err;
    }
  }
  return builder.finish(XXH3_64bits(contents.data(), contents.size()));
}

llvm::Expected<std::unique_ptr<BpeTokenizer>>
BpeTokenizer::fromVocabAndMerges(llvm::StringRef vocabName, llvm::StringRef vocab, llvm::StringRef mergesName,
                                 llvm::StringRef merges) {
  TRY(root, parseJSON(vocab, vocabName));
  Builder builder(vocabName.str());
  const json::Object *vocabObject = root.getAsObject();
  if (!vocabObject)
    return builder.error("", "expected a JSON object of token to id");
  TRY(entries, vocabEntries(*vocabObject, builder.errorAt(), ""));
  if (llvm::Error err = builder.setVocab("", std::move(entries)))
    return err;
  // GPT2Tokenizer's defaults: no prefix space, the regex, and <|endoftext|> special.
  builder.setPreTokenizer(false, true);

  size_t lineNo = 0;
  llvm::StringRef rest = merges;
  while (!rest.empty()) {
    llvm::StringRef line;
    std::tie(line, rest) = rest.split('\n');
    ++lineNo;
    line.consume_back("\r");
    std::string where = "line " + std::to_string(lineNo);
    if (!json::isUTF8(line))
      return fileError(mergesName, where + ": not valid UTF-8");
    if (line.startswith("#version"))
      continue;
    llvm::StringRef left, right;
    std::tie(left, right) = line.split(' ');
    if (left.empty() || right.empty() || right.contains(' '))
      return fileError(mergesName, where + ": expected two tokens separated by a space, got " + quotedText(line));
    if (std::string problem = builder.addMerge(left, right); !problem.empty())
      return fileError(mergesName, where + ": " + problem);
  }
  // GPT2Tokenizer keeps its end-of-text token whole, as tokenizer.json's added_tokens do.
  for (llvm::StringRef name : EndOfTextNames)
    if (const json::Value *id = vocabObject->get(name)) {
      if (llvm::Error err = builder.addAddedToken("", name, *id->getAsUINT64(), /*normalized=*/false,
                                                  /*lstrip=*/false, /*rstrip=*/false))
        return err;
      break;
    }
  uint64_t hash = XXH3_64bits_withSeed(merges.data(), merges.size(), XXH3_64bits(vocab.data(), vocab.size()));
  return builder.finish(hash);
}

llvm::Expected<std::unique_ptr<BpeTokenizer>> BpeTokenizer::open(llvm::StringRef path) {
  auto read = [](const llvm::Twine &file) -> llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> {
    llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> buffer = mapFile(file);
    // The largest tokenizer.json files in use are tens of MB; parsing GBs would exhaust memory.
    if (buffer && (*buffer)->getBufferSize() > MaxFileBytes)
      return fileError(file, llvm::Twine((*buffer)->getBufferSize()) + " bytes, more than a tokenizer file's " +
                                 llvm::Twine(MaxFileBytes >> 20) + " MiB limit");
    return buffer;
  };
  auto joined = [&](llvm::StringRef name) { return joinPath(path, name); };
  if (!fs::is_directory(path)) {
    TRY(buffer, read(path));
    return fromTokenizerJson(path, buffer->getBuffer());
  }
  if (fs::exists(joined("tokenizer.json"))) {
    TRY(buffer, read(joined("tokenizer.json")));
    return fromTokenizerJson(joined("tokenizer.json"), buffer->getBuffer());
  }
  if (fs::exists(joined("vocab.json")) && fs::exists(joined("merges.txt"))) {
    TRY(vocab, read(joined("vocab.json")));
    TRY(merges, read(joined("merges.txt")));
    return fromVocabAndMerges(joined("vocab.json"), vocab->getBuffer(), joined("merges.txt"), merges->getBuffer());
  }
  return fileError(path, "no tokenizer.json, nor vocab.json and merges.txt, in this directory");
}

llvm::Expected<uint64_t> BpeTokenizer::vocabularySize(llvm::StringRef path) {
  std::string file = path.str();
  if (fs::is_directory(path))
    file = joinPath(path, "tokenizer.json");
  TRY(buffer, mapFile(file));
  TRY(root, parseJSON(buffer->getBuffer(), file));
  const json::Object *top = root.getAsObject();
  int64_t largest = -1;
  if (const json::Object *model = top ? top->getObject("model") : nullptr)
    if (const json::Object *vocab = model->getObject("vocab"))
      for (const auto &kv : *vocab)
        largest = std::max(largest, kv.second.getAsInteger().getValueOr(-1));
  if (const json::Array *added = top ? top->getArray("added_tokens") : nullptr)
    for (const json::Value &t : *added)
      if (const json::Object *token = t.getAsObject())
        largest = std::max(largest, token->getInteger("id").getValueOr(-1));
  if (largest < 0)
    return fileError(file, "no token ids in model.vocab or added_tokens");
  return static_cast<uint64_t>(largest + 1);
}

BpeTokenizer::~BpeTokenizer() = default;

std::optional<uint32_t> BpeTokenizer::tokenId(llvm::StringRef token) const {
  for (const AddedTokenSet *set : {&RawAdded, &NormalizedAdded})
    for (const AddedToken &added : set->Tokens)
      if (added.Content == token)
        return added.Id;
  auto it = Vocab.find(token);
  return it == Vocab.end() ? std::nullopt : std::optional<uint32_t>(it->second);
}

//===----------------------------------------------------------------------===//
// Encoding and decoding
//===----------------------------------------------------------------------===//

/// Calls emit(piece, token) for the pieces of `text` between added tokens (token null) and
/// for each added token, found leftmost-longest as the `tokenizers` Aho-Corasick does;
/// lstrip/rstrip tokens take the whitespace beside them.
template <typename Emit>
void BpeTokenizer::splitOnAdded(llvm::StringRef text, const AddedTokenSet &set, Emit &&emit) {
  if (set.Tokens.empty()) {
    if (!text.empty())
      emit(text, nullptr);
    return;
  }
  const uint8_t *s = text.bytes_begin(), *end = text.bytes_end();
  size_t pieceStart = 0;
  auto isSpaceAt = [&](size_t i, size_t &len) { return classAt(s + i, end, len) == CharClass::Space; };
  for (size_t i = 0; i < text.size();) {
    const AddedToken *match = nullptr;
    if (set.FirstBytes[s[i]])
      for (const AddedToken &token : set.Tokens)
        if (text.substr(i).startswith(token.Content)) {
          match = &token;
          break;
        }
    if (!match) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + match->Content.size(), len;
    if (match->Lstrip)
      while (start > pieceStart) {
        size_t back = start - 1; // find the start of the character before
        while (back > pieceStart && isContinuation(s[back]))
          --back;
        if (!isSpaceAt(back, len) || back + len != start)
          break;
        start = back;
      }
    if (match->Rstrip)
      while (stop < text.size() && isSpaceAt(stop, len))
        stop += len;
    if (start > pieceStart)
      emit(text.slice(pieceStart, start), nullptr);
    emit(text.slice(start, stop), match);
    pieceStart = i = stop;
  }
  if (pieceStart < text.size())
    emit(text.substr(pieceStart), nullptr);
}

std::vector<uint32_t> BpeTokenizer::encode(llvm::StringRef text) const {
  std::vector<uint32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  std::unique_lock<std::mutex> lock(CacheMutex, std::try_to_lock);
  bool useCache = lock.owns_lock();
  splitOnAdded(text, RawAdded, [&](llvm::StringRef piece, const AddedToken *token) {
    if (token)
      return ids.push_back(token->Id);
    splitOnAdded(piece, NormalizedAdded, [&](llvm::StringRef inner, const AddedToken *innerToken) {
      if (innerToken)
        return ids.push_back(innerToken->Id);
      encodePiece(inner, ids, useCache);
    });
  });
  return ids;
}

void BpeTokenizer::encodePiece(llvm::StringRef piece, std::vector<uint32_t> &out, bool useCache) const {
  std::string spaced;
  if (AddPrefixSpace && !piece.startswith(" ")) {
    spaced = " " + piece.str();
    piece = spaced;
  }
  if (UseRegex)
    forEachPretoken(piece, [&](llvm::StringRef word) { encodeCachedWord(word, out, useCache); });
  else
    encodeCachedWord(piece, out, useCache);
}

void BpeTokenizer::encodeCachedWord(llvm::StringRef word, std::vector<uint32_t> &out, bool useCache) const {
  if (word.size() == 1)
    return out.push_back(ByteIds[static_cast<uint8_t>(word[0])]);
  if (!useCache || word.size() > CachedWordBytes)
    return encodeWord(word, out);
  auto it = Cache.find(word);
  if (it != Cache.end())
    return out.insert(out.end(), it->second.begin(), it->second.end()), void();
  size_t from = out.size();
  encodeWord(word, out);
  if (Cache.size() >= CacheCapacity)
    Cache.clear();
  Cache.try_emplace(word, out.begin() + from, out.end());
}

void BpeTokenizer::encodeWord(llvm::StringRef word, std::vector<uint32_t> &out) const {
  if (IgnoreMerges)
    if (auto it = WordIds.find(word); it != WordIds.end())
      return out.push_back(it->second);
  // Merge the lowest-ranked adjacent pair, leftmost first, until none is left: a heap of
  // (rank, position) with stale entries skipped, as `tokenizers` models/bpe/word.rs does.
  struct Symbol {
    uint32_t Id;
    int32_t Prev, Next;
  };
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<uint64_t> heap;
  const int32_t n = static_cast<int32_t>(word.size());
  symbols.resize(n);
  heap.clear();
  auto rule = [&](uint32_t left, uint32_t right) -> const MergeRule * {
    auto it = Merges.find(uint64_t(left) << 32 | right);
    return it == Merges.end() ? nullptr : &it->second;
  };
  auto push = [&](int32_t pos) {
    if (const MergeRule *r = rule(symbols[pos].Id, symbols[symbols[pos].Next].Id)) {
      heap.push_back(uint64_t(r->Rank) << 32 | uint32_t(pos));
      std::push_heap(heap.begin(), heap.end(), std::greater<>());
    }
  };
  for (int32_t i = 0; i < n; ++i)
    symbols[i] = Symbol{ByteIds[static_cast<uint8_t>(word[i])], i - 1, i + 1 < n ? i + 1 : -1};
  for (int32_t i = 0; i + 1 < n; ++i)
    push(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    uint64_t top = heap.back();
    heap.pop_back();
    int32_t pos = static_cast<int32_t>(top & 0xFFFFFFFF);
    Symbol &left = symbols[pos];
    if (left.Id == ~0u || left.Next < 0)
      continue;
    Symbol &right = symbols[left.Next];
    const MergeRule *r = rule(left.Id, right.Id);
    if (!r || r->Rank != top >> 32)
      continue;
    left.Id = r->Merged;
    right.Id = ~0u;
    left.Next = right.Next;
    if (left.Next >= 0)
      symbols[left.Next].Prev = pos;
    if (left.Prev >= 0)
      push(left.Prev);
    if (left.Next >= 0)
      push(pos);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].Next)
    out.push_back(symbols[i].Id);
}

std::string BpeTokenizer::decode(llvm::ArrayRef<uint32_t> ids) const {
  std::string text;
  for (uint32_t id : ids) {
    if (id < Known.size() && Known[id])
      text.append(TokenBytes, TokenOffsets[id], TokenOffsets[id + 1] - TokenOffsets[id]);
    else
      text += "<|" + std::to_string(id) + "|>";
  }
  return text;
}
