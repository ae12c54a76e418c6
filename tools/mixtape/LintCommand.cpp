//===- LintCommand.cpp - `mixtape lint` ----------------------------------===//
//
// Checks recipes like a compiler checks code: every problem of every file, in clang's
// format or as JSON. Exit 0 clean (warnings allowed), 1 errors, 2 usage.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/compiler/Sema.h"
#include "mixtape/compiler/Verify.h"
#include "mixtape/support/Options.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

using namespace mixtape;

int mixtape::cli::lintMain(llvm::ArrayRef<llvm::StringRef> args) {
  std::string format = "text";
  bool werror = false, verify = false;
  std::optional<bool> forceColor;
  std::vector<DiagCode> disabled;
  std::vector<std::string> files;
  OptionParser options("mixtape lint", "RECIPE...", "Checks recipes and reports every problem, like a compiler.");
  options.choice("--format", {"text", "json"}, format, "diagnostics as clang-style text or a JSON array")
      .flag("-Werror", werror, "treat warnings as errors")
      .prefixed("-Wno-", "<code>",
                [&](llvm::StringRef code) -> std::string {
                  std::optional<DiagCode> c = diagCodeFromName(code);
                  if (!c || defaultSeverity(*c) != Severity::Warning)
                    return "'" + code.str() + "' is not a warning code";
                  disabled.push_back(*c);
                  return "";
                },
                "silence a warning, e.g. -Wno-rewarm-no-replay")
      .flag("--verify", verify, "check '# expect-error@+1: ...' comments instead of printing")
      .toggle("--color", forceColor, "color the diagnostics (default: on a terminal, unless NO_COLOR is set)")
      .positional("RECIPE...", files, 1, OptionParser::Unlimited)
      .epilog("exit status: 0 clean (warnings allowed), 1 errors, 2 usage");
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  const bool json = format == "json", color = useColor(llvm::errs(), forceColor);

  // One engine per file: a recipe's [lint] allow list applies to that recipe only.
  llvm::SourceMgr sources;
  llvm::json::Array all;
  bool verified = true;
  unsigned errors = 0, warnings = 0;
  for (const std::string &file : files) {
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
