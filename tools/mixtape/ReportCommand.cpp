//===- ReportCommand.cpp - `mixtape report` ------------------------------===//
//
// Read a run directory and write its report: the final-metrics table (also printed), SVG
// charts of eval loss and LR against tokens trained, and report.html with both.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/report/Report.h"

#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

using namespace mixtape;

static void printReportHelp(llvm::raw_ostream &os) {
  os << "usage: mixtape report RUN_DIR [--out DIR]\n\n"
        "  --out DIR   where to write report.html and the SVG charts (default RUN_DIR/report)\n\n"
        "Reads RUN_DIR/plan.json and every node's metrics.jsonl (docs/run-format.md).\n"
        "exit status: 0 written, 1 errors, 2 usage\n";
}

int mixtape::cli::reportMain(llvm::ArrayRef<llvm::StringRef> args) {
  std::string out;
  std::vector<llvm::StringRef> dirs;
  for (size_t i = 0; i < args.size(); ++i) {
    llvm::StringRef arg = args[i];
    if (arg == "--help" || arg == "-h") {
      printReportHelp(llvm::outs());
      return Success;
    }
    if (arg == "--out" && i + 1 < args.size())
      out = args[++i].str();
    else if (arg.startswith("-")) {
      llvm::errs() << "mixtape report: " << (arg == "--out" ? "--out needs a directory"
                                                            : "unknown option '" + arg + "'")
                   << "\n";
      printReportHelp(llvm::errs());
      return Usage;
    } else
      dirs.push_back(arg);
  }
  if (dirs.size() != 1) {
    printReportHelp(llvm::errs());
    return Usage;
  }
  if (out.empty()) {
    llvm::SmallString<256> path(dirs[0]);
    llvm::sys::path::append(path, "report");
    out = std::string(path);
  }

  llvm::Expected<report::Run> run = report::loadRun(dirs[0]);
  if (!run) {
    llvm::errs() << "mixtape report: error: " << llvm::toString(run.takeError()) << "\n";
    return Failure;
  }
  for (const std::string &warning : run->metrics.warnings)
    llvm::errs() << "mixtape report: warning: " << warning << "\n";
  if (llvm::Error error = report::writeReport(*run, out, llvm::outs())) {
    llvm::errs() << "mixtape report: error: " << llvm::toString(std::move(error)) << "\n";
    return Failure;
  }
  llvm::SmallString<256> html(out);
  llvm::sys::path::append(html, "report.html");
  llvm::outs() << "\nwrote " << html << "\n";
  return Success;
}
