//===- Tokenizer.cpp ------------------------------------------------------===//
#include "mixtape/data/Tokenizer.h"

#include "mixtape/data/BpeTokenizer.h"
#include "mixtape/plan/Environment.h"
#include "mixtape/support/Error.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"

using namespace mixtape;
using namespace mixtape::data;

Tokenizer::~Tokenizer() = default;

std::vector<uint32_t> ByteTokenizer::encode(llvm::StringRef text) const {
  return std::vector<uint32_t>(text.bytes_begin(), text.bytes_end());
}

std::string ByteTokenizer::decode(llvm::ArrayRef<uint32_t> ids) const {
  std::string text;
  text.reserve(ids.size());
  for (uint32_t id : ids) {
    if (id < 256)
      text.push_back(static_cast<char>(id));
    else if (id == EndOfText)
      text += "<|endoftext|>";
    else if (id == Knot)
      text += "<|knot|>";
    else if (id == Pad)
      text += "<|pad|>";
    else if (const auto *control = llvm::find_if(plan::kByteControlTokens,
                                                 [&](const plan::ByteControlToken &c) { return c.Id == id; });
             control != std::end(plan::kByteControlTokens))
      text += control->Text;
    else
      text += "<|" + std::to_string(id) + "|>";
  }
  return text;
}

llvm::Expected<std::unique_ptr<Tokenizer>> mixtape::data::createTokenizer(llvm::StringRef name) {
  if (name == "bytes" || name == "bytes-v1")
    return std::make_unique<ByteTokenizer>();
  llvm::StringRef path = name;
  if (path.consume_front("hf:") || llvm::sys::fs::exists(path))
    return BpeTokenizer::open(path);
  return makeError("unknown tokenizer '" + name +
                   "' (known: bytes, hf:PATH, or the path of a tokenizer.json or of a directory with "
                   "tokenizer.json or vocab.json + merges.txt)");
}

std::string mixtape::data::resolveTokenizerName(llvm::StringRef name, llvm::StringRef baseDir) {
  if (name.empty() || name == "bytes")
    return name.str();
  const bool hf = name.consume_front("hf:");
  return (hf ? "hf:" : "") + plan::resolvePath(baseDir, name);
}
