//===- Diagnostics.h - clang-style diagnostics for recipes -----*- C++ -*-===//
//
// The compiler collects every diagnostic of a file and keeps going; the tool prints
// them all at the end, as clang does (file:line:col, source line, caret, ranges,
// fix-its) or as JSON. Locations are llvm::SMLoc pointers into buffers owned by one
// llvm::SourceMgr, so a column inside an expression string points at the exact token.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/support/Suggest.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/SMLoc.h"

#include <optional>
#include <set>
#include <string>
#include <vector>

namespace llvm {
class SourceMgr;
class raw_ostream;
namespace json {
class Value;
}
} // namespace llvm

namespace mixtape {

enum class Severity { Error, Warning, Note };

enum class DiagCode {
#define DIAG(ID, NAME, SEVERITY) ID,
#include "mixtape/compiler/DiagnosticCodes.def"
};

llvm::StringRef diagCodeName(DiagCode code);
Severity defaultSeverity(DiagCode code);
std::optional<DiagCode> diagCodeFromName(llvm::StringRef name);
/// Every code, in declaration order (for docs and tests).
llvm::ArrayRef<DiagCode> allDiagCodes();

struct FixIt {
  llvm::SMRange Range;     ///< text to replace (empty range: insert at Range.Start)
  std::string Replacement;
};

struct Diagnostic {
  mixtape::Severity Severity = mixtape::Severity::Error;
  DiagCode Code = DiagCode::BadValue;
  llvm::SMRange Range;     ///< where; Start may be null for whole-file problems
  std::string File;        ///< set when there is no buffer location (e.g. unreadable file)
  std::string Message;
  std::vector<FixIt> Fixits;
  std::vector<Diagnostic> Notes;
};

/// Where the characters of a decoded TOML string live in the file. TOML strings can hold
/// escapes, so decoded offset i is not always literal offset i; this maps one to the other.
class StringLocation {
public:
  StringLocation() = default;
  /// `literal` points at the opening quote of a TOML string in a SourceMgr buffer;
  /// `bufferEnd` bounds the scan. Handles basic, literal and multi-line strings.
  StringLocation(const char *literal, const char *bufferEnd);
  /// A location for a value that is not a string literal (e.g. a bare TOML number): every
  /// offset maps onto [begin, end).
  static StringLocation whole(llvm::SMRange range);

  llvm::SMLoc at(size_t decodedOffset) const;
  llvm::SMRange range(size_t decodedBegin, size_t decodedEnd) const;
  bool valid() const { return !ByteOffsets.empty() || WholeRange.isValid(); }

private:
  const char *Base = nullptr;
  std::vector<uint32_t> ByteOffsets; // decoded offset -> offset from `Base` (one past the end too)
  llvm::SMRange WholeRange;
};

class DiagnosticEngine {
public:
  explicit DiagnosticEngine(llvm::SourceMgr &sourceMgr) : SourceMgr(sourceMgr) {}

  /// Report at a range; the returned diagnostic can take notes and fix-its until the next
  /// report() call.
  Diagnostic &report(DiagCode code, llvm::SMRange range, std::string message);
  Diagnostic &report(DiagCode code, llvm::SMLoc loc, std::string message) {
    return report(code, llvm::SMRange(loc, loc), std::move(message));
  }
  /// A problem with a whole file that has no buffer (unreadable, a directory, ...).
  Diagnostic &reportFile(DiagCode code, llvm::StringRef file, std::string message);

  static void addNote(Diagnostic &diag, llvm::SMRange range, std::string message);
  static void addFixIt(Diagnostic &diag, llvm::SMRange range, std::string replacement);
  /// A "did you mean" note and fix-it replacing `replace`, when a candidate is close to `word`.
  static void suggest(Diagnostic &diag, llvm::StringRef word, llvm::ArrayRef<std::string> candidates,
                      llvm::SMRange replace);

  // Options, as on the command line.
  void setWarningsAsErrors(bool on) { WarningsAsErrors = on; }
  void disable(DiagCode code) { Disabled.insert(code); }

  unsigned errorCount() const;
  unsigned warningCount() const;
  const std::vector<Diagnostic> &diagnostics() const { return Diags; }
  /// Diagnostics sorted by file position (stable), as they are printed.
  std::vector<const Diagnostic *> sorted() const;

  /// clang form: `file:line:col: error: message [code]`, the line, caret, ranges, fix-its.
  void print(llvm::raw_ostream &os, bool color = false) const;
  /// One JSON object per diagnostic, with file, line, column, severity, code, message,
  /// fix-its and notes.
  std::vector<llvm::json::Value> toJSON() const;

  /// file:line:col of a location, 1-based; column counts bytes, as clang does.
  struct LineCol { std::string File; unsigned Line = 0, Column = 0; };
  LineCol lineCol(llvm::SMLoc loc) const;

  llvm::SourceMgr &sources() { return SourceMgr; }

private:
  llvm::SourceMgr &SourceMgr;
  std::vector<Diagnostic> Diags;
  std::set<DiagCode> Disabled;
  bool WarningsAsErrors = false;
  Diagnostic Suppressed; // sink for reports of disabled codes
};


} // namespace mixtape
