//===- Verify.cpp - expect-comment checking -------------------------------===//
#include "mixtape/compiler/Verify.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

using namespace mixtape;

namespace {
struct Expectation {
  mixtape::Severity Severity;
  unsigned Line;       ///< where the diagnostic must be
  unsigned CommentLine;
  std::string Text;    ///< a substring of the message
  std::string Code;    ///< from a trailing "[code]", if written
  bool Matched = false;
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
    e.CommentLine = i + 1;
    if (rest.consume_front("error"))
      e.Severity = Severity::Error;
    else if (rest.consume_front("warning"))
      e.Severity = Severity::Warning;
    else if (rest.consume_front("note"))
      e.Severity = Severity::Note;
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
    e.Line = static_cast<unsigned>(static_cast<int>(i + 1) + offset);
    llvm::StringRef text = rest.trim();
    if (text.endswith("]") && text.rfind('[') != llvm::StringRef::npos) {
      size_t open = text.rfind('[');
      llvm::StringRef code = text.slice(open + 1, text.size() - 1);
      if (diagCodeFromName(code)) {
        e.Code = code.str();
        text = text.take_front(open).rtrim();
      }
    }
    e.Text = text.str();
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
  bool checkNotes = llvm::any_of(expected, [](const Expectation &e) { return e.Severity == Severity::Note; });

  auto consider = [&](const Diagnostic &d) {
    if (d.Severity == Severity::Note && !checkNotes)
      return;
    if (!d.Range.Start.isValid() || sm.FindBufferContainingLoc(d.Range.Start) != bufferId)
      return;
    unsigned line = sm.getLineAndColumn(d.Range.Start, bufferId).first;
    llvm::StringRef code = diagCodeName(d.Code);
    for (Expectation &e : expected)
      if (!e.Matched && e.Severity == d.Severity && e.Line == line &&
          llvm::StringRef(d.Message).contains(e.Text) && (e.Code.empty() || e.Code == code)) {
        e.Matched = true;
        return;
      }
    std::string full = d.Message;
    if (d.Severity != Severity::Note)
      full += " [" + code.str() + "]";
    ok = false;
    os << file << ":" << line << ": unexpected " << severityWord(d.Severity) << ": " << full << "\n";
  };
  for (const Diagnostic *d : diags.sorted()) {
    consider(*d);
    for (const Diagnostic &n : d->Notes)
      consider(n);
  }
  for (const Expectation &e : expected)
    if (!e.Matched) {
      ok = false;
      os << file << ":" << e.CommentLine << ": expected " << severityWord(e.Severity) << " on line " << e.Line
         << " not produced: " << e.Text << (e.Code.empty() ? "" : " [" + e.Code + "]") << "\n";
    }
  return ok;
}
