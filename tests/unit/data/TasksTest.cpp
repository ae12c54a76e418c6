//===- TasksTest.cpp - task files, prompts and scores, lm-eval's way ------===//
//
// Expectations are derived by hand from docs/tasks.md and lm-eval-harness's definitions,
// never printed by the code under test: the byte tokenizer's ids are the UTF-8 bytes, and
// the one BPE case takes its ids from tests/fixtures/bpe-bytelevel/expected.json (written by
// Hugging Face `tokenizers`).
//
//===----------------------------------------------------------------------===//
#include "DataTestSupport.h"
#include "Fixtures.h"

#include "mixtape/data/Tasks.h"
#include "mixtape/support/JSON.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

#include <cmath>
#include <iostream>
#include <map>
#include <set>

using namespace mixtape;
using namespace mixtape::data;
using namespace mixtape::data::test;

namespace {

void writeText(const std::string &path, llvm::StringRef text) {
  writeBytes(path, std::vector<uint8_t>(text.bytes_begin(), text.bytes_end()));
}

/// A task as the recipe's defaults make it (docs/language.md): " " between a context and
/// its target, "\n\n" between examples, seed 1234.
plan::Task makeTask(llvm::StringRef path, plan::TaskKind kind, uint64_t shots = 0) {
  plan::Task t;
  t.Path = path.str();
  t.Kind = kind;
  t.Shots = shots;
  t.FewshotSeed = 1234;
  t.TargetDelimiter = " ";
  t.FewshotDelimiter = "\n\n";
  t.MaxNewTokens = 16;
  t.Limit = 0;
  return t;
}

std::string choiceLine(llvm::StringRef context, std::vector<std::string> choices, int64_t gold) {
  llvm::json::Array c;
  for (std::string &s : choices)
    c.push_back(std::move(s));
  std::string out;
  llvm::raw_string_ostream os(out);
  os << llvm::json::Value(llvm::json::Object{{"context", context}, {"choices", std::move(c)}, {"gold", gold}});
  return os.str();
}

/// Whether `message` starts with `prefix` and contains each of `parts`.
testing::AssertionResult says(const std::string &message, llvm::StringRef prefix,
                              std::initializer_list<llvm::StringRef> parts = {}) {
  if (!llvm::StringRef(message).startswith(prefix))
    return testing::AssertionFailure() << "'" << message << "' does not start with '" << prefix.str() << "'";
  for (llvm::StringRef part : parts)
    if (!llvm::StringRef(message).contains(part))
      return testing::AssertionFailure() << "'" << message << "' does not contain '" << part.str() << "'";
  return testing::AssertionSuccess();
}

testing::AssertionResult endsWith(llvm::StringRef text, llvm::StringRef suffix) {
  if (text.endswith(suffix))
    return testing::AssertionSuccess();
  return testing::AssertionFailure() << "'" << text.str() << "' does not end with '" << suffix.str() << "'";
}

std::string parseError(llvm::StringRef text, plan::TaskKind kind = plan::TaskKind::Choice) {
  return errorText(parseTaskItems(text, "t.jsonl", kind));
}

size_t occurrences(llvm::StringRef haystack, llvm::StringRef needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != llvm::StringRef::npos; at = haystack.find(needle, at + 1))
    ++n;
  return n;
}

std::vector<uint32_t> bytesOf(llvm::StringRef s) { return std::vector<uint32_t>(s.bytes_begin(), s.bytes_end()); }

} // namespace

// --- parsing --------------------------------------------------------------------------

TEST(TaskItems, ParsesChoiceAndGenerateItems) {
  std::vector<TaskItem> items =
      take(parseTaskItems("{\"context\": \"Q: 1+1?\\nA:\", \"choices\": [\"2\", \"3\", \"é\"], \"gold\": 0, "
                          "\"description\": \"Sums.\\n\\n\"}\n",
                          "t.jsonl", plan::TaskKind::Choice));
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].Line, 0u);
  EXPECT_EQ(items[0].Context, "Q: 1+1?\nA:");
  EXPECT_EQ(items[0].Description, "Sums.\n\n");
  EXPECT_EQ(items[0].Choices, (std::vector<std::string>{"2", "3", "\xC3\xA9"}));
  EXPECT_EQ(items[0].Gold, 0u);
  EXPECT_EQ(items[0].target(), "2");

  std::vector<TaskItem> gen =
      take(parseTaskItems("{\"context\": \"Capital of France?\", \"answer\": \"Paris\"}", "t.jsonl",
                          plan::TaskKind::Generate));
  ASSERT_EQ(gen.size(), 1u);
  EXPECT_EQ(gen[0].Answer, "Paris");
  EXPECT_TRUE(gen[0].Choices.empty());
  EXPECT_EQ(gen[0].target(), "Paris");
}

TEST(TaskItems, BlankLinesAreSkippedButCounted) {
  // Lines 1 and 3 blank (one of them spaces), line 5 a CRLF-terminated item: 0-based lines
  // 1, 3 and 4 hold the items.
  const std::string text = "\n" + choiceLine("a", {"x", "y"}, 1) + "\n   \n" + choiceLine("b", {"x", "y"}, 0) +
                           "\n" + choiceLine("c", {"x", "y"}, 1) + "\r\n\n";
  std::vector<TaskItem> items = take(parseTaskItems(text, "t.jsonl", plan::TaskKind::Choice));
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].Line, 1u);
  EXPECT_EQ(items[0].Context, "a");
  EXPECT_EQ(items[0].Gold, 1u);
  EXPECT_EQ(items[1].Line, 3u);
  EXPECT_EQ(items[1].Context, "b");
  EXPECT_EQ(items[2].Line, 4u);
  EXPECT_EQ(items[2].Context, "c");

  // An error after blank lines names the line of the file, 1-based.
  EXPECT_TRUE(says(parseError("\n\n" + choiceLine("a", {"x", "y"}, 0) + "\n\n{not json\n"), "t.jsonl:5:"));
}

TEST(TaskItems, ErrorsNameFileAndLine) {
  const std::string good = choiceLine("a", {"x", "y"}, 0) + "\n";
  // Bad JSON on line 2.
  EXPECT_TRUE(says(parseError(good + "{\"context\": \n"), "t.jsonl:2:"));
  // Not an object.
  EXPECT_TRUE(says(parseError(good + good + "[1, 2]\n"), "t.jsonl:3:", {"JSON object"}));
  // Missing context, and a context that is not a string.
  EXPECT_TRUE(says(parseError(good + "{\"choices\": [\"x\", \"y\"], \"gold\": 0}\n"), "t.jsonl:2:", {"\"context\" must be a string"}));
  EXPECT_TRUE(says(parseError("{\"context\": 3, \"choices\": [\"x\", \"y\"], \"gold\": 0}"), "t.jsonl:1:", {"\"context\""}));
  // Gold out of range: past the end, negative, missing, not an integer.
  EXPECT_TRUE(says(parseError(good + choiceLine("a", {"x", "y"}, 2)), "t.jsonl:2:", {"\"gold\"", "0 to 1"}));
  EXPECT_TRUE(says(parseError(choiceLine("a", {"x", "y", "z"}, -1)), "t.jsonl:1:", {"\"gold\"", "0 to 2"}));
  EXPECT_TRUE(says(parseError("{\"context\": \"a\", \"choices\": [\"x\", \"y\"]}"), "t.jsonl:1:", {"\"gold\""}));
  EXPECT_TRUE(says(parseError("{\"context\": \"a\", \"choices\": [\"x\", \"y\"], \"gold\": \"0\"}"), "t.jsonl:1:", {"\"gold\""}));
  // Fewer than two choices, and choices that are not strings.
  EXPECT_TRUE(says(parseError(good + good + good + choiceLine("a", {"only"}, 0)), "t.jsonl:4:", {"at least two"}));
  EXPECT_TRUE(says(parseError("{\"context\": \"a\", \"choices\": [], \"gold\": 0}"), "", {"at least two"}));
  EXPECT_TRUE(says(parseError("{\"context\": \"a\", \"choices\": [\"x\", 2], \"gold\": 0}"), "t.jsonl:1:", {"\"choices\""}));
  // Generate items need a string answer.
  EXPECT_TRUE(says(parseError("{\"context\": \"a\", \"answer\": \"b\"}\n{\"context\": \"a\"}", plan::TaskKind::Generate), "t.jsonl:2:", {"\"answer\""}));
  // A description that is not a string.
  EXPECT_TRUE(says(parseError("{\"context\": \"a\", \"answer\": \"b\", \"description\": 1}", plan::TaskKind::Generate), "t.jsonl:1:", {"\"description\""}));
  // No items at all.
  EXPECT_TRUE(says(parseError("\n  \n"), "t.jsonl", {"no items"}));
}

// --- files: limit, pool, fingerprint ----------------------------------------------------

TEST(TaskFiles, LimitKeepsTheFirstItemsAndTheWholePool) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 5; ++i)
    text += choiceLine("q" + std::to_string(i), {"x", "y"}, i % 2) + "\n";
  writeText(dir / "t.jsonl", text);
  plan::Task task = makeTask("t.jsonl", plan::TaskKind::Choice);
  for (auto [limit, want] : {std::pair<uint64_t, size_t>{0, 5}, {2, 2}, {5, 5}, {10, 5}}) {
    task.Limit = limit;
    TaskFiles files = take(readTaskFiles(task, dir.Path));
    ASSERT_EQ(files.Items.size(), want) << "limit " << limit;
    EXPECT_EQ(files.All.size(), 5u);
    EXPECT_TRUE(files.Fewshot.empty());
    for (size_t i = 0; i < want; ++i)
      EXPECT_EQ(files.Items[i].Context, "q" + std::to_string(i));
  }
  // The limit does not shrink the pool: with 2 items scored, 4 shots still fit.
  task.Limit = 2;
  task.Shots = 4;
  EXPECT_EQ(take(readTaskFiles(task, dir.Path)).Items.size(), 2u);
}

TEST(TaskFiles, MoreShotsThanThePoolIsAnError) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 3; ++i)
    text += choiceLine("q" + std::to_string(i), {"x", "y"}, 0) + "\n";
  writeText(dir / "t.jsonl", text);
  writeText(dir / "shots.jsonl", choiceLine("f0", {"x", "y"}, 0) + "\n" + choiceLine("f1", {"x", "y"}, 0) + "\n");

  // From the item file, an item is never its own example: 3 items leave 2 others.
  plan::Task task = makeTask("t.jsonl", plan::TaskKind::Choice, 2);
  EXPECT_EQ(take(readTaskFiles(task, dir.Path)).All.size(), 3u);
  task.Shots = 3;
  EXPECT_TRUE(says(errorText(readTaskFiles(task, dir.Path)), "", {"t.jsonl", "3 shots", "holds 2 other items"}));

  // From a few-shot file, every line of it may be an example.
  task.Fewshot = "shots.jsonl";
  task.Shots = 2;
  TaskFiles files = take(readTaskFiles(task, dir.Path));
  EXPECT_EQ(files.Fewshot.size(), 2u);
  task.Shots = 3;
  EXPECT_TRUE(says(errorText(readTaskFiles(task, dir.Path)), "", {"shots.jsonl", "3 shots", "holds 2 other items"}));

  // A missing or malformed file is an error with its path.
  task.Fewshot = "absent.jsonl";
  task.Shots = 0;
  EXPECT_TRUE(says(errorText(readTaskFiles(task, dir.Path)), "", {"absent.jsonl"}));
  writeText(dir / "bad.jsonl", choiceLine("f0", {"x", "y"}, 0) + "\n{\n");
  task.Fewshot = "bad.jsonl";
  EXPECT_TRUE(says(errorText(readTaskFiles(task, dir.Path)), "", {"bad.jsonl:2:"}));
}

TEST(TaskFiles, FingerprintFollowsBothFilesContent) {
  TempDir dir;
  writeText(dir / "t.jsonl", choiceLine("a", {"x", "y"}, 0) + "\n");
  writeText(dir / "shots.jsonl", choiceLine("f", {"x", "y"}, 0) + "\n");
  plan::Task task = makeTask("t.jsonl", plan::TaskKind::Choice);
  const std::string items = take(taskFingerprint(task, dir.Path));
  ASSERT_TRUE(says(items, "sha256:"));
  EXPECT_EQ(items.size(), 7u + 64u);
  EXPECT_EQ(items, take(taskFingerprint(task, dir.Path))) << "deterministic";

  // The item file's content changes it, and restoring the content restores it.
  writeText(dir / "t.jsonl", choiceLine("a", {"x", "y"}, 1) + "\n");
  const std::string changed = take(taskFingerprint(task, dir.Path));
  EXPECT_NE(changed, items);
  writeText(dir / "t.jsonl", choiceLine("a", {"x", "y"}, 0) + "\n");
  EXPECT_EQ(take(taskFingerprint(task, dir.Path)), items);

  // A few-shot file is covered too, and so is its content.
  task.Fewshot = "shots.jsonl";
  const std::string withShots = take(taskFingerprint(task, dir.Path));
  EXPECT_NE(withShots, items);
  writeText(dir / "shots.jsonl", choiceLine("g", {"x", "y"}, 0) + "\n");
  const std::string shotsChanged = take(taskFingerprint(task, dir.Path));
  EXPECT_NE(shotsChanged, withShots);
  EXPECT_NE(shotsChanged, items);

  // The path is not hashed, only the content: a copy under another name is the same task.
  writeText(dir / "copy.jsonl", choiceLine("a", {"x", "y"}, 0) + "\n");
  EXPECT_EQ(take(taskFingerprint(makeTask("copy.jsonl", plan::TaskKind::Choice), dir.Path)), items);

  // Moving bytes across the two files' boundary changes it.
  writeText(dir / "ab", "ab");
  writeText(dir / "c", "c");
  writeText(dir / "a", "a");
  writeText(dir / "bc", "bc");
  plan::Task one = makeTask("ab", plan::TaskKind::Choice), two = makeTask("a", plan::TaskKind::Choice);
  one.Fewshot = "c";
  two.Fewshot = "bc";
  EXPECT_NE(take(taskFingerprint(one, dir.Path)), take(taskFingerprint(two, dir.Path)));

  EXPECT_TRUE(says(errorText(taskFingerprint(makeTask("absent.jsonl", plan::TaskKind::Choice), dir.Path)), "", {"absent.jsonl"}));
}

// --- few-shot contexts --------------------------------------------------------------

namespace {

/// N choice items "Qi:" whose gold choice is "Ri" (at index i mod 2, the other "Wi"), each
/// example therefore reading "Qi: Ri\n\n".
std::string examplesFile(int n, llvm::StringRef prefix = "Q") {
  std::string text;
  for (int i = 0; i < n; ++i) {
    const std::string k = std::to_string(i), right = "R" + prefix.str() + k, wrong = "W" + prefix.str() + k;
    text += choiceLine(prefix.str() + k + ":", i % 2 ? std::vector<std::string>{wrong, right}
                                                     : std::vector<std::string>{right, wrong},
                       i % 2) +
            "\n";
  }
  return text;
}

std::string example(llvm::StringRef prefix, int i) {
  const std::string k = std::to_string(i);
  return prefix.str() + k + ": R" + prefix.str() + k + "\n\n";
}

} // namespace

TEST(TaskContext, WithoutShotsIsDescriptionAndContext) {
  std::vector<TaskItem> items = take(parseTaskItems(
      "{\"context\": \"Q: a\\nA:\", \"answer\": \"1\", \"description\": \"About x.\\n\\n\"}\n"
      "{\"context\": \"Q: b\\nA:\", \"answer\": \"2\"}",
      "t.jsonl", plan::TaskKind::Generate));
  TaskFiles files;
  files.All = items;
  files.Items = items;
  plan::Task task = makeTask("t.jsonl", plan::TaskKind::Generate);
  EXPECT_EQ(taskContext(task, files, 0), "About x.\n\nQ: a\nA:");
  EXPECT_EQ(taskContext(task, files, 1), "Q: b\nA:");
}

TEST(TaskContext, DescriptionComesBeforeTheExamples) {
  // Two items and one shot: each item's only possible example is the other one, so the
  // whole text is known. Only the item's own description is used, not its examples'.
  std::vector<TaskItem> items = take(parseTaskItems(
      "{\"context\": \"Q: a\\nA:\", \"answer\": \"1\", \"description\": \"About x.\\n\\n\"}\n"
      "{\"context\": \"Q: b\\nA:\", \"answer\": \"2\", \"description\": \"About y.\\n\\n\"}",
      "t.jsonl", plan::TaskKind::Generate));
  TaskFiles files;
  files.All = items;
  files.Items = items;
  plan::Task task = makeTask("t.jsonl", plan::TaskKind::Generate, 1);
  EXPECT_EQ(taskContext(task, files, 0), "About x.\n\nQ: b\nA: 2\n\nQ: a\nA:");
  EXPECT_EQ(taskContext(task, files, 1), "About y.\n\nQ: a\nA: 1\n\nQ: b\nA:");

  // The delimiters are the task's.
  task.TargetDelimiter = "=";
  task.FewshotDelimiter = " | ";
  EXPECT_EQ(taskContext(task, files, 0), "About x.\n\nQ: b\nA:=2 | Q: a\nA:");
}

TEST(TaskContext, AllOtherItemsExactlyOnceNeverTheItemItself) {
  TempDir dir;
  constexpr int kItems = 6;
  writeText(dir / "t.jsonl", examplesFile(kItems));
  for (uint64_t seed : {0ull, 1ull, 1234ull, 987654321ull}) {
    plan::Task task = makeTask("t.jsonl", plan::TaskKind::Choice, kItems - 1);
    task.FewshotSeed = seed;
    TaskFiles files = take(readTaskFiles(task, dir.Path));
    for (int i = 0; i < kItems; ++i) {
      const std::string context = taskContext(task, files, static_cast<size_t>(i));
      EXPECT_TRUE(endsWith(context, "\n\nQ" + std::to_string(i) + ":"));
      for (int j = 0; j < kItems; ++j)
        EXPECT_EQ(occurrences(context, example("Q", j)), i == j ? 0u : 1u)
            << "seed " << seed << ", item " << i << ", example " << j << ":\n" << context;
      // Nothing else: the examples and the item's context, end to end.
      EXPECT_EQ(context.size(), (kItems - 1) * example("Q", 0).size() + 3) << context;
    }
  }
}

TEST(TaskContext, FewerShotsDrawDistinctOtherItems) {
  TempDir dir;
  constexpr int kItems = 7;
  writeText(dir / "t.jsonl", examplesFile(kItems));
  std::set<std::string> seen;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    plan::Task task = makeTask("t.jsonl", plan::TaskKind::Choice, 3);
    task.FewshotSeed = seed;
    TaskFiles files = take(readTaskFiles(task, dir.Path));
    for (int i = 0; i < kItems; ++i) {
      const std::string context = taskContext(task, files, static_cast<size_t>(i));
      seen.insert(context);
      size_t examples = 0;
      for (int j = 0; j < kItems; ++j) {
        const size_t n = occurrences(context, example("Q", j));
        EXPECT_LE(n, i == j ? 0u : 1u) << "seed " << seed << ", item " << i << ":\n" << context;
        examples += n;
      }
      EXPECT_EQ(examples, 3u) << context;
      EXPECT_EQ(context.size(), 3 * example("Q", 0).size() + 3) << context;
    }
  }
  // The draw depends on the seed and the item: 140 contexts are not all alike.
  EXPECT_GT(seen.size(), static_cast<size_t>(kItems));
}

TEST(TaskContext, IsDeterministicAndIndependentOfLimit) {
  TempDir dir;
  writeText(dir / "t.jsonl", examplesFile(8));
  plan::Task task = makeTask("t.jsonl", plan::TaskKind::Choice, 3);
  TaskFiles all = take(readTaskFiles(task, dir.Path));
  task.Limit = 3;
  TaskFiles limited = take(readTaskFiles(task, dir.Path));
  TaskFiles again = take(readTaskFiles(task, dir.Path));
  ASSERT_EQ(limited.Items.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(taskContext(task, limited, i), taskContext(task, all, i));
    EXPECT_EQ(taskContext(task, limited, i), taskContext(task, again, i));
  }
  // Another seed draws other examples for some item.
  plan::Task other = task;
  other.FewshotSeed = task.FewshotSeed + 1;
  bool differs = false;
  for (size_t i = 0; i < 3; ++i)
    differs |= taskContext(task, limited, i) != taskContext(other, limited, i);
  EXPECT_TRUE(differs);
}

TEST(TaskContext, FewshotFileIsThePool) {
  TempDir dir;
  writeText(dir / "t.jsonl", examplesFile(3, "Q"));
  writeText(dir / "shots.jsonl", examplesFile(3, "F"));
  plan::Task task = makeTask("t.jsonl", plan::TaskKind::Choice, 3);
  task.Fewshot = "shots.jsonl";
  TaskFiles files = take(readTaskFiles(task, dir.Path));
  for (int i = 0; i < 3; ++i) {
    const std::string context = taskContext(task, files, static_cast<size_t>(i));
    // Every line of the few-shot file, even the one at the item's own line number.
    for (int j = 0; j < 3; ++j) {
      EXPECT_EQ(occurrences(context, example("F", j)), 1u) << context;
      EXPECT_EQ(occurrences(context, example("Q", j)), 0u) << context;
    }
    EXPECT_TRUE(endsWith(context, "\n\nQ" + std::to_string(i) + ":"));
    EXPECT_EQ(context.size(), 3 * example("F", 0).size() + 3) << context;
  }
}

// --- encoding ---------------------------------------------------------------------------

TEST(EncodePair, BytesFollowLmEvalsEncodePair) {
  ByteTokenizer bytes;
  // The delimiter already on the continuation.
  ScoredPair p = encodePair(bytes, "ab", " c");
  EXPECT_EQ(p.Context, (std::vector<uint32_t>{'a', 'b'}));
  EXPECT_EQ(p.Continuation, (std::vector<uint32_t>{' ', 'c'}));
  // Trailing whitespace of the context, all of it, moves into the continuation.
  p = encodePair(bytes, "ab ", "c");
  EXPECT_EQ(p.Context, (std::vector<uint32_t>{'a', 'b'}));
  EXPECT_EQ(p.Continuation, (std::vector<uint32_t>{' ', 'c'}));
  p = encodePair(bytes, "Q: x\nA: \n\t", " y");
  EXPECT_EQ(p.Context, bytesOf("Q: x\nA:"));
  EXPECT_EQ(p.Continuation, (std::vector<uint32_t>{' ', '\n', '\t', ' ', 'y'}));
  // Whitespace inside the context and at the end of the continuation stays.
  p = encodePair(bytes, " a b", " c ");
  EXPECT_EQ(p.Context, bytesOf(" a b"));
  EXPECT_EQ(p.Continuation, bytesOf(" c "));
  // UTF-8: a multibyte continuation is its bytes.
  p = encodePair(bytes, "caf", "\xC3\xA9");
  EXPECT_EQ(p.Context, bytesOf("caf"));
  EXPECT_EQ(p.Continuation, (std::vector<uint32_t>{0xC3, 0xA9}));
  // An empty context is the end-of-text token.
  p = encodePair(bytes, "", " yes");
  EXPECT_EQ(p.Context, (std::vector<uint32_t>{ByteTokenizer::EndOfText}));
  EXPECT_EQ(p.Continuation, bytesOf(" yes"));
  // A context of whitespace only becomes empty: the end-of-text token, the whitespace moved.
  p = encodePair(bytes, " \n", "x");
  EXPECT_EQ(p.Context, (std::vector<uint32_t>{ByteTokenizer::EndOfText}));
  EXPECT_EQ(p.Continuation, bytesOf(" \nx"));
}

TEST(EncodePair, TrailingWhitespaceIsPythonsRstrip) {
  // lm-eval moves len(context) - len(context.rstrip()) characters: Python's str.isspace(),
  // which takes in U+001C..U+001F, U+0085, no-break and ideographic spaces too.
  ByteTokenizer bytes;
  ScoredPair p = encodePair(bytes, "Answer:\xC2\xA0", "x"); // U+00A0 NO-BREAK SPACE
  EXPECT_EQ(p.Context, bytesOf("Answer:"));
  EXPECT_EQ(p.Continuation, bytesOf("\xC2\xA0x"));
  p = encodePair(bytes, "A:\x1F \xE3\x80\x80", "x"); // U+001F, a space, U+3000
  EXPECT_EQ(p.Context, bytesOf("A:"));
  EXPECT_EQ(p.Continuation, bytesOf("\x1F \xE3\x80\x80x"));
  // Not whitespace to Python: U+200B ZERO WIDTH SPACE stays in the context.
  p = encodePair(bytes, "A:\xE2\x80\x8B", "x");
  EXPECT_EQ(p.Context, bytesOf("A:\xE2\x80\x8B"));
  EXPECT_EQ(p.Continuation, bytesOf("x"));
}

TEST(EncodePair, ScoringInputIsTheWindowBeforeTheLastToken) {
  ScoredPair p{{1, 2, 3}, {4, 5}};
  // Room for everything: all tokens but the last.
  EXPECT_EQ(scoringInput(p, 10), (std::vector<uint32_t>{1, 2, 3, 4}));
  EXPECT_EQ(scoringInput(p, 4), (std::vector<uint32_t>{1, 2, 3, 4}));
  // The last maxLength + 1 tokens, minus the last.
  EXPECT_EQ(scoringInput(p, 3), (std::vector<uint32_t>{2, 3, 4}));
  EXPECT_EQ(scoringInput(p, 1), (std::vector<uint32_t>{4}));
}

TEST(EncodePair, TaskTokensCountTheForwardPasses) {
  TempDir dir;
  writeText(dir / "c.jsonl", choiceLine("ab", {"c", "de"}, 0) + "\n");
  writeText(dir / "g.jsonl", "{\"context\": \"abc\", \"answer\": \"d\"}\n");
  ByteTokenizer bytes;
  plan::Task choice = makeTask("c.jsonl", plan::TaskKind::Choice);
  TaskFiles files = take(readTaskFiles(choice, dir.Path));
  // "ab" + " c": 4 tokens, 3 read; "ab" + " de": 5 tokens, 4 read.
  EXPECT_EQ(taskTokens(choice, files, bytes, 100), 3u + 4u);
  // A window of 2 reads 2 of each.
  EXPECT_EQ(taskTokens(choice, files, bytes, 2), 2u + 2u);
  plan::Task gen = makeTask("g.jsonl", plan::TaskKind::Generate);
  gen.MaxNewTokens = 5;
  files = take(readTaskFiles(gen, dir.Path));
  EXPECT_EQ(taskTokens(gen, files, bytes, 100), 3u + 5u);
  EXPECT_EQ(taskTokens(gen, files, bytes, 6), 6u);
}

TEST(EncodePair, BpeContinuationIsTheWholeTextsTokensPastTheContexts) {
  const std::string dir = mixtape::test::fixturesDir() + "/bpe-bytelevel";
  MIXTAPE_REQUIRE_FIXTURES(dir + "/expected.json");
  std::unique_ptr<Tokenizer> bpe = take(createTokenizer("hf:" + dir));
  ASSERT_TRUE(bpe);
  std::vector<uint8_t> raw = readBytes(dir + "/expected.json");
  llvm::Expected<llvm::json::Value> root =
      parseJSON(llvm::StringRef(reinterpret_cast<const char *>(raw.data()), raw.size()), dir + "/expected.json");
  ASSERT_TRUE(bool(root)) << llvm::toString(root.takeError());
  std::map<std::string, std::vector<uint32_t>> ids;
  for (const llvm::json::Value &s : *root->getAsObject()->getArray("samples")) {
    std::vector<uint32_t> &v = ids[s.getAsObject()->getString("text")->str()];
    for (const llvm::json::Value &id : *s.getAsObject()->getArray("ids"))
      v.push_back(static_cast<uint32_t>(*id.getAsInteger()));
  }
  const std::vector<uint32_t> &hello = ids.at("Hello, world!");

  // "Hello, " + "world!": the space moves to the continuation, so context and continuation
  // together are exactly `tokenizers`' ids of the whole text, "," ending the context (the
  // GPT-2 pre-tokenizer splits there).
  ScoredPair p = encodePair(*bpe, "Hello, ", "world!");
  std::vector<uint32_t> joined = p.Context;
  joined.insert(joined.end(), p.Continuation.begin(), p.Continuation.end());
  EXPECT_EQ(joined, hello);
  EXPECT_EQ(p.Context, bpe->encode("Hello,"));

  // A cut inside a word: the merges across the cut make the whole text's tokens differ from
  // the two halves' tokens; the continuation is what lm-eval takes, the whole text's tokens
  // (the fixture's) past the first len(tokens(context)).
  bool found = false;
  for (const auto &[text, whole] : ids) {
    for (size_t cut = 1; cut < text.size() && !found; ++cut) {
      llvm::StringRef context = llvm::StringRef(text).take_front(cut), continuation = llvm::StringRef(text).drop_front(cut);
      if (context.back() == ' ' || (static_cast<uint8_t>(continuation.front()) & 0xC0) == 0x80)
        continue; // whitespace would move; a cut inside a UTF-8 sequence is no text
      std::vector<uint32_t> ctx = bpe->encode(context), cont = bpe->encode(continuation);
      std::vector<uint32_t> separate = ctx;
      separate.insert(separate.end(), cont.begin(), cont.end());
      if (separate == whole || ctx.size() >= whole.size())
        continue;
      // Where tokens(context) is no prefix of the whole text's tokens, lm-eval's rule and
      // "encode the continuation alone" disagree: the case this test is for.
      if (std::equal(ctx.begin(), ctx.end(), whole.begin()))
        continue;
      found = true;
      std::cout << llvm::formatv("tokens(context) is no prefix of tokens(whole) for {0} + {1}\n",
                                 llvm::json::Value(context), llvm::json::Value(continuation))
                       .str();
      p = encodePair(*bpe, context, continuation);
      EXPECT_EQ(p.Context, ctx) << text << " cut at " << cut;
      EXPECT_EQ(p.Continuation, std::vector<uint32_t>(whole.begin() + static_cast<ptrdiff_t>(ctx.size()), whole.end()))
          << text << " cut at " << cut;
      EXPECT_NE(p.Continuation, cont) << text << " cut at " << cut;
    }
  }
  EXPECT_TRUE(found) << "no sample of expected.json has a cut whose merges cross it";
}

// --- scores -------------------------------------------------------------------------------

TEST(TaskScores, CodePointsCountCharactersNotBytes) {
  EXPECT_EQ(codePoints(""), 0u);
  EXPECT_EQ(codePoints("abc"), 3u);
  EXPECT_EQ(codePoints("\xC3\xA9"), 1u);                  // é: 2 bytes
  EXPECT_EQ(codePoints("na\xC3\xAFve"), 5u);              // naïve
  EXPECT_EQ(codePoints("\xE6\x97\xA5\xE6\x9C\xAC"), 2u);  // 日本: 3 bytes each
  EXPECT_EQ(codePoints("\xF0\x9F\x98\x80!"), 2u);          // 😀: 4 bytes
}

TEST(TaskScores, ChooseAnswerTiesGoToTheLowestIndex) {
  std::vector<std::string> abc = {"a", "b", "c"};
  ChoiceOutcome o = chooseAnswer({-1.0, -0.5, -0.5}, abc);
  EXPECT_EQ(o.Best, 1u);
  EXPECT_EQ(o.BestNorm, 1u);
  o = chooseAnswer({-2.0, -2.0, -2.0}, abc);
  EXPECT_EQ(o.Best, 0u);
  EXPECT_EQ(o.BestNorm, 0u);
  o = chooseAnswer({-3.0, -1.0, -2.0}, abc);
  EXPECT_EQ(o.Best, 1u);
  EXPECT_EQ(o.BestNorm, 1u);
  // Every choice impossible: argmax of all -inf is the first.
  o = chooseAnswer({-INFINITY, -INFINITY}, {"a", "b"});
  EXPECT_EQ(o.Best, 0u);
  EXPECT_EQ(o.BestNorm, 0u);
  // Normalized ties: -2/2 == -4/4, the lower index wins whichever order.
  o = chooseAnswer({-2.0, -4.0}, {"ab", "cdef"});
  EXPECT_EQ(o.Best, 0u);
  EXPECT_EQ(o.BestNorm, 0u);
  o = chooseAnswer({-4.0, -2.0}, {"cdef", "ab"});
  EXPECT_EQ(o.Best, 1u);
  EXPECT_EQ(o.BestNorm, 0u);
}

TEST(TaskScores, AccNormDividesByCodePointsOfTheChoice) {
  // "é" is 1 code point (2 bytes): -1.5 / 1 = -1.5 loses to "ab"'s -2.0 / 2 = -1.0, while per
  // byte it would win (-0.75). acc takes the raw -1.5 > -2.0.
  ChoiceOutcome o = chooseAnswer({-1.5, -2.0}, {"\xC3\xA9", "ab"});
  EXPECT_EQ(o.Best, 0u);
  EXPECT_EQ(o.BestNorm, 1u);
  // A long choice with a lower total wins by its length: -6/6 = -1 > -3/2 = -1.5.
  o = chooseAnswer({-3.0, -6.0}, {"no", "yes it"});
  EXPECT_EQ(o.Best, 0u);
  EXPECT_EQ(o.BestNorm, 1u);
  // 3-byte characters: "日本語" is 3 code points (9 bytes). -6/3 = -2 loses to "ab"'s
  // -3/2 = -1.5; per byte (-6/9 = -0.67) it would win.
  o = chooseAnswer({-6.0, -3.0}, {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", "ab"});
  EXPECT_EQ(o.Best, 1u);
  EXPECT_EQ(o.BestNorm, 1u);
  // And where the totals and the per-code-point scores disagree: -4.5 > -6 by total, but
  // -4.5/3 = -1.5 < -6/5 = -1.2 per code point ("ab cd" is 5).
  o = chooseAnswer({-4.5, -6.0}, {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", "ab cd"});
  EXPECT_EQ(o.Best, 0u);
  EXPECT_EQ(o.BestNorm, 1u);
}

TEST(TaskScores, CutAtStopEndsBeforeTheEarliestStop) {
  EXPECT_EQ(cutAtStop("Paris\n\nQ: next", {"\n\n"}), "Paris");
  // The earliest in the text wins, whatever the list's order.
  EXPECT_EQ(cutAtStop("1+1=2.\nQ: x", {"\n", "."}), "1+1=2");
  EXPECT_EQ(cutAtStop("abcdef", {"e", "c", "d"}), "ab");
  // No stops, an empty stop, a stop that never occurs: the whole text.
  EXPECT_EQ(cutAtStop("abc", {}), "abc");
  EXPECT_EQ(cutAtStop("abc", {""}), "abc");
  EXPECT_EQ(cutAtStop("abc", {"x", "", "yz"}), "abc");
  // A stop at the start leaves nothing; a multi-character stop is matched whole.
  EXPECT_EQ(cutAtStop("\nabc", {"\n"}), "");
  EXPECT_EQ(cutAtStop("a\nb\n\nc", {"\n\n"}), "a\nb");
}

TEST(TaskScores, JudgeGeneratedStripsBothSides) {
  GenerateOutcome o = judgeGenerated(" Paris\n", "Paris");
  EXPECT_TRUE(o.ExactMatch);
  EXPECT_TRUE(o.Contains);
  o = judgeGenerated("\tParis ", " Paris\n");
  EXPECT_TRUE(o.ExactMatch);
  EXPECT_TRUE(o.Contains);
  o = judgeGenerated("Paris, France", "Paris");
  EXPECT_FALSE(o.ExactMatch);
  EXPECT_TRUE(o.Contains);
  o = judgeGenerated(" It is Paris. ", " Paris ");
  EXPECT_FALSE(o.ExactMatch);
  EXPECT_TRUE(o.Contains);
  o = judgeGenerated("paris", "Paris"); // case matters
  EXPECT_FALSE(o.ExactMatch);
  EXPECT_FALSE(o.Contains);
  o = judgeGenerated("Par is", "Paris");
  EXPECT_FALSE(o.ExactMatch);
  EXPECT_FALSE(o.Contains);
}

TEST(TaskScores, JudgeGeneratedStripsPythonsWhitespace) {
  // str.strip(): U+3000 IDEOGRAPHIC SPACE, U+00A0 and U+2028 LINE SEPARATOR are whitespace.
  GenerateOutcome o = judgeGenerated("\xE3\x80\x80Paris\xC2\xA0", "Paris");
  EXPECT_TRUE(o.ExactMatch);
  o = judgeGenerated("Paris\xE2\x80\xA8", "\xC2\xA0Paris");
  EXPECT_TRUE(o.ExactMatch);
  EXPECT_TRUE(o.Contains);
}

TEST(TaskScores, MeanStderrIsTheSampleStandardDeviationOverRootN) {
  // [1, 0, 1, 1]: mean 3/4; squares 3 * (1/4)^2 + (3/4)^2 = 3/4, over n - 1 = 3: 1/4,
  // sd 1/2, over sqrt(4): 1/4.
  MeanStderr m = meanStderr({1, 0, 1, 1});
  EXPECT_DOUBLE_EQ(m.Mean, 0.75);
  EXPECT_DOUBLE_EQ(m.Stderr, 0.25);
  // [1, 0]: mean 1/2, squares 1/2 over 1, sd sqrt(1/2), over sqrt(2): 1/2.
  m = meanStderr({1, 0});
  EXPECT_DOUBLE_EQ(m.Mean, 0.5);
  EXPECT_DOUBLE_EQ(m.Stderr, 0.5);
  // All alike: no spread.
  m = meanStderr({1, 1, 1});
  EXPECT_DOUBLE_EQ(m.Mean, 1.0);
  EXPECT_DOUBLE_EQ(m.Stderr, 0.0);
  // Fewer than two: the mean, stderr 0.
  m = meanStderr({0.5});
  EXPECT_DOUBLE_EQ(m.Mean, 0.5);
  EXPECT_DOUBLE_EQ(m.Stderr, 0.0);
  m = meanStderr({});
  EXPECT_DOUBLE_EQ(m.Mean, 0.0);
  EXPECT_DOUBLE_EQ(m.Stderr, 0.0);
}
