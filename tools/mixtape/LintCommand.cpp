//===- LintCommand.cpp - `mixtape lint` ----------------------------------===//
//
// Checks recipes like a compiler checks code: every problem of every file, in clang's
// format or as JSON. Exit 0 clean (warnings allowed), 1 errors, 2 usage.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/compiler/Sema.h"
#include "mixtape/compiler/Verify.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

using namespace mixtape;

static void printLintHelp(llvm::raw_ostream &os) {
  os << "usage: mixtape lint [options] RECIPE...\n\n"
        "  --format=text|json   diagnostics as clang-style text (default) or a JSON array\n"
        "  -Werror              treat warnings as errors\n"
        "  -Wno-<code>          silence a warning, e.g. -Wno-rewarm-no-replay\n"
        "  --verify             check '# expect-error@+1: ...' comments instead of printing\n"
        "  --color, --no-color  force colors on or off (default: on for a terminal)\n\n"
        "exit status: 0 clean (warnings allowed), 1 errors, 2 usage\n";
}

int mixtape::cli::lintMain(llvm::ArrayRef<llvm::StringRef> args) {
  bool json = false, werror = false, verify = false;
  bool color = llvm::sys::Process::StandardErrIsDisplayed();
  std::vector<DiagCode> disabled;
  std::vector<llvm::StringRef> files;
  for (llvm::StringRef arg : args) {
    if (arg == "--help" || arg == "-h") {
      printLintHelp(llvm::outs());
      return Success;
    }
    if (arg == "--format=json") {
      json = true;
    } else if (arg == "--format=text") {
      json = false;
    } else if (arg == "-Werror") {
      werror = true;
    } else if (arg == "--verify") {
      verify = true;
    } else if (arg == "--color") {
      color = true;
    } else if (arg == "--no-color") {
      color = false;
    } else if (arg.consume_front("-Wno-")) {
      auto code = diagCodeFromName(arg);
      if (!code || defaultSeverity(*code) != Severity::Warning) {
        llvm::errs() << "mixtape lint: '" << arg << "' is not a warning code\n";
        return Usage;
      }
      disabled.push_back(*code);
    } else if (arg.startswith("-") && arg != "-") {
      llvm::errs() << "mixtape lint: unknown option '" << arg << "'\n";
      printLintHelp(llvm::errs());
      return Usage;
    } else {
      files.push_back(arg);
    }
  }
  if (files.empty()) {
    printLintHelp(llvm::errs());
    return Usage;
  }

  // One engine per file: a recipe's [lint] allow list applies to that recipe only.
  llvm::SourceMgr sources;
  llvm::json::Array all;
  bool verified = true;
  unsigned errors = 0, warnings = 0;
  for (llvm::StringRef file : files) {
    DiagnosticEngine diags(sources);
    diags.setWarningsAsErrors(werror);
    for (DiagCode code : disabled)
      diags.disable(code);
    unsigned buffersBefore = sources.getNumBuffers();
    loadRecipe(file, diags);
    errors += diags.errorCount();
    warnings += diags.warningCount();
    if (verify) {
      if (sources.getNumBuffers() > buffersBefore)
        verified &= verifyDiagnostics(diags, sources.getNumBuffers(), llvm::errs());
      else {
        diags.print(llvm::errs(), color); // unreadable: nothing to verify against
        verified = false;
      }
    } else if (json) {
      for (llvm::json::Value &v : diags.toJSON())
        all.push_back(std::move(v));
    } else {
      diags.print(llvm::errs(), color);
    }
  }
  if (verify)
    return verified ? Success : Failure;
  if (json)
    llvm::outs() << llvm::formatv("{0:2}", llvm::json::Value(std::move(all))) << "\n";
  else if (errors || warnings)
    llvm::errs() << errors << (errors == 1 ? " error" : " errors") << ", " << warnings
                 << (warnings == 1 ? " warning" : " warnings") << "\n";
  return errors ? Failure : Success;
}
