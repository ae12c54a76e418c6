//===- Convert.cpp - Hugging Face task exports to Mixtape task items ------===//
//
// Each converter reproduces one of lm-eval-harness's default task configs: the Jinja
// templates of doc_to_text / doc_to_choice / doc_to_target and, for HellaSwag, the Python
// of utils.process_docs. Python string semantics that matter (str.strip() whitespace,
// str.capitalize(), str.replace(), re.sub without DOTALL) are reproduced here exactly.
//
//===----------------------------------------------------------------------===//
#include "mixtape/tasks/Convert.h"

#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/JSON.h"
#include "mixtape/support/PythonText.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/ConvertUTF.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <vector>

using namespace mixtape;
using namespace mixtape::tasks;
using llvm::StringRef;
namespace json = llvm::json;

namespace {
struct CaseRun {
  uint32_t First, Last, Stride;
  int32_t Delta;
};
struct CaseSpecial {
  uint32_t CodePoint;
  const char *Mapped;
};
enum class SigmaClass { Cased, Ignorable };
struct SigmaRange {
  uint32_t First, Last;
  SigmaClass Class;
};
} // namespace

#include "UnicodeCase.inc"

static constexpr StringRef kSourceNames[] = {"arc", "hellaswag", "piqa", "sciq", "mmlu"};

llvm::ArrayRef<StringRef> mixtape::tasks::taskSourceNames() { return kSourceNames; }

std::optional<TaskSource> mixtape::tasks::taskSourceFromName(StringRef name) {
  for (size_t i = 0; i < std::size(kSourceNames); ++i)
    if (kSourceNames[i] == name)
      return static_cast<TaskSource>(i);
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// Python string semantics
//===----------------------------------------------------------------------===//

/// The code point at `pos`, which moves past it. JSON strings are valid UTF-8 (the
/// parser checks); a stray byte would pass as itself.
static uint32_t decodeAt(StringRef text, size_t &pos) {
  const auto *begin = reinterpret_cast<const llvm::UTF8 *>(text.data() + pos);
  const auto *source = begin;
  llvm::UTF32 codePoint = 0;
  if (llvm::convertUTF8Sequence(&source, reinterpret_cast<const llvm::UTF8 *>(text.end()), &codePoint,
                                llvm::strictConversion) != llvm::conversionOK) {
    return static_cast<unsigned char>(text[pos++]);
  }
  pos += source - begin;
  return codePoint;
}

static void appendCodePoint(std::string &out, uint32_t codePoint) {
  char buffer[UNI_MAX_UTF8_BYTES_PER_CODE_POINT];
  char *end = buffer;
  llvm::ConvertCodePointToUTF8(codePoint, end);
  out.append(buffer, end);
}

/// Python's str.replace(from, to): every non-overlapping occurrence, left to right (so
/// three spaces with from = "  " become two).
static std::string pythonReplace(StringRef text, StringRef from, StringRef to) {
  std::string out;
  for (size_t pos = 0;;) {
    size_t found = text.find(from, pos);
    out += text.slice(pos, found);
    if (found == StringRef::npos)
      return out;
    out += to;
    pos = found + from.size();
  }
}

template <size_t NumRuns, size_t NumSpecials>
static void appendMapped(std::string &out, uint32_t c, const CaseRun (&runs)[NumRuns],
                         const CaseSpecial (&specials)[NumSpecials]) {
  for (const CaseSpecial &special : specials)
    if (special.CodePoint == c) {
      out += special.Mapped;
      return;
    }
  const CaseRun *run = llvm::partition_point(runs, [c](const CaseRun &r) { return r.Last < c; });
  if (run != std::end(runs) && run->First <= c && (c - run->First) % run->Stride == 0)
    c = static_cast<uint32_t>(static_cast<int64_t>(c) + run->Delta);
  appendCodePoint(out, c);
}

static std::optional<SigmaClass> sigmaClass(uint32_t c) {
  const SigmaRange *range = llvm::partition_point(SigmaRanges, [c](const SigmaRange &r) { return r.Last < c; });
  if (range != std::end(SigmaRanges) && range->First <= c)
    return range->Class;
  return std::nullopt;
}

/// Whether str.lower() makes the capital sigma at `at` final (U+03C2): a cased code point
/// before it and none after it, case-ignorable ones skipped (unicodeobject.c).
static bool isFinalSigma(llvm::ArrayRef<uint32_t> text, size_t at) {
  auto casedNext = [&](auto begin, auto end) {
    auto found = std::find_if(begin, end, [](uint32_t c) { return sigmaClass(c) != SigmaClass::Ignorable; });
    return found != end && sigmaClass(*found) == SigmaClass::Cased;
  };
  return casedNext(text.rbegin() + (text.size() - at), text.rend()) &&
         !casedNext(text.begin() + at + 1, text.end());
}

std::string mixtape::tasks::pythonCapitalize(StringRef text) {
  std::vector<uint32_t> codePoints;
  for (size_t pos = 0; pos < text.size();)
    codePoints.push_back(decodeAt(text, pos));
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < codePoints.size(); ++i) {
    if (i == 0)
      appendMapped(out, codePoints[i], TitleRuns, TitleSpecials);
    else if (codePoints[i] == 0x3A3 && isFinalSigma(codePoints, i))
      appendCodePoint(out, 0x3C2);
    else
      appendMapped(out, codePoints[i], LowerRuns, LowerSpecials);
  }
  return out;
}

/// hellaswag/utils.py preprocess(): strip, " [title]" -> ". ", re.sub("\\[.*?\\]", "", ...),
/// "  " -> " ", in that order.
static std::string hellaswagPreprocess(StringRef text) {
  std::string titled = pythonReplace(pythonStrip(text), " [title]", ". ");
  std::string unbracketed;
  for (size_t i = 0; i < titled.size();) {
    // The shortest "[...]" from here; re's '.' never matches a newline, so a '[' whose
    // line has no ']' after it stays.
    if (titled[i] == '[') {
      size_t end = titled.find_first_of("]\n", i + 1);
      if (end != std::string::npos && titled[end] == ']') {
        i = end + 1;
        continue;
      }
    }
    unbracketed += titled[i++];
  }
  return pythonReplace(unbracketed, "  ", " ");
}

//===----------------------------------------------------------------------===//
// Rows and items
//===----------------------------------------------------------------------===//

namespace {
/// The converted row: what the item holds.
struct Item {
  std::string Context;
  std::vector<std::string> Choices;
  size_t Gold = 0;
  std::optional<std::string> Description;
};

/// One row's fields, read with errors that name the field.
class Row {
public:
  Row(const json::Object &object, std::string where) : Object(object), Where(std::move(where)) {}

  llvm::Error error(StringRef field, const llvm::Twine &message) const {
    return makeError(Where + ": \"" + field + "\": " + message);
  }

  const json::Value *get(StringRef field, const json::Object *in = nullptr) const {
    return (in ? in : &Object)->get(field);
  }

  llvm::Expected<StringRef> string(StringRef field) const { return stringAt(get(field), field); }

  /// An array of strings; `path` names it in errors ("choices.text").
  llvm::Expected<std::vector<std::string>> strings(const json::Value *value, StringRef path) const {
    if (!value)
      return error(path, "missing");
    const json::Array *array = value->getAsArray();
    if (!array)
      return error(path, "expected an array of strings, not " + kindName(*value));
    std::vector<std::string> out;
    for (size_t i = 0; i < array->size(); ++i) {
      llvm::Expected<StringRef> s = stringAt(&(*array)[i], (path + "[" + llvm::Twine(i) + "]").str());
      if (!s)
        return s.takeError();
      out.push_back(s->str());
    }
    return out;
  }

  /// An index into `count` choices: an integer, or with `digitString` also a string of
  /// digits (HellaSwag's label is "3"; lm-eval reads it with int()).
  llvm::Expected<size_t> index(StringRef field, size_t count, StringRef what, bool digitString = false) const {
    const json::Value *value = get(field);
    if (!value)
      return error(field, "missing");
    std::optional<int64_t> n;
    if (llvm::Optional<int64_t> integer = value->getAsInteger())
      n = *integer;
    else if (llvm::Optional<StringRef> text = value->getAsString(); text && digitString) {
      uint64_t parsed = 0;
      if (text->empty() || text->find_first_not_of("0123456789") != StringRef::npos ||
          text->getAsInteger(10, parsed))
        return error(field, "expected a number as a string, not '" + *text + "'" +
                                (text->empty() ? " (the test split has no labels)" : ""));
      n = static_cast<int64_t>(std::min<uint64_t>(parsed, INT64_MAX));
    } else {
      return error(field, llvm::Twine(digitString ? "expected an integer or a string of digits, not "
                                                  : "expected an integer, not ") +
                              kindName(*value));
    }
    if (*n < 0 || static_cast<uint64_t>(*n) >= count)
      return error(field, llvm::Twine(*n) + " is not an index of the " + llvm::Twine(count) + " " + what +
                              (*n < 0 ? " (the test split has no labels)" : ""));
    return static_cast<size_t>(*n);
  }

private:
  static std::string kindName(const json::Value &value) {
    switch (value.kind()) {
    case json::Value::Null:
      return "null";
    case json::Value::Boolean:
      return "a boolean";
    case json::Value::Number:
      return "a number";
    case json::Value::String:
      return "a string";
    case json::Value::Array:
      return "an array";
    case json::Value::Object:
      return "an object";
    }
    llvm_unreachable("every JSON kind is named");
  }

  llvm::Expected<StringRef> stringAt(const json::Value *value, StringRef path) const {
    if (!value)
      return error(path, "missing");
    llvm::Optional<StringRef> s = value->getAsString();
    if (!s)
      return error(path, "expected a string, not " + kindName(*value));
    return *s;
  }

  const json::Object &Object;
  std::string Where;
};
} // namespace

/// arc_easy.yaml (arc_challenge includes it): "Question: {{question}}\nAnswer:", choices
/// choices.text, gold choices.label.index(answerKey).
static llvm::Expected<Item> convertArc(const Row &row) {
  llvm::Expected<StringRef> question = row.string("question");
  if (!question)
    return question.takeError();
  const json::Value *choices = row.get("choices");
  if (!choices)
    return row.error("choices", "missing");
  const json::Object *choiceObject = choices->getAsObject();
  if (!choiceObject)
    return row.error("choices", "expected an object with \"text\" and \"label\" arrays");
  llvm::Expected<std::vector<std::string>> text = row.strings(row.get("text", choiceObject), "choices.text");
  if (!text)
    return text.takeError();
  llvm::Expected<std::vector<std::string>> labels = row.strings(row.get("label", choiceObject), "choices.label");
  if (!labels)
    return labels.takeError();
  llvm::Expected<StringRef> answerKey = row.string("answerKey");
  if (!answerKey)
    return answerKey.takeError();
  // list.index(): the first equal label.
  auto found = llvm::find(*labels, *answerKey);
  if (found == labels->end())
    return row.error("answerKey", "'" + *answerKey + "' is not one of choices.label (" + llvm::join(*labels, ", ") +
                                      ")");
  size_t gold = found - labels->begin();
  if (gold >= text->size())
    return row.error("answerKey", "'" + *answerKey + "' is label " + llvm::Twine(gold) + " but choices.text has " +
                                      llvm::Twine(text->size()) + " entries");
  return Item{("Question: " + *question + "\nAnswer:").str(), std::move(*text), gold, std::nullopt};
}

/// hellaswag.yaml with utils.process_docs: query = preprocess(activity_label + ": " + ctx_a +
/// " " + ctx_b.capitalize()), choices = preprocess(ending) each, gold = int(label).
static llvm::Expected<Item> convertHellaSwag(const Row &row) {
  llvm::Expected<StringRef> activity = row.string("activity_label");
  if (!activity)
    return activity.takeError();
  llvm::Expected<StringRef> ctxA = row.string("ctx_a");
  if (!ctxA)
    return ctxA.takeError();
  llvm::Expected<StringRef> ctxB = row.string("ctx_b");
  if (!ctxB)
    return ctxB.takeError();
  llvm::Expected<std::vector<std::string>> endings = row.strings(row.get("endings"), "endings");
  if (!endings)
    return endings.takeError();
  llvm::Expected<size_t> gold = row.index("label", endings->size(), "endings", /*digitString=*/true);
  if (!gold)
    return gold.takeError();
  Item item;
  item.Context = hellaswagPreprocess((*activity + ": " + *ctxA + " " + pythonCapitalize(*ctxB)).str());
  for (const std::string &ending : *endings)
    item.Choices.push_back(hellaswagPreprocess(ending));
  item.Gold = *gold;
  return item;
}

/// piqa.yaml: "Question: {{goal}}\nAnswer:", choices [sol1, sol2], gold label.
static llvm::Expected<Item> convertPiqa(const Row &row) {
  llvm::Expected<StringRef> goal = row.string("goal");
  if (!goal)
    return goal.takeError();
  llvm::Expected<StringRef> sol1 = row.string("sol1");
  if (!sol1)
    return sol1.takeError();
  llvm::Expected<StringRef> sol2 = row.string("sol2");
  if (!sol2)
    return sol2.takeError();
  llvm::Expected<size_t> gold = row.index("label", 2, "solutions (sol1, sol2)");
  if (!gold)
    return gold.takeError();
  return Item{("Question: " + *goal + "\nAnswer:").str(), {sol1->str(), sol2->str()}, *gold, std::nullopt};
}

/// sciq.yaml: "{{support.lstrip()}}\nQuestion: {{question}}\nAnswer:", choices
/// [distractor1, distractor2, distractor3, correct_answer], gold 3.
static llvm::Expected<Item> convertSciQ(const Row &row) {
  Item item;
  for (StringRef field : {"distractor1", "distractor2", "distractor3", "correct_answer"}) {
    llvm::Expected<StringRef> choice = row.string(field);
    if (!choice)
      return choice.takeError();
    item.Choices.push_back(choice->str());
  }
  llvm::Expected<StringRef> support = row.string("support");
  if (!support)
    return support.takeError();
  llvm::Expected<StringRef> question = row.string("question");
  if (!question)
    return question.takeError();
  item.Context = (pythonLStrip(*support) + "\nQuestion: " + *question + "\nAnswer:").str();
  item.Gold = 3;
  return item;
}

/// mmlu/default/_default_template_yaml: "{{question.strip()}}\nA. {{choices[0]}}\n...D.
/// {{choices[3]}}\nAnswer:", choices A-D, gold answer; the description of
/// mmlu/_generate_configs.py with the row's subject.
static llvm::Expected<Item> convertMmlu(const Row &row) {
  llvm::Expected<StringRef> question = row.string("question");
  if (!question)
    return question.takeError();
  llvm::Expected<std::vector<std::string>> choices = row.strings(row.get("choices"), "choices");
  if (!choices)
    return choices.takeError();
  if (choices->size() != 4)
    return row.error("choices", "expected 4 choices (A-D), not " + llvm::Twine(choices->size()));
  llvm::Expected<size_t> gold = row.index("answer", 4, "choices (A-D)");
  if (!gold)
    return gold.takeError();
  llvm::Expected<StringRef> subject = row.string("subject");
  if (!subject)
    return subject.takeError();
  std::string context = pythonStrip(*question).str();
  for (size_t i = 0; i < 4; ++i)
    context += "\n" + std::string(1, static_cast<char>('A' + i)) + ". " + (*choices)[i];
  context += "\nAnswer:";
  // ' '.join(subject.split('_')): every underscore a space.
  std::string description = "The following are multiple choice questions (with answers) about " +
                            pythonReplace(*subject, "_", " ") + ".\n\n";
  return Item{std::move(context), {"A", "B", "C", "D"}, *gold, std::move(description)};
}

static llvm::Expected<Item> convertRow(TaskSource from, const Row &row) {
  switch (from) {
  case TaskSource::Arc:
    return convertArc(row);
  case TaskSource::HellaSwag:
    return convertHellaSwag(row);
  case TaskSource::Piqa:
    return convertPiqa(row);
  case TaskSource::SciQ:
    return convertSciQ(row);
  case TaskSource::Mmlu:
    return convertMmlu(row);
  }
  llvm_unreachable("every task source has a converter");
}

llvm::Expected<std::string> mixtape::tasks::convertTaskLine(TaskSource from, StringRef line,
                                                            const llvm::Twine &where) {
  std::string at = where.str();
  llvm::Expected<json::Value> value = parseJSON(line, at);
  if (!value)
    return value.takeError();
  const json::Object *object = value->getAsObject();
  if (!object)
    return makeError(at + ": expected a JSON object (one row of the dataset)");
  llvm::Expected<Item> item = convertRow(from, Row(*object, at));
  if (!item)
    return item.takeError();
  std::string out;
  llvm::raw_string_ostream os(out);
  json::OStream j(os);
  j.object([&] {
    j.attribute("context", item->Context);
    j.attributeArray("choices", [&] {
      for (const std::string &choice : item->Choices)
        j.value(choice);
    });
    j.attribute("gold", static_cast<int64_t>(item->Gold));
    if (item->Description)
      j.attribute("description", *item->Description);
  });
  os.flush();
  return out;
}

llvm::Expected<uint64_t> mixtape::tasks::convertTaskFile(TaskSource from, StringRef inPath, StringRef outPath) {
  llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> buffer = mapFile(inPath);
  if (!buffer)
    return buffer.takeError();
  llvm::Expected<DurableFile> out = DurableFile::create(outPath);
  if (!out)
    return out.takeError();
  StringRef bytes = (*buffer)->getBuffer();
  uint64_t items = 0, lineNumber = 0;
  for (size_t offset = 0; offset < bytes.size();) {
    ++lineNumber;
    size_t end = std::min(bytes.find('\n', offset), bytes.size());
    StringRef line = bytes.slice(offset, end);
    offset = end + 1;
    if (line.trim().empty())
      continue;
    llvm::Expected<std::string> item = convertTaskLine(from, line, inPath + ":" + llvm::Twine(lineNumber));
    if (!item)
      return item.takeError(); // the DurableFile goes, leaving outPath as it was
    out->os() << *item << "\n";
    ++items;
  }
  if (items == 0)
    return fileError(inPath, "no rows");
  if (llvm::Error err = out->commit())
    return llvm::Expected<uint64_t>(std::move(err));
  return items;
}
