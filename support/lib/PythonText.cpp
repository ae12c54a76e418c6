//===- PythonText.cpp - Python's whitespace and strip() on UTF-8 ----------===//
#include "mixtape/support/PythonText.h"

#include "llvm/Support/ConvertUTF.h"

using namespace mixtape;
using llvm::StringRef;

/// The code point at `pos`, which moves past it; a stray byte passes as itself.
static uint32_t decodeAt(StringRef text, size_t &pos) {
  const auto *begin = reinterpret_cast<const llvm::UTF8 *>(text.data() + pos);
  const auto *source = begin;
  llvm::UTF32 codePoint = 0;
  if (llvm::convertUTF8Sequence(&source, reinterpret_cast<const llvm::UTF8 *>(text.end()), &codePoint,
                                llvm::strictConversion) != llvm::conversionOK)
    return static_cast<unsigned char>(text[pos++]);
  pos += static_cast<size_t>(source - begin);
  return codePoint;
}

bool mixtape::isPythonSpace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

StringRef mixtape::pythonLStrip(StringRef text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t next = pos;
    if (!isPythonSpace(decodeAt(text, next)))
      break;
    pos = next;
  }
  return text.drop_front(pos);
}

StringRef mixtape::pythonRStrip(StringRef text) {
  while (!text.empty()) {
    size_t start = text.size() - 1;
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80)
      --start; // back over UTF-8 continuation bytes
    size_t pos = start;
    if (!isPythonSpace(decodeAt(text, pos)))
      break;
    text = text.take_front(start);
  }
  return text;
}

StringRef mixtape::pythonStrip(StringRef text) { return pythonRStrip(pythonLStrip(text)); }
