//===- BpeTokenizer.h - byte-level BPE from Hugging Face files -*- C++ -*-===//
//
// The byte-level BPE of GPT-2 and its descendants (GPT-NeoX, ...), read from a Hugging Face
// `tokenizer.json` or GPT-2's `vocab.json` + `merges.txt`, encoding exactly as the
// `tokenizers` library does: added tokens are cut out first (leftmost, longest), the rest
// is split by the GPT-2 pre-tokenization regex, each piece's bytes are mapped to GPT-2's
// byte alphabet (bytes_to_unicode) and merged by rank. Decoding maps tokens back to their
// bytes, so decode(encode(text)) == text for any text, valid UTF-8 or not.
//
// As in `tokenizers`, added tokens (<|endoftext|>) in the text encode to their ids, unlike
// the byte tokenizer. encode() never adds tokens of its own: a post_processor's template
// (BOS/EOS) is not applied, since the data layer separates documents with eot(). Files
// with a normalizer, another pre-tokenizer or model, BPE dropout or single-word added
// tokens are refused rather than encoded differently.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/data/Tokenizer.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"

#include <array>
#include <mutex>

namespace mixtape::data {

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
  uint32_t eot() const override { return EndOfText; }
  std::optional<uint32_t> knot() const override { return Knot; }

  /// The id of a token written as in the vocabulary file (byte-level alphabet) or of an
  /// added token; none when there is no such token.
  std::optional<uint32_t> tokenId(llvm::StringRef token) const;

private:
  struct AddedToken {
    std::string Content;
    uint32_t Id;
    bool Lstrip, Rstrip;
  };
  /// Longest first; FirstBytes marks the bytes a token may start with.
  struct AddedTokenSet {
    std::vector<AddedToken> Tokens;
    std::array<bool, 256> FirstBytes{};
  };
  struct MergeRule {
    uint32_t Rank, Merged;
  };
  class Builder;

  BpeTokenizer() = default;
  /// Calls emit(piece, token) for the pieces of `text` between added tokens of `set`
  /// (token null) and for each added token.
  template <typename Emit> static void splitOnAdded(llvm::StringRef text, const AddedTokenSet &set, Emit &&emit);
  void encodePiece(llvm::StringRef piece, std::vector<uint32_t> &out, bool useCache) const;
  void encodeCachedWord(llvm::StringRef word, std::vector<uint32_t> &out, bool useCache) const;
  void encodeWord(llvm::StringRef word, std::vector<uint32_t> &out) const;

  std::string Id;
  uint32_t VocabSize = 0;
  uint32_t EndOfText = 0;
  std::optional<uint32_t> Knot;
  bool AddPrefixSpace = false, UseRegex = true, IgnoreMerges = false;

  /// Token text in the byte-level alphabet -> id (model vocabulary only).
  llvm::StringMap<uint32_t> Vocab;
  /// Raw bytes -> id for the ignore_merges shortcut.
  llvm::StringMap<uint32_t> WordIds;
  std::array<uint32_t, 256> ByteIds{};
  /// (left id << 32 | right id) -> rank and merged id.
  llvm::DenseMap<uint64_t, MergeRule> Merges;
  /// Added tokens cut out before and after normalization (`normalized` false / true), in
  /// the order `tokenizers` does it.
  AddedTokenSet RawAdded, NormalizedAdded;
  /// The bytes each id decodes to: TokenBytes[TokenOffsets[id], TokenOffsets[id + 1]).
  std::string TokenBytes;
  std::vector<uint32_t> TokenOffsets;
  std::vector<bool> Known;

  /// Pre-token bytes -> ids, cleared when full; guarded by CacheMutex (an encode that
  /// finds it taken works without the cache).
  mutable std::mutex CacheMutex;
  mutable llvm::StringMap<llvm::SmallVector<uint32_t, 4>> Cache;
};

} // namespace mixtape::data
