//===- ReportCommand.cpp - `mixtape report` ------------------------------===//
//
// Reads a run directory and writes its report: the final-metrics table on stdout, the
// charts, an HTML page and forgetting.json under --out, and with --tensorboard the run's
// metrics as TensorBoard event files. Two run directories: their comparison instead.
// Exit 0 written, 1 errors, 2 usage.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/report/Report.h"
#include "mixtape/report/TensorBoard.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/Options.h"

#include "llvm/Support/raw_ostream.h"

#include <unistd.h>

using namespace mixtape;

namespace {

llvm::Expected<report::Run> load(llvm::StringRef runDir) {
  llvm::Expected<report::Run> run = report::loadRun(runDir);
  if (run)
    for (const std::string &warning : run->Logs.Warnings)
      llvm::errs() << "mixtape report: warning: " << warning << "\n";
  return run;
}

/// This machine's name, as TensorBoard's own writers put it in event file names.
std::string hostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || !name[0])
    return "localhost";
  return name;
}

} // namespace

int mixtape::cli::reportMain(llvm::ArrayRef<llvm::StringRef> args) {
  std::string out, tensorBoard;
  std::vector<std::string> runDirs;
  OptionParser options("mixtape report", "RUN_DIR [RUN_B]",
                       "Tables and plots of a run: final metrics, eval loss, task accuracy, forgetting, training\n"
                       "loss, learning rate, gradient norm, throughput. With two run directories: their final\n"
                       "metrics side by side and their eval charts overlaid (compare.html).");
  options
      .value("--out", "DIR", out,
             "where to write report.html, forgetting.json and the SVG charts (default RUN_DIR/report), or "
             "compare.html (default RUN_DIR/compare)")
      .value("--tensorboard", "DIR", tensorBoard,
             "also write TensorBoard event files: DIR/<node>/events.out.tfevents.<secs>.<host>")
      .positional("RUN_DIR [RUN_B]", runDirs, 1, 2)
      .epilog("exit status: 0 written, 1 errors, 2 usage");
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  if (runDirs.size() == 2 && !tensorBoard.empty())
    return options.usageError("--tensorboard takes one run directory");

  auto fail = [](llvm::Error error) {
    llvm::errs() << "mixtape report: error: " << llvm::toString(std::move(error)) << "\n";
    return Failure;
  };
  llvm::Expected<report::Run> run = load(runDirs[0]);
  if (!run)
    return fail(run.takeError());
  if (runDirs.size() == 2) {
    llvm::Expected<report::Run> other = load(runDirs[1]);
    if (!other)
      return fail(other.takeError());
    if (out.empty())
      out = joinPath(runDirs[0], "compare");
    if (llvm::Error error = report::writeComparison(*run, runDirs[0], *other, runDirs[1], out, llvm::outs()))
      return fail(std::move(error));
    llvm::outs() << "\nwrote " << joinPath(out, "compare.html") << "\n";
    return Success;
  }
  if (out.empty())
    out = joinPath(runDirs[0], "report");
  if (llvm::Error error = report::writeReport(*run, out, llvm::outs()))
    return fail(std::move(error));
  llvm::outs() << "\nwrote " << joinPath(out, "report.html") << "\nwrote " << joinPath(out, "forgetting.json")
               << "\n";
  if (!tensorBoard.empty()) {
    if (llvm::Error error = report::writeTensorBoard(*run, tensorBoard, hostName()))
      return fail(std::move(error));
    llvm::outs() << "wrote TensorBoard event files under " << tensorBoard << "\n";
  }
  return Success;
}
