//===- Verify.cpp - expect-comment checking -------------------------------===//
#include "mixtape/compiler/Verify.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

using namespace mixtape;

namespace {
struct Expectation {
  Severity severity;
  unsigned line;       ///< where the diagnostic must be
  unsigned commentLine;
  std::string text;    ///< a substring of the message
  std::string code;    ///< from a trailing "[code]", if written
  bool matched = false;
};

llvm::StringRef severityWord(Severity s) {
  return s == Severity::Error ? "error" : s == Severity::Warning ? "warning" : "note";
}
} // namespace

static std::vector<Expectation> parseExpectations(llvm::StringRef buffer, llvm::raw_ostream &os,
                                                  llvm::StringRef file, bool &ok) {
  std::vector<Expectation> out;
  llvm::SmallVector<llvm::StringRef, 0> lines;
  buffer.split(lines, '\n');
  for (unsigned i = 0; i < lines.size(); ++i) {
    llvm::StringRef line = lines[i];
    size_t at = line.find("expect-");
    if (at == llvm::StringRef::npos || line.find('#') == llvm::StringRef::npos || line.find('#') > at)
      continue;
    llvm::StringRef rest = line.substr(at + 7);
    Expectation e;
    e.commentLine = i + 1;
    if (rest.consume_front("error"))
      e.severity = Severity::Error;
    else if (rest.consume_front("warning"))
      e.severity = Severity::Warning;
    else if (rest.consume_front("note"))
      e.severity = Severity::Note;
    else
      continue;
    int offset = 0;
    if (rest.consume_front("@")) {
      bool negative = rest.consume_front("-");
      rest.consume_front("+");
      unsigned n = 0;
      if (rest.consumeInteger(10, n)) {
        os << file << ":" << i + 1 << ": malformed expect comment: expected a line offset after '@'\n";
        ok = false;
        continue;
      }
      offset = negative ? -static_cast<int>(n) : static_cast<int>(n);
    }
    if (!rest.consume_front(":")) {
      os << file << ":" << i + 1 << ": malformed expect comment: expected ':'\n";
      ok = false;
      continue;
    }
    e.line = static_cast<unsigned>(static_cast<int>(i + 1) + offset);
    llvm::StringRef text = rest.trim();
    if (text.endswith("]") && text.rfind('[') != llvm::StringRef::npos) {
      size_t open = text.rfind('[');
      llvm::StringRef code = text.slice(open + 1, text.size() - 1);
      if (diagCodeFromName(code)) {
        e.code = code.str();
        text = text.take_front(open).rtrim();
      }
    }
    e.text = text.str();
    out.push_back(std::move(e));
  }
  return out;
}

bool mixtape::verifyDiagnostics(const DiagnosticEngine &diags, unsigned bufferId, llvm::raw_ostream &os) {
  const llvm::SourceMgr &sm = const_cast<DiagnosticEngine &>(diags).sources();
  const llvm::MemoryBuffer *mb = sm.getMemoryBuffer(bufferId);
  llvm::StringRef file = mb->getBufferIdentifier();
  bool ok = true;
  std::vector<Expectation> expected = parseExpectations(mb->getBuffer(), os, file, ok);
  bool checkNotes = llvm::any_of(expected, [](const Expectation &e) { return e.severity == Severity::Note; });

  auto consider = [&](const Diagnostic &d) {
    if (d.severity == Severity::Note && !checkNotes)
      return;
    if (!d.range.Start.isValid() || sm.FindBufferContainingLoc(d.range.Start) != bufferId)
      return;
    unsigned line = sm.getLineAndColumn(d.range.Start, bufferId).first;
    llvm::StringRef code = diagCodeName(d.code);
    for (Expectation &e : expected)
      if (!e.matched && e.severity == d.severity && e.line == line &&
          llvm::StringRef(d.message).contains(e.text) && (e.code.empty() || e.code == code)) {
        e.matched = true;
        return;
      }
    std::string full = d.message;
    if (d.severity != Severity::Note)
      full += " [" + code.str() + "]";
    ok = false;
    os << file << ":" << line << ": unexpected " << severityWord(d.severity) << ": " << full << "\n";
  };
  for (const Diagnostic *d : diags.sorted()) {
    consider(*d);
    for (const Diagnostic &n : d->notes)
      consider(n);
  }
  for (const Expectation &e : expected)
    if (!e.matched) {
      ok = false;
      os << file << ":" << e.commentLine << ": expected " << severityWord(e.severity) << " on line " << e.line
         << " not produced: " << e.text << (e.code.empty() ? "" : " [" + e.code + "]") << "\n";
    }
  return ok;
}
