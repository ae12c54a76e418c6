//===- ConvertTest.cpp - Hugging Face task rows to task items --------------===//
//
// Rows in each dataset's real `to_json` layout, written by hand, and the items expected from
// lm-eval-harness's default templates, derived by hand from lm_eval/tasks/<task>/*.yaml (and
// hellaswag/utils.py), not from the converter.
//
//===----------------------------------------------------------------------===//
#include "mixtape/tasks/Convert.h"

#include "TempDir.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

using namespace mixtape;
using namespace mixtape::tasks;

namespace {

std::string convert(TaskSource from, llvm::StringRef row) {
  llvm::Expected<std::string> item = convertTaskLine(from, row, "t.jsonl:1");
  if (!item) {
    ADD_FAILURE() << llvm::toString(item.takeError());
    return "";
  }
  return *item;
}

std::string error(TaskSource from, llvm::StringRef row) {
  llvm::Expected<std::string> item = convertTaskLine(from, row, "t.jsonl:7");
  return item ? "(no error: " + *item + ")" : llvm::toString(item.takeError());
}

TEST(TaskSources, Names) {
  EXPECT_EQ(taskSourceNames().size(), 5u);
  EXPECT_EQ(taskSourceFromName("arc"), TaskSource::Arc);
  EXPECT_EQ(taskSourceFromName("hellaswag"), TaskSource::HellaSwag);
  EXPECT_EQ(taskSourceFromName("piqa"), TaskSource::Piqa);
  EXPECT_EQ(taskSourceFromName("sciq"), TaskSource::SciQ);
  EXPECT_EQ(taskSourceFromName("mmlu"), TaskSource::Mmlu);
  EXPECT_EQ(taskSourceFromName("ARC"), std::nullopt);
}

// arc_easy.yaml: "Question: {{question}}\nAnswer:", choices.text,
// choices.label.index(answerKey).
TEST(ConvertArc, LetterAndNumberKeys) {
  EXPECT_EQ(convert(TaskSource::Arc,
                    R"({"id": "Mercury_7175875", "question": "A planet rotates faster after a meteorite impact. )"
                    R"(Which is the most likely effect?", "choices": {"text": ["Planetary density will decrease.", )"
                    R"("Planetary )"
                    R"(years will become longer.", "Planetary days will become shorter.", "Planetary gravity will )"
                    R"(become stronger."], "label": ["A", "B", "C", "D"]}, "answerKey": "C"})"),
            R"({"context":"Question: A planet rotates faster after a meteorite impact. Which is the most likely )"
            R"(effect?\nAnswer:","choices":["Planetary density will decrease.","Planetary years will become )"
            R"(longer.","Planetary days will become shorter.","Planetary gravity will become stronger."],"gold":2})");
  // Some ARC questions number their choices: answerKey "4" is the label "4", index 3.
  EXPECT_EQ(convert(TaskSource::Arc,
                    R"({"id": "NYSEDREGENTS_2015_4_28", "question": "Which object is the best conductor of )"
                    R"(electricity?", "choices": {"text": ["a wax crayon", "a plastic spoon", "a rubber eraser", )"
                    R"("an iron nail"], "label": ["1", "2", "3", "4"]}, "answerKey": "4"})"),
            R"({"context":"Question: Which object is the best conductor of electricity?\nAnswer:","choices":["a )"
            R"(wax crayon","a plastic spoon","a rubber eraser","an iron nail"],"gold":3})");
  // Three choices are fine; the template does not strip the question.
  EXPECT_EQ(convert(TaskSource::Arc, R"({"id": "x", "question": " Why? ", "choices": {"text": ["a", "b", "c"], )"
                                     R"("label": ["A", "B", "C"]}, "answerKey": "A"})"),
            R"({"context":"Question:  Why? \nAnswer:","choices":["a","b","c"],"gold":0})");
}

// hellaswag/utils.py: preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()),
// preprocess() of each ending, gold int(label); preprocess = strip, " [title]" -> ". ",
// re.sub("\\[.*?\\]", ""), "  " -> " ".
TEST(ConvertHellaSwag, ActivityNetRow) {
  EXPECT_EQ(convert(TaskSource::HellaSwag,
                    R"({"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", )"
                    R"("ctx_b": "he", "ctx": "A man is sitting on a roof. he", "endings": ["is using wrap to wrap a )"
                    R"(pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.", "starts pulling )"
                    R"(up roofing on a roof."], "source_id": "activitynet~v_-JhWjGDPHMY", "split": "val", )"
                    R"("split_type": "indomain", "label": "3"})"),
            R"({"context":"Roof shingle removal: A man is sitting on a roof. He","choices":["is using wrap to wrap )"
            R"(a pair of skis.","is ripping level tiles off.","is holding a rubik's cube.","starts pulling up )"
            R"(roofing on a roof."],"gold":3})");
}

TEST(ConvertHellaSwag, WikiHowBracketsTitlesAndSpaces) {
  // ctx_b.capitalize() lowers "THE"; " [title]" becomes ". " (leaving ".  Rinse"), [header]
  // and [step] go (leaving double spaces), and then each double space is one.
  // Endings: stripped before the brackets go, so "[substeps] Use" keeps a leading space;
  // "  " -> " " is one pass, so three spaces become two; "[title]" without a space before
  // it is only removed as a bracket; a '[' whose ']' is on a later line stays.
  EXPECT_EQ(convert(TaskSource::HellaSwag,
                    R"({"ind": 4, "activity_label": "Home and Garden", "ctx_a": "[header] How to clean a fence )"
                    R"([title] Rinse the fence.", "ctx_b": "[step] Spray THE fence with water", "ctx": "", )"
                    R"("endings": [" [substeps] Use a garden hose.  Work from  top to bottom.", "Scrub   it [step] )"
                    R"(hard.", "[title] Let it dry.", "Paint [it\nnow] "], "source_id": "wikihow~1", "split": )"
                    R"("val", "split_type": "indomain", "label": "0"})"),
            R"({"context":"Home and Garden: How to clean a fence. Rinse the fence. spray the fence with water",)"
            R"("choices":[" Use a garden hose. Work from top to bottom.","Scrub  it hard."," Let it dry.",)"
            R"("Paint [it\nnow]"],"gold":0})");
}

TEST(ConvertHellaSwag, CapitalizeIsPythons) {
  // Non-ASCII letters are cased too; U+00A0 at the end is whitespace to str.strip(); the
  // empty ctx_a leaves a double space; an integer label reads as int(label) does.
  EXPECT_EQ(convert(TaskSource::HellaSwag,
                    R"({"ind": 1, "activity_label": "Test", "ctx_a": "", "ctx_b": "\u00e9COLE \u00dcBER\u00a0", )"
                    R"("endings": ["a", "b"], "label": 1})"),
            "{\"context\":\"Test: \xC3\x89" "cole \xC3\xBC" "ber\",\"choices\":[\"a\",\"b\"],\"gold\":1}");
  EXPECT_EQ(pythonCapitalize("hELLO wORLD"), "Hello world");
  EXPECT_EQ(pythonCapitalize("\xC3\x9F" "A"), "Ssa");         // 'ßA'.capitalize() == 'Ssa'
  EXPECT_EQ(pythonCapitalize("\xC7\x86" "A"), "\xC7\x85" "a"); // 'ǆ' titles to 'ǅ', not 'Ǆ'
  EXPECT_EQ(pythonCapitalize("x\xC4\xB0"), "Xi\xCC\x87");     // 'İ' lowers to 'i' + U+0307
  EXPECT_EQ(pythonCapitalize("1ABC"), "1abc");
  // Capital sigma lowers to final sigma after a cased letter and not before one, skipping
  // case-ignorable characters ('.', '\''): 'aΣ.'.capitalize() == 'Aς.'.
  EXPECT_EQ(pythonCapitalize("a\xCE\xA3."), "A\xCF\x82.");
  EXPECT_EQ(pythonCapitalize("a\xCE\xA3.b"), "A\xCF\x83.b");
  EXPECT_EQ(pythonCapitalize("1\xCE\xA3"), "1\xCF\x83");
  EXPECT_EQ(pythonCapitalize(""), "");
}

// piqa.yaml: "Question: {{goal}}\nAnswer:", [sol1, sol2], label.
TEST(ConvertPiqa, GoalAndSolutions) {
  EXPECT_EQ(convert(TaskSource::Piqa, R"({"goal": "When boiling butter, when it's ready, you can", "sol1": "Pour )"
                                      R"(it onto a plate", "sol2": "Pour it into a jar", "label": 1})"),
            R"({"context":"Question: When boiling butter, when it's ready, you can\nAnswer:","choices":["Pour it )"
            R"(onto a plate","Pour it into a jar"],"gold":1})");
}

// sciq.yaml: "{{support.lstrip()}}\nQuestion: {{question}}\nAnswer:", [distractor1,
// distractor2, distractor3, correct_answer], gold 3.
TEST(ConvertSciQ, SupportAndDistractors) {
  EXPECT_EQ(convert(TaskSource::SciQ,
                    R"({"question": "What type of organism is used to make cheese?", "distractor3": "viruses", )"
                    R"("distractor1": "protozoa", "distractor2": "gymnosperms", "correct_answer": "mesophilic )"
                    R"(organisms", "support": " \n Mesophiles grow best in moderate temperature. "})"),
            R"({"context":"Mesophiles grow best in moderate temperature. \nQuestion: What type of organism is used )"
            R"(to make cheese?\nAnswer:","choices":["protozoa","gymnosperms","viruses","mesophilic organisms"],)"
            R"("gold":3})");
  // Many SciQ rows have no support.
  EXPECT_EQ(convert(TaskSource::SciQ, R"({"question": "Q?", "distractor3": "c", "distractor1": "a", )"
                                      R"("distractor2": "b", "correct_answer": "d", "support": ""})"),
            R"({"context":"\nQuestion: Q?\nAnswer:","choices":["a","b","c","d"],"gold":3})");
}

// mmlu/default/_default_template_yaml and the description of mmlu/_generate_configs.py.
TEST(ConvertMmlu, LettersAndDescription) {
  EXPECT_EQ(convert(TaskSource::Mmlu,
                    R"({"question": "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) )"
                    R"(over Q.", "subject": "abstract_algebra", "choices": ["0", "4", "2", "6"], "answer": 1})"),
            R"({"context":"Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over )"
            R"(Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:","choices":["A","B","C","D"],"gold":1,"description":"The )"
            R"(following are multiple choice questions (with answers) about abstract algebra.\n\n"})");
  // question.strip(); the choices as they are.
  EXPECT_EQ(convert(TaskSource::Mmlu, R"({"question": "\n Which one?  ", "subject": "us_foreign_policy", )"
                                      R"("choices": [" a", "b ", "c", "d"], "answer": 3})"),
            R"({"context":"Which one?\nA.  a\nB. b \nC. c\nD. d\nAnswer:","choices":["A","B","C","D"],"gold":3,)"
            R"("description":"The following are multiple choice questions (with answers) about us foreign )"
            R"(policy.\n\n"})");
}

TEST(ConvertErrors, NameTheLineAndTheField) {
  EXPECT_EQ(error(TaskSource::Piqa, R"({"goal": "g", "sol1": "a")"),
            "t.jsonl:7: byte 25: invalid JSON: Expected , or } after object property");
  EXPECT_EQ(error(TaskSource::Piqa, R"(["goal"])"), "t.jsonl:7: expected a JSON object (one row of the dataset)");
  EXPECT_EQ(error(TaskSource::Piqa, R"({"goal": "g", "sol1": "a", "label": 0})"), "t.jsonl:7: \"sol2\": missing");
  EXPECT_EQ(error(TaskSource::Piqa, R"({"goal": 5, "sol1": "a", "sol2": "b", "label": 0})"),
            "t.jsonl:7: \"goal\": expected a string, not a number");
  EXPECT_EQ(error(TaskSource::Piqa, R"({"goal": "g", "sol1": "a", "sol2": "b", "label": -1})"),
            "t.jsonl:7: \"label\": -1 is not an index of the 2 solutions (sol1, sol2) (the test split has no labels)");
  EXPECT_EQ(error(TaskSource::Piqa, R"({"goal": "g", "sol1": "a", "sol2": "b", "label": "1"})"),
            "t.jsonl:7: \"label\": expected an integer, not a string");
  EXPECT_EQ(error(TaskSource::Arc, R"({"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, )"
                                   R"("answerKey": "E"})"),
            "t.jsonl:7: \"answerKey\": 'E' is not one of choices.label (A, B)");
  EXPECT_EQ(error(TaskSource::Arc, R"({"question": "q", "choices": {"text": ["a", null], "label": ["A", "B"]}, )"
                                   R"("answerKey": "A"})"),
            "t.jsonl:7: \"choices.text[1]\": expected a string, not null");
  EXPECT_EQ(error(TaskSource::Arc, R"({"question": "q", "choices": ["a"], "answerKey": "A"})"),
            "t.jsonl:7: \"choices\": expected an object with \"text\" and \"label\" arrays");
  EXPECT_EQ(error(TaskSource::HellaSwag, R"({"activity_label": "a", "ctx_a": "b", "ctx_b": "c", )"
                                         R"("endings": ["x", "y"], "label": ""})"),
            "t.jsonl:7: \"label\": expected a number as a string, not '' (the test split has no labels)");
  EXPECT_EQ(error(TaskSource::HellaSwag, R"({"activity_label": "a", "ctx_a": "b", "ctx_b": "c", )"
                                         R"("endings": ["x", "y"], "label": "2"})"),
            "t.jsonl:7: \"label\": 2 is not an index of the 2 endings");
  EXPECT_EQ(error(TaskSource::HellaSwag, R"({"activity_label": "a", "ctx_a": "b", "ctx_b": "c", )"
                                         R"("endings": ["x", "y"], "label": 0.5})"),
            "t.jsonl:7: \"label\": expected an integer or a string of digits, not a number");
  EXPECT_EQ(error(TaskSource::HellaSwag, R"({"activity_label": "a", "ctx_a": "b", "ctx_b": "c", )"
                                         R"("endings": "x", "label": "0"})"),
            "t.jsonl:7: \"endings\": expected an array of strings, not a string");
  EXPECT_EQ(error(TaskSource::SciQ, R"({"question": "q", "distractor1": "a", "distractor2": "b", )"
                                    R"("distractor3": "c", "correct_answer": "d"})"),
            "t.jsonl:7: \"support\": missing");
  EXPECT_EQ(error(TaskSource::Mmlu, R"({"question": "q", "subject": "s", "choices": ["a", "b", "c"], "answer": 0})"),
            "t.jsonl:7: \"choices\": expected 4 choices (A-D), not 3");
  EXPECT_EQ(error(TaskSource::Mmlu, R"({"question": "q", "subject": "s", "choices": ["a", "b", "c", "d"], )"
                                    R"("answer": 4})"),
            "t.jsonl:7: \"answer\": 4 is not an index of the 4 choices (A-D)");
  EXPECT_EQ(error(TaskSource::Mmlu, R"({"question": "q", "choices": ["a", "b", "c", "d"], "answer": 0})"),
            "t.jsonl:7: \"subject\": missing");
}

std::string readFile(const std::string &path) {
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer = llvm::MemoryBuffer::getFile(path);
  return buffer ? (*buffer)->getBuffer().str() : "(unreadable)";
}

void writeFile(const std::string &path, llvm::StringRef text) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  ASSERT_FALSE(ec) << ec.message();
  os << text;
}

TEST(ConvertFile, WritesEveryRowOrNothing) {
  test::TempDir dir;
  std::string in = dir / "piqa.jsonl", out = dir / "items.jsonl";
  writeFile(in, "{\"goal\": \"g1\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 0}\n"
                "\n" // blank lines are skipped but counted
                "{\"goal\": \"g2\", \"sol1\": \"c\", \"sol2\": \"d\", \"label\": 1}\r\n");
  llvm::Expected<uint64_t> items = convertTaskFile(TaskSource::Piqa, in, out);
  ASSERT_TRUE(bool(items)) << llvm::toString(items.takeError());
  EXPECT_EQ(*items, 2u);
  EXPECT_EQ(readFile(out), "{\"context\":\"Question: g1\\nAnswer:\",\"choices\":[\"a\",\"b\"],\"gold\":0}\n"
                           "{\"context\":\"Question: g2\\nAnswer:\",\"choices\":[\"c\",\"d\"],\"gold\":1}\n");

  // A bad third line: the error names it, and the earlier output stays as it was.
  writeFile(in, "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 0}\n\n"
                "{\"goal\": \"g\", \"sol1\": \"a\", \"label\": 0}\n");
  items = convertTaskFile(TaskSource::Piqa, in, dir / "new.jsonl");
  ASSERT_FALSE(bool(items));
  EXPECT_EQ(llvm::toString(items.takeError()), in + ":3: \"sol2\": missing");
  EXPECT_FALSE(llvm::sys::fs::exists(dir / "new.jsonl"));
  items = convertTaskFile(TaskSource::Piqa, in, out);
  ASSERT_FALSE(bool(items));
  llvm::consumeError(items.takeError());
  EXPECT_EQ(readFile(out).substr(0, 30), "{\"context\":\"Question: g1\\nAnsw");
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(dir.Path, ec), end; it != end && !ec; it.increment(ec))
    EXPECT_FALSE(llvm::StringRef(it->path()).contains(".tmp-")) << it->path();

  writeFile(in, "\n  \n");
  items = convertTaskFile(TaskSource::Piqa, in, out);
  ASSERT_FALSE(bool(items));
  EXPECT_EQ(llvm::toString(items.takeError()), in + ": no rows");
  items = convertTaskFile(TaskSource::Piqa, dir / "absent.jsonl", out);
  ASSERT_FALSE(bool(items));
  llvm::consumeError(items.takeError());
}

} // namespace
