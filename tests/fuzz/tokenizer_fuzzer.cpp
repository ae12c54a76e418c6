//===- tokenizer_fuzzer.cpp - libFuzzer target for the BPE tokenizer files ---===//
//
// The first byte picks the files, the rest is split at NUL bytes: tokenizer.json [NUL
// text], or vocab.json NUL merges.txt [NUL text]. Reading must reject bad files with an
// llvm::Error, never crash or recurse without bound. A tokenizer that reads then encodes
// the text (the files themselves when there is none) and a few slices of it: every id is
// in its vocabulary, a second encode (through the cache) gives the same ids, and decoding
// arbitrary ids never fails.
//
//===----------------------------------------------------------------------===//
#include "mixtape/data/BpeTokenizer.h"

#include <cstdlib>

using namespace mixtape::data;

static void exercise(const BpeTokenizer &tokenizer, llvm::StringRef text) {
  for (llvm::StringRef piece : {text, text.take_front(text.size() / 2), text.drop_front(text.size() / 3)}) {
    std::vector<uint32_t> ids = tokenizer.encode(piece);
    for (uint32_t id : ids)
      if (id >= tokenizer.vocabSize())
        abort();
    if (tokenizer.encode(piece) != ids)
      abort();
    (void)tokenizer.decode(ids);
  }
  // Ids from the text's bytes, most outside a small vocabulary.
  std::vector<uint32_t> raw;
  for (size_t i = 0; i + 2 <= text.size() && raw.size() < 64; i += 2)
    raw.push_back(uint8_t(text[i]) | uint32_t(uint8_t(text[i + 1])) << 8);
  (void)tokenizer.decode(raw);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  llvm::StringRef rest(reinterpret_cast<const char *>(data) + 1, size - 1);
  bool vocabAndMerges = data[0] & 1;
  auto [first, afterFirst] = rest.split('\0');
  auto [second, tail] = afterFirst.split('\0');
  llvm::Expected<std::unique_ptr<BpeTokenizer>> tokenizer =
      vocabAndMerges ? BpeTokenizer::fromVocabAndMerges("fuzz.vocab.json", first, "fuzz.merges.txt", second)
                     : BpeTokenizer::fromTokenizerJson("fuzz.tokenizer.json", first);
  llvm::StringRef text = vocabAndMerges ? tail : afterFirst;
  if (text.empty())
    text = rest;
  if (!tokenizer) {
    llvm::consumeError(tokenizer.takeError());
    return 0;
  }
  exercise(**tokenizer, text);
  return 0;
}
