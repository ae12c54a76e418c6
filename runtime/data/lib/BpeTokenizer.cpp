//===- BpeTokenizer.cpp ---------------------------------------------------===//
//
// Mirrors Hugging Face `tokenizers` (models/bpe, pre_tokenizers/byte_level,
// tokenizer/added_vocabulary): where a choice below looks arbitrary, it is theirs.
//
//===----------------------------------------------------------------------===//
#include "mixtape/data/BpeTokenizer.h"

#include "TokenizerPipeline.h"

#include "mixtape/data/Manifest.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/JSON.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <functional>
#include <map>

#include <xxhash.h>

using namespace mixtape;
using namespace mixtape::data;
namespace json = llvm::json;
namespace fs = llvm::sys::fs;

namespace {
using unicode::CharClass;
using namespace hf;

/// Names of the end-of-text token, first found wins.
constexpr llvm::StringLiteral EndOfTextNames[] = {"<|endoftext|>", "<|end_of_text|>", "</s>"};
constexpr size_t CacheCapacity = 1 << 16;
constexpr size_t CachedWordBytes = 64;
constexpr uint64_t MaxFileBytes = uint64_t(1) << 30;
/// A byte without a <0xNN> token.
constexpr uint32_t NoId = ~0u;

} // namespace

std::vector<llvm::StringRef> mixtape::data::gpt2Pretokens(llvm::StringRef text) {
  std::vector<llvm::StringRef> pieces;
  forEachGpt2Pretoken(text, [&](llvm::StringRef piece) { pieces.push_back(piece); });
  return pieces;
}

llvm::StringRef mixtape::data::unicodeTablesVersion() { return unicode::tablesVersion(); }

//===----------------------------------------------------------------------===//
// Building from either file format
//===----------------------------------------------------------------------===//

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
      if (T->ByteLevel)
        unicode::appendUtf8(text, alphabet.CharOf[b]);
      else
        text = llvm::formatv("<0x{0:X-2}>", b).str();
      auto it = T->Vocab.find(text);
      if (it == T->Vocab.end() && T->ByteLevel)
        return error(where, "byte 0x" + llvm::utohexstr(b) + " has no token (" + quotedText(text) +
                                "): a byte-level vocabulary has all 256");
      T->ByteIds[b] = it == T->Vocab.end() ? NoId : it->second;
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
                            bool lstrip, bool rstrip, bool singleWord) {
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
    set.Tokens.push_back(AddedToken{content.str(), static_cast<uint32_t>(id), lstrip, rstrip, singleWord});
    Contents[static_cast<uint32_t>(id)] = content.str();
    return llvm::Error::success();
  }

  /// A tokenizer.json's pipeline around the model; call before setVocab.
  void setPipeline(std::unique_ptr<hf::Normalizer> normalizer, hf::PreTokenizers preTokenizers,
                   std::vector<std::unique_ptr<hf::Decoder>> decoders, bool decodeBytes) {
    T->Normalizer = std::move(normalizer);
    T->ByteLevel = preTokenizers.ByteLevel;
    T->AddPrefixSpace = preTokenizers.AddPrefixSpace;
    T->UseRegex = preTokenizers.UseRegex;
    T->PreTokenizerSteps = std::make_unique<hf::PreTokenizers>(std::move(preTokenizers));
    T->Decoders = std::move(decoders);
    T->DecodeBytes = T->ByteLevel && (decodeBytes || T->Decoders.empty());
  }
  /// The model's unknown token and byte_fallback (after setVocab).
  llvm::Error setUnknown(const llvm::Twine &where, std::optional<llvm::StringRef> unknown, bool fuse,
                         bool byteFallback) {
    T->FuseUnknown = fuse;
    T->ByteFallback = byteFallback;
    if (!unknown)
      return llvm::Error::success();
    auto it = T->Vocab.find(*unknown);
    if (it == T->Vocab.end())
      return error(where, quotedText(*unknown) + " is not in the vocabulary");
    T->Unknown = it->second;
    return llvm::Error::success();
  }

  /// The end-of-text token (after the vocabulary and added tokens).
  llvm::Expected<uint32_t> endOfText() const {
    for (llvm::StringRef name : EndOfTextNames)
      if (std::optional<uint32_t> id = T->tokenId(name))
        return *id;
    return error("", "no end-of-text token (<|endoftext|>, <|end_of_text|> or </s>): documents "
                     "need one to separate them");
  }

  /// What the post_processor's template adds: at most one token before the text (the
  /// BOS) and nothing after it but the end-of-text token, which documents end with anyway.
  llvm::Error setTemplate(const Template &added) {
    TRY(eot, endOfText());
    if (added.Before.size() > 1)
      return error(added.Path, "adds " + llvm::Twine(added.Before.size()) +
                                   " tokens before the text; only one (a BOS) is supported");
    if (!added.After.empty() && (added.After.size() > 1 || added.After[0] != eot))
      return error(added.Path, "adds tokens after the text; only the end-of-text token (id " + llvm::Twine(eot) +
                                   ") is supported there");
    if (!added.Before.empty()) {
      if (added.Before[0] >= ModelSize && !Contents.count(added.Before[0]))
        return error(added.Path, "id " + llvm::Twine(added.Before[0]) + " is not a token");
      T->Bos = added.Before[0];
    }
    return llvm::Error::success();
  }

  /// Normalized added tokens match the normalized text, so their content is normalized too.
  void normalizeAddedTokens() {
    if (T->Normalizer)
      for (AddedToken &token : T->NormalizedAdded.Tokens)
        T->Normalizer->normalize(token.Content);
  }

  /// How many added tokens there will be: their ids go up to the vocabulary size plus this.
  void expectAdded(size_t count) { MaxAdded = count; }
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
      t.Known[entry.second] = true;
      if (!t.ByteLevel) {
        bytes[entry.second] = entry.first().str();
        continue;
      }
      std::string tokenBytes = alphabet.bytesOf(entry.first());
      if (alphabet.textOf(tokenBytes) == entry.first())
        t.WordIds[tokenBytes] = entry.second;
      bytes[entry.second] = t.DecodeBytes ? std::move(tokenBytes) : entry.first().str();
    }
    for (const auto &[id, content] : Contents) {
      bytes[id] = content;
      t.Known[id] = true;
    }
    for (AddedTokenSet *set : {&t.RawAdded, &t.NormalizedAdded}) {
      llvm::erase_if(set->Tokens, [](const AddedToken &added) { return added.Content.empty(); });
      llvm::stable_sort(set->Tokens, [](const AddedToken &a, const AddedToken &b) {
        return a.Content.size() > b.Content.size();
      });
      for (const AddedToken &added : set->Tokens)
        set->FirstBytes[static_cast<uint8_t>(added.Content[0])] = true;
    }
    t.TokenOffsets.reserve(size + 1);
    for (const std::string &b : bytes) {
      t.TokenOffsets.push_back(static_cast<uint32_t>(t.TokenBytes.size()));
      t.TokenBytes += b;
    }
    t.TokenOffsets.push_back(static_cast<uint32_t>(t.TokenBytes.size()));

    TRY(eot, endOfText());
    t.EndOfText = eot;
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
  /// Added tokens' content as the file writes it (what they decode to), by id.
  std::map<uint32_t, std::string> Contents;
};

namespace {
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

llvm::Expected<std::unique_ptr<BpeTokenizer>>
BpeTokenizer::fromTokenizerJson(llvm::StringRef fileName, llvm::StringRef contents) {
  TRY(root, parseJSON(contents, fileName));
  Builder builder(fileName.str());
  ErrorAt error = builder.errorAt();
  const json::Object *rootObject = root.getAsObject();
  if (!rootObject)
    return error("", "expected a JSON object");
  JsonFields top(error, *rootObject, "");

  // A missing stage is null, as `tokenizers` writes it.
  auto stage = [&](llvm::StringRef key) -> const json::Value & {
    static const json::Value null = nullptr;
    const json::Value *v = top.get(key);
    return v ? *v : null;
  };
  TRY(normalizer, readNormalizer(stage("normalizer"), "normalizer", error));
  TRY(preTokenizers, readPreTokenizers(stage("pre_tokenizer"), "pre_tokenizer", error));
  bool decodeBytes = false;
  std::vector<std::unique_ptr<hf::Decoder>> decoders;
  if (top.get("decoder")) {
    TRY(read, readDecoders(stage("decoder"), "decoder", error, decodeBytes));
    decoders = std::move(read);
  }
  TRY(added, readPostProcessor(stage("post_processor"), "post_processor", error));
  builder.setPipeline(std::move(normalizer), std::move(preTokenizers), std::move(decoders), decodeBytes);

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
        return error(fields.at(affix), "not supported");
  TRY(ignoreMerges, fields.flag("ignore_merges", false));
  builder.setIgnoreMerges(ignoreMerges);

  TRY(vocab, fields.object("vocab"));
  TRY(entries, vocabEntries(*vocab, error, "model.vocab"));
  if (llvm::Error err = builder.setVocab("model.vocab", std::move(entries)))
    return err;
  std::optional<llvm::StringRef> unknown;
  if (fields.get("unk_token")) {
    TRY(name, fields.string("unk_token"));
    unknown = name;
  }
  TRY(fuseUnknown, fields.flag("fuse_unk", false));
  TRY(byteFallback, fields.flag("byte_fallback", false));
  if (llvm::Error err = builder.setUnknown(fields.at("unk_token"), unknown, fuseUnknown, byteFallback))
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
      if (llvm::Error err = builder.addAddedToken(where, content, *id, normalized, lstrip, rstrip, singleWord))
        return err;
    }
  }
  builder.normalizeAddedTokens();
  if (llvm::Error err = builder.setTemplate(added))
    return err;
  return builder.finish(XXH3_64bits(contents.data(), contents.size()));
}

llvm::Expected<std::unique_ptr<BpeTokenizer>>
BpeTokenizer::fromVocabAndMerges(llvm::StringRef vocabName, llvm::StringRef vocab, llvm::StringRef mergesName,
                                 llvm::StringRef merges) {
  TRY(root, parseJSON(vocab, vocabName));
  Builder builder(vocabName.str());
  // GPT2Tokenizer's defaults: no prefix space, the regex, and <|endoftext|> special.
  hf::PreTokenizers byteLevel;
  byteLevel.ByteLevel = byteLevel.UseRegex = true;
  builder.setPipeline(nullptr, std::move(byteLevel), {}, true);
  const json::Object *vocabObject = root.getAsObject();
  if (!vocabObject)
    return builder.error("", "expected a JSON object of token to id");
  TRY(entries, vocabEntries(*vocabObject, builder.errorAt(), ""));
  if (llvm::Error err = builder.setVocab("", std::move(entries)))
    return err;

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
                                                  /*lstrip=*/false, /*rstrip=*/false, /*singleWord=*/false))
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
  TRY(tokens, vocabularyTokens(path));
  return static_cast<uint64_t>(tokens.size());
}

llvm::Expected<std::vector<std::string>> BpeTokenizer::vocabularyTokens(llvm::StringRef path) {
  std::string file = path.str();
  if (fs::is_directory(path))
    file = joinPath(path, "tokenizer.json");
  TRY(buffer, mapFile(file));
  TRY(root, parseJSON(buffer->getBuffer(), file));
  const json::Object *top = root.getAsObject();
  std::vector<std::pair<int64_t, llvm::StringRef>> byId;
  if (const json::Object *model = top ? top->getObject("model") : nullptr)
    if (const json::Object *vocab = model->getObject("vocab"))
      for (const auto &kv : *vocab)
        byId.emplace_back(kv.second.getAsInteger().getValueOr(-1), kv.first);
  if (const json::Array *added = top ? top->getArray("added_tokens") : nullptr)
    for (const json::Value &t : *added)
      if (const json::Object *token = t.getAsObject())
        byId.emplace_back(token->getInteger("id").getValueOr(-1), token->getString("content").getValueOr(""));
  int64_t largest = -1;
  for (const auto &[id, token] : byId)
    largest = std::max(largest, id);
  if (largest < 0)
    return fileError(file, "no token ids in model.vocab or added_tokens");
  std::vector<std::string> tokens(static_cast<size_t>(largest + 1));
  for (const auto &[id, token] : byId)
    if (id >= 0)
      tokens[static_cast<size_t>(id)] = token.str();
  return tokens;
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

namespace {
/// Whether `text` starts (ends) with a character of Rust's regex \w, as `tokenizers`
/// checks the sides of a single_word added token.
bool startsWithWordChar(llvm::StringRef text) {
  uint32_t cp;
  return !text.empty() && unicode::decodeUtf8(text.bytes_begin(), text.bytes_end(), cp) && unicode::isWordChar(cp);
}
bool endsWithWordChar(llvm::StringRef text) {
  size_t start = text.size();
  while (start > 0 && text.size() - start < 4 && (start == text.size() || unicode::isContinuation(text[start])))
    --start;
  for (; start < text.size(); ++start) {
    uint32_t cp;
    if (size_t len = unicode::decodeUtf8(text.bytes_begin() + start, text.bytes_end(), cp))
      return start + len == text.size() && unicode::isWordChar(cp);
  }
  return false;
}
} // namespace

/// Calls emit(piece, token) for the pieces of `text` between added tokens (token null) and
/// for each added token, found leftmost-longest as the `tokenizers` Aho-Corasick does; a
/// single_word token beside a word character is no match (and the search goes on after
/// it); lstrip/rstrip tokens take the whitespace beside them.
template <typename Emit>
void BpeTokenizer::splitOnAdded(llvm::StringRef text, const AddedTokenSet &set, Emit &&emit) {
  if (set.Tokens.empty()) {
    if (!text.empty())
      emit(text, nullptr);
    return;
  }
  const uint8_t *s = text.bytes_begin(), *end = text.bytes_end();
  size_t pieceStart = 0;
  auto isSpaceAt = [&](size_t i, size_t &len) { return unicode::classAt(s + i, end, len) == CharClass::Space; };
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
    if (match->SingleWord && (endsWithWordChar(text.take_front(start)) || startsWithWordChar(text.drop_front(stop)))) {
      i = stop;
      continue;
    }
    if (match->Lstrip)
      while (start > pieceStart) {
        size_t back = start - 1; // find the start of the character before
        while (back > pieceStart && unicode::isContinuation(s[back]))
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
  // The first free cache from a slot of this thread's own: threads encoding at once each
  // keep one (an encode that finds every slot taken works without).
  WordCache *cache = nullptr;
  std::unique_lock<std::mutex> lock;
  const size_t start = std::hash<std::thread::id>{}(std::this_thread::get_id());
  for (size_t k = 0; k < CacheSlots && !cache; ++k) {
    WordCache &slot = Caches[(start + k) % CacheSlots];
    lock = std::unique_lock<std::mutex>(slot.Mutex, std::try_to_lock);
    if (lock.owns_lock())
      cache = &slot;
  }
  splitOnAdded(text, RawAdded, [&](llvm::StringRef piece, const AddedToken *token) {
    if (token)
      return ids.push_back(token->Id);
    bool first = piece.data() == text.data();
    if (!Normalizer)
      return encodeNormalized(piece, first, ids, cache);
    std::string normalized = piece.str();
    Normalizer->normalize(normalized);
    encodeNormalized(normalized, first, ids, cache);
  });
  return ids;
}

void BpeTokenizer::encodeNormalized(llvm::StringRef text, bool first, std::vector<uint32_t> &out,
                                    WordCache *cache) const {
  splitOnAdded(text, NormalizedAdded, [&](llvm::StringRef piece, const AddedToken *token) {
    if (token)
      return out.push_back(token->Id);
    if (PreTokenizerSteps->Steps.empty())
      return encodePiece(piece, out, cache);
    PreTokenizerSteps->run(piece, first && piece.data() == text.data(),
                       [&](llvm::StringRef word) { encodePiece(word, out, cache); });
  });
}

void BpeTokenizer::encodePiece(llvm::StringRef piece, std::vector<uint32_t> &out, WordCache *cache) const {
  if (!ByteLevel)
    return encodeCachedWord(piece, out, cache);
  std::string spaced;
  if (AddPrefixSpace && !piece.startswith(" ")) {
    spaced = " " + piece.str();
    piece = spaced;
  }
  if (UseRegex)
    forEachGpt2Pretoken(piece, [&](llvm::StringRef word) { encodeCachedWord(word, out, cache); });
  else
    encodeCachedWord(piece, out, cache);
}

void BpeTokenizer::encodeCachedWord(llvm::StringRef word, std::vector<uint32_t> &out, WordCache *cache) const {
  if (word.size() == 1 && ByteLevel)
    return out.push_back(ByteIds[static_cast<uint8_t>(word[0])]);
  if (!cache || word.size() > CachedWordBytes)
    return encodeWord(word, out);
  auto it = cache->Words.find(word);
  if (it != cache->Words.end())
    return out.insert(out.end(), it->second.begin(), it->second.end()), void();
  size_t from = out.size();
  encodeWord(word, out);
  if (cache->Words.size() >= CacheCapacity)
    cache->Words.clear();
  cache->Words.try_emplace(word, out.begin() + from, out.end());
}

template <typename Add> void BpeTokenizer::addCharacters(llvm::StringRef word, Add &&add) const {
  // As `tokenizers` models/bpe/model.rs merge_word: a pending unknown token is added
  // before the next known character (or at the end), so fuse_unk can grow it.
  bool pendingUnknown = false;
  const uint8_t *p = word.bytes_begin(), *end = word.bytes_end();
  while (p < end) {
    size_t len = unicode::charLength(p, end);
    llvm::StringRef character(reinterpret_cast<const char *>(p), len);
    p += len;
    if (auto it = Vocab.find(character); it != Vocab.end()) {
      if (pendingUnknown)
        add(*Unknown);
      pendingUnknown = false;
      add(it->second);
      continue;
    }
    if (ByteFallback && llvm::all_of(character.bytes(), [&](uint8_t b) { return ByteIds[b] != NoId; })) {
      for (uint8_t b : character.bytes())
        add(ByteIds[b]);
      continue;
    }
    if (!Unknown)
      continue; // `tokenizers` drops the character
    if (pendingUnknown && !FuseUnknown)
      add(*Unknown);
    pendingUnknown = true;
  }
  if (pendingUnknown)
    add(*Unknown);
}

void BpeTokenizer::encodeWord(llvm::StringRef word, std::vector<uint32_t> &out) const {
  if (IgnoreMerges) {
    const llvm::StringMap<uint32_t> &words = ByteLevel ? WordIds : Vocab;
    if (auto it = words.find(word); it != words.end())
      return out.push_back(it->second);
  }
  // Merge the lowest-ranked adjacent pair, leftmost first, until none is left: a heap of
  // (rank, position) with stale entries skipped, as `tokenizers` models/bpe/word.rs does.
  struct Symbol {
    uint32_t Id;
    int32_t Prev, Next;
  };
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<uint64_t> heap;
  symbols.clear();
  heap.clear();
  auto addSymbol = [&](uint32_t id) {
    const int32_t i = static_cast<int32_t>(symbols.size());
    symbols.push_back(Symbol{id, i - 1, i + 1});
  };
  if (ByteLevel)
    for (uint8_t b : word.bytes())
      addSymbol(ByteIds[b]);
  else
    addCharacters(word, addSymbol);
  const int32_t n = static_cast<int32_t>(symbols.size());
  if (n == 0)
    return;
  symbols.back().Next = -1;
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
  auto tokenOf = [&](uint32_t id) {
    if (id < Known.size() && Known[id])
      return llvm::StringRef(TokenBytes).slice(TokenOffsets[id], TokenOffsets[id + 1]).str();
    return "<|" + std::to_string(id) + "|>";
  };
  std::string text;
  if (DecodeBytes) {
    for (uint32_t id : ids)
      text += tokenOf(id);
    return text;
  }
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (uint32_t id : ids)
    tokens.push_back(tokenOf(id));
  // Without a decoder `tokenizers` joins the tokens with spaces.
  if (Decoders.empty())
    return llvm::join(tokens, " ");
  for (const auto &decoder : Decoders)
    decoder->decodeChain(tokens);
  for (const std::string &token : tokens)
    text += token;
  return text;
}
