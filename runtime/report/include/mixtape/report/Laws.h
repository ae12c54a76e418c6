//===- Laws.h - scaling laws of continual pre-training, fitted ---*- C++ -*-===//
//
// `mixtape fit RUN_DIR` fits a law to the final evals of a sweep (docs/laws.md):
//
// - D-CPT (Que et al. 2024, "D-CPT Law: Domain-specific Continual Pre-Training Scaling Law
//   for Large Language Models", eq. 6): L(N, D, r) = E + A/N^α + B·r^η/D^β + C/(r + ε)^γ,
//   fitted once to the domain loss with r the domain's share of the stage's tokens, once to
//   the general loss with r the general corpus's share (1 - the domain's), as the paper
//   does (its Figure 1 plots L_g against r_g);
// - replay (after Bethune et al. 2025, "Scaling Laws for Forgetting during Finetuning with
//   Pretraining Data Injection": injected pretraining data act as more parameters for the
//   pretraining task, (1 + B·p)·N): the general loss's relative rise over the start model's,
//   L/L0 - 1 = A·D^β / ((1 + B·p)·N)^α, with p the replayed share.
//
// Least squares by Levenberg–Marquardt (Eigen's, header-only) from several starts, the
// coefficients of each start solved linearly for its exponents; positive parameters are
// fitted as their logarithms. Confidence intervals: 95%, Student's t on the covariance
// s²(JᵀJ)⁻¹ at the optimum; held-out error: leave-one-out refits.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>
#include <string>
#include <vector>

namespace mixtape::report {

/// Where a law is evaluated: model parameters, tokens of the stage, and the share of the
/// corpus the law's r means (the D-CPT law: the loss's own corpus; replay: replayed data).
struct LawInput {
  double N = 0, D = 0, R = 0;
};

/// The D-CPT law's parameters, in the paper's names.
struct DcptParameters {
  double E = 0, A = 0, Alpha = 0, B = 0, Eta = 0, Beta = 0, C = 0, Gamma = 0, Epsilon = 0;
};
double dcptLoss(const DcptParameters &p, const LawInput &x);

/// The replay law's parameters: L/L0 - 1 = A·D^β / ((1 + B·p)·N)^α.
struct ReplayParameters {
  double A = 0, Beta = 0, B = 0, Alpha = 0;
};
double replayForgetting(const ReplayParameters &p, const LawInput &x);

/// A fitted parameter with its 95% confidence interval; without one where the points do
/// not determine it (a singular JᵀJ, or no degrees of freedom left).
struct FittedParameter {
  std::string Name;
  double Value = 0;
  std::optional<double> Lo, Hi;
  /// Not fitted: held at Value because the sweep has one value of the variable it scales.
  bool Held = false;
};

struct LawFit {
  std::vector<FittedParameter> Parameters; ///< in the law's order
  size_t Points = 0, Free = 0;             ///< points fitted, parameters fitted
  double Rmse = 0;                         ///< on the points fitted
  /// Leave-one-out: each point predicted by a fit to the others; none when fewer points
  /// than free parameters would remain.
  std::optional<double> LooRmse;
  /// Why parameters are held: "one model size: A/N^α is part of E".
  std::vector<std::string> Notes;
};

/// Fits the D-CPT law to (x, loss) pairs. With one value of N the A/N^α term is part of E
/// (A = 0), with one value of D so is D^β of B (β = 0). An error where the points are fewer
/// than the free parameters, or a loss or input is not finite and positive.
llvm::Expected<LawFit> fitDcpt(llvm::ArrayRef<LawInput> x, llvm::ArrayRef<double> loss);
DcptParameters dcptParameters(const LawFit &fit);

/// Fits the replay law to (x, L/L0 - 1) pairs, x.R the replayed share.
llvm::Expected<LawFit> fitReplay(llvm::ArrayRef<LawInput> x, llvm::ArrayRef<double> forgetting);
ReplayParameters replayParameters(const LawFit &fit);

/// The domain share that minimizes the domain law's loss at (n, d) among those whose general
/// loss is at most (1 + maxIncrease) times the general loss at `referenceShare` (the
/// smallest domain share swept): shares from it to `largestShare` (the sweep's range: the
/// law is not trusted beyond it) in steps of 1/1000, the smaller on ties.
struct RatioChoice {
  double Ratio = 0;
  double DomainLoss = 0, GeneralLoss = 0, GeneralReference = 0;
};
RatioChoice bestRatio(const DcptParameters &domain, const DcptParameters &general, double n, double d,
                      double referenceShare, double largestShare, double maxIncrease);

//===--- A sweep's points, from a run directory ---------------------------===//

struct Run;

/// Which evals of which runs are the sweep: the domain and general streams (their "val"
/// split), the stage whose variants are the runs (default: the one stage whose evaluated
/// train nodes train on the domain stream), the eval (default: any one that scores both).
struct SweepSelection {
  std::string Domain, General, Stage, Eval;
};

/// One run of the sweep: a train node of the stage with a final eval of both streams.
struct LawPoint {
  std::string Model; ///< the stage variant that ends at the node (else the node's name)
  /// N: plan::parameterCount of the chain's init; D: the tokens the stage trained up to
  /// this node; R: the domain stream's share of them (from the ledgers, as trained).
  LawInput X;
  double DomainLoss = 0, GeneralLoss = 0;
  /// The general loss of the model the stage started from, where it was evaluated.
  std::optional<double> GeneralBefore;
};

struct Sweep {
  std::string Stage, Eval;
  std::vector<LawPoint> Points;
};

/// The points of `selection` in `run`; errors name what is missing and how to get it.
llvm::Expected<Sweep> sweepPoints(const Run &run, const SweepSelection &selection);

enum class LawKind { Dcpt, Replay };

struct FitOptions {
  LawKind Law = LawKind::Dcpt;
  SweepSelection Selection;
  double MaxGeneralIncrease = 0.03;
  std::optional<double> Size, Tokens; ///< where to choose the ratio; default: the largest swept
};

/// Fits the law to the run's sweep, prints the parameters, errors and (D-CPT) the best
/// ratio, ending with the line "best ratio: R"; writes one SVG per fitted loss into outDir.
llvm::Error writeFit(const Run &run, const FitOptions &options, llvm::StringRef outDir, llvm::raw_ostream &os);

} // namespace mixtape::report
