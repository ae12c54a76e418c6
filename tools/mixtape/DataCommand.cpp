//===- DataCommand.cpp - `mixtape data` ----------------------------------===//
//
// synth, prepare, manifest and inspect datasets; tasks convert downstream task files. Failures
// print as "mixtape data: <message>", where the message names the file and byte (or line);
// exit 1 for bad data, 2 for bad usage.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/data/Dataset.h"
#include "mixtape/data/ManifestCache.h"
#include "mixtape/data/Prepare.h"
#include "mixtape/data/Synth.h"
#include "mixtape/data/Tokenizer.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/JSON.h"
#include "mixtape/support/Options.h"
#include "mixtape/support/Progress.h"
#include "mixtape/tasks/Convert.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <map>
#include <optional>

using namespace mixtape;
using namespace mixtape::cli;
namespace fs = llvm::sys::fs;

static int fail(llvm::Error err) {
  llvm::errs() << "mixtape data: " << llvm::toString(std::move(err)) << "\n";
  return Failure;
}

namespace {
/// Throughput on stderr: a bar redrawn on a terminal, one summary line at the end.
class Progress {
public:
  explicit Progress(uint64_t totalBytes) : Total(totalBytes) {}

  /// `doneBytes` of the files' total read, `textBytes` of text processed (more than the
  /// files' bytes when they are compressed): MB/s of text, the ETA from the files' share.
  void update(uint64_t doneBytes, uint64_t textBytes) {
    Done = doneBytes;
    Text = textBytes;
    unsigned percent = Total ? static_cast<unsigned>(100 * std::min(Done, Total) / Total) : 100;
    std::string bar(percent / 4, '#');
    bar.resize(25, ' ');
    std::string eta;
    if (Done > 0 && Done < Total)
      eta = llvm::formatv("  ETA {0:f0} s", Line.elapsed() * static_cast<double>(Total - Done) / Done).str();
    Line.show(llvm::formatv("[{0}] {1,3}% {2,7:f1} MB/s{3}", bar, percent, rate(), eta).str());
  }

  void finish(llvm::StringRef summary) {
    Line.print(llvm::formatv("{0} ({1:f1} MB in {2:f2} s, {3:f1} MB/s)", summary, Text / 1e6, Line.elapsed(), rate())
                   .str());
  }

private:
  double rate() const { return Line.elapsed() > 0 ? Text / 1e6 / Line.elapsed() : 0.0; }

  uint64_t Total, Done = 0, Text = 0;
  ProgressLine Line;
};
} // namespace

/// --tokenizer NAME: a tokenizer file that does not load is bad input (exit 1), an unknown
/// name bad usage (exit 2).
static llvm::Expected<std::unique_ptr<data::Tokenizer>> tokenizerOption(llvm::StringRef name, int &exitCode) {
  llvm::Expected<std::unique_ptr<data::Tokenizer>> tokenizer = data::createTokenizer(name);
  exitCode = !tokenizer && !name.startswith("hf:") && !fs::exists(name) ? Usage : Failure;
  return tokenizer;
}

static int tokenizerFailure(const OptionParser &options, llvm::Error err, int exitCode) {
  return exitCode == Usage ? options.usageError(llvm::toString(std::move(err))) : fail(std::move(err));
}

//===----------------------------------------------------------------------===//
// synth
//===----------------------------------------------------------------------===//

static int synthMain(llvm::ArrayRef<llvm::StringRef> args) {
  std::string out;
  data::SynthOptions synth;
  OptionParser options("mixtape data synth", "",
                       "Writes the embedded synthetic corpus: DIR/<domain>.{bin,idx,meta,manifest.json}, and its "
                       "downstream tasks: DIR/tasks/{facts-choice,facts-qa,arith,prose-cloze,code-cloze}.jsonl.");
  options.value("--out", "DIR", out, "where to write it")
      .required()
      .integer("--seed", "N", synth.Seed, 0, UINT64_MAX, "the corpus's seed (default 0)")
      .integer("--docs", "N", synth.DocumentsPerDomain, 0, UINT64_MAX, "documents per domain")
      .value("--domains", "LIST",
             [&](llvm::StringRef list) -> std::string {
               llvm::SmallVector<llvm::StringRef, 4> names;
               llvm::SplitString(list, names, ",");
               for (llvm::StringRef name : names) {
                 if (!llvm::is_contained(data::synthDomains(), name))
                   return "unknown domain '" + name.str() + "' (prose, code, arith, facts)";
                 synth.Domains.push_back(name.str());
               }
               return "";
             },
             "comma-separated: prose, code, arith, facts (default all)");
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  llvm::Expected<std::vector<data::Manifest>> manifests = data::synthesizeCorpus(out, synth);
  if (!manifests)
    return fail(manifests.takeError());
  for (const data::Manifest &m : *manifests) {
    llvm::StringRef bin = m.Files.front().Name;
    llvm::outs() << llvm::left_justify(bin.drop_back(4), 6) << " " << m.Documents << " documents, " << m.Tokens
                 << " tokens -> " << joinPath(out, bin.drop_back(4)) << "\n";
  }
  const std::string tasks = joinPath(out, "tasks");
  if (std::error_code ec = llvm::sys::fs::create_directories(tasks))
    return fail(fileError(tasks, "cannot create the directory: " + ec.message()));
  for (llvm::StringRef name : data::synthTaskNames()) {
    llvm::Expected<std::string> items = data::synthTask(name, synth.Seed);
    if (!items)
      return fail(items.takeError());
    const std::string file = joinPath(tasks, name.str() + ".jsonl");
    if (llvm::Error e = writeFileDurably(file, *items))
      return fail(std::move(e));
    llvm::outs() << llvm::left_justify(name, 12) << " " << llvm::StringRef(*items).count('\n') << " items -> " << file
                 << "\n";
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
        return fileError(input, "no such file or directory");
      files.push_back(input.str());
      continue;
    }
    std::vector<std::string> found;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(input, ec), end; it != end && !ec; it.increment(ec))
      if (it->type() == fs::file_type::regular_file)
        found.push_back(it->path());
    if (ec)
      return fileError(input, ec.message());
    llvm::sort(found);
    llvm::append_range(files, found);
  }
  return files;
}

static int prepareMain(llvm::ArrayRef<llvm::StringRef> args) {
  std::string out, formatName = "megatron", tokenizerName = "bytes";
  std::vector<std::string> inputs;
  data::PrepareOptions prepare;
  OptionParser options("mixtape data prepare", "INPUT...",
                       "Tokenizes text files (one document each), directories (recursively, sorted) or JSONL (one\n"
                       "document per line: its text field; the other fields become metadata columns). Files may be\n"
                       "gzip- or zstd-compressed (x.jsonl.gz, x.jsonl.zst, x.txt.gz): what a file is comes from its\n"
                       "first bytes; Parquet and other binary files are refused.");
  options.value("--out", "PREFIX", out, "the dataset to write: PREFIX.bin, .idx, .meta, .manifest.json")
      .required()
      .choice("--format", {"megatron", "flat"}, formatName, "token file format (default megatron)")
      .value("--tokenizer", "bytes|PATH", tokenizerName,
             "bytes (default), or a Hugging Face BPE tokenizer: a tokenizer.json, or a directory with "
             "tokenizer.json or vocab.json + merges.txt (PATH or hf:PATH)")
      .value("--text-key", "KEY", prepare.TextKey,
             "the JSONL field holding the text (default text); a.b.c for field c of object b of object a")
      .integer("--threads", "N", prepare.Threads, 1, 4096, "tokenizing threads (default: every core)")
      .positional("INPUT...", inputs, 1, OptionParser::Unlimited);
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  data::ShardFormat format = formatName == "flat" ? data::ShardFormat::Flat : data::ShardFormat::Megatron;
  int exitCode = Failure;
  llvm::Expected<std::unique_ptr<data::Tokenizer>> tokenizer = tokenizerOption(tokenizerName, exitCode);
  if (!tokenizer)
    return tokenizerFailure(options, tokenizer.takeError(), exitCode);

  llvm::Expected<std::vector<std::string>> files = collectInputs(std::vector<llvm::StringRef>(inputs.begin(), inputs.end()));
  if (!files)
    return fail(files.takeError());
  uint64_t totalBytes = 0;
  for (const std::string &file : *files) {
    uint64_t size = 0;
    if (!fs::file_size(file, size))
      totalBytes += size;
  }
  llvm::Expected<std::unique_ptr<data::DatasetWriter>> writer =
      data::DatasetWriter::create(out, format, **tokenizer);
  if (!writer)
    return fail(writer.takeError());
  Progress progress(totalBytes);
  llvm::Expected<data::PrepareResult> prepared =
      data::prepareFiles(*files, **tokenizer, **writer, prepare,
                         [&](uint64_t fileBytes, uint64_t textBytes) { progress.update(fileBytes, textBytes); });
  if (!prepared)
    return fail(prepared.takeError());
  llvm::Expected<data::Manifest> manifest = (*writer)->finish();
  if (!manifest)
    return fail(manifest.takeError());
  for (const std::string &field : prepared->SkippedFields)
    llvm::errs() << "mixtape data: note: field '" << field
                 << "' holds arrays or objects; it is not a metadata column\n";
  std::string summary;
  llvm::raw_string_ostream(summary)
      << "mixtape data: " << manifest->Documents << " documents, " << manifest->Tokens
      << " tokens -> " << out
      << (prepared->SkippedEmpty ? " (" + std::to_string(prepared->SkippedEmpty) + " empty skipped)" : "");
  progress.finish(summary);
  return Success;
}

//===----------------------------------------------------------------------===//
// manifest
//===----------------------------------------------------------------------===//

static int manifestMain(llvm::ArrayRef<llvm::StringRef> args) {
  std::string tokenizerName, eodName = "auto";
  std::vector<std::string> prefixes;
  OptionParser options("mixtape data manifest", "PREFIX",
                       "Writes PREFIX.manifest.json and PREFIX.meta (document hashes) for a dataset that has none,\n"
                       "e.g. Megatron's PREFIX.bin + PREFIX.idx.");
  options.value("--tokenizer", "bytes|PATH", tokenizerName, "the tokenizer that made the tokens")
      .required()
      .choice("--eod", {"auto", "present", "append"}, eodName,
              "whether documents end with its end-of-text token (default auto)")
      .positional("PREFIX", prefixes, 1, 1);
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  const plan::EodMode eod = *plan::enumFromName<plan::EodMode>(eodName);
  int exitCode = Failure;
  llvm::Expected<std::unique_ptr<data::Tokenizer>> tokenizer = tokenizerOption(tokenizerName, exitCode);
  if (!tokenizer)
    return tokenizerFailure(options, tokenizer.takeError(), exitCode);
  std::string prefix = data::datasetPrefix(prefixes[0]);
  uint64_t bytes = 0;
  for (const char *suffix : {".bin", ".idx"}) {
    uint64_t size = 0;
    if (!fs::file_size(prefix + suffix, size))
      bytes += size;
  }
  Progress progress(bytes);
  llvm::Expected<data::Manifest> written = data::writeManifest(prefix, **tokenizer, eod);
  if (!written)
    return fail(written.takeError());
  progress.update(bytes, bytes);
  std::string summary;
  llvm::raw_string_ostream(summary) << "mixtape data: " << written->Documents << " documents, " << written->Tokens
                                    << " tokens, eod " << (written->EodPresent ? "present" : "append") << " -> "
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
  std::string tokenizerName, eodName = "auto";
  std::vector<std::string> paths;
  uint64_t docs = 3, chars = 160;
  std::optional<uint32_t> eot;
  OptionParser options("mixtape data inspect", "PATH",
                       "Shows counts, documents and metadata, and verifies checksums; PATH is a prefix or any file\n"
                       "of a dataset.");
  options.integer("--docs", "N", docs, 0, UINT64_MAX, "documents to show (default 3)")
      .integer("--chars", "N", chars, 0, UINT64_MAX, "characters of each to show (default 160)")
      .value("--eot", "N",
             [&](llvm::StringRef value) -> std::string {
               uint32_t id = 0;
               if (value.getAsInteger(10, id))
                 return "--eot needs a token id, not '" + value.str() + "'";
               eot = id;
               return "";
             },
             "the end-of-text id of a flat .bin without a manifest")
      .value("--tokenizer", "bytes|PATH", tokenizerName, "decode and check a dataset without a manifest")
      .choice("--eod", {"auto", "present", "append"}, eodName, "with --tokenizer: whether documents end with it")
      .positional("PATH", paths, 1, 1);
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  const plan::EodMode eod = *plan::enumFromName<plan::EodMode>(eodName);
  data::DatasetOpenOptions open;
  open.FlatEot = eot;
  // Without a manifest, --tokenizer derives one (not cached): every token is checked.
  std::string prefix = data::datasetPrefix(paths[0]);
  if (!tokenizerName.empty() && !fs::exists(prefix + ".manifest.json")) {
    int exitCode = Failure;
    llvm::Expected<std::unique_ptr<data::Tokenizer>> declared = tokenizerOption(tokenizerName, exitCode);
    if (!declared)
      return tokenizerFailure(options, declared.takeError(), exitCode);
    llvm::Expected<data::DerivedManifest> derived = data::deriveManifest(prefix, **declared, eod);
    if (!derived)
      return fail(derived.takeError());
    open.Derived = std::move(derived->Manifest);
    open.DerivedFrom = "the manifest derived with --tokenizer";
  }

  llvm::Expected<std::unique_ptr<data::Dataset>> opened = data::Dataset::open(paths[0], open);
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
    os << "tokenizer  " << manifest->Tokenizer << ", vocabulary " << manifest->VocabSize
       << ", end-of-text " << manifest->Eot << (manifest->EodPresent ? ", ending every document" : "") << "\n";
    llvm::Expected<std::unique_ptr<data::Tokenizer>> t = data::createTokenizer(manifest->Tokenizer);
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
  if (llvm::Error err = tokens.checkTokenRange(manifest->VocabSize))
    return fail(std::move(err));
  os << "checksums  ok (" << manifest->Files.size() << " files); every token id below "
     << manifest->VocabSize << "\n";
  return Success;
}

//===----------------------------------------------------------------------===//
// tasks convert
//===----------------------------------------------------------------------===//

static int tasksConvertMain(llvm::ArrayRef<llvm::StringRef> args) {
  std::string from, out;
  std::vector<std::string> inputs;
  OptionParser options("mixtape data tasks convert", "IN.jsonl",
                       "Maps a Hugging Face dataset saved with to_json (one row per line) to task items with\n"
                       "lm-eval-harness's default prompt for that task (docs/tasks.md).");
  options.choice("--from", tasks::taskSourceNames(), from, "the dataset IN.jsonl holds")
      .required()
      .value("--out", "OUT.jsonl", out, "the task file to write (whole, or not at all)")
      .required()
      .positional("IN.jsonl", inputs, 1, 1);
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  llvm::Expected<uint64_t> items = tasks::convertTaskFile(*tasks::taskSourceFromName(from), inputs[0], out);
  if (!items)
    return fail(items.takeError());
  llvm::outs() << "mixtape data: " << *items << " " << from << " items -> " << out << "\n";
  return Success;
}

static int tasksMain(llvm::ArrayRef<llvm::StringRef> args) {
  static const Subcommand commands[] = {
      {"convert", "map a Hugging Face task export (ARC, HellaSwag, PIQA, SciQ, MMLU) to task items",
       tasksConvertMain},
  };
  return CommandTable("mixtape data tasks", "downstream task files", commands).dispatch(args);
}

int mixtape::cli::dataMain(llvm::ArrayRef<llvm::StringRef> args) {
  static const Subcommand commands[] = {
      {"synth", "write the embedded synthetic corpus", synthMain},
      {"prepare", "tokenize text, directories or JSONL into a dataset", prepareMain},
      {"manifest", "write the manifest of a dataset that has none (Megatron's .bin + .idx)", manifestMain},
      {"inspect", "show a dataset's counts, documents and metadata, and verify its checksums", inspectMain},
      {"tasks", "downstream task files: convert Hugging Face exports to task items", tasksMain},
  };
  return CommandTable("mixtape data", "synthesize, prepare and inspect token datasets; convert task files", commands)
      .dispatch(args);
}
