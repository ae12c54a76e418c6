//===- Suggest.cpp --------------------------------------------------------===//
#include "mixtape/support/Suggest.h"

std::optional<std::string> mixtape::closestMatch(llvm::StringRef word, llvm::ArrayRef<std::string> candidates) {
  // A typo is one or two edits (a swapped pair of letters is two) that leave most of the
  // candidate: "quite" finds "quiet", "-x" finds nothing.
  unsigned best = 3;
  std::optional<std::string> match;
  for (const std::string &c : candidates) {
    unsigned d = word.edit_distance(c, /*AllowReplacements=*/true, best);
    if (d < best && 2 * d <= c.size() && c != word) {
      best = d;
      match = c;
    }
  }
  return match;
}
