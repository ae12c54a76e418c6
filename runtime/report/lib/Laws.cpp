//===- Laws.cpp - D-CPT and replay laws by Levenberg–Marquardt ------------===//
//
// Eigen's Levenberg–Marquardt (unsupported/Eigen/LevenbergMarquardt, a port of MINPACK's
// lmder) with analytic Jacobians: header-only and MPL-2.0, where GSL would make the binary
// GPL and Ceres brings glog and gflags for a problem of nine parameters (docs/laws.md).
//
//===----------------------------------------------------------------------===//
#include "mixtape/report/Laws.h"

#include "mixtape/support/Error.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <Eigen/Dense>
#include <unsupported/Eigen/LevenbergMarquardt>

#include <cmath>
#include <functional>
#include <limits>

using namespace mixtape;
using namespace mixtape::report;

namespace {

/// A law: its value and gradient in its own parameters p; `Positive` ones are fitted as
/// log p, so that A, B, C and ε stay above zero.
struct Form {
  std::vector<std::string> Names;
  std::vector<bool> Positive;
  std::function<double(const std::vector<double> &p, const LawInput &x)> Value;
  std::function<void(const std::vector<double> &p, const LawInput &x, std::vector<double> &grad)> Gradient;
};

/// Parameters as fitted (q: log p where positive) and as the law reads them.
std::vector<double> lawParameters(const Form &form, const Eigen::VectorXd &q) {
  std::vector<double> p(q.size());
  for (Eigen::Index k = 0; k < q.size(); ++k)
    p[k] = form.Positive[k] ? std::exp(q[k]) : q[k];
  return p;
}

/// Residuals and their Jacobian in the free parameters; the held ones keep Start's values.
struct Residuals : Eigen::DenseFunctor<double> {
  const Form &Law;
  llvm::ArrayRef<LawInput> X;
  llvm::ArrayRef<double> Y;
  const std::vector<size_t> &FreeIndex;
  Eigen::VectorXd Start;

  Residuals(const Form &law, llvm::ArrayRef<LawInput> x, llvm::ArrayRef<double> y, const std::vector<size_t> &free,
            Eigen::VectorXd start)
      : DenseFunctor<double>(static_cast<int>(free.size()), static_cast<int>(x.size())), Law(law), X(x), Y(y),
        FreeIndex(free), Start(std::move(start)) {}

  Eigen::VectorXd full(const InputType &free) const {
    Eigen::VectorXd q = Start;
    for (size_t k = 0; k < FreeIndex.size(); ++k)
      q[FreeIndex[k]] = free[static_cast<Eigen::Index>(k)];
    return q;
  }

  int operator()(const InputType &free, ValueType &out) const {
    std::vector<double> p = lawParameters(Law, full(free));
    for (size_t i = 0; i < X.size(); ++i) {
      double r = Law.Value(p, X[i]) - Y[i];
      // A step into overflow is a bad step, not a crash: a huge residual makes LM shrink it.
      out[static_cast<Eigen::Index>(i)] = std::isfinite(r) ? r : 1e30;
    }
    return 0;
  }

  int df(const InputType &free, JacobianType &jac) const {
    std::vector<double> p = lawParameters(Law, full(free));
    std::vector<double> grad(p.size());
    for (size_t i = 0; i < X.size(); ++i) {
      Law.Gradient(p, X[i], grad);
      for (size_t k = 0; k < FreeIndex.size(); ++k) {
        size_t j = FreeIndex[k];
        double g = Law.Positive[j] ? grad[j] * p[j] : grad[j]; // d/d(log p) = p d/dp
        jac(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(k)) = std::isfinite(g) ? g : 0;
      }
    }
    return 0;
  }
};

struct Optimum {
  Eigen::VectorXd Q;
  double Ssr = std::numeric_limits<double>::infinity();
};

Optimum minimize(const Form &form, llvm::ArrayRef<LawInput> x, llvm::ArrayRef<double> y,
                 const std::vector<size_t> &free, const Eigen::VectorXd &start) {
  Residuals f(form, x, y, free, start);
  Eigen::VectorXd v(free.size());
  for (size_t k = 0; k < free.size(); ++k)
    v[static_cast<Eigen::Index>(k)] = start[free[k]];
  Eigen::LevenbergMarquardt<Residuals> lm(f);
  lm.setMaxfev(2000);
  lm.setXtol(1e-12);
  lm.setFtol(1e-14);
  lm.minimize(v);
  Optimum o;
  o.Q = f.full(v);
  Eigen::VectorXd r(x.size());
  f(v, r);
  o.Ssr = r.squaredNorm();
  if (!std::isfinite(o.Ssr))
    o.Ssr = std::numeric_limits<double>::infinity();
  return o;
}

/// Student's t at 97.5% for `dof` degrees of freedom (a 95% two-sided interval): a table
/// to 30, then the Cornish–Fisher expansion around the normal's 1.959964 (Abramowitz and
/// Stegun 26.7.5; within 1e-4 beyond 30).
double tQuantile975(size_t dof) {
  static const double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                 2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (dof == 0)
    return std::numeric_limits<double>::infinity();
  if (dof <= std::size(table))
    return table[dof - 1];
  const double z = 1.959964, v = static_cast<double>(dof);
  const double z3 = z * z * z, z5 = z3 * z * z, z7 = z5 * z * z;
  return z + (z3 + z) / (4 * v) + (5 * z5 + 16 * z3 + 3 * z) / (96 * v * v) +
         (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * v * v * v);
}

/// Starts: every combination of the exponent grids; each start's other parameters from
/// `complete` (the coefficients solved linearly for those exponents).
llvm::Expected<LawFit> fitForm(const Form &form, llvm::ArrayRef<LawInput> x, llvm::ArrayRef<double> y,
                               const std::vector<size_t> &free, const std::vector<Eigen::VectorXd> &starts,
                               std::vector<std::string> notes) {
  const size_t n = x.size(), k = free.size();
  if (n < k)
    return makeError(llvm::formatv("{0} point{1} for {2} free parameters: the law needs at least as many runs as "
                                   "parameters (sweep ratio × tokens × model size)",
                                   n, n == 1 ? "" : "s", k)
                         .str());
  Optimum best;
  for (const Eigen::VectorXd &start : starts) {
    Optimum o = minimize(form, x, y, free, start);
    if (o.Ssr < best.Ssr)
      best = o;
  }
  if (!std::isfinite(best.Ssr))
    return makeError("the fit did not converge from any start");

  LawFit fit;
  fit.Points = n;
  fit.Free = k;
  fit.Rmse = std::sqrt(best.Ssr / static_cast<double>(n));
  fit.Notes = std::move(notes);

  // Covariance of the free q at the optimum: s²(JᵀJ)⁻¹, s² = SSR / (n - k).
  Residuals f(form, x, y, free, best.Q);
  Eigen::VectorXd v(k);
  for (size_t j = 0; j < k; ++j)
    v[static_cast<Eigen::Index>(j)] = best.Q[free[j]];
  Residuals::JacobianType jac(n, k);
  f.df(v, jac);
  Eigen::MatrixXd jtj = jac.transpose() * jac;
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eigen(jtj);
  bool determined = n > k && eigen.info() == Eigen::Success && eigen.eigenvalues().minCoeff() >
                                                                   1e-13 * std::max(eigen.eigenvalues().maxCoeff(), 1e-300);
  Eigen::MatrixXd cov;
  if (determined)
    cov = best.Ssr / static_cast<double>(n - k) * jtj.inverse();
  const double t = tQuantile975(n - k);

  std::vector<double> p = lawParameters(form, best.Q);
  for (size_t j = 0; j < form.Names.size(); ++j) {
    FittedParameter fp;
    fp.Name = form.Names[j];
    fp.Value = p[j];
    auto at = std::find(free.begin(), free.end(), j);
    fp.Held = at == free.end();
    if (!fp.Held && determined) {
      auto col = static_cast<Eigen::Index>(at - free.begin());
      double se = std::sqrt(std::max(cov(col, col), 0.0));
      double q = best.Q[static_cast<Eigen::Index>(j)];
      fp.Lo = form.Positive[j] ? std::exp(q - t * se) : q - t * se;
      fp.Hi = form.Positive[j] ? std::exp(q + t * se) : q + t * se;
    }
    fit.Parameters.push_back(fp);
  }

  // Leave-one-out, each refit starting from the full fit's optimum.
  if (n >= k + 1 && n >= 2) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      std::vector<LawInput> xs;
      std::vector<double> ys;
      for (size_t m = 0; m < n; ++m)
        if (m != i) {
          xs.push_back(x[m]);
          ys.push_back(y[m]);
        }
      Optimum o = minimize(form, xs, ys, free, best.Q);
      double e = form.Value(lawParameters(form, o.Q), x[i]) - y[i];
      sum += e * e;
    }
    fit.LooRmse = std::sqrt(sum / static_cast<double>(n));
  }
  return fit;
}

size_t levels(llvm::ArrayRef<LawInput> x, double LawInput::*field) {
  std::vector<double> values;
  for (const LawInput &p : x)
    if (!llvm::is_contained(values, p.*field))
      values.push_back(p.*field);
  return values.size();
}

bool distinct(llvm::ArrayRef<LawInput> x, double LawInput::*field) { return levels(x, field) > 1; }

llvm::Error checkPoints(llvm::ArrayRef<LawInput> x, llvm::ArrayRef<double> y, bool lossPositive) {
  if (x.size() != y.size())
    return makeError("the law's inputs and values differ in number");
  for (size_t i = 0; i < x.size(); ++i) {
    if (!(x[i].N > 0) || !(x[i].D > 0) || !std::isfinite(x[i].N) || !std::isfinite(x[i].D))
      return makeError(llvm::formatv("point {0}: parameters {1} and tokens {2} must be positive", i, x[i].N, x[i].D)
                           .str());
    if (!(x[i].R >= 0 && x[i].R <= 1))
      return makeError(llvm::formatv("point {0}: share {1} is not between 0 and 1", i, x[i].R).str());
    if (!std::isfinite(y[i]) || (lossPositive && !(y[i] > 0)))
      return makeError(llvm::formatv("point {0}: value {1} is not a finite{2} number", i, y[i],
                                     lossPositive ? ", positive" : "")
                           .str());
  }
  return llvm::Error::success();
}

/// Linear least squares of y on `columns` (one per coefficient); coefficients that come
/// out non-positive start at a small positive value (they are fitted as logarithms).
Eigen::VectorXd linearCoefficients(const Eigen::MatrixXd &columns, const Eigen::VectorXd &y, double floor) {
  Eigen::VectorXd c = columns.colPivHouseholderQr().solve(y);
  for (Eigen::Index j = 0; j < c.size(); ++j)
    if (!std::isfinite(c[j]))
      c[j] = floor;
  return c;
}

//===--- D-CPT ------------------------------------------------------------===//

enum Dcpt { kE, kA, kAlpha, kB, kEta, kBeta, kC, kGamma, kEpsilon, kDcptSize };

Form dcptForm() {
  Form f;
  f.Names = {"E", "A", "alpha", "B", "eta", "beta", "C", "gamma", "epsilon"};
  f.Positive = {false, true, false, true, false, false, true, false, true};
  f.Value = [](const std::vector<double> &p, const LawInput &x) {
    return dcptLoss({p[kE], p[kA], p[kAlpha], p[kB], p[kEta], p[kBeta], p[kC], p[kGamma], p[kEpsilon]}, x);
  };
  f.Gradient = [](const std::vector<double> &p, const LawInput &x, std::vector<double> &g) {
    double size = p[kA] * std::pow(x.N, -p[kAlpha]);
    double data = x.R > 0 ? p[kB] * std::pow(x.R, p[kEta]) * std::pow(x.D, -p[kBeta]) : 0;
    double share = p[kC] * std::pow(x.R + p[kEpsilon], -p[kGamma]);
    g[kE] = 1;
    g[kA] = size / p[kA];
    g[kAlpha] = -std::log(x.N) * size;
    g[kB] = data / p[kB];
    g[kEta] = x.R > 0 ? std::log(x.R) * data : 0;
    g[kBeta] = -std::log(x.D) * data;
    g[kC] = share / p[kC];
    g[kGamma] = -std::log(x.R + p[kEpsilon]) * share;
    g[kEpsilon] = -p[kGamma] / (x.R + p[kEpsilon]) * share;
  };
  return f;
}

} // namespace

double mixtape::report::dcptLoss(const DcptParameters &p, const LawInput &x) {
  double data = x.R > 0 ? p.B * std::pow(x.R, p.Eta) / std::pow(x.D, p.Beta) : 0;
  return p.E + p.A / std::pow(x.N, p.Alpha) + data + p.C / std::pow(x.R + p.Epsilon, p.Gamma);
}

double mixtape::report::replayForgetting(const ReplayParameters &p, const LawInput &x) {
  return p.A * std::pow(x.D, p.Beta) / std::pow((1 + p.B * x.R) * x.N, p.Alpha);
}

llvm::Expected<LawFit> mixtape::report::fitDcpt(llvm::ArrayRef<LawInput> x, llvm::ArrayRef<double> loss) {
  if (llvm::Error e = checkPoints(x, loss, true))
    return std::move(e);
  if (x.empty())
    return makeError("no points to fit");
  const bool sizes = distinct(x, &LawInput::N), budgets = distinct(x, &LawInput::D);
  // Two sizes give A/N^alpha one difference to fit: A and alpha together are free along a
  // curve, so alpha is held at Chinchilla's 0.34 (Hoffmann et al. 2022) and A fitted.
  const bool twoSizes = levels(x, &LawInput::N) == 2;
  std::vector<size_t> free;
  std::vector<std::string> notes;
  for (size_t j = 0; j < kDcptSize; ++j) {
    if ((!sizes && (j == kA || j == kAlpha)) || (twoSizes && j == kAlpha))
      continue;
    if (!budgets && j == kBeta)
      continue;
    free.push_back(j);
  }
  if (!sizes)
    notes.push_back("one model size: A/N^alpha is part of E (A = 0)");
  if (twoSizes)
    notes.push_back("two model sizes: alpha held at 0.34 (Hoffmann et al. 2022), A fitted");
  if (!budgets)
    notes.push_back("one token budget: D^beta is part of B (beta = 0)");

  Eigen::VectorXd y = Eigen::Map<const Eigen::VectorXd>(loss.data(), static_cast<Eigen::Index>(loss.size()));
  const double floor = 1e-6 * y.cwiseAbs().mean();
  const std::vector<double> alphas = twoSizes ? std::vector<double>{0.34}
                                     : sizes  ? std::vector<double>{0.1, 0.3, 0.6}
                                              : std::vector<double>{0};
  const std::vector<double> betas = budgets ? std::vector<double>{0.1, 0.3, 0.6} : std::vector<double>{0};
  std::vector<Eigen::VectorXd> starts;
  for (double alpha : alphas)
    for (double beta : betas)
      for (double eta : {0.3, 1.0})
        for (double gamma : {0.1, 0.3, 0.8})
          for (double epsilon : {0.01, 0.1}) {
            // Given the exponents the law is linear in E, A, B and C.
            Eigen::MatrixXd cols(x.size(), 4);
            for (size_t i = 0; i < x.size(); ++i) {
              auto r = static_cast<Eigen::Index>(i);
              cols(r, 0) = 1;
              cols(r, 1) = sizes ? std::pow(x[i].N, -alpha) : 0;
              cols(r, 2) = x[i].R > 0 ? std::pow(x[i].R, eta) * std::pow(x[i].D, -beta) : 0;
              cols(r, 3) = std::pow(x[i].R + epsilon, -gamma);
            }
            Eigen::VectorXd c = linearCoefficients(cols, y, floor);
            Eigen::VectorXd q(kDcptSize);
            auto logOf = [&](double v) { return std::log(std::max(v, floor)); };
            // Without sizes A is held at exactly 0: log 0.
            q << c[0], sizes ? logOf(c[1]) : -std::numeric_limits<double>::infinity(), alpha, logOf(c[2]), eta, beta, logOf(c[3]), gamma,
                std::log(epsilon);
            starts.push_back(q);
          }
  return fitForm(dcptForm(), x, loss, free, starts, std::move(notes));
}

DcptParameters mixtape::report::dcptParameters(const LawFit &fit) {
  auto v = [&](size_t k) { return fit.Parameters[k].Value; };
  return {v(kE), v(kA), v(kAlpha), v(kB), v(kEta), v(kBeta), v(kC), v(kGamma), v(kEpsilon)};
}

namespace {

enum Replay { kRA, kRBeta, kRB, kRAlpha, kReplaySize };

Form replayForm() {
  Form f;
  f.Names = {"A", "beta", "B", "alpha"};
  f.Positive = {true, false, true, false};
  f.Value = [](const std::vector<double> &p, const LawInput &x) {
    return replayForgetting({p[kRA], p[kRBeta], p[kRB], p[kRAlpha]}, x);
  };
  f.Gradient = [](const std::vector<double> &p, const LawInput &x, std::vector<double> &g) {
    double v = replayForgetting({p[kRA], p[kRBeta], p[kRB], p[kRAlpha]}, x);
    g[kRA] = v / p[kRA];
    g[kRBeta] = std::log(x.D) * v;
    g[kRB] = -p[kRAlpha] * x.R / (1 + p[kRB] * x.R) * v;
    g[kRAlpha] = -std::log((1 + p[kRB] * x.R) * x.N) * v;
  };
  return f;
}

} // namespace

llvm::Expected<LawFit> mixtape::report::fitReplay(llvm::ArrayRef<LawInput> x, llvm::ArrayRef<double> forgetting) {
  if (llvm::Error e = checkPoints(x, forgetting, false))
    return std::move(e);
  if (x.empty())
    return makeError("no points to fit");
  if (!distinct(x, &LawInput::R))
    return makeError("one replay share only: the replay law needs a sweep over the replayed fraction");
  const bool budgets = distinct(x, &LawInput::D);
  std::vector<size_t> free = {kRA, kRB, kRAlpha};
  std::vector<std::string> notes;
  if (budgets)
    free.push_back(kRBeta);
  else
    notes.push_back("one token budget: D^beta is part of A (beta = 0)");
  std::sort(free.begin(), free.end());
  Eigen::VectorXd y = Eigen::Map<const Eigen::VectorXd>(forgetting.data(),
                                                        static_cast<Eigen::Index>(forgetting.size()));
  const double floor = 1e-6 * std::max(y.cwiseAbs().mean(), 1e-12);
  std::vector<Eigen::VectorXd> starts;
  for (double beta : budgets ? std::vector<double>{0.2, 0.5, 1.0} : std::vector<double>{0})
    for (double alpha : {0.2, 0.5, 1.0})
      for (double b : {1.0, 10.0, 100.0}) {
        Eigen::MatrixXd col(x.size(), 1);
        for (size_t i = 0; i < x.size(); ++i)
          col(static_cast<Eigen::Index>(i), 0) = replayForgetting({1, beta, b, alpha}, x[i]);
        double a = linearCoefficients(col, y, floor)[0];
        Eigen::VectorXd q(kReplaySize);
        q << std::log(std::max(a, floor)), beta, std::log(b), alpha;
        starts.push_back(q);
      }
  return fitForm(replayForm(), x, forgetting, free, starts, std::move(notes));
}

ReplayParameters mixtape::report::replayParameters(const LawFit &fit) {
  auto v = [&](size_t k) { return fit.Parameters[k].Value; };
  return {v(kRA), v(kRBeta), v(kRB), v(kRAlpha)};
}

RatioChoice mixtape::report::bestRatio(const DcptParameters &domain, const DcptParameters &general, double n, double d,
                                       double referenceShare, double largestShare, double maxIncrease) {
  RatioChoice best;
  best.GeneralReference = dcptLoss(general, {n, d, 1 - referenceShare});
  const double bound = (1 + maxIncrease) * best.GeneralReference;
  // The reference share itself always qualifies (maxIncrease >= 0), grid point or not.
  best.Ratio = referenceShare;
  best.GeneralLoss = best.GeneralReference;
  best.DomainLoss = dcptLoss(domain, {n, d, referenceShare});
  constexpr int kSteps = 1000;
  for (int i = 0; i <= kSteps; ++i) {
    double r = static_cast<double>(i) / kSteps;
    double g = dcptLoss(general, {n, d, 1 - r});
    if (r < referenceShare || r > largestShare || !(g <= bound))
      continue;
    double l = dcptLoss(domain, {n, d, r});
    if (l < best.DomainLoss || (l == best.DomainLoss && r < best.Ratio)) {
      best.Ratio = r;
      best.DomainLoss = l;
      best.GeneralLoss = g;
    }
  }
  return best;
}
