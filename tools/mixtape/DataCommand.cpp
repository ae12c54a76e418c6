//===- DataCommand.cpp - `mixtape data` ----------------------------------===//
//
// synth, prepare, manifest and inspect datasets. Failures print as "mixtape data: <message>", where
// the message names the file and byte; exit 1 for bad data, 2 for bad usage.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/data/Dataset.h"
#include "mixtape/data/ManifestCache.h"
#include "mixtape/data/Synth.h"
#include "mixtape/data/Tokenizer.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <set>

using namespace mixtape;
using namespace mixtape::cli;
namespace fs = llvm::sys::fs;

static const char kUsage[] = R"(usage: mixtape data <command> [options]

commands:
  synth   --out DIR [--seed N] [--docs N] [--domains prose,code,arith,facts]
          write the embedded synthetic corpus: DIR/<domain>.{bin,idx,meta,manifest.json}
  prepare INPUT... --out PREFIX [--format megatron|flat] [--tokenizer bytes|PATH]
          tokenize text files (one document each), directories (recursively, sorted) or
          JSONL (a "text" field; other fields become metadata columns); PATH (or hf:PATH)
          is a Hugging Face byte-level BPE: a tokenizer.json, or a directory with
          tokenizer.json or vocab.json + merges.txt
  manifest PREFIX --tokenizer bytes|PATH [--eod auto|present|append]
          write PREFIX.manifest.json and PREFIX.meta (document hashes) for a dataset that
          has none, e.g. Megatron's PREFIX.bin + PREFIX.idx; --tokenizer is the one that
          made the tokens; --eod says whether documents end with its end-of-text
  inspect PATH [--docs N] [--chars N] [--eot N] [--tokenizer bytes|PATH] [--eod MODE]
          show counts, documents and metadata, and verify checksums; PATH is a prefix or
          any file of a dataset (--eot for a flat .bin without a manifest; --tokenizer to
          decode and check one without a manifest)
)";

static int fail(llvm::Error err) {
  llvm::errs() << "mixtape data: " << llvm::toString(std::move(err)) << "\n";
  return Failure;
}

static int usageError(const llvm::Twine &message) {
  llvm::errs() << "mixtape data: " << message << "\n\n" << kUsage;
  return Usage;
}

namespace {
/// "--name value" and "--name=value" options, in any order among positional arguments.
class Options {
public:
  /// Returns an error message, or "" when every argument was understood.
  std::string parse(llvm::ArrayRef<llvm::StringRef> args, llvm::ArrayRef<llvm::StringRef> known) {
    for (size_t i = 0; i < args.size(); ++i) {
      llvm::StringRef arg = args[i];
      if (!arg.startswith("--") || arg == "--") {
        Positional.push_back(arg);
        continue;
      }
      auto [name, value] = arg.drop_front(2).split('=');
      if (!llvm::is_contained(known, name))
        return ("unknown option '--" + name + "'").str();
      if (!arg.contains('=')) {
        if (i + 1 >= args.size())
          return ("option '--" + name + "' needs a value").str();
        value = args[++i];
      }
      Values[name] = value.str();
    }
    return "";
  }
  std::optional<std::string> get(llvm::StringRef name) const {
    auto it = Values.find(name);
    if (it == Values.end())
      return std::nullopt;
    return it->second;
  }
  /// Returns an error message, or "" with `out` set (left alone when absent).
  std::string number(llvm::StringRef name, uint64_t &out) const {
    std::optional<std::string> value = get(name);
    if (value && llvm::StringRef(*value).getAsInteger(10, out))
      return ("option '--" + name + "' expects a non-negative integer, got '" + *value + "'").str();
    return "";
  }

  std::vector<llvm::StringRef> Positional;

private:
  llvm::StringMap<std::string> Values;
};

/// Throughput on stderr: a \r-updated bar on a terminal, one summary line otherwise.
class Progress {
public:
  explicit Progress(uint64_t totalBytes)
      : Total(totalBytes), Start(std::chrono::steady_clock::now()), Terminal(llvm::errs().is_displayed()) {}

  void update(uint64_t doneBytes) {
    Done = doneBytes;
    if (!Terminal)
      return;
    auto now = std::chrono::steady_clock::now();
    if (now - LastDraw < std::chrono::milliseconds(100))
      return;
    LastDraw = now;
    unsigned percent = Total ? static_cast<unsigned>(100 * Done / Total) : 100;
    std::string bar(percent / 4, '#');
    bar.resize(25, ' ');
    llvm::errs() << "\r[" << bar << "] " << llvm::format("%3u%% %7.1f MB/s", percent, rate());
  }

  void finish(llvm::StringRef summary) {
    if (Terminal)
      llvm::errs() << "\r" << std::string(50, ' ') << "\r";
    llvm::errs() << summary << llvm::format(" (%.1f MB in %.2f s, %.1f MB/s)\n", Done / 1e6,
                                            seconds(), rate());
  }

private:
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - Start).count();
  }
  double rate() const { return seconds() > 0 ? Done / 1e6 / seconds() : 0.0; }

  uint64_t Total, Done = 0;
  std::chrono::steady_clock::time_point Start, LastDraw;
  bool Terminal;
};
} // namespace

/// --tokenizer NAME: a tokenizer file that does not load is bad input (exit 1), an unknown
/// name bad usage (exit 2).
static llvm::Expected<std::unique_ptr<data::Tokenizer>> tokenizerOption(llvm::StringRef name, int &exitCode) {
  llvm::Expected<std::unique_ptr<data::Tokenizer>> tokenizer = data::createTokenizer(name);
  exitCode = !tokenizer && !name.startswith("hf:") && !fs::exists(name) ? Usage : Failure;
  return tokenizer;
}

static int tokenizerFailure(llvm::Error err, int exitCode) {
  return exitCode == Usage ? usageError(llvm::toString(std::move(err))) : fail(std::move(err));
}

//===----------------------------------------------------------------------===//
// synth
//===----------------------------------------------------------------------===//

static int synthMain(llvm::ArrayRef<llvm::StringRef> args) {
  Options opts;
  if (std::string err = opts.parse(args, {"out", "seed", "docs", "domains"}); !err.empty())
    return usageError(err);
  if (!opts.Positional.empty())
    return usageError("synth takes no positional arguments");
  std::optional<std::string> out = opts.get("out");
  if (!out)
    return usageError("synth needs --out DIR");
  data::SynthOptions options;
  if (std::string err = opts.number("seed", options.seed); !err.empty())
    return usageError(err);
  if (std::string err = opts.number("docs", options.documentsPerDomain); !err.empty())
    return usageError(err);
  if (std::optional<std::string> domains = opts.get("domains")) {
    llvm::SmallVector<llvm::StringRef, 4> names;
    llvm::SplitString(*domains, names, ",");
    for (llvm::StringRef name : names) {
      if (!llvm::is_contained(data::synthDomains(), name))
        return usageError("unknown domain '" + name + "' (prose, code, arith, facts)");
      options.domains.push_back(name.str());
    }
  }
  llvm::Expected<std::vector<data::Manifest>> manifests = data::synthesizeCorpus(*out, options);
  if (!manifests)
    return fail(manifests.takeError());
  for (const data::Manifest &m : *manifests) {
    llvm::StringRef bin = m.files.front().name;
    llvm::SmallString<256> prefix(*out);
    llvm::sys::path::append(prefix, bin.drop_back(4));
    llvm::outs() << llvm::left_justify(bin.drop_back(4), 6) << " " << m.documents
                 << " documents, " << m.tokens << " tokens -> " << prefix << "\n";
  }
  return Success;
}

//===----------------------------------------------------------------------===//
// prepare
//===----------------------------------------------------------------------===//

/// Files named on the command line, and directories expanded recursively in sorted order.
static llvm::Expected<std::vector<std::string>> collectInputs(llvm::ArrayRef<llvm::StringRef> inputs) {
  std::vector<std::string> files;
  for (llvm::StringRef input : inputs) {
    if (!fs::is_directory(input)) {
      if (!fs::exists(input))
        return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                       input + ": no such file or directory");
      files.push_back(input.str());
      continue;
    }
    std::vector<std::string> found;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(input, ec), end; it != end && !ec; it.increment(ec))
      if (it->type() == fs::file_type::regular_file)
        found.push_back(it->path());
    if (ec)
      return llvm::createStringError(ec, input + ": " + ec.message());
    llvm::sort(found);
    llvm::append_range(files, found);
  }
  return files;
}

namespace {
struct PrepareState {
  data::DatasetWriter &Writer;
  const data::Tokenizer &Tokenizer;
  uint64_t SkippedEmpty = 0;
  std::set<std::string> SkippedFields;
};
} // namespace

static llvm::Error addTextDocument(PrepareState &state, llvm::StringRef text) {
  if (text.empty()) {
    ++state.SkippedEmpty;
    return llvm::Error::success();
  }
  return state.Writer.addDocument(state.Tokenizer.encode(text));
}

static llvm::Error prepareJsonl(PrepareState &state, llvm::StringRef path, llvm::StringRef bytes,
                                Progress &progress, uint64_t base) {
  uint64_t offset = 0, line = 0;
  while (offset < bytes.size()) {
    ++line;
    size_t end = bytes.find('\n', offset);
    if (end == llvm::StringRef::npos)
      end = bytes.size();
    llvm::StringRef text = bytes.slice(offset, end);
    uint64_t lineStart = offset;
    offset = end + 1;
    progress.update(base + std::min<uint64_t>(offset, bytes.size()));
    if (text.trim().empty())
      continue;
    auto error = [&](uint64_t at, const llvm::Twine &message) {
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     path + ": byte " + llvm::Twine(lineStart + at) + ": line " +
                                         llvm::Twine(line) + ": " + message);
    };
    llvm::Expected<llvm::json::Value> value = llvm::json::parse(text);
    if (!value) {
      std::string message = llvm::toString(value.takeError());
      llvm::StringRef rest = message;
      uint64_t at = 0;
      if (rest.consume_front("[") && rest.contains(", byte=")) {
        auto [number, tail] = rest.split(", byte=").second.split("]: ");
        if (!number.getAsInteger(10, at))
          return error(at, "invalid JSON: " + tail);
      }
      return error(0, "invalid JSON: " + message);
    }
    const llvm::json::Object *object = value->getAsObject();
    if (!object)
      return error(0, "expected a JSON object");
    const llvm::json::Value *field = object->get("text");
    llvm::Optional<llvm::StringRef> textField = field ? field->getAsString() : llvm::None;
    if (!textField)
      return error(0, "no \"text\" string field");
    if (textField->empty()) {
      ++state.SkippedEmpty;
      continue;
    }
    if (llvm::Error err = state.Writer.addDocument(state.Tokenizer.encode(*textField)))
      return err;
    // Sorted keys: columns appear in the same order whatever the key order in the file.
    std::vector<llvm::StringRef> keys;
    for (const auto &kv : *object)
      if (kv.first != "text")
        keys.push_back(kv.first);
    llvm::sort(keys);
    for (llvm::StringRef key : keys) {
      const llvm::json::Value &v = *object->get(key);
      llvm::Error err = llvm::Error::success();
      if (llvm::Optional<double> number = v.getAsNumber())
        err = state.Writer.setNumber(key, *number);
      else if (llvm::Optional<bool> flag = v.getAsBoolean())
        err = state.Writer.setNumber(key, *flag ? 1.0 : 0.0);
      else if (llvm::Optional<llvm::StringRef> string = v.getAsString())
        err = state.Writer.setString(key, *string);
      else if (!v.getAsNull())
        state.SkippedFields.insert(key.str());
      if (err)
        return error(0, llvm::toString(std::move(err)));
    }
  }
  return llvm::Error::success();
}

static int prepareMain(llvm::ArrayRef<llvm::StringRef> args) {
  Options opts;
  if (std::string err = opts.parse(args, {"out", "format", "tokenizer"}); !err.empty())
    return usageError(err);
  std::optional<std::string> out = opts.get("out");
  if (!out)
    return usageError("prepare needs --out PREFIX");
  if (opts.Positional.empty())
    return usageError("prepare needs at least one input");
  std::string formatName = opts.get("format").value_or("megatron");
  if (formatName != "megatron" && formatName != "flat")
    return usageError("unknown format '" + formatName + "' (megatron or flat)");
  data::ShardFormat format =
      formatName == "flat" ? data::ShardFormat::Flat : data::ShardFormat::Megatron;
  int exitCode = Failure;
  llvm::Expected<std::unique_ptr<data::Tokenizer>> tokenizer =
      tokenizerOption(opts.get("tokenizer").value_or("bytes"), exitCode);
  if (!tokenizer)
    return tokenizerFailure(tokenizer.takeError(), exitCode);

  llvm::Expected<std::vector<std::string>> files = collectInputs(opts.Positional);
  if (!files)
    return fail(files.takeError());
  uint64_t totalBytes = 0;
  for (const std::string &file : *files) {
    uint64_t size = 0;
    if (!fs::file_size(file, size))
      totalBytes += size;
  }
  llvm::Expected<std::unique_ptr<data::DatasetWriter>> writer =
      data::DatasetWriter::create(*out, format, **tokenizer);
  if (!writer)
    return fail(writer.takeError());
  PrepareState state{**writer, **tokenizer, 0, {}};
  Progress progress(totalBytes);
  uint64_t done = 0;
  for (const std::string &file : *files) {
    llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
        llvm::MemoryBuffer::getFile(file, /*IsText=*/false, /*RequiresNullTerminator=*/false);
    if (!buffer)
      return fail(llvm::createStringError(buffer.getError(),
                                          file + ": cannot read: " + buffer.getError().message()));
    llvm::StringRef bytes = (*buffer)->getBuffer();
    if (llvm::StringRef(file).endswith(".jsonl")) {
      if (llvm::Error err = prepareJsonl(state, file, bytes, progress, done))
        return fail(std::move(err));
    } else {
      if (llvm::Error err = addTextDocument(state, bytes))
        return fail(std::move(err));
      if (!bytes.empty())
        if (llvm::Error err = state.Writer.setString("source", file))
          return fail(std::move(err));
    }
    done += bytes.size();
    progress.update(done);
  }
  llvm::Expected<data::Manifest> manifest = state.Writer.finish();
  if (!manifest)
    return fail(manifest.takeError());
  for (const std::string &field : state.SkippedFields)
    llvm::errs() << "mixtape data: note: field '" << field
                 << "' holds arrays or objects; it is not a metadata column\n";
  std::string summary;
  llvm::raw_string_ostream(summary)
      << "mixtape data: " << manifest->documents << " documents, " << manifest->tokens
      << " tokens -> " << *out
      << (state.SkippedEmpty ? " (" + std::to_string(state.SkippedEmpty) + " empty skipped)" : "");
  progress.finish(summary);
  return Success;
}

//===----------------------------------------------------------------------===//
// manifest
//===----------------------------------------------------------------------===//

static int manifestMain(llvm::ArrayRef<llvm::StringRef> args) {
  Options opts;
  if (std::string err = opts.parse(args, {"tokenizer", "eod"}); !err.empty())
    return usageError(err);
  if (opts.Positional.size() != 1)
    return usageError("manifest takes one PREFIX");
  std::optional<std::string> tokenizerName = opts.get("tokenizer");
  if (!tokenizerName)
    return usageError("manifest needs --tokenizer: a token file does not say which tokenizer made it");
  std::optional<data::EodMode> eod = data::eodModeFromName(opts.get("eod").value_or("auto"));
  if (!eod)
    return usageError("unknown --eod '" + *opts.get("eod") + "' (auto, present or append)");
  int exitCode = Failure;
  llvm::Expected<std::unique_ptr<data::Tokenizer>> tokenizer = tokenizerOption(*tokenizerName, exitCode);
  if (!tokenizer)
    return tokenizerFailure(tokenizer.takeError(), exitCode);
  std::string prefix = data::datasetPrefix(opts.Positional[0]);
  uint64_t bytes = 0;
  for (const char *suffix : {".bin", ".idx"}) {
    uint64_t size = 0;
    if (!fs::file_size(prefix + suffix, size))
      bytes += size;
  }
  Progress progress(bytes);
  llvm::Expected<data::Manifest> written = data::writeManifest(prefix, **tokenizer, *eod);
  if (!written)
    return fail(written.takeError());
  progress.update(bytes);
  std::string summary;
  llvm::raw_string_ostream(summary) << "mixtape data: " << written->documents << " documents, " << written->tokens
                                    << " tokens, eod " << (written->eodPresent ? "present" : "append") << " -> "
                                    << prefix << ".manifest.json";
  progress.finish(summary);
  return Success;
}

//===----------------------------------------------------------------------===//
// inspect
//===----------------------------------------------------------------------===//

/// Printable ASCII as is; newline, tab, quote and backslash escaped; other bytes as \xHH.
static std::string escape(llvm::StringRef text) {
  std::string out;
  for (unsigned char c : text) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\\' || c == '"')
      out += {'\\', static_cast<char>(c)};
    else if (c >= 0x20 && c < 0x7f)
      out += static_cast<char>(c);
    else
      out += "\\x" + llvm::utohexstr(c, /*LowerCase=*/true, /*Width=*/2);
  }
  return out;
}

static void printNumberColumn(llvm::raw_ostream &os, const data::MetadataTable &table, size_t c) {
  uint64_t rows = table.numRows(), missing = 0, count = 0;
  double lo = INFINITY, hi = -INFINITY, sum = 0;
  std::map<float, uint64_t> distinct;
  for (uint64_t r = 0; r < rows; ++r) {
    float v = table.number(c, r);
    if (std::isnan(v)) {
      ++missing;
      continue;
    }
    ++count;
    lo = std::min<double>(lo, v);
    hi = std::max<double>(hi, v);
    sum += v;
    if (distinct.size() <= 8)
      ++distinct[v];
  }
  os << "  " << llvm::left_justify(table.columnName(c), 18) << " number ";
  if (count == 0) {
    os << " all " << missing << " missing\n";
    return;
  }
  os << llvm::format(" min %g  max %g  mean %.3g", lo, hi, sum / count);
  if (missing)
    os << "  (" << missing << " missing)";
  os << "\n";
  // Few distinct values: one bar each; otherwise five equal buckets over [min, max].
  std::vector<std::pair<std::string, uint64_t>> bars;
  if (distinct.size() <= 8) {
    for (auto [value, n] : distinct)
      bars.push_back({llvm::formatv("{0}", llvm::format("%g", value)).str(), n});
  } else {
    std::vector<uint64_t> buckets(5);
    for (uint64_t r = 0; r < rows; ++r) {
      float v = table.number(c, r);
      if (!std::isnan(v))
        ++buckets[std::min<size_t>(4, static_cast<size_t>((v - lo) / (hi - lo) * 5))];
    }
    for (size_t b = 0; b < 5; ++b)
      bars.push_back({llvm::formatv("{0}..{1}", llvm::format("%.3g", lo + (hi - lo) * b / 5),
                                    llvm::format("%.3g", lo + (hi - lo) * (b + 1) / 5))
                          .str(),
                      buckets[b]});
  }
  for (auto &[label, n] : bars)
    os << "      " << llvm::left_justify(label, 16) << " " << llvm::right_justify(std::to_string(n), 8)
       << " " << std::string(rows ? (40 * n + rows - 1) / rows : 0, '#') << "\n";
}

static void printStringColumn(llvm::raw_ostream &os, const data::MetadataTable &table, size_t c) {
  std::vector<uint64_t> counts(table.dictionary(c).size());
  for (uint64_t r = 0, rows = table.numRows(); r < rows; ++r)
    ++counts[table.stringCode(c, r)];
  std::vector<uint32_t> order(counts.size());
  for (uint32_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return counts[a] > counts[b]; });
  os << "  " << llvm::left_justify(table.columnName(c), 18) << " string  " << counts.size()
     << " distinct\n";
  for (size_t i = 0; i < order.size() && i < 8; ++i)
    os << "      " << llvm::left_justify("\"" + escape(table.dictionary(c)[order[i]]) + "\"", 24)
       << " " << llvm::right_justify(std::to_string(counts[order[i]]), 8) << "\n";
  if (order.size() > 8)
    os << "      (" << order.size() - 8 << " more)\n";
}

static int inspectMain(llvm::ArrayRef<llvm::StringRef> args) {
  Options opts;
  if (std::string err = opts.parse(args, {"docs", "chars", "eot", "tokenizer", "eod"}); !err.empty())
    return usageError(err);
  if (opts.Positional.size() != 1)
    return usageError("inspect takes one PATH");
  std::optional<data::EodMode> eod = data::eodModeFromName(opts.get("eod").value_or("auto"));
  if (!eod)
    return usageError("unknown --eod '" + *opts.get("eod") + "' (auto, present or append)");
  uint64_t docs = 3, chars = 160, eot = 0;
  for (auto [name, value] : {std::pair{"docs", &docs}, {"chars", &chars}, {"eot", &eot}})
    if (std::string err = opts.number(name, *value); !err.empty())
      return usageError(err);
  data::DatasetOpenOptions options;
  if (opts.get("eot"))
    options.flatEot = static_cast<uint32_t>(eot);
  // Without a manifest, --tokenizer derives one (not cached): every token is checked.
  std::string prefix = data::datasetPrefix(opts.Positional[0]);
  if (std::optional<std::string> name = opts.get("tokenizer"); name && !fs::exists(prefix + ".manifest.json")) {
    int exitCode = Failure;
    llvm::Expected<std::unique_ptr<data::Tokenizer>> declared = tokenizerOption(*name, exitCode);
    if (!declared)
      return tokenizerFailure(declared.takeError(), exitCode);
    llvm::Expected<data::DerivedManifest> derived = data::deriveManifest(prefix, **declared, *eod);
    if (!derived)
      return fail(derived.takeError());
    options.derived = std::move(derived->manifest);
    options.derivedFrom = "the manifest derived with --tokenizer";
  }

  llvm::Expected<std::unique_ptr<data::Dataset>> opened = data::Dataset::open(opts.Positional[0], options);
  if (!opened)
    return fail(opened.takeError());
  const data::Dataset &dataset = **opened;
  const data::TokenShard &tokens = dataset.tokens();
  const data::Manifest *manifest = dataset.manifest();
  llvm::raw_ostream &os = llvm::outs();
  os << "dataset    " << dataset.prefix() << " (" << data::shardFormatName(dataset.format())
     << (!manifest ? ", no manifest" : dataset.manifestDerived() ? ", no manifest; derived with --tokenizer" : "")
     << ")\n";
  os << "tokens     " << tokens.numTokens() << " in " << tokens.numDocuments()
     << " documents, dtype " << data::dtypeName(tokens.dtype()) << "\n";
  std::unique_ptr<data::Tokenizer> tokenizer;
  if (manifest) {
    os << "tokenizer  " << manifest->tokenizer << ", vocabulary " << manifest->vocabSize
       << ", end-of-text " << manifest->eot << (manifest->eodPresent ? ", ending every document" : "") << "\n";
    llvm::Expected<std::unique_ptr<data::Tokenizer>> t = data::createTokenizer(manifest->tokenizer);
    if (t)
      tokenizer = std::move(*t);
    else
      llvm::consumeError(t.takeError()); // documents are shown as ids
  }

  for (uint64_t d = 0; d < std::min<uint64_t>(docs, tokens.numDocuments()); ++d) {
    data::TokenSpan span = tokens.document(d);
    os << "document " << d << " (" << span.size() << " tokens): ";
    if (tokenizer) {
      std::string text = tokenizer->decode(span.toVector());
      std::string shown = escape(llvm::StringRef(text).take_front(chars));
      os << "\"" << shown << "\"" << (text.size() > chars ? "..." : "") << "\n";
    } else {
      for (uint64_t i = 0; i < std::min<uint64_t>(span.size(), chars / 4); ++i)
        os << (i ? " " : "") << span[i];
      os << (span.size() > chars / 4 ? " ..." : "") << "\n";
    }
  }

  if (const data::MetadataTable *table = dataset.metadata()) {
    os << "metadata   " << table->numRows() << " rows, " << table->numColumns() << " columns\n";
    for (size_t c = 0; c < table->numColumns(); ++c) {
      if (table->columnKind(c) == data::ColumnKind::Number)
        printNumberColumn(os, *table, c);
      else
        printStringColumn(os, *table, c);
    }
  }

  if (!manifest) {
    os << "checksums  none (no manifest)\n";
    return Success;
  }
  if (llvm::Error err = dataset.verifyChecksums())
    return fail(std::move(err));
  if (llvm::Error err = tokens.checkTokenRange(manifest->vocabSize))
    return fail(std::move(err));
  os << "checksums  ok (" << manifest->files.size() << " files); every token id below "
     << manifest->vocabSize << "\n";
  return Success;
}

int mixtape::cli::dataMain(llvm::ArrayRef<llvm::StringRef> args) {
  if (args.empty())
    return usageError("missing command");
  llvm::StringRef command = args[0];
  if (command == "--help" || command == "-h" || command == "help") {
    llvm::outs() << kUsage;
    return Success;
  }
  if (llvm::is_contained(args, "--help") || llvm::is_contained(args, "-h")) {
    llvm::outs() << kUsage;
    return Success;
  }
  if (command == "synth")
    return synthMain(args.drop_front());
  if (command == "prepare")
    return prepareMain(args.drop_front());
  if (command == "manifest")
    return manifestMain(args.drop_front());
  if (command == "inspect")
    return inspectMain(args.drop_front());
  return usageError("unknown command '" + command + "'");
}
