//===- FitCommand.cpp - `mixtape fit` ------------------------------------===//
//
// Fits a scaling law to a run directory's sweep (docs/laws.md) and prints it with the best
// ratio; the charts of fit against points go under --out. Exit 0 fitted, 1 errors, 2 usage.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/report/Laws.h"
#include "mixtape/report/Report.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/Options.h"

#include "llvm/Support/raw_ostream.h"

#include <cmath>

using namespace mixtape;

int mixtape::cli::fitMain(llvm::ArrayRef<llvm::StringRef> args) {
  std::string law = "dcpt", out, maxIncrease = "3%";
  double size = 0, tokens = 0;
  std::vector<std::string> runDirs;
  report::FitOptions options;
  report::SweepSelection &sel = options.Selection;
  OptionParser parser("mixtape fit", "RUN_DIR",
                      "Fits a scaling law to the final evals of a sweep over the domain share of a stage's\n"
                      "mixture (x token budgets x model sizes) and predicts the best share (docs/laws.md).");
  parser.choice("--law", {"dcpt", "replay"}, law,
                "dcpt: the D-CPT law (Que et al. 2024) of the domain and the general loss; replay: the general "
                "loss's rise against the replayed share (after Bethune et al. 2025) (default dcpt)")
      .value("--domain", "STREAM", sel.Domain, "the domain stream: its share is r")
      .required()
      .value("--general", "STREAM", sel.General, "the general stream")
      .required()
      .value("--stage", "NAME", sel.Stage, "the swept stage (default: the one whose evaluated runs train on the domain)")
      .value("--eval", "NAME", sel.Eval, "the eval whose losses to fit (default: the one that scores both streams)")
      .value("--max-general-increase", "P", maxIncrease,
             "how far the general loss may rise over the law's at the smallest swept domain share: 3% or 0.03 "
             "(default 3%)")
      .number("--size", "N", size, "parameters to choose the ratio for (default: the largest swept)", OptionParser::Positive)
      .number("--tokens", "D", tokens, "stage tokens to choose the ratio for (default: the largest swept)",
              OptionParser::Positive)
      .value("--out", "DIR", out, "where to write the SVG charts of fit against points (default RUN_DIR/fit)")
      .positional("RUN_DIR", runDirs, 1, 1)
      .epilog("exit status: 0 fitted, 1 errors, 2 usage");
  if (std::optional<int> exit = parser.parse(args))
    return *exit;
  llvm::StringRef increase = maxIncrease;
  bool percent = increase.consume_back("%");
  double value = 0;
  if (increase.trim().getAsDouble(value) || !(value >= 0) || !std::isfinite(value))
    return parser.usageError("--max-general-increase: '" + maxIncrease + "' is not a share such as 3% or 0.03");
  options.MaxGeneralIncrease = percent ? value / 100 : value;
  options.Law = law == "replay" ? report::LawKind::Replay : report::LawKind::Dcpt;
  if (size > 0)
    options.Size = size;
  if (tokens > 0)
    options.Tokens = tokens;

  auto fail = [](llvm::Error error) {
    llvm::errs() << "mixtape fit: error: " << llvm::toString(std::move(error)) << "\n";
    return Failure;
  };
  llvm::Expected<report::Run> run = report::loadRun(runDirs[0]);
  if (!run)
    return fail(run.takeError());
  for (const std::string &warning : run->Logs.Warnings)
    llvm::errs() << "mixtape fit: warning: " << warning << "\n";
  if (out.empty())
    out = joinPath(runDirs[0], "fit");
  if (llvm::Error error = report::writeFit(*run, options, out, llvm::outs()))
    return fail(std::move(error));
  return Success;
}
