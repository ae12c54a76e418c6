//===- tokenize_json.cpp - Mixtape's side of the tokenizer reference test -===//
//
//   tokenize_json TOKENIZER TEXTS.json
//
// Encodes each string of the JSON array TEXTS.json with the tokenizer (as `data prepare`
// would load it) and prints {"ids": [[...], ...], "decoded": [...], "bos": id|null,
// "eot": id}: what tokenizer_reference_test.py compares with Hugging Face's.
//
//===----------------------------------------------------------------------===//
#include "mixtape/data/Tokenizer.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/JSON.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

using namespace mixtape;

int main(int argc, char **argv) {
  if (argc != 3) {
    llvm::errs() << "usage: tokenize_json TOKENIZER TEXTS.json\n";
    return 2;
  }
  auto fail = [](llvm::Error err) {
    llvm::errs() << "tokenize_json: " << llvm::toString(std::move(err)) << "\n";
    return 1;
  };
  llvm::Expected<std::unique_ptr<data::Tokenizer>> tokenizer = data::createTokenizer(argv[1]);
  if (!tokenizer)
    return fail(tokenizer.takeError());
  llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> buffer = mapFile(argv[2]);
  if (!buffer)
    return fail(buffer.takeError());
  llvm::Expected<llvm::json::Value> texts = parseJSON((*buffer)->getBuffer(), argv[2]);
  if (!texts)
    return fail(texts.takeError());
  const llvm::json::Array *array = texts->getAsArray();
  if (!array)
    return fail(makeError(llvm::Twine(argv[2]) + ": expected an array of strings"));
  llvm::json::Array ids, decoded;
  for (const llvm::json::Value &text : *array) {
    std::vector<uint32_t> encoded = (*tokenizer)->encode(text.getAsString().getValueOr(""));
    ids.push_back(llvm::json::Array(encoded));
    decoded.push_back((*tokenizer)->decode(encoded));
  }
  std::optional<uint32_t> bos = (*tokenizer)->bos();
  llvm::outs() << llvm::json::Value(llvm::json::Object{{"ids", std::move(ids)},
                                                       {"decoded", std::move(decoded)},
                                                       {"bos", bos ? llvm::json::Value(*bos) : nullptr},
                                                       {"eot", (*tokenizer)->eot()}})
               << "\n";
  return 0;
}
