//===- BpeTokenizer.h - BPE tokenizers from Hugging Face files -*- C++ -*-===//
//
// The BPE tokenizers of current base models, read from a Hugging Face `tokenizer.json`
// (GPT-2, Llama 3, Qwen 2/3, Llama 2 and Mistral's SentencePiece-style BPE) or GPT-2's
// `vocab.json` + `merges.txt`, encoding exactly as the `tokenizers` library's
// encode(text, add_special_tokens=False) does: added tokens are cut out first (leftmost,
// longest), the text between them is normalized (NFC, Prepend, Replace), added tokens
// that match normalized text are cut out, the rest is pre-tokenized (Split, Digits,
// Metaspace, ByteLevel) into words, and each word is merged by rank. A byte-level file
// (ByteLevel pre-tokenizer) maps each word's bytes to GPT-2's byte alphabet
// (bytes_to_unicode) first; any other BPE starts from the word's characters, with
// `byte_fallback` to <0xNN> tokens or `unk_token` for characters outside the vocabulary.
// Decoding runs the file's decoders (ByteLevel, ByteFallback, Fuse, Strip, Replace,
// Metaspace); a byte-level file decodes tokens to their bytes, so decode(encode(text)) ==
// text for any text, valid UTF-8 or not.
//
// As in `tokenizers`, added tokens (<|endoftext|>) in the text encode to their ids, unlike
// the byte tokenizer. encode() never adds tokens of its own: the post_processor's BOS is
// bos(), for the data layer to put before each document, which it ends with eot().
// Anything else (another model, normalizer, pre-tokenizer, regex, decoder or
// post-processor, BPE dropout) is refused naming its place in the file, never encoded
// differently.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/data/Tokenizer.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"

#include <algorithm>
#include <array>
#include <memory>
#include <mutex>
#include <thread>

namespace mixtape::data {

namespace hf {
class Normalizer;
class Decoder;
struct PreTokenizers;
} // namespace hf

/// The pieces GPT-2's pre-tokenization regex
///   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
/// splits `text` into, in order; they concatenate to `text`. Bytes that are not valid
/// UTF-8 count as one character each, neither letter, number nor space.
std::vector<llvm::StringRef> gpt2Pretokens(llvm::StringRef text);

/// The Unicode version of the letter/number tables behind gpt2Pretokens.
llvm::StringRef unicodeTablesVersion();

class BpeTokenizer final : public Tokenizer {
public:
  /// `path`: a tokenizer.json, or a directory holding tokenizer.json (preferred) or
  /// vocab.json + merges.txt.
  static llvm::Expected<std::unique_ptr<BpeTokenizer>> open(llvm::StringRef path);
  /// The vocabulary a tokenizer.json (or a directory holding one) gives ids to: its largest
  /// id, of the model's vocabulary and the added tokens, plus one. Reads only the ids, so it
  /// answers for tokenizers open() does not support.
  static llvm::Expected<uint64_t> vocabularySize(llvm::StringRef path);
  /// The tokens a tokenizer.json (or a directory holding one) gives ids to, by id, as the
  /// file writes them (byte-level alphabet; added tokens by content); "" for an id it skips.
  static llvm::Expected<std::vector<std::string>> vocabularyTokens(llvm::StringRef path);
  /// A `tokenizer.json`'s contents; `fileName` names it in errors.
  static llvm::Expected<std::unique_ptr<BpeTokenizer>>
  fromTokenizerJson(llvm::StringRef fileName, llvm::StringRef contents);
  /// GPT-2's files. The end-of-text token, when vocab.json has one, is special (kept whole).
  static llvm::Expected<std::unique_ptr<BpeTokenizer>>
  fromVocabAndMerges(llvm::StringRef vocabName, llvm::StringRef vocab, llvm::StringRef mergesName,
                     llvm::StringRef merges);
  ~BpeTokenizer() override;

  /// "bpe:" and the XXH3 of the file(s) it was read from.
  llvm::StringRef id() const override { return Id; }
  uint32_t vocabSize() const override { return VocabSize; }
  std::vector<uint32_t> encode(llvm::StringRef text) const override;
  std::string decode(llvm::ArrayRef<uint32_t> ids) const override;
  /// The first of <|endoftext|>, <|end_of_text|> and </s> that the file has.
  uint32_t eot() const override { return EndOfText; }
  std::optional<uint32_t> knot() const override { return Knot; }
  /// The token the post_processor's template puts before a text, if any.
  std::optional<uint32_t> bos() const override { return Bos; }

  /// The id of a token written as in the vocabulary file (byte-level alphabet) or of an
  /// added token; none when there is no such token.
  std::optional<uint32_t> tokenId(llvm::StringRef token) const;

private:
  struct AddedToken {
    /// What it matches in the text: its content, normalized for a normalized token.
    std::string Content;
    uint32_t Id;
    bool Lstrip, Rstrip, SingleWord;
  };
  /// Longest first; FirstBytes marks the bytes a token may start with.
  struct AddedTokenSet {
    std::vector<AddedToken> Tokens;
    std::array<bool, 256> FirstBytes{};
  };
  struct MergeRule {
    uint32_t Rank, Merged;
  };
  /// DenseMap's own hash of a uint64_t (times 37) keeps only the right id's bits in the
  /// bucket index, so pairs with one right token collide; this one mixes both ids.
  struct PairInfo {
    static uint64_t getEmptyKey() { return ~uint64_t(0); }
    static uint64_t getTombstoneKey() { return ~uint64_t(0) - 1; }
    static unsigned getHashValue(uint64_t pair) { return static_cast<unsigned>((pair * 0x9E3779B97F4A7C15ull) >> 32); }
    static bool isEqual(uint64_t a, uint64_t b) { return a == b; }
  };
  class Builder;
  struct WordCache {
    std::mutex Mutex;
    llvm::StringMap<llvm::SmallVector<uint32_t, 4>> Words;
  };

  BpeTokenizer() = default;
  /// Calls emit(piece, token) for the pieces of `text` between added tokens of `set`
  /// (token null) and for each added token.
  template <typename Emit> static void splitOnAdded(llvm::StringRef text, const AddedTokenSet &set, Emit &&emit);
  /// Encodes normalized text between raw added tokens; `first`: it starts the text.
  void encodeNormalized(llvm::StringRef text, bool first, std::vector<uint32_t> &out, WordCache *cache) const;
  void encodePiece(llvm::StringRef piece, std::vector<uint32_t> &out, WordCache *cache) const;
  void encodeCachedWord(llvm::StringRef word, std::vector<uint32_t> &out, WordCache *cache) const;
  void encodeWord(llvm::StringRef word, std::vector<uint32_t> &out) const;
  /// Appends the symbols a non-byte-level word starts from: its characters' ids, their
  /// <0xNN> bytes (byte_fallback) or the unknown token.
  template <typename Add> void addCharacters(llvm::StringRef word, Add &&add) const;

  std::string Id;
  uint32_t VocabSize = 0;
  uint32_t EndOfText = 0;
  std::optional<uint32_t> Knot, Bos;
  bool AddPrefixSpace = false, UseRegex = true, IgnoreMerges = false;
  /// Whether the vocabulary is written in GPT-2's byte alphabet (a ByteLevel pre-tokenizer).
  bool ByteLevel = true;
  bool ByteFallback = false, FuseUnknown = false;
  std::optional<uint32_t> Unknown;

  std::unique_ptr<hf::Normalizer> Normalizer;
  std::unique_ptr<hf::PreTokenizers> PreTokenizerSteps;
  std::vector<std::unique_ptr<hf::Decoder>> Decoders;
  /// Decoding is mapping each id to its bytes (TokenBytes): a byte-level file whose
  /// decoder is ByteLevel or missing.
  bool DecodeBytes = true;

  /// Token text as the vocabulary writes it -> id (model vocabulary only).
  llvm::StringMap<uint32_t> Vocab;
  /// Raw bytes -> id for the ignore_merges shortcut (byte-level).
  llvm::StringMap<uint32_t> WordIds;
  /// The id of each byte: its byte-level token, or its <0xNN> token for byte_fallback
  /// (~0u for a byte without one).
  std::array<uint32_t, 256> ByteIds{};
  /// (left id << 32 | right id) -> rank and merged id.
  llvm::DenseMap<uint64_t, MergeRule, PairInfo> Merges;
  /// Added tokens cut out before and after normalization (`normalized` false / true), in
  /// the order `tokenizers` does it.
  AddedTokenSet RawAdded, NormalizedAdded;
  /// The bytes each id decodes to (DecodeBytes), else its text as the vocabulary writes
  /// it: TokenBytes[TokenOffsets[id], TokenOffsets[id + 1]).
  std::string TokenBytes;
  std::vector<uint32_t> TokenOffsets;
  std::vector<bool> Known;

  /// Pre-token bytes -> ids, cleared when full; one per hardware thread, each behind its
  /// mutex, so that threads tokenizing at once (data prepare) each keep a cache.
  size_t CacheSlots = std::max(1u, std::thread::hardware_concurrency());
  mutable std::unique_ptr<WordCache[]> Caches = std::make_unique<WordCache[]>(CacheSlots);
};

} // namespace mixtape::data
