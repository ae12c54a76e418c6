//===- Prepare.cpp --------------------------------------------------------===//
#include "mixtape/data/Prepare.h"

#include "mixtape/data/TextInput.h"
#include "mixtape/plan/Environment.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/JSON.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Support/Threading.h"

#include <deque>
#include <future>
#include <optional>

using namespace mixtape;
using namespace mixtape::data;

std::vector<uint32_t> mixtape::data::tokenizeDocument(const Tokenizer &tokenizer, llvm::StringRef text) {
  std::vector<uint32_t> ids;
  if (std::optional<uint32_t> bos = tokenizer.bos())
    ids.push_back(*bos);
  std::vector<uint32_t> encoded = tokenizer.encode(text);
  ids.insert(ids.end(), encoded.begin(), encoded.end());
  return ids;
}

namespace {

/// Text read for the workers: whole lines of a JSONL file, or a whole text file.
constexpr size_t kBatchBytes = 1 << 20;

struct Field {
  std::string Key;
  std::optional<double> Number; ///< else String
  std::string String;
};

struct Document {
  std::vector<uint32_t> Tokens;
  std::vector<Field> Fields; ///< metadata, sorted by key
  uint64_t Line = 0, Offset = 0;
};

/// One worker's job and its result.
struct Batch {
  const std::string *TextName = nullptr; ///< the file, in messages
  const std::string *Path = nullptr;
  bool Jsonl = false;
  uint64_t FirstLine = 1, Offset = 0; ///< of Text's first byte in the file's text
  std::string Text;
  uint64_t TextBytes = 0; ///< Text's size (the workers free Text)
  uint64_t FileBytes = 0; ///< input bytes read by the end of this batch, for progress

  std::vector<Document> Documents;
  uint64_t SkippedEmpty = 0;
  std::set<std::string> SkippedFields;
  std::string Error; ///< the first problem, whole; empty when none
};

bool isJsonl(llvm::StringRef path) {
  path.consume_back(".gz") || path.consume_back(".zst") || path.consume_back(".zstd");
  return path.endswith(".jsonl");
}

/// The field `key` names: as written, else "a.b.c" through nested objects.
const llvm::json::Value *findField(const llvm::json::Object &object, llvm::StringRef key) {
  if (const llvm::json::Value *v = object.get(key))
    return v;
  const llvm::json::Object *at = &object;
  for (llvm::StringRef rest = key;;) {
    auto [head, tail] = rest.split('.');
    const llvm::json::Value *v = at->get(head);
    if (!v || tail.empty())
      return v;
    if (!(at = v->getAsObject()))
      return nullptr;
    rest = tail;
  }
}

void prepareLine(Batch &batch, llvm::StringRef line, uint64_t number, uint64_t offset, const Tokenizer &tokenizer,
                 llvm::StringRef textKey) {
  if (line.trim().empty())
    return;
  llvm::Expected<llvm::json::Value> value = parseJSON(line, *batch.TextName, offset);
  if (!value) {
    batch.Error = llvm::toString(value.takeError());
    return;
  }
  auto fail = [&](const llvm::Twine &message) {
    batch.Error = llvm::toString(fileError(*batch.TextName, offset, "line " + llvm::Twine(number) + ": " + message));
  };
  const llvm::json::Object *object = value->getAsObject();
  if (!object)
    return fail("expected a JSON object");
  const llvm::json::Value *field = findField(*object, textKey);
  llvm::Optional<llvm::StringRef> text = field ? field->getAsString() : llvm::None;
  const llvm::json::Value *prompt = object->get("prompt"), *response = object->get("response");
  // A supervised example: its prompt's tokens, then its response's, tokenized apart so the
  // boundary is exact; the prompt's length is metadata (plan::kPromptTokensColumn).
  const bool example = !text && prompt && response && prompt->getAsString() && response->getAsString();
  if (!text && !example)
    return fail("no \"" + textKey + "\" string field (nor \"prompt\" and \"response\" strings)");
  if (text && text->empty()) {
    ++batch.SkippedEmpty;
    return;
  }
  Document doc{{}, {}, number, offset};
  if (example) {
    doc.Tokens = tokenizeDocument(tokenizer, *prompt->getAsString());
    doc.Fields.push_back({plan::kPromptTokensColumn.str(), static_cast<double>(doc.Tokens.size()), ""});
    std::vector<uint32_t> answer = tokenizer.encode(*response->getAsString());
    doc.Tokens.insert(doc.Tokens.end(), answer.begin(), answer.end());
  } else {
    doc.Tokens = tokenizeDocument(tokenizer, *text);
  }
  for (const auto &[key, v] : *object) {
    llvm::StringRef name = key;
    if (name == textKey || (example && (name == "prompt" || name == "response")))
      continue;
    if (llvm::Optional<double> n = v.getAsNumber())
      doc.Fields.push_back({key.str(), *n, ""});
    else if (llvm::Optional<bool> flag = v.getAsBoolean())
      doc.Fields.push_back({key.str(), *flag ? 1.0 : 0.0, ""});
    else if (llvm::Optional<llvm::StringRef> s = v.getAsString())
      doc.Fields.push_back({key.str(), std::nullopt, s->str()});
    else if (!v.getAsNull())
      batch.SkippedFields.insert(key.str());
  }
  // Sorted keys: columns appear in the same order whatever the key order in the file.
  llvm::sort(doc.Fields, [](const Field &a, const Field &b) { return a.Key < b.Key; });
  batch.Documents.push_back(std::move(doc));
}

void prepareBatch(Batch &batch, const Tokenizer &tokenizer, llvm::StringRef textKey) {
  llvm::StringRef text = batch.Text;
  if (!batch.Jsonl && text.empty())
    ++batch.SkippedEmpty;
  else if (!batch.Jsonl)
    batch.Documents.push_back({tokenizeDocument(tokenizer, text), {{"source", std::nullopt, *batch.Path}}, 0, 0});
  uint64_t number = batch.FirstLine;
  for (size_t start = 0; batch.Jsonl && start < text.size() && batch.Error.empty(); ++number) {
    size_t end = std::min(text.find('\n', start), text.size());
    prepareLine(batch, text.slice(start, end), number, batch.Offset + start, tokenizer, textKey);
    start = end + 1;
  }
  std::string().swap(batch.Text); // the tokens are what waits to be written
}

} // namespace

llvm::Expected<PrepareResult> mixtape::data::prepareFiles(llvm::ArrayRef<std::string> files,
                                                          const Tokenizer &tokenizer, DatasetWriter &writer,
                                                          const PrepareOptions &options, PrepareProgress progress) {
  PrepareResult result;
  uint64_t textBytes = 0;
  // Declared before the pool, so that the pool's destructor waits for the workers before
  // the batches they write go away.
  std::deque<std::pair<std::unique_ptr<Batch>, std::shared_future<void>>> inFlight;
  std::vector<std::string> textNames(files.size());
  const llvm::ThreadPoolStrategy strategy = llvm::hardware_concurrency(options.Threads);
  llvm::ThreadPool pool(strategy);
  const size_t maxInFlight = 2 * static_cast<size_t>(strategy.compute_thread_count());

  // Writes the oldest batch: its documents, in order.
  auto writeOldest = [&]() -> llvm::Error {
    auto [batch, done] = std::move(inFlight.front());
    inFlight.pop_front();
    done.wait();
    for (Document &doc : batch->Documents) {
      if (llvm::Error e = writer.addDocument(doc.Tokens))
        return e;
      for (const Field &f : doc.Fields) {
        llvm::Error e = f.Number ? writer.setNumber(f.Key, *f.Number) : writer.setString(f.Key, f.String);
        if (e)
          return batch->Jsonl ? fileError(*batch->TextName, doc.Offset,
                                          "line " + llvm::Twine(doc.Line) + ": " + llvm::toString(std::move(e)))
                              : std::move(e);
      }
    }
    if (!batch->Error.empty())
      return makeError(batch->Error);
    result.SkippedEmpty += batch->SkippedEmpty;
    result.SkippedFields.insert(batch->SkippedFields.begin(), batch->SkippedFields.end());
    textBytes += batch->TextBytes;
    progress(batch->FileBytes, textBytes);
    return llvm::Error::success();
  };
  auto submit = [&](std::unique_ptr<Batch> batch) -> llvm::Error {
    while (inFlight.size() >= maxInFlight)
      if (llvm::Error e = writeOldest())
        return e;
    Batch *job = batch.get();
    std::shared_future<void> done =
        pool.async([job, &tokenizer, &options] { prepareBatch(*job, tokenizer, options.TextKey); });
    inFlight.emplace_back(std::move(batch), std::move(done));
    return llvm::Error::success();
  };

  uint64_t filesBefore = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    llvm::Expected<std::unique_ptr<TextInput>> input = TextInput::open(files[i]);
    if (!input)
      return input.takeError();
    textNames[i] = (*input)->textName();
    const bool jsonl = isJsonl(files[i]);
    uint64_t line = 1, offset = 0;
    std::string pending;
    for (bool ended = false; !ended;) {
      llvm::Expected<size_t> n = (*input)->read(pending, kBatchBytes);
      if (!n)
        return n.takeError();
      ended = *n == 0;
      // A JSONL batch ends at a line's end; a text file is one document.
      size_t cut = pending.size();
      if (!ended) {
        if (!jsonl || pending.size() < kBatchBytes || (cut = pending.rfind('\n')) == std::string::npos)
          continue;
        ++cut; // the newline goes with its line
      }
      if (jsonl && cut == 0)
        continue;
      auto batch = std::make_unique<Batch>();
      batch->TextName = &textNames[i];
      batch->Path = &files[i];
      batch->Jsonl = jsonl;
      batch->FirstLine = line;
      batch->Offset = offset;
      batch->Text = pending.substr(0, cut);
      pending.erase(0, cut);
      batch->TextBytes = batch->Text.size();
      batch->FileBytes = filesBefore + (*input)->fileOffset();
      line += llvm::StringRef(batch->Text).count('\n');
      offset += batch->TextBytes;
      if (llvm::Error e = submit(std::move(batch)))
        return e;
    }
    filesBefore += (*input)->fileOffset();
  }
  while (!inFlight.empty())
    if (llvm::Error e = writeOldest())
      return e;
  return result;
}
