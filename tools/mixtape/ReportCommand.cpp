//===- ReportCommand.cpp - `mixtape report` ------------------------------===//
//
// Reads a run directory and writes its report: the final-metrics table on stdout, the
// charts, an HTML page and forgetting.json under --out. Exit 0 written, 1 errors, 2 usage.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/report/Report.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/Options.h"

#include "llvm/Support/raw_ostream.h"

using namespace mixtape;

int mixtape::cli::reportMain(llvm::ArrayRef<llvm::StringRef> args) {
  std::string out;
  std::vector<std::string> runDir;
  OptionParser options("mixtape report", "RUN_DIR",
                       "Tables and plots of a run: final metrics, eval loss, task accuracy, forgetting, training loss, learning rate.");
  options.value("--out", "DIR", out, "where to write report.html, forgetting.json and the SVG charts (default RUN_DIR/report)")
      .positional("RUN_DIR", runDir, 1, 1)
      .epilog("exit status: 0 written, 1 errors, 2 usage");
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  if (out.empty())
    out = joinPath(runDir[0], "report");

  llvm::Expected<report::Run> run = report::loadRun(runDir[0]);
  if (!run) {
    llvm::errs() << "mixtape report: error: " << llvm::toString(run.takeError()) << "\n";
    return Failure;
  }
  for (const std::string &warning : run->Logs.Warnings)
    llvm::errs() << "mixtape report: warning: " << warning << "\n";
  if (llvm::Error error = report::writeReport(*run, out, llvm::outs())) {
    llvm::errs() << "mixtape report: error: " << llvm::toString(std::move(error)) << "\n";
    return Failure;
  }
  llvm::outs() << "\nwrote " << joinPath(out, "report.html") << "\nwrote " << joinPath(out, "forgetting.json")
               << "\n";
  return Success;
}
