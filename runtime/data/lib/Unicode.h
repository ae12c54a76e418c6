//===- Unicode.h - UTF-8, character classes and NFC for tokenizers -*- C++ -*-===//
//
// What the Hugging Face tokenizer pipeline needs of Unicode: well-formed UTF-8 (bytes that
// are not part of a well-formed sequence count as one character each), the classes of the
// pre-tokenization regexes (\p{L}, \p{N}, \s), and NFC. The tables come from Python's
// unicodedata (scripts/gen_unicode_tables.py, scripts/gen_nfc_tables.py).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/StringRef.h"

#include <array>
#include <cstdint>
#include <string>

namespace mixtape::data::unicode {

enum class CharClass : uint8_t { Other, Letter, Number, Space };

CharClass classifyCodePoint(uint32_t cp);
/// Whether cp is a word character of Rust's regex \w.
bool isWordChar(uint32_t cp);
extern const std::array<CharClass, 128> AsciiClasses;

inline bool isContinuation(uint8_t b) { return (b & 0xC0) == 0x80; }

/// The length of the well-formed UTF-8 sequence at p (Unicode 14, table 3-7), with its
/// code point; 0 when the bytes there are not one.
size_t decodeUtf8(const uint8_t *p, const uint8_t *end, uint32_t &cp);

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

/// The length in bytes of the character at p (< end), as classAt counts them.
inline size_t charLength(const uint8_t *p, const uint8_t *end) {
  uint32_t cp;
  size_t len = *p < 0x80 ? 1 : decodeUtf8(p, end, cp);
  return len ? len : 1;
}

void appendUtf8(std::string &out, uint32_t cp);

/// `text` in Normalization Form C; bytes that are not well-formed UTF-8 stay as they are
/// and block composition across them.
std::string toNfc(llvm::StringRef text);

/// The Unicode version of the letter/number/space tables.
llvm::StringRef tablesVersion();

} // namespace mixtape::data::unicode
