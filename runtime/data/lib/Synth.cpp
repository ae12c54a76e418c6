//===- Synth.cpp - the embedded synthetic corpus --------------------------===//
#include "mixtape/data/Synth.h"

#include "mixtape/data/Dataset.h"
#include "mixtape/data/Random.h"
#include "mixtape/data/Prepare.h"
#include "mixtape/data/Tokenizer.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/JSON.h"

#include <xxhash.h>

#include <algorithm>

using namespace mixtape;
using namespace mixtape::data;

static const llvm::StringRef kDomains[] = {"prose", "code", "arith", "facts"};

llvm::ArrayRef<llvm::StringRef> mixtape::data::synthDomains() { return kDomains; }

template <typename T, size_t N> static const T &pick(SplitMix64 &rng, const T (&items)[N]) {
  return items[rng.below(N)];
}

static std::string capitalize(std::string s) {
  if (!s.empty())
    s[0] = llvm::toUpper(s[0]);
  return s;
}

//===----------------------------------------------------------------------===//
// prose: a probabilistic grammar with number agreement and two tenses
//===----------------------------------------------------------------------===//

namespace {
struct Noun {
  const char *One, *Many;
};
struct Verb {
  const char *One, *Many, *Past;
};
} // namespace

static const Noun kNouns[] = {
    {"river", "rivers"},     {"farmer", "farmers"}, {"village", "villages"},
    {"child", "children"},   {"teacher", "teachers"}, {"bird", "birds"},
    {"storm", "storms"},     {"road", "roads"},     {"garden", "gardens"},
    {"merchant", "merchants"}, {"lamp", "lamps"},   {"boat", "boats"},
    {"hill", "hills"},       {"letter", "letters"}, {"sailor", "sailors"},
    {"window", "windows"}};
static const Verb kTransitive[] = {
    {"sees", "see", "saw"},           {"follows", "follow", "followed"},
    {"carries", "carry", "carried"},  {"finds", "find", "found"},
    {"watches", "watch", "watched"},  {"builds", "build", "built"},
    {"remembers", "remember", "remembered"}, {"crosses", "cross", "crossed"},
    {"paints", "paint", "painted"},   {"mends", "mend", "mended"}};
static const Verb kIntransitive[] = {
    {"sleeps", "sleep", "slept"}, {"waits", "wait", "waited"},   {"sings", "sing", "sang"},
    {"rests", "rest", "rested"},  {"wanders", "wander", "wandered"}, {"listens", "listen", "listened"}};
static const char *const kAdjectives[] = {"old",     "quiet",   "bright",  "small",
                                          "green",   "heavy",   "careful", "distant",
                                          "ancient", "curious", "gentle",  "tired"};
static const char *const kAdverbs[] = {"slowly", "quietly",  "again",        "often",
                                       "carefully", "at dawn", "in the evening", "without a word"};
static const char *const kPrepositions[] = {"near", "behind", "across", "under", "beside"};

static std::string nounPhrase(SplitMix64 &rng, bool plural, int depth) {
  std::string np;
  if (plural)
    np = rng.chance(0.5) ? "the " : (rng.chance(0.5) ? "some " : "many ");
  else
    np = rng.chance(0.6) ? "the " : "a ";
  if (rng.chance(0.45)) {
    const char *adjective = pick(rng, kAdjectives);
    if (np == "a " && std::strchr("aeiou", adjective[0]))
      np = "an ";
    np += adjective;
    np += ' ';
  }
  const Noun &noun = pick(rng, kNouns);
  np += plural ? noun.Many : noun.One;
  if (depth == 0 && rng.chance(0.2))
    np += std::string(" ") + pick(rng, kPrepositions) + " " + nounPhrase(rng, rng.chance(0.3), 1);
  return np;
}

static std::string clause(SplitMix64 &rng, bool past) {
  bool plural = rng.chance(0.35);
  std::string s = nounPhrase(rng, plural, 0) + " ";
  auto form = [&](const Verb &v) { return past ? v.Past : plural ? v.Many : v.One; };
  if (rng.chance(0.65))
    s += std::string(form(pick(rng, kTransitive))) + " " + nounPhrase(rng, rng.chance(0.35), 0);
  else
    s += form(pick(rng, kIntransitive));
  if (rng.chance(0.3))
    s += std::string(" ") + pick(rng, kAdverbs);
  return s;
}

static std::string prose(SplitMix64 &rng, std::string &source) {
  bool past = rng.chance(0.5);
  source = past ? "narrative" : "expository";
  std::string text = past ? "Once, " : "";
  int sentences = static_cast<int>(rng.between(4, 12));
  for (int i = 0; i < sentences; ++i) {
    std::string sentence;
    double form = rng.unit();
    if (form < 0.15)
      sentence = (past ? "When " : "Whenever ") + clause(rng, past) + ", " + clause(rng, past);
    else if (form < 0.3)
      sentence = clause(rng, past) + ", and " + clause(rng, past);
    else
      sentence = clause(rng, past);
    if (!(i == 0 && past))
      sentence = capitalize(sentence);
    text += sentence + ".";
    text += (i + 1 < sentences) ? (rng.chance(0.15) ? "\n" : " ") : "\n";
  }
  return text;
}

//===----------------------------------------------------------------------===//
// code: small Python-like programs
//===----------------------------------------------------------------------===//

static const char *const kVerbs[] = {"compute", "scale", "filter", "merge", "count",
                                     "update",  "collect", "total", "find", "clamp"};
static const char *const kThings[] = {"items", "values", "scores", "points", "weights",
                                      "prices", "counts", "samples"};
static const char *const kOps[] = {"+", "-", "*"};
static const char *const kComparisons[] = {">", "<", ">=", "<=", "=="};
static const char *const kClasses[] = {"Counter", "Buffer", "Ledger", "Tracker", "Window", "Stack"};

static std::string singular(llvm::StringRef plural) { return plural.drop_back().str(); }

static std::string code(SplitMix64 &rng, std::string &source) {
  static const char *const kShapes[] = {"accumulate", "filter", "branch", "class"};
  size_t shape = rng.below(4);
  source = kShapes[shape];
  std::string text;
  int functions = static_cast<int>(rng.between(1, 3));
  for (int f = 0; f < functions; ++f) {
    std::string things = pick(rng, kThings), thing = singular(things);
    std::string name = std::string(pick(rng, kVerbs)) + "_" + things;
    std::string k = std::to_string(rng.between(1, 9));
    std::string op = pick(rng, kOps), cmp = pick(rng, kComparisons);
    std::string call;
    switch (shape) {
    case 0: {
      std::string acc = rng.chance(0.5) ? "total" : "acc";
      text += "def " + name + "(" + things + "):\n    " + acc + " = 0\n    for " + thing +
              " in " + things + ":\n        " + acc + " += " + thing + " " + op + " " + k +
              "\n    return " + acc + "\n";
      call = name + "([" + std::to_string(rng.between(0, 9)) + ", " +
             std::to_string(rng.between(0, 9)) + ", " + std::to_string(rng.between(0, 9)) + "])";
      break;
    }
    case 1: {
      std::string out = rng.chance(0.5) ? "result" : "kept";
      text += "def " + name + "(" + things + ", limit):\n    " + out + " = []\n    for " +
              thing + " in " + things + ":\n        if " + thing + " " + cmp +
              " limit:\n            " + out + ".append(" + thing + ")\n    return " + out + "\n";
      call = name + "([" + std::to_string(rng.between(0, 9)) + ", " +
             std::to_string(rng.between(0, 9)) + "], " + k + ")";
      break;
    }
    case 2: {
      text += "def " + name + "(x, y):\n    if x " + cmp + " y:\n        return x " + op +
              " y\n    else:\n        return y " + op + " x\n";
      call = name + "(" + std::to_string(rng.between(0, 20)) + ", " +
             std::to_string(rng.between(0, 20)) + ")";
      break;
    }
    default: {
      std::string cls = pick(rng, kClasses);
      text += "class " + cls + ":\n    def __init__(self, " + things + "):\n        self." +
              things + " = " + things + "\n\n    def " + name + "(self, " + thing +
              "):\n        return len(self." + things + ") " + op + " " + thing + "\n";
      call = cls + "([1, 2])." + name + "(" + k + ")";
      break;
    }
    }
    text += "\n\nprint(" + call + ")\n";
    if (f + 1 < functions)
      text += "\n\n";
  }
  return text;
}

//===----------------------------------------------------------------------===//
// arith: equations with correct answers
//===----------------------------------------------------------------------===//

static std::string arith(SplitMix64 &rng, std::string &source) {
  static const char *const kKinds[] = {"add", "sub", "mul", "mixed"};
  size_t kind = rng.below(4);
  source = kKinds[kind];
  std::string text;
  int lines = static_cast<int>(rng.between(8, 24));
  for (int i = 0; i < lines; ++i) {
    int64_t a = rng.between(0, 99), b = rng.between(0, 99), c = rng.between(1, 9);
    size_t op = kind == 3 ? rng.below(5) : kind;
    std::string line;
    switch (op) {
    case 0: line = std::to_string(a) + " + " + std::to_string(b) + " = " + std::to_string(a + b); break;
    case 1:
      if (a < b)
        std::swap(a, b);
      line = std::to_string(a) + " - " + std::to_string(b) + " = " + std::to_string(a - b);
      break;
    case 2:
      b = rng.between(0, 12);
      line = std::to_string(a) + " * " + std::to_string(b) + " = " + std::to_string(a * b);
      break;
    case 3:
      line = "(" + std::to_string(a) + " + " + std::to_string(b) + ") * " + std::to_string(c) +
             " = " + std::to_string((a + b) * c);
      break;
    default:
      line = std::to_string(a) + " * " + std::to_string(c) + " + " + std::to_string(b) + " = " +
             std::to_string(a * c + b);
      break;
    }
    text += line + "\n";
  }
  return text;
}

//===----------------------------------------------------------------------===//
// facts: statements drawn from a seeded knowledge base
//===----------------------------------------------------------------------===//

static const char *const kOnsets[] = {"v", "m", "t", "k", "s", "r", "d", "l", "n", "br", "th", "g", "p", "z"};
static const char *const kVowels[] = {"a", "e", "i", "o", "u", "ae", "ei"};
static const char *const kCodas[] = {"", "", "n", "r", "l", "th", "s"};
static const char *const kLanguages[] = {"Velsh", "Orrin", "Tamic", "Sundari", "Kelvan", "Moravic"};
static const char *const kExports[] = {"copper", "salt", "wool", "timber", "glass", "tea", "silver", "amber"};
/// Few enough that the quickstart's model (2 layers, d_model 64) learns the facts closed-book
/// in a couple of million tokens — each fact stated a few hundred times — where 96 stayed
/// near chance (0.31 after 2Mi tokens, 75% facts).
static constexpr size_t kEntities = 24;

static std::string inventName(SplitMix64 &rng, int syllables) {
  std::string name;
  for (int s = 0; s < syllables; ++s)
    name += std::string(pick(rng, kOnsets)) + pick(rng, kVowels) + pick(rng, kCodas);
  return capitalize(name);
}

std::vector<Fact> mixtape::data::knowledgeBase(uint64_t seed) {
  SplitMix64 rng(mixSeed(seed, 0x6b6e6f776c656467ULL)); // "knowledg"
  llvm::StringSet<> used;
  auto fresh = [&](int syllables, llvm::StringRef suffix) {
    for (;;) {
      std::string name = inventName(rng, syllables) + suffix.str();
      if (used.insert(name).second)
        return name;
    }
  };
  std::vector<Fact> facts;
  for (size_t e = 0; e < kEntities; ++e) {
    std::string country = fresh(2, rng.chance(0.5) ? "ia" : "");
    facts.push_back({country, "capital", fresh(2, "")});
    facts.push_back({country, "language", pick(rng, kLanguages)});
    facts.push_back({country, "export", pick(rng, kExports)});
    facts.push_back({country, "river", fresh(1, "")});
  }
  return facts;
}

static std::string statement(const Fact &f, size_t style) {
  const std::string &x = f.Entity, &v = f.Value;
  if (f.Attribute == "capital") {
    const std::string forms[] = {"The capital of " + x + " is " + v + ".",
                                 x + "'s capital is " + v + ".",
                                 "Q: What is the capital of " + x + "?\nA: " + v + "."};
    return forms[style];
  }
  if (f.Attribute == "language") {
    const std::string forms[] = {"People in " + x + " speak " + v + ".",
                                 x + "'s language is " + v + ".",
                                 "Q: What language is spoken in " + x + "?\nA: " + v + "."};
    return forms[style];
  }
  if (f.Attribute == "export") {
    const std::string forms[] = {"The main export of " + x + " is " + v + ".",
                                 x + "'s main export is " + v + ".",
                                 "Q: What does " + x + " export?\nA: " + v + "."};
    return forms[style];
  }
  const std::string forms[] = {"The longest river in " + x + " is the " + v + ".",
                               x + "'s longest river is the " + v + ".",
                               "Q: What is the longest river in " + x + "?\nA: The " + v + "."};
  return forms[style];
}

static std::string facts(SplitMix64 &rng, const std::vector<Fact> &kb, std::string &source) {
  static const char *const kStyles[] = {"declarative", "possessive", "qa"};
  size_t style = rng.below(3);
  source = kStyles[style];
  std::string text;
  int entities = static_cast<int>(rng.between(1, 3));
  for (int e = 0; e < entities; ++e) {
    size_t entity = rng.below(kb.size() / 4);
    int count = static_cast<int>(rng.between(2, 4));
    for (int i = 0; i < count; ++i)
      text += statement(kb[4 * entity + rng.below(4)], style) + "\n";
  }
  return text;
}

//===----------------------------------------------------------------------===//
// Downstream tasks over the same knowledge
//===----------------------------------------------------------------------===//

static const llvm::StringRef kTaskNames[] = {"facts-choice", "facts-qa", "arith", "prose-cloze", "code-cloze"};

/// Documents from this index on are in no corpus `--docs` makes in practice: held out.
constexpr uint64_t kHeldOutDocuments = 1'000'000'000;

/// A held-out document of `domain` cut after its first 80 bytes, at a word (prose) or a line
/// (code), and what follows: five words, or the next line; nullopt if it is too short.
static std::optional<std::pair<std::string, std::string>> clozeCut(llvm::StringRef domain, llvm::StringRef text) {
  if (domain == "prose") {
    const size_t cut = text.find(' ', 80);
    if (cut == llvm::StringRef::npos)
      return std::nullopt;
    llvm::SmallVector<llvm::StringRef, 8> words;
    text.drop_front(cut + 1).split('\n').first.split(words, ' ', 5);
    if (words.size() < 5 || llvm::any_of(llvm::make_range(words.begin(), words.begin() + 5),
                                         [](llvm::StringRef w) { return w.empty(); }))
      return std::nullopt;
    return std::make_pair(text.take_front(cut).str(), llvm::join(words.begin(), words.begin() + 5, " "));
  }
  const size_t cut = text.find('\n', 80);
  if (cut == llvm::StringRef::npos)
    return std::nullopt;
  llvm::StringRef next = text.drop_front(cut + 1).split('\n').first;
  if (next.trim().empty() || !text.drop_front(cut + 1).contains('\n'))
    return std::nullopt;
  return std::make_pair(text.take_front(cut + 1).str(), next.str());
}

llvm::ArrayRef<llvm::StringRef> mixtape::data::synthTaskNames() { return kTaskNames; }

/// The corpus's "qa" statement of `f`, split into the question and the answer after "A: ".
static std::pair<std::string, std::string> question(const Fact &f) {
  const std::string qa = statement(f, 2);
  auto [q, a] = llvm::StringRef(qa).split("\nA: ");
  return {q.str() + "\nA:", a.drop_back().str()}; // the answer without its final "."
}

llvm::Expected<std::string> mixtape::data::synthTask(llvm::StringRef name, uint64_t seed) {
  if (!llvm::is_contained(kTaskNames, name))
    return makeError("unknown synthetic task '" + name + "' (" + llvm::join(std::begin(kTaskNames), std::end(kTaskNames), ", ") + ")");
  std::string out;
  llvm::raw_string_ostream os(out);
  SplitMix64 rng(mixSeed(seed, XXH3_64bits(name.data(), name.size())));
  if (name.endswith("-cloze")) {
    const llvm::StringRef domain = name.split('-').first;
    std::vector<std::pair<std::string, std::string>> cuts;
    for (uint64_t i = kHeldOutDocuments; cuts.size() < 200; ++i)
      if (auto cut = clozeCut(domain, synthDocument(domain, seed, i).Text))
        cuts.push_back(std::move(*cut));
    for (size_t k = 0; k < cuts.size(); ++k) {
      // The true continuation and those of the next documents that differ from it.
      std::vector<std::string> choices{cuts[k].second};
      for (size_t j = k + 1; choices.size() < 4; ++j)
        if (!llvm::is_contained(choices, cuts[j % cuts.size()].second))
          choices.push_back(cuts[j % cuts.size()].second);
      const size_t gold = rng.below(choices.size());
      std::swap(choices[0], choices[gold]);
      os << llvm::json::Value(llvm::json::Object{{"context", cuts[k].first}, {"choices", choices}, {"gold", gold}})
         << "\n";
    }
    return out;
  }
  if (name == "arith") {
    for (int i = 0; i < 200; ++i) {
      int64_t a = rng.between(0, 99), b = rng.between(0, 99);
      const bool add = rng.chance(0.5);
      if (!add && a < b)
        std::swap(a, b);
      const std::string context = std::to_string(a) + (add ? " + " : " - ") + std::to_string(b) + " =";
      os << llvm::json::Value(llvm::json::Object{{"context", context}, {"answer", std::to_string(add ? a + b : a - b)}})
         << "\n";
    }
    return out;
  }
  const std::vector<Fact> kb = knowledgeBase(seed);
  for (const Fact &f : kb) {
    auto [context, answer] = question(f);
    if (name == "facts-qa") {
      os << llvm::json::Value(llvm::json::Object{{"context", context}, {"answer", answer}}) << "\n";
      continue;
    }
    // Three other values of the same attribute, in a seeded order with the true one.
    std::vector<std::string> choices{answer};
    std::vector<size_t> others;
    for (size_t i = 0; i < kb.size(); ++i)
      if (kb[i].Attribute == f.Attribute && question(kb[i]).second != answer &&
          llvm::none_of(others, [&](size_t o) { return kb[o].Value == kb[i].Value; }))
        others.push_back(i);
    for (size_t k = 0; k < 3 && k < others.size(); ++k) {
      std::swap(others[k], others[k + rng.below(others.size() - k)]);
      choices.push_back(question(kb[others[k]]).second);
    }
    const size_t gold = rng.below(choices.size());
    std::swap(choices[0], choices[gold]);
    os << llvm::json::Value(llvm::json::Object{{"context", context}, {"choices", choices}, {"gold", gold}}) << "\n";
  }
  return out;
}

//===----------------------------------------------------------------------===//
// Quality and ratings
//===----------------------------------------------------------------------===//

/// Swaps adjacent letters with a rate that grows as quality falls; digits stay intact.
static void addTypos(SplitMix64 &rng, std::string &text, int quality) {
  double rate = 0.012 * (5 - quality);
  for (size_t i = 0; i + 1 < text.size(); ++i)
    if (llvm::isAlpha(text[i]) && llvm::isAlpha(text[i + 1]) && rng.chance(rate)) {
      std::swap(text[i], text[i + 1]);
      ++i;
    }
}

static float semanticDensity(llvm::StringRef text) {
  llvm::SmallVector<llvm::StringRef, 64> words;
  llvm::SplitString(text, words, " \n\t.,:?()[]");
  llvm::StringSet<> distinct;
  for (llvm::StringRef w : words)
    distinct.insert(w);
  // Rounded to hundredths so the value is exact in decimal output.
  return words.empty() ? 0.0f
                       : static_cast<float>((100 * distinct.size() / words.size())) / 100.0f;
}

/// `kb` is knowledgeBase(seed), computed once per corpus rather than once per document.
static SynthDocument generate(llvm::StringRef domain, uint64_t seed, uint64_t index,
                              const std::vector<Fact> &kb) {
  uint64_t domainSeed = mixSeed(seed, XXH3_64bits(domain.data(), domain.size()));
  SplitMix64 rng(mixSeed(domainSeed, index));
  SynthDocument doc;
  // Quality skews by domain: code and facts are mostly clean, prose is mixed.
  static const int kProse[] = {1, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5};
  static const int kClean[] = {2, 3, 4, 4, 5, 5, 5, 5};
  doc.Quality = domain == "prose" ? pick(rng, kProse) : pick(rng, kClean);
  if (domain == "prose")
    doc.Text = prose(rng, doc.Source);
  else if (domain == "code")
    doc.Text = code(rng, doc.Source);
  else if (domain == "arith")
    doc.Text = arith(rng, doc.Source);
  else
    doc.Text = facts(rng, kb, doc.Source);
  addTypos(rng, doc.Text, doc.Quality);
  doc.OverallScore = static_cast<float>(doc.Text.size() < 200 ? std::max(1, doc.Quality - 1) : doc.Quality);
  doc.Coherence = static_cast<float>(std::clamp(doc.Quality + static_cast<int>(rng.between(-1, 1)), 1, 5));
  doc.SemanticDensity = semanticDensity(doc.Text);
  // A stream of its own, so the ratings never change the text.
  SplitMix64 ratings(mixSeed(mixSeed(domainSeed, index), XXH3_64bits("dataman", 7)));
  for (size_t i = 0; i < std::size(kDataManRatings); ++i)
    doc.Ratings.push_back(static_cast<float>(std::clamp(doc.Quality + static_cast<int>(ratings.between(-1, 1)), 1, 5)));
  return doc;
}

const char *const mixtape::data::kDataManRatings[11] = {
    "accuracy",        "language_consistency", "knowledge_novelty",          "topic_focus",
    "creativity",      "professionalism",      "style_consistency",          "grammatical_diversity",
    "structural_standardization", "originality", "sensitivity"};

SynthDocument mixtape::data::synthDocument(llvm::StringRef domain, uint64_t seed, uint64_t index) {
  return generate(domain, seed, index, domain == "facts" ? knowledgeBase(seed) : std::vector<Fact>());
}

llvm::Expected<std::vector<Manifest>> mixtape::data::synthesizeCorpus(llvm::StringRef dir,
                                                                      const SynthOptions &options) {
  std::vector<std::string> domains = options.Domains;
  if (domains.empty())
    for (llvm::StringRef d : kDomains)
      domains.push_back(d.str());
  for (const std::string &d : domains)
    if (!llvm::is_contained(kDomains, d))
      return makeError("unknown synthetic domain '" + d + "' (prose, code, arith, facts)");
  ByteTokenizer bytes;
  const Tokenizer &tokenizer = options.Tokens ? *options.Tokens : bytes;
  std::vector<Manifest> manifests;
  for (const std::string &domain : domains) {
    std::string prefix = joinPath(dir, domain);
    llvm::Expected<std::unique_ptr<DatasetWriter>> writer =
        DatasetWriter::create(prefix, ShardFormat::Megatron, tokenizer);
    if (!writer)
      return writer.takeError();
    std::vector<Fact> kb = domain == "facts" ? knowledgeBase(options.Seed) : std::vector<Fact>();
    for (uint64_t i = 0; i < options.DocumentsPerDomain; ++i) {
      SynthDocument doc = generate(domain, options.Seed, i, kb);
      DatasetWriter &w = **writer;
      llvm::Error err = w.addDocument(tokenizeDocument(tokenizer, doc.Text));
      err = llvm::joinErrors(std::move(err), w.setNumber("quality", doc.Quality));
      err = llvm::joinErrors(std::move(err), w.setNumber("overall_score", doc.OverallScore));
      err = llvm::joinErrors(std::move(err), w.setNumber("coherence", doc.Coherence));
      err = llvm::joinErrors(std::move(err), w.setNumber("semantic_density", doc.SemanticDensity));
      for (size_t r = 0; r < doc.Ratings.size(); ++r)
        err = llvm::joinErrors(std::move(err), w.setNumber(kDataManRatings[r], doc.Ratings[r]));
      err = llvm::joinErrors(std::move(err), w.setString("domain", domain));
      err = llvm::joinErrors(std::move(err), w.setString("source", doc.Source));
      if (err)
        return err;
    }
    llvm::Expected<Manifest> manifest = (*writer)->finish();
    if (!manifest)
      return manifest.takeError();
    manifests.push_back(std::move(*manifest));
  }
  return manifests;
}
