//===- TokenizerPipeline.cpp ----------------------------------------------===//
//
// Mirrors Hugging Face `tokenizers` (normalizers/, pre_tokenizers/, decoders/,
// processors/, tokenizer/normalizer.rs split()): where a choice below looks arbitrary, it is
// theirs.
//
//===----------------------------------------------------------------------===//
#include "TokenizerPipeline.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>

using namespace mixtape;
using namespace mixtape::data;
using namespace mixtape::data::hf;
using unicode::CharClass;
namespace json = llvm::json;

std::string hf::quotedText(llvm::StringRef s) {
  std::string out;
  llvm::raw_string_ostream os(out);
  os << '"';
  os.write_escaped(s.take_front(40), /*UseHexEscapes=*/true);
  os << (s.size() > 40 ? "...\"" : "\"");
  return out;
}

//===----------------------------------------------------------------------===//
// JSON fields
//===----------------------------------------------------------------------===//

const json::Value *JsonFields::get(llvm::StringRef key) const {
  const json::Value *v = Object.get(key);
  return v && !v->getAsNull() ? v : nullptr;
}

namespace {
/// The field `key` of `fields` as getAs reads it (an llvm::Optional); `fallback` when it
/// is missing, an error when there is none.
template <typename T, typename Get>
llvm::Expected<T> readField(const JsonFields &fields, llvm::StringRef key, std::optional<T> fallback, Get &&getAs,
                            llvm::StringRef expected) {
  const json::Value *v = fields.get(key);
  if (!v) {
    if (fallback)
      return *fallback;
    return fields.Error(fields.at(key), "missing");
  }
  if (llvm::Optional<T> value = getAs(*v))
    return *value;
  return fields.Error(fields.at(key), "expected " + expected);
}

template <typename T> llvm::Optional<const T *> pointer(const T *p) { return p ? llvm::Optional<const T *>(p) : llvm::None; }
} // namespace

llvm::Expected<bool> JsonFields::flag(llvm::StringRef key, bool fallback) const {
  return readField<bool>(*this, key, fallback, [](const json::Value &v) { return v.getAsBoolean(); }, "true or false");
}

llvm::Expected<llvm::StringRef> JsonFields::string(llvm::StringRef key) const {
  return readField<llvm::StringRef>(*this, key, std::nullopt, [](const json::Value &v) { return v.getAsString(); },
                                    "a string");
}

llvm::Expected<uint64_t> JsonFields::count(llvm::StringRef key, uint64_t fallback) const {
  return readField<uint64_t>(*this, key, fallback, [](const json::Value &v) { return v.getAsUINT64(); },
                             "a non-negative integer");
}

llvm::Expected<const json::Object *> JsonFields::object(llvm::StringRef key) const {
  return readField<const json::Object *>(*this, key, std::nullopt,
                                         [](const json::Value &v) { return pointer(v.getAsObject()); }, "an object");
}

llvm::Expected<const json::Array *> JsonFields::array(llvm::StringRef key) const {
  return readField<const json::Array *>(*this, key, std::nullopt,
                                        [](const json::Value &v) { return pointer(v.getAsArray()); }, "an array");
}

namespace {
/// The object at `path` and its "type".
struct Typed {
  const json::Object *Object;
  llvm::StringRef Type;
};

llvm::Expected<Typed> typedObject(const json::Value &value, const std::string &path, const ErrorAt &error) {
  const json::Object *object = value.getAsObject();
  if (!object)
    return error(path, "expected an object");
  TRY(type, JsonFields(error, *object, path).string("type"));
  return Typed{object, type};
}

llvm::Error unsupported(const ErrorAt &error, const std::string &path, llvm::StringRef type) {
  return error(path + ".type", "'" + type + "' is not supported");
}

/// The one character a field holds (Metaspace's replacement).
llvm::Expected<std::string> character(const JsonFields &fields, llvm::StringRef key, llvm::StringRef fallback) {
  llvm::StringRef s = fallback;
  if (fields.get(key)) {
    TRY(value, fields.string(key));
    s = value;
  }
  if (s.empty() || unicode::charLength(s.bytes_begin(), s.bytes_end()) != s.size())
    return fields.Error(fields.at(key), "expected one character, got " + quotedText(s));
  return s.str();
}

/// A pattern's literal string ({"String": s}); a {"Regex": r} is refused unless `regex`
/// takes it (returns true).
llvm::Expected<std::string> stringPattern(const JsonFields &fields, const ErrorAt &error,
                                          const std::function<bool(llvm::StringRef)> &regex = {}) {
  TRY(pattern, fields.object("pattern"));
  JsonFields p(error, *pattern, fields.at("pattern"));
  if (p.get("String")) {
    TRY(s, p.string("String"));
    // `tokenizers` would match it between every two characters.
    if (s.empty())
      return error(p.at("String"), "an empty pattern is not supported");
    return s.str();
  }
  if (p.get("Regex")) {
    TRY(r, p.string("Regex"));
    if (!regex)
      return error(p.at("Regex"), "the regex " + quotedText(r) + " is not supported (only string patterns)");
    if (regex(r))
      return std::string();
    return error(p.at("Regex"), "the regex " + quotedText(r) +
                                    " is not supported (Mixtape knows the pre-tokenization regexes of GPT-2, "
                                    "Llama 3 and Qwen 2, and string patterns)");
  }
  return error(fields.at("pattern"), "expected {\"String\": ...} or {\"Regex\": ...}");
}

/// What `read` collects from the stage `value` at `path` into a T; an empty T for null.
template <typename T, typename Read>
llvm::Expected<T> collect(const json::Value &value, const std::string &path, const ErrorAt &error, Read &&read) {
  T out;
  if (!value.getAsNull())
    if (llvm::Error err = read(value, path, error, out))
      return std::move(err);
  return std::move(out);
}

/// Reads each element of the Sequence's array `key` with `read`, into `out`.
template <typename Out, typename Read>
llvm::Error readSequence(const JsonFields &fields, llvm::StringRef key, const ErrorAt &error, Out &out, Read &&read) {
  TRY(list, fields.array(key));
  for (size_t i = 0; i < list->size(); ++i)
    if (llvm::Error err = read((*list)[i], fields.at(key) + "[" + std::to_string(i) + "]", error, out))
      return err;
  return llvm::Error::success();
}

/// Replaces each occurrence of `from` (not empty), left to right.
void replaceAll(std::string &text, llvm::StringRef from, llvm::StringRef to) {
  assert(!from.empty() && "an empty pattern matches everywhere");
  if (text.find(from.data(), 0, from.size()) == std::string::npos)
    return;
  std::string out;
  llvm::StringRef rest = text;
  for (size_t at; (at = rest.find(from)) != llvm::StringRef::npos; rest = rest.drop_front(at + from.size()))
    out.append(rest.data(), at).append(to.data(), to.size());
  out.append(rest.data(), rest.size());
  text = std::move(out);
}
} // namespace

//===----------------------------------------------------------------------===//
// The byte alphabet
//===----------------------------------------------------------------------===//

ByteAlphabet::ByteAlphabet() {
  ByteOf.fill(-1);
  uint32_t extra = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    CharOf[b] = printable ? b : extra++;
    ByteOf[CharOf[b]] = static_cast<int16_t>(b);
  }
}

std::string ByteAlphabet::bytesOf(llvm::StringRef token) const {
  std::string out;
  const uint8_t *p = token.bytes_begin(), *end = token.bytes_end();
  while (p < end) {
    uint32_t cp;
    size_t len = unicode::decodeUtf8(p, end, cp);
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

std::string ByteAlphabet::textOf(llvm::StringRef bytes) const {
  std::string out;
  for (uint8_t b : bytes.bytes())
    unicode::appendUtf8(out, CharOf[b]);
  return out;
}

const ByteAlphabet &hf::byteAlphabet() {
  static const ByteAlphabet alphabet;
  return alphabet;
}

//===----------------------------------------------------------------------===//
// Normalizers
//===----------------------------------------------------------------------===//

Normalizer::~Normalizer() = default;

namespace {
class NfcNormalizer final : public Normalizer {
public:
  void normalize(std::string &text) const override { text = unicode::toNfc(text); }
};

class PrependNormalizer final : public Normalizer {
public:
  explicit PrependNormalizer(std::string prefix) : Prefix(std::move(prefix)) {}
  void normalize(std::string &text) const override {
    if (!text.empty())
      text.insert(0, Prefix);
  }

private:
  std::string Prefix;
};

class ReplaceNormalizer final : public Normalizer {
public:
  ReplaceNormalizer(std::string from, std::string to) : From(std::move(from)), To(std::move(to)) {}
  void normalize(std::string &text) const override { replaceAll(text, From, To); }

private:
  std::string From, To;
};

class NormalizerSequence final : public Normalizer {
public:
  explicit NormalizerSequence(std::vector<std::unique_ptr<Normalizer>> steps) : Steps(std::move(steps)) {}
  void normalize(std::string &text) const override {
    for (const auto &step : Steps)
      step->normalize(text);
  }

private:
  std::vector<std::unique_ptr<Normalizer>> Steps;
};
} // namespace

llvm::Expected<std::unique_ptr<Normalizer>> hf::readNormalizer(const json::Value &value, const std::string &path,
                                                               const ErrorAt &error) {
  if (value.getAsNull())
    return nullptr;
  TRY(typed, typedObject(value, path, error));
  JsonFields fields(error, *typed.Object, path);
  if (typed.Type == "NFC")
    return std::make_unique<NfcNormalizer>();
  if (typed.Type == "Prepend") {
    TRY(prefix, fields.string("prepend"));
    return std::make_unique<PrependNormalizer>(prefix.str());
  }
  if (typed.Type == "Replace") {
    TRY(from, stringPattern(fields, error));
    TRY(to, fields.string("content"));
    return std::make_unique<ReplaceNormalizer>(std::move(from), to.str());
  }
  if (typed.Type == "Sequence") {
    TRY(list, fields.array("normalizers"));
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < list->size(); ++i) {
      TRY(step, readNormalizer((*list)[i], fields.at("normalizers") + "[" + std::to_string(i) + "]", error));
      if (step)
        steps.push_back(std::move(step));
    }
    return std::make_unique<NormalizerSequence>(std::move(steps));
  }
  return unsupported(error, path, typed.Type);
}

//===----------------------------------------------------------------------===//
// Pre-tokenizers
//===----------------------------------------------------------------------===//

PreTokenizer::~PreTokenizer() = default;

namespace {
/// `tokenizers`' SplitDelimiterBehavior.
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct Span {
  size_t Start, End;
  bool Match;
};

/// Cuts `piece` as `tokenizers`' NormalizedString::split does, given the spans (matches
/// and the text between them, in order, covering the piece); empty pieces are dropped.
template <typename ForEachSpan>
void splitBy(llvm::StringRef piece, bool first, SplitBehavior behavior, bool invert, PreTokenizer::Emit emit,
             ForEachSpan &&forEachSpan) {
  auto out = [&](size_t start, size_t end) {
    if (end > start)
      emit(piece.slice(start, end), first && start == 0);
  };
  if (behavior == SplitBehavior::Isolated)
    return forEachSpan([&](Span s) { out(s.Start, s.End); });
  if (behavior == SplitBehavior::Removed)
    return forEachSpan([&](Span s) {
      if (s.Match == invert)
        out(s.Start, s.End);
    });
  std::vector<Span> spans;
  forEachSpan([&](Span s) { spans.push_back(Span{s.Start, s.End, s.Match != invert}); });
  std::vector<std::pair<size_t, size_t>> merged;
  bool previousMatch = false;
  if (behavior == SplitBehavior::MergedWithNext) {
    for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
      if (it->Match && !previousMatch && !merged.empty())
        merged.back().first = it->Start;
      else
        merged.emplace_back(it->Start, it->End);
      previousMatch = it->Match;
    }
    std::reverse(merged.begin(), merged.end());
  } else {
    for (const Span &s : spans) {
      bool join = behavior == SplitBehavior::MergedWithPrevious ? s.Match && !previousMatch : s.Match == previousMatch;
      if (join && !merged.empty())
        merged.back().second = s.End;
      else
        merged.emplace_back(s.Start, s.End);
      previousMatch = s.Match;
    }
  }
  for (auto [start, end] : merged)
    out(start, end);
}

/// Calls span(Span) for the matches of `find` (which calls match(start, end) for each, in
/// order) and the text between them.
template <typename Find, typename OnSpan> void spansOf(size_t size, Find &&find, OnSpan &&span) {
  size_t previous = 0;
  find([&](size_t start, size_t end) {
    if (start > previous)
      span(Span{previous, start, false});
    span(Span{start, end, true});
    previous = end;
  });
  if (previous < size)
    span(Span{previous, size, false});
}

/// The pieces of the pre-tokenization regex of Llama 3 (maxDigits 3) and Qwen 2 (1):
///   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
///   \s*[\r\n]+|\s+(?!\S)|\s+
/// as Oniguruma finds them (the first alternative that matches at a position wins); every
/// position starts a match, so they cover the text.
template <typename Match> void forEachLlama3Pretoken(llvm::StringRef text, unsigned maxDigits, Match &&match) {
  const uint8_t *begin = text.bytes_begin(), *p = begin, *end = text.bytes_end();
  auto classOf = [&](const uint8_t *at, size_t &len) { return unicode::classAt(at, end, len); };
  auto runOf = [&](const uint8_t *from, CharClass cls, unsigned most) {
    size_t len;
    for (unsigned n = 0; from < end && n < most && classOf(from, len) == cls; ++n)
      from += len;
    return from;
  };
  // (?i:...) folds case as Unicode does: U+017F LATIN SMALL LETTER LONG S is an 's'.
  auto foldedAt = [&](const uint8_t *at, size_t &len) -> char {
    len = 1;
    if (at >= end)
      return 0;
    if (at[0] == 0xC5 && end - at >= 2 && at[1] == 0xBF)
      return len = 2, 's';
    return static_cast<char>(llvm::toLower(static_cast<char>(*at)));
  };
  while (p < end) {
    const uint8_t *q = nullptr;
    if (*p == '\'') {
      size_t len1, len2;
      char a = foldedAt(p + 1, len1), b = foldedAt(p + 1 + len1, len2);
      if (a == 's' || a == 't' || a == 'm' || a == 'd')
        q = p + 1 + len1;
      else if (((a == 'r' || a == 'v') && b == 'e') || (a == 'l' && b == 'l'))
        q = p + 1 + len1 + len2;
    }
    size_t len, nextLen = 0;
    CharClass cls = classOf(p, len);
    CharClass next = p + len < end ? classOf(p + len, nextLen) : CharClass::Other;
    bool hasNext = p + len < end;
    if (q) {
    } else if (cls == CharClass::Letter) {
      q = runOf(p, CharClass::Letter, ~0u);
    } else if (cls != CharClass::Number && *p != '\r' && *p != '\n' && hasNext && next == CharClass::Letter) {
      q = runOf(p + len, CharClass::Letter, ~0u);
    } else if (cls == CharClass::Number) {
      q = runOf(p, CharClass::Number, maxDigits);
    } else if (cls == CharClass::Other || (*p == ' ' && hasNext && next == CharClass::Other)) {
      q = runOf(cls == CharClass::Other ? p : p + 1, CharClass::Other, ~0u);
      while (q < end && (*q == '\r' || *q == '\n'))
        ++q;
    } else {
      // A whitespace run: up to its last line break, else all of it at the end of the
      // text, else all but its last character, which leaves a run of one whole.
      const uint8_t *afterBreak = nullptr, *lastStart = p;
      for (q = p; q < end && classOf(q, len) == CharClass::Space; q += len) {
        lastStart = q;
        if (*q == '\r' || *q == '\n')
          afterBreak = q + 1;
      }
      if (afterBreak)
        q = afterBreak;
      else if (q < end && lastStart > p)
        q = lastStart;
    }
    match(size_t(p - begin), size_t(q - begin));
    p = q;
  }
}

/// How a Split's regex is found: by one of the scanners above.
enum class KnownRegex { Gpt2, Llama3, Qwen2 };

std::optional<KnownRegex> knownRegex(llvm::StringRef pattern) {
  if (pattern == R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)")
    return KnownRegex::Gpt2;
  if (pattern == R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)")
    return KnownRegex::Llama3;
  if (pattern == R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)")
    return KnownRegex::Qwen2;
  return std::nullopt;
}

class SplitPreTokenizer final : public PreTokenizer {
public:
  SplitPreTokenizer(std::string literal, std::optional<KnownRegex> regex, SplitBehavior behavior, bool invert)
      : Literal(std::move(literal)), Regex(regex), Behavior(behavior), Invert(invert) {}

  void split(llvm::StringRef piece, bool first, Emit emit) const override {
    splitBy(piece, first, Behavior, Invert, emit, [&](auto &&span) {
      spansOf(piece.size(), [&](auto &&match) { findMatches(piece, match); }, span);
    });
  }

private:
  template <typename Match> void findMatches(llvm::StringRef piece, Match &&match) const {
    auto offsetOf = [&](llvm::StringRef sub) { return size_t(sub.data() - piece.data()); };
    if (!Regex) {
      for (size_t at = piece.find(Literal); at != llvm::StringRef::npos; at = piece.find(Literal, at + Literal.size()))
        match(at, at + Literal.size());
    } else if (*Regex == KnownRegex::Gpt2) {
      forEachGpt2Pretoken(piece, [&](llvm::StringRef m) { match(offsetOf(m), offsetOf(m) + m.size()); });
    } else {
      forEachLlama3Pretoken(piece, *Regex == KnownRegex::Llama3 ? 3 : 1, match);
    }
  }

  std::string Literal;
  std::optional<KnownRegex> Regex;
  SplitBehavior Behavior;
  bool Invert;
};

class DigitsPreTokenizer final : public PreTokenizer {
public:
  explicit DigitsPreTokenizer(bool individual) : Individual(individual) {}

  void split(llvm::StringRef piece, bool first, Emit emit) const override {
    const uint8_t *begin = piece.bytes_begin(), *end = piece.bytes_end();
    splitBy(piece, first, Individual ? SplitBehavior::Isolated : SplitBehavior::Contiguous, false, emit,
            [&](auto &&span) {
              spansOf(
                  piece.size(),
                  [&](auto &&match) {
                    size_t len;
                    for (const uint8_t *p = begin; p < end; p += len)
                      if (unicode::classAt(p, end, len) == CharClass::Number)
                        match(size_t(p - begin), size_t(p - begin + len));
                  },
                  span);
            });
  }

private:
  bool Individual;
};

enum class PrependScheme { First, Always, Never };

class MetaspacePreTokenizer final : public PreTokenizer {
public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : Replacement(std::move(replacement)), Scheme(scheme), Split(split) {}

  void split(llvm::StringRef piece, bool first, Emit emit) const override {
    std::string text = piece.str();
    replaceAll(text, " ", Replacement);
    if (!llvm::StringRef(text).startswith(Replacement) &&
        (Scheme == PrependScheme::Always || (Scheme == PrependScheme::First && first)))
      text.insert(0, Replacement);
    if (!Split)
      return emit(text, first);
    llvm::StringRef all = text;
    splitBy(all, first, SplitBehavior::MergedWithNext, false, emit, [&](auto &&span) {
      spansOf(
          all.size(),
          [&](auto &&match) {
            for (size_t at = all.find(Replacement); at != llvm::StringRef::npos;
                 at = all.find(Replacement, at + Replacement.size()))
              match(at, at + Replacement.size());
          },
          span);
    });
  }

private:
  std::string Replacement;
  PrependScheme Scheme;
  bool Split;
};

llvm::Error readPreTokenizer(const json::Value &value, const std::string &path, const ErrorAt &error,
                             PreTokenizers &out) {
  TRY(typed, typedObject(value, path, error));
  JsonFields fields(error, *typed.Object, path);
  if (out.ByteLevel)
    return error(path, "'" + typed.Type + "' after ByteLevel is not supported (ByteLevel must come last)");
  if (typed.Type == "Sequence")
    return readSequence(fields, "pretokenizers", error, out, readPreTokenizer);
  if (typed.Type == "ByteLevel") {
    TRY(addPrefixSpace, fields.flag("add_prefix_space", true));
    TRY(useRegex, fields.flag("use_regex", true));
    out.ByteLevel = true;
    out.AddPrefixSpace = addPrefixSpace;
    out.UseRegex = useRegex;
    return llvm::Error::success();
  }
  if (typed.Type == "Split") {
    std::optional<KnownRegex> regex;
    TRY(literal, stringPattern(fields, error, [&](llvm::StringRef r) { return (regex = knownRegex(r)).has_value(); }));
    TRY(behaviorName, fields.string("behavior"));
    std::optional<SplitBehavior> behavior =
        llvm::StringSwitch<std::optional<SplitBehavior>>(behaviorName)
            .Case("Removed", SplitBehavior::Removed)
            .Case("Isolated", SplitBehavior::Isolated)
            .Case("MergedWithPrevious", SplitBehavior::MergedWithPrevious)
            .Case("MergedWithNext", SplitBehavior::MergedWithNext)
            .Case("Contiguous", SplitBehavior::Contiguous)
            .Default(std::nullopt);
    if (!behavior)
      return error(fields.at("behavior"), "'" + behaviorName +
                                              "' is not one of Removed, Isolated, MergedWithPrevious, "
                                              "MergedWithNext, Contiguous");
    TRY(invert, fields.flag("invert", false));
    out.Steps.push_back(std::make_unique<SplitPreTokenizer>(std::move(literal), regex, *behavior, invert));
    return llvm::Error::success();
  }
  if (typed.Type == "Digits") {
    TRY(individual, fields.flag("individual_digits", false));
    out.Steps.push_back(std::make_unique<DigitsPreTokenizer>(individual));
    return llvm::Error::success();
  }
  if (typed.Type == "Metaspace") {
    TRY(replacement, character(fields, "replacement", "\u2581"));
    // Files before `tokenizers` 0.19 say add_prefix_space instead of prepend_scheme.
    TRY(addPrefixSpace, fields.flag("add_prefix_space", true));
    PrependScheme scheme = addPrefixSpace ? PrependScheme::Always : PrependScheme::Never;
    if (fields.get("prepend_scheme")) {
      TRY(name, fields.string("prepend_scheme"));
      std::optional<PrependScheme> named = llvm::StringSwitch<std::optional<PrependScheme>>(name)
                                               .Case("first", PrependScheme::First)
                                               .Case("always", PrependScheme::Always)
                                               .Case("never", PrependScheme::Never)
                                               .Default(std::nullopt);
      if (!named)
        return error(fields.at("prepend_scheme"), "'" + name + "' is not one of first, always, never");
      scheme = *named;
    }
    TRY(split, fields.flag("split", true));
    out.Steps.push_back(std::make_unique<MetaspacePreTokenizer>(std::move(replacement), scheme, split));
    return llvm::Error::success();
  }
  return unsupported(error, path, typed.Type);
}
} // namespace

void PreTokenizers::run(llvm::StringRef piece, bool first, llvm::function_ref<void(llvm::StringRef)> emit,
                        size_t step) const {
  if (step == Steps.size())
    return emit(piece);
  Steps[step]->split(piece, first, [&](llvm::StringRef sub, bool subFirst) { run(sub, subFirst, emit, step + 1); });
}

llvm::Expected<PreTokenizers> hf::readPreTokenizers(const json::Value &value, const std::string &path,
                                                    const ErrorAt &error) {
  return collect<PreTokenizers>(value, path, error, readPreTokenizer);
}

//===----------------------------------------------------------------------===//
// Decoders
//===----------------------------------------------------------------------===//

Decoder::~Decoder() = default;

namespace {
class ByteLevelDecoder final : public Decoder {
public:
  void decodeChain(std::vector<std::string> &tokens) const override {
    std::string bytes;
    for (const std::string &token : tokens)
      bytes += byteAlphabet().bytesOf(token);
    tokens.assign(1, std::move(bytes));
  }
};

class ByteFallbackDecoder final : public Decoder {
public:
  void decodeChain(std::vector<std::string> &tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t count = 0;
    auto flush = [&] {
      if (count == 0)
        return;
      if (json::isUTF8(bytes))
        out.push_back(bytes);
      else
        for (size_t i = 0; i < count; ++i)
          out.push_back("\xEF\xBF\xBD");
      bytes.clear();
      count = 0;
    };
    for (std::string &token : tokens) {
      unsigned value;
      llvm::StringRef hex = llvm::StringRef(token).slice(3, 5);
      if (token.size() == 6 && llvm::StringRef(token).startswith("<0x") && token.back() == '>' &&
          llvm::all_of(hex, llvm::isHexDigit) && !hex.getAsInteger(16, value)) {
        bytes.push_back(static_cast<char>(value));
        ++count;
        continue;
      }
      flush();
      out.push_back(std::move(token));
    }
    flush();
    tokens = std::move(out);
  }
};

class FuseDecoder final : public Decoder {
public:
  void decodeChain(std::vector<std::string> &tokens) const override {
    std::string all;
    for (const std::string &token : tokens)
      all += token;
    tokens.assign(1, std::move(all));
  }
};

class StripDecoder final : public Decoder {
public:
  StripDecoder(std::string content, uint64_t start, uint64_t stop)
      : Content(std::move(content)), Start(start), Stop(stop) {}
  void decodeChain(std::vector<std::string> &tokens) const override {
    for (std::string &token : tokens) {
      llvm::StringRef rest = token;
      for (uint64_t i = 0; i < Start && rest.consume_front(Content); ++i) {
      }
      for (uint64_t i = 0; i < Stop && rest.consume_back(Content); ++i) {
      }
      token = rest.str();
    }
  }

private:
  std::string Content;
  uint64_t Start, Stop;
};

class ReplaceDecoder final : public Decoder {
public:
  ReplaceDecoder(std::string from, std::string to) : From(std::move(from)), To(std::move(to)) {}
  void decodeChain(std::vector<std::string> &tokens) const override {
    for (std::string &token : tokens)
      replaceAll(token, From, To);
  }

private:
  std::string From, To;
};

class MetaspaceDecoder final : public Decoder {
public:
  MetaspaceDecoder(std::string replacement, bool dropFirst) : Replacement(std::move(replacement)), DropFirst(dropFirst) {}
  void decodeChain(std::vector<std::string> &tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i)
      replaceAll(tokens[i], Replacement, i == 0 && DropFirst ? "" : " ");
  }

private:
  std::string Replacement;
  /// The first token loses its replacement characters instead (a prepend_scheme other
  /// than "never" put one there).
  bool DropFirst;
};

llvm::Error readDecoder(const json::Value &value, const std::string &path, const ErrorAt &error,
                        std::vector<std::unique_ptr<Decoder>> &out) {
  TRY(typed, typedObject(value, path, error));
  JsonFields fields(error, *typed.Object, path);
  if (typed.Type == "Sequence")
    return readSequence(fields, "decoders", error, out, readDecoder);
  if (typed.Type == "ByteLevel") {
    out.push_back(std::make_unique<ByteLevelDecoder>());
  } else if (typed.Type == "ByteFallback") {
    out.push_back(std::make_unique<ByteFallbackDecoder>());
  } else if (typed.Type == "Fuse") {
    out.push_back(std::make_unique<FuseDecoder>());
  } else if (typed.Type == "Strip") {
    TRY(content, character(fields, "content", " "));
    TRY(start, fields.count("start", 0));
    TRY(stop, fields.count("stop", 0));
    out.push_back(std::make_unique<StripDecoder>(std::move(content), start, stop));
  } else if (typed.Type == "Replace") {
    TRY(from, stringPattern(fields, error));
    TRY(to, fields.string("content"));
    out.push_back(std::make_unique<ReplaceDecoder>(std::move(from), to.str()));
  } else if (typed.Type == "Metaspace") {
    TRY(replacement, character(fields, "replacement", "\u2581"));
    TRY(addPrefixSpace, fields.flag("add_prefix_space", true));
    bool dropFirst = addPrefixSpace;
    if (fields.get("prepend_scheme")) {
      TRY(scheme, fields.string("prepend_scheme"));
      dropFirst = scheme != "never";
    }
    out.push_back(std::make_unique<MetaspaceDecoder>(std::move(replacement), dropFirst));
  } else {
    return unsupported(error, path, typed.Type);
  }
  return llvm::Error::success();
}
} // namespace

llvm::Expected<std::vector<std::unique_ptr<Decoder>>>
hf::readDecoders(const json::Value &value, const std::string &path, const ErrorAt &error, bool &byteLevelOnly) {
  auto out = collect<std::vector<std::unique_ptr<Decoder>>>(value, path, error, readDecoder);
  byteLevelOnly = out && out->size() == 1 && dynamic_cast<const ByteLevelDecoder *>((*out)[0].get());
  return out;
}

//===----------------------------------------------------------------------===//
// Post-processors
//===----------------------------------------------------------------------===//

namespace {
llvm::Error readTemplate(const JsonFields &fields, const ErrorAt &error, Template &out) {
  TRY(single, fields.array("single"));
  TRY(specials, fields.object("special_tokens"));
  std::vector<uint32_t> *side = &out.Before;
  bool seenA = false;
  for (size_t i = 0; i < single->size(); ++i) {
    std::string where = fields.at("single") + "[" + std::to_string(i) + "]";
    const json::Object *piece = (*single)[i].getAsObject();
    if (!piece || piece->size() != 1)
      return error(where, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    JsonFields p(error, *piece, where);
    if (p.get("Sequence")) {
      TRY(sequence, p.object("Sequence"));
      TRY(id, JsonFields(error, *sequence, p.at("Sequence")).string("id"));
      if (id != "A" || seenA)
        return error(p.at("Sequence") + ".id", "a single text's template has sequence A once, not '" + id + "'");
      seenA = true;
      side = &out.After;
      continue;
    }
    TRY(special, p.object("SpecialToken"));
    TRY(name, JsonFields(error, *special, p.at("SpecialToken")).string("id"));
    std::string specialPath = fields.at("special_tokens") + "[" + quotedText(name) + "]";
    const json::Object *entry = specials->getObject(name);
    if (!entry)
      return error(specialPath, "missing");
    TRY(ids, JsonFields(error, *entry, specialPath).array("ids"));
    for (size_t k = 0; k < ids->size(); ++k) {
      llvm::Optional<uint64_t> id = (*ids)[k].getAsUINT64();
      if (!id || *id > UINT32_MAX)
        return error(specialPath + ".ids[" + std::to_string(k) + "]", "expected a token id");
      side->push_back(static_cast<uint32_t>(*id));
    }
  }
  if (!seenA)
    return error(fields.at("single"), "no sequence A");
  out.Path = fields.at("single");
  return llvm::Error::success();
}

llvm::Error readProcessor(const json::Value &value, const std::string &path, const ErrorAt &error, Template &out) {
  TRY(typed, typedObject(value, path, error));
  JsonFields fields(error, *typed.Object, path);
  if (typed.Type == "ByteLevel")
    return llvm::Error::success(); // it only trims offsets, which Mixtape does not keep
  if (typed.Type == "TemplateProcessing") {
    if (!out.Path.empty())
      return error(path, "a second TemplateProcessing is not supported");
    return readTemplate(fields, error, out);
  }
  if (typed.Type == "Sequence")
    return readSequence(fields, "processors", error, out, readProcessor);
  return unsupported(error, path, typed.Type);
}
} // namespace

llvm::Expected<Template> hf::readPostProcessor(const json::Value &value, const std::string &path,
                                               const ErrorAt &error) {
  return collect<Template>(value, path, error, readProcessor);
}
