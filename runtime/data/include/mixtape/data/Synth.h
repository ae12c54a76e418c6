//===- Synth.h - the embedded synthetic corpus -----------------*- C++ -*-===//
//
// Deterministic, seedable synthetic domains with a real distribution shift between them
// and structure a tiny model can learn, so the quickstart and the tests need no download:
//
//   prose  English-like paragraphs from a small probabilistic grammar (with agreement)
//   code   Python-like functions and classes: consistent indentation, variable reuse
//   arith  arithmetic with correct answers, "37 + 48 = 85"
//   facts  entity-attribute statements from a seeded knowledge base (knowledgeBase),
//          which later evaluations probe for recall
//
// Each document carries a quality (1-5); lower quality adds letter-swap typos (digits are
// never touched, so answers stay correct). Document i of a domain depends only on the
// seed, the domain and i, so a larger --docs extends a corpus without changing its start.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/data/Manifest.h"
#include "mixtape/data/Tokenizer.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mixtape::data {

/// prose, code, arith, facts.
llvm::ArrayRef<llvm::StringRef> synthDomains();

/// Bumped whenever the generator's output changes: cached corpora are kept per version, so
/// an old cache is never taken for the new corpus.
constexpr int kSynthVersion = 3;

struct SynthDocument {
  std::string Text;
  std::string Source;   ///< the sub-generator, e.g. "narrative"
  int Quality = 5;      ///< 1-5; drives the typo rate
  float OverallScore;   ///< DataMan-style ratings, 1-5
  float Coherence;
  float SemanticDensity; ///< distinct words / words, 0-1
  /// The other DataMan ratings (Peng et al. 2025: 13 criteria and an overall score), 1-5,
  /// each the quality give or take one: columns to filter on, named as in kDataManRatings.
  std::vector<float> Ratings;
};

/// DataMan's rating columns beyond overall_score, coherence and semantic_density.
extern const char *const kDataManRatings[11];

/// Document `index` of `domain` (one of synthDomains()).
SynthDocument synthDocument(llvm::StringRef domain, uint64_t seed, uint64_t index);

struct Fact {
  std::string Entity;    ///< "Veltria"
  std::string Attribute; ///< "capital", "language", "export", "river"
  std::string Value;     ///< "Moranth"
};
/// The knowledge base the facts domain draws from; a function of the seed alone.
std::vector<Fact> knowledgeBase(uint64_t seed);

/// The embedded corpus's downstream tasks (docs/tasks.md), each a function of the seed:
///   facts-choice  every fact of knowledgeBase(seed) as a question in the corpus's Q/A style,
///                 with the true value and three others of the same attribute as choices
///   facts-qa      the same questions to answer by generation (until "." or a newline)
///   arith         "37 + 48 =" to complete by generation, 200 problems like the arith domain's
///   prose-cloze,  held-out documents cut after 80 bytes: which of four continuations (five
///   code-cloze    words; the next line) is the document's own, the others from other documents
///                 (HellaSwag's kind of task; code-cloze wants target_delimiter = "")
llvm::ArrayRef<llvm::StringRef> synthTaskNames();
/// The task's item file: one JSON object per line.
llvm::Expected<std::string> synthTask(llvm::StringRef name, uint64_t seed);

struct SynthOptions {
  uint64_t Seed = 1;
  uint64_t DocumentsPerDomain = 1000;
  /// Empty: every domain.
  std::vector<std::string> Domains;
  /// What tokenizes the text (as `mixtape data prepare` does); null: the byte tokenizer.
  const Tokenizer *Tokens = nullptr;
};

/// Writes "<dir>/<domain>" datasets (Megatron format, options.Tokens) with 17 metadata
/// columns, in this order: the numbers quality, overall_score, coherence, semantic_density
/// and the 11 kDataManRatings, then the strings domain and source (docs/data-format.md).
llvm::Expected<std::vector<Manifest>> synthesizeCorpus(llvm::StringRef dir,
                                                       const SynthOptions &options);

} // namespace mixtape::data
