//===- Unicode.cpp --------------------------------------------------------===//
#include "Unicode.h"

#include "llvm/ADT/STLExtras.h"

#include <algorithm>
#include <vector>

using namespace mixtape::data;
using namespace mixtape::data::unicode;

namespace {
struct CharRange {
  uint32_t First, Last;
  CharClass Cls;
};
struct WordRange {
  uint32_t First, Last;
};
#include "UnicodeCategories.inc"

struct CombiningRange {
  uint32_t First, Last;
  uint8_t Class;
};
struct Decomposition {
  uint32_t CodePoint;
  uint16_t Offset;
  uint8_t Length;
};
struct Composition {
  uint32_t First, Second, Composite;
};
#include "UnicodeNormalization.inc"

constexpr std::array<CharClass, 128> makeAsciiClasses() {
  std::array<CharClass, 128> classes{};
  for (const CharRange &range : CharRanges)
    for (uint32_t c = range.First; c <= range.Last && c < 128; ++c)
      classes[c] = range.Cls;
  return classes;
}

/// The last entry of a table sorted by its first field whose first field is at most key.
template <typename Entry, size_t N, typename Key>
const Entry *lastAtMost(const Entry (&table)[N], uint32_t key, Key keyOf) {
  const Entry *after =
      std::upper_bound(std::begin(table), std::end(table), key, [&](uint32_t k, const Entry &e) { return k < keyOf(e); });
  return after == std::begin(table) ? nullptr : after - 1;
}

// Hangul syllables (Unicode 14, section 3.12).
constexpr uint32_t SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
constexpr uint32_t LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;
/// Bytes that are not well-formed UTF-8 stand for themselves as these values, above every
/// code point: no decomposition, combining class 0, no composition.
constexpr uint32_t RawByteBase = 0x110000;

uint8_t combiningClass(uint32_t cp) {
  const CombiningRange *range = lastAtMost(CombiningClasses, cp, [](const CombiningRange &r) { return r.First; });
  return range && cp <= range->Last ? range->Class : 0;
}

void decompose(uint32_t cp, std::vector<uint32_t> &out) {
  if (cp >= SBase && cp < SBase + SCount) {
    uint32_t s = cp - SBase;
    out.push_back(LBase + s / NCount);
    out.push_back(VBase + s % NCount / TCount);
    if (s % TCount)
      out.push_back(TBase + s % TCount);
    return;
  }
  const Decomposition *d = lastAtMost(Decompositions, cp, [](const Decomposition &e) { return e.CodePoint; });
  if (d && d->CodePoint == cp)
    out.insert(out.end(), DecompositionData + d->Offset, DecompositionData + d->Offset + d->Length);
  else
    out.push_back(cp);
}

/// The primary composite of (first, second); 0 when there is none.
uint32_t compose(uint32_t first, uint32_t second) {
  if (first >= LBase && first < LBase + LCount && second >= VBase && second < VBase + VCount)
    return SBase + ((first - LBase) * VCount + (second - VBase)) * TCount;
  if (first >= SBase && first < SBase + SCount && (first - SBase) % TCount == 0 && second > TBase &&
      second < TBase + TCount)
    return first + (second - TBase);
  const Composition *end = std::end(Compositions);
  const Composition *it = std::lower_bound(std::begin(Compositions), end, std::pair(first, second),
                                           [](const Composition &c, const std::pair<uint32_t, uint32_t> &key) {
                                             return std::pair(c.First, c.Second) < key;
                                           });
  return it != end && it->First == first && it->Second == second ? it->Composite : 0;
}
} // namespace

const std::array<CharClass, 128> unicode::AsciiClasses = makeAsciiClasses();

CharClass unicode::classifyCodePoint(uint32_t cp) {
  const CharRange *range = lastAtMost(CharRanges, cp, [](const CharRange &r) { return r.First; });
  return range && cp <= range->Last ? range->Cls : CharClass::Other;
}

bool unicode::isWordChar(uint32_t cp) {
  const WordRange *range = lastAtMost(WordRanges, cp, [](const WordRange &r) { return r.First; });
  return range && cp <= range->Last;
}

size_t unicode::decodeUtf8(const uint8_t *p, const uint8_t *end, uint32_t &cp) {
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

void unicode::appendUtf8(std::string &out, uint32_t cp) {
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

namespace {
/// Whether NFC leaves cp as it is whatever surrounds it: a starter that does not
/// decompose and never joins the character before it (NFC_Quick_Check Yes, class 0).
bool isStableStarter(uint32_t cp) {
  static const std::vector<uint32_t> seconds = [] {
    std::vector<uint32_t> out;
    for (const Composition &c : Compositions)
      out.push_back(c.Second);
    llvm::sort(out);
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }();
  if (cp < 0x300)
    return true;
  if ((cp >= VBase && cp < VBase + VCount) || (cp > TBase && cp < TBase + TCount))
    return false; // Hangul vowels and trailing consonants join a syllable
  const Decomposition *d = lastAtMost(Decompositions, cp, [](const Decomposition &e) { return e.CodePoint; });
  return combiningClass(cp) == 0 && !(d && d->CodePoint == cp) && !std::binary_search(seconds.begin(), seconds.end(), cp);
}
} // namespace

std::string unicode::toNfc(llvm::StringRef text) {
  // Below U+0300 (UTF-8 lead byte 0xCC) nothing decomposes or combines.
  if (llvm::all_of(text.bytes(), [](uint8_t b) { return b < 0xCC; }))
    return text.str();
  const uint8_t *p = text.bytes_begin(), *end = text.bytes_end();
  bool stable = true;
  while (stable && p < end) {
    uint32_t cp;
    size_t len = decodeUtf8(p, end, cp);
    stable = len == 0 || isStableStarter(cp);
    p += len ? len : 1;
  }
  if (stable)
    return text.str();
  std::vector<uint32_t> cps;
  cps.reserve(text.size());
  for (p = text.bytes_begin(); p < end;) {
    uint32_t cp;
    size_t len = decodeUtf8(p, end, cp);
    if (len == 0)
      cps.push_back(RawByteBase + *p++);
    else
      decompose(cp, cps), p += len;
  }
  // Canonical ordering: each run of non-starters sorted by combining class, stably.
  for (size_t i = 0; i < cps.size();) {
    size_t j = i;
    while (j < cps.size() && combiningClass(cps[j]) != 0)
      ++j;
    if (j - i > 1)
      std::stable_sort(cps.begin() + i, cps.begin() + j,
                       [](uint32_t a, uint32_t b) { return combiningClass(a) < combiningClass(b); });
    i = j == i ? i + 1 : j;
  }
  // Canonical composition: a character joins the last starter unless a character between
  // them has a combining class of 0 or at least its own (it is blocked).
  std::vector<uint32_t> composed;
  composed.reserve(cps.size());
  size_t starter = SIZE_MAX;
  int lastClass = 256;
  for (uint32_t cp : cps) {
    int cls = combiningClass(cp);
    if (starter != SIZE_MAX && (lastClass < cls || lastClass == 0))
      if (uint32_t composite = compose(composed[starter], cp)) {
        composed[starter] = composite;
        continue;
      }
    if (cls == 0)
      starter = composed.size();
    lastClass = cls;
    composed.push_back(cp);
  }
  std::string out;
  out.reserve(text.size());
  for (uint32_t cp : composed)
    if (cp >= RawByteBase)
      out.push_back(static_cast<char>(cp - RawByteBase));
    else
      appendUtf8(out, cp);
  return out;
}

llvm::StringRef unicode::tablesVersion() { return UnicodeVersion; }
