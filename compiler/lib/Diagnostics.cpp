//===- Diagnostics.cpp ----------------------------------------------------===//
#include "mixtape/compiler/Diagnostics.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <optional>

using namespace mixtape;

namespace {
struct CodeInfo {
  DiagCode Code;
  llvm::StringRef Name;
  mixtape::Severity Severity;
};
constexpr CodeInfo kCodes[] = {
#define DIAG(ID, NAME, SEVERITY) {DiagCode::ID, NAME, Severity::SEVERITY},
#include "mixtape/compiler/DiagnosticCodes.def"
};
constexpr DiagCode kAllCodes[] = {
#define DIAG(ID, NAME, SEVERITY) DiagCode::ID,
#include "mixtape/compiler/DiagnosticCodes.def"
};
} // namespace

llvm::StringRef mixtape::diagCodeName(DiagCode code) { return kCodes[static_cast<size_t>(code)].Name; }
Severity mixtape::defaultSeverity(DiagCode code) { return kCodes[static_cast<size_t>(code)].Severity; }
llvm::ArrayRef<DiagCode> mixtape::allDiagCodes() { return kAllCodes; }

std::optional<DiagCode> mixtape::diagCodeFromName(llvm::StringRef name) {
  for (const CodeInfo &info : kCodes)
    if (info.Name == name)
      return info.Code;
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// StringLocation
//===----------------------------------------------------------------------===//

static unsigned utf8Length(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

static bool isHex(char c) { return llvm::isHexDigit(c); }

StringLocation::StringLocation(const char *literal, const char *bufferEnd) : Base(literal) {
  const char *p = literal;
  auto remaining = [&] { return static_cast<size_t>(bufferEnd - p); };
  if (remaining() == 0 || (*p != '"' && *p != '\''))
    return;
  const char quote = *p;
  const bool multiLine = remaining() >= 3 && p[1] == quote && p[2] == quote;
  const bool basic = quote == '"';
  p += multiLine ? 3 : 1;
  if (multiLine) { // a newline right after the opening delimiter is trimmed
    if (remaining() >= 2 && p[0] == '\r' && p[1] == '\n')
      p += 2;
    else if (remaining() >= 1 && p[0] == '\n')
      ++p;
  }
  auto emit = [&](const char *at, unsigned count) {
    for (unsigned i = 0; i < count; ++i)
      ByteOffsets.push_back(static_cast<uint32_t>(at - Base));
  };
  while (p < bufferEnd) {
    if (*p == quote) {
      if (!multiLine)
        break;
      if (remaining() >= 3 && p[1] == quote && p[2] == quote) {
        // Up to two quotes may sit right before the closing delimiter.
        size_t run = 3;
        while (run < 5 && remaining() > run && p[run] == quote)
          ++run;
        emit(p, static_cast<unsigned>(run - 3));
        p += run - 3;
        break;
      }
    }
    if (!multiLine && (*p == '\n' || *p == '\r'))
      break; // unterminated: the parser already complained
    if (basic && *p == '\\' && remaining() >= 2) {
      char e = p[1];
      if (e == 'u' || e == 'U') {
        size_t digits = e == 'u' ? 4 : 8;
        if (remaining() >= 2 + digits && std::all_of(p + 2, p + 2 + digits, isHex)) {
          uint32_t cp = 0;
          for (size_t i = 0; i < digits; ++i)
            cp = cp * 16 + llvm::hexDigitValue(p[2 + i]);
          emit(p, utf8Length(cp));
          p += 2 + digits;
          continue;
        }
      }
      if (multiLine && (e == ' ' || e == '\t' || e == '\n' || e == '\r')) {
        // Line-ending backslash: trims the newline and the whitespace after it.
        const char *q = p + 1;
        while (q < bufferEnd && (*q == ' ' || *q == '\t'))
          ++q;
        if (q < bufferEnd && (*q == '\n' || *q == '\r')) {
          while (q < bufferEnd && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
            ++q;
          p = q;
          continue;
        }
      }
      emit(p, 1);
      p += 2;
      continue;
    }
    emit(p, 1);
    ++p;
  }
  ByteOffsets.push_back(static_cast<uint32_t>(p - Base)); // one past the end
}

StringLocation StringLocation::whole(llvm::SMRange range) {
  StringLocation loc;
  loc.WholeRange = range;
  return loc;
}

llvm::SMLoc StringLocation::at(size_t decodedOffset) const {
  if (WholeRange.isValid())
    return WholeRange.Start;
  if (ByteOffsets.empty())
    return llvm::SMLoc();
  size_t i = std::min(decodedOffset, ByteOffsets.size() - 1);
  return llvm::SMLoc::getFromPointer(Base + ByteOffsets[i]);
}

llvm::SMRange StringLocation::range(size_t decodedBegin, size_t decodedEnd) const {
  if (WholeRange.isValid())
    return WholeRange;
  if (ByteOffsets.empty())
    return llvm::SMRange();
  // An empty range (e.g. "expected an expression" at the end) still points somewhere.
  return llvm::SMRange(at(decodedBegin), at(std::max(decodedBegin, decodedEnd)));
}

//===----------------------------------------------------------------------===//
// DiagnosticEngine
//===----------------------------------------------------------------------===//

Diagnostic &DiagnosticEngine::report(DiagCode code, llvm::SMRange range, std::string message) {
  if (Disabled.count(code)) {
    Suppressed = Diagnostic();
    return Suppressed;
  }
  Diagnostic diag;
  diag.Code = code;
  diag.Severity = defaultSeverity(code);
  if (diag.Severity == Severity::Warning && WarningsAsErrors)
    diag.Severity = Severity::Error;
  diag.Range = range;
  diag.Message = std::move(message);
  Diags.push_back(std::move(diag));
  return Diags.back();
}

Diagnostic &DiagnosticEngine::reportFile(DiagCode code, llvm::StringRef file, std::string message) {
  Diagnostic &diag = report(code, llvm::SMRange(), std::move(message));
  diag.File = file.str();
  return diag;
}

void DiagnosticEngine::addNote(Diagnostic &diag, llvm::SMRange range, std::string message) {
  Diagnostic note;
  note.Severity = Severity::Note;
  note.Code = diag.Code;
  note.Range = range;
  note.Message = std::move(message);
  diag.Notes.push_back(std::move(note));
}

void DiagnosticEngine::addFixIt(Diagnostic &diag, llvm::SMRange range, std::string replacement) {
  diag.Fixits.push_back({range, std::move(replacement)});
}

void DiagnosticEngine::suggest(Diagnostic &diag, llvm::StringRef word, llvm::ArrayRef<std::string> candidates,
                               llvm::SMRange replace) {
  if (auto match = closestMatch(word, candidates)) {
    addNote(diag, replace, "did you mean '" + *match + "'?");
    addFixIt(diag, replace, *match);
  }
}

unsigned DiagnosticEngine::errorCount() const {
  return llvm::count_if(Diags, [](const Diagnostic &d) { return d.Severity == Severity::Error; });
}

unsigned DiagnosticEngine::warningCount() const {
  return llvm::count_if(Diags, [](const Diagnostic &d) { return d.Severity == Severity::Warning; });
}

std::vector<const Diagnostic *> DiagnosticEngine::sorted() const {
  std::vector<const Diagnostic *> out;
  for (const Diagnostic &d : Diags)
    out.push_back(&d);
  auto key = [&](const Diagnostic *d) {
    if (!d->Range.Start.isValid())
      return std::pair<unsigned, const char *>(0, nullptr);
    unsigned buffer = SourceMgr.FindBufferContainingLoc(d->Range.Start);
    return std::pair<unsigned, const char *>(buffer, d->Range.Start.getPointer());
  };
  std::stable_sort(out.begin(), out.end(),
                   [&](const Diagnostic *a, const Diagnostic *b) { return key(a) < key(b); });
  return out;
}

DiagnosticEngine::LineCol DiagnosticEngine::lineCol(llvm::SMLoc loc) const {
  LineCol lc;
  if (!loc.isValid())
    return lc;
  unsigned buffer = SourceMgr.FindBufferContainingLoc(loc);
  if (!buffer)
    return lc;
  lc.File = SourceMgr.getMemoryBuffer(buffer)->getBufferIdentifier().str();
  std::tie(lc.Line, lc.Column) = SourceMgr.getLineAndColumn(loc, buffer);
  return lc;
}

static llvm::SourceMgr::DiagKind toKind(Severity s) {
  switch (s) {
  case Severity::Error: return llvm::SourceMgr::DK_Error;
  case Severity::Warning: return llvm::SourceMgr::DK_Warning;
  case Severity::Note: return llvm::SourceMgr::DK_Note;
  }
  return llvm::SourceMgr::DK_Error;
}

static llvm::StringRef severityName(Severity s) {
  switch (s) {
  case Severity::Error: return "error";
  case Severity::Warning: return "warning";
  case Severity::Note: return "note";
  }
  return "error";
}

// Ranges in one line only: SourceMgr draws the ranges that intersect the caret's line.
static void printOne(const llvm::SourceMgr &sm, llvm::raw_ostream &os, const Diagnostic &d,
                     bool color, bool withCode) {
  std::string message = d.Message;
  if (withCode)
    message += " [" + diagCodeName(d.Code).str() + "]";
  if (!d.Range.Start.isValid()) {
    if (!d.File.empty())
      os << d.File << ": ";
    llvm::WithColor(os,
                    d.Severity == Severity::Error ? llvm::HighlightColor::Error
                                                  : llvm::HighlightColor::Warning,
                    color ? llvm::ColorMode::Enable : llvm::ColorMode::Disable)
        << severityName(d.Severity) << ": ";
    os << message << "\n";
    return;
  }
  std::vector<llvm::SMRange> ranges;
  if (d.Range.End.getPointer() > d.Range.Start.getPointer())
    ranges.push_back(d.Range);
  std::vector<llvm::SMFixIt> fixits;
  for (const FixIt &f : d.Fixits)
    fixits.emplace_back(f.Range, f.Replacement);
  sm.PrintMessage(os, d.Range.Start, toKind(d.Severity), message, ranges, fixits, color);
}

namespace {
/// Writes to another stream through a buffer (SourceMgr writes a caret line character by
/// character, and errs() is unbuffered), colored as `color` says: SourceMgr colors only a
/// stream that says it has colors (a terminal), and `color` is a decision already made
/// (useColor: --color wins over a pipe).
class DiagnosticStream : public llvm::raw_ostream {
public:
  DiagnosticStream(llvm::raw_ostream &out, bool color) : Out(out), Color(color) {
    SetBufferSize(1 << 16);
    enable_colors(color);
  }
  ~DiagnosticStream() override { flush(); }
  bool has_colors() const override { return Color; }
  bool is_displayed() const override { return Color; }

private:
  void write_impl(const char *data, size_t size) override { Out.write(data, size); }
  uint64_t current_pos() const override { return Out.tell(); }
  llvm::raw_ostream &Out;
  bool Color;
};
} // namespace

void DiagnosticEngine::print(llvm::raw_ostream &os, bool color) const {
  DiagnosticStream out(os, color);
  for (const Diagnostic *d : sorted()) {
    printOne(SourceMgr, out, *d, color, /*withCode=*/true);
    for (const Diagnostic &note : d->Notes)
      printOne(SourceMgr, out, note, color, /*withCode=*/false);
  }
}

static llvm::json::Object diagnosticToJSON(const DiagnosticEngine &engine, const Diagnostic &d) {
  llvm::json::Object obj;
  DiagnosticEngine::LineCol begin = engine.lineCol(d.Range.Start);
  obj["file"] = begin.File.empty() ? d.File : begin.File;
  if (begin.Line) {
    obj["line"] = begin.Line;
    obj["column"] = begin.Column;
    DiagnosticEngine::LineCol end = engine.lineCol(d.Range.End);
    obj["end_line"] = end.Line;
    obj["end_column"] = end.Column;
  }
  obj["severity"] = severityName(d.Severity);
  obj["code"] = diagCodeName(d.Code);
  obj["message"] = d.Message;
  llvm::json::Array fixits;
  for (const FixIt &f : d.Fixits) {
    DiagnosticEngine::LineCol b = engine.lineCol(f.Range.Start), e = engine.lineCol(f.Range.End);
    fixits.push_back(llvm::json::Object{{"line", b.Line},
                                        {"column", b.Column},
                                        {"end_line", e.Line},
                                        {"end_column", e.Column},
                                        {"replacement", f.Replacement}});
  }
  obj["fixits"] = std::move(fixits);
  llvm::json::Array notes;
  for (const Diagnostic &n : d.Notes) {
    llvm::json::Object note = diagnosticToJSON(engine, n);
    note.erase("code");
    notes.push_back(std::move(note));
  }
  if (!d.Notes.empty())
    obj["notes"] = std::move(notes);
  return obj;
}

std::vector<llvm::json::Value> DiagnosticEngine::toJSON() const {
  std::vector<llvm::json::Value> all;
  for (const Diagnostic *d : sorted())
    all.push_back(diagnosticToJSON(*this, *d));
  return all;
}

