//===- PredicateDisjoint.cpp - proving that two filters share no document -===//
//
// Case analysis over `or`, then per column the set of values every comparison of a case
// allows: a number interval with excluded points or a finite set, or a finite set of
// strings. A comparison is false on a missing value or one of the other kind, so a
// column compared both as a number and as a string holds nothing. `not` is skipped (it
// keeps missing values, so it cannot be pushed into the comparisons): skipping a
// conjunct only widens a case, which keeps every proof sound.
//
//===----------------------------------------------------------------------===//
#include "mixtape/plan/Predicate.h"

#include "llvm/ADT/STLExtras.h"

#include <limits>
#include <map>
#include <string>

using namespace mixtape;
using namespace mixtape::plan;

namespace {

/// What a conjunction of comparisons lets one column hold.
struct Domain {
  bool Number = false, String = false; ///< some comparison needs a value of this kind
  double Lo = -std::numeric_limits<double>::infinity(), Hi = std::numeric_limits<double>::infinity();
  bool LoOpen = false, HiOpen = false;
  std::optional<std::vector<double>> Numbers; ///< a finite set, once an == or `in` says so
  std::vector<double> NotNumbers;
  std::optional<std::vector<std::string>> Strings;
  std::vector<std::string> NotStrings;

  bool inInterval(double v) const {
    return (LoOpen ? v > Lo : v >= Lo) && (HiOpen ? v < Hi : v <= Hi) && !llvm::is_contained(NotNumbers, v);
  }
  bool empty() const {
    if (Number && String)
      return true;
    if (Number) {
      if (Numbers)
        return llvm::none_of(*Numbers, [&](double v) { return inInterval(v); });
      // An interval of reals less finitely many points is empty only as a point or less.
      if (Lo > Hi || (Lo == Hi && (LoOpen || HiOpen || llvm::is_contained(NotNumbers, Lo))))
        return true;
    }
    if (String && Strings)
      return llvm::all_of(*Strings, [&](const std::string &s) { return llvm::is_contained(NotStrings, s); });
    return false;
  }
};

template <typename T> void intersect(std::optional<std::vector<T>> &set, std::vector<T> with) {
  if (set)
    llvm::erase_if(with, [&](const T &v) { return !llvm::is_contained(*set, v); });
  set = std::move(with);
}

/// One comparison `term` of `p`, applied to the domains of a case.
void constrain(const Predicate &p, const Predicate::Term &term, std::map<std::string, Domain> &domains) {
  using Op = Predicate::Op;
  Domain &d = domains[p.columnNames()[term.Column]];
  if (term.Operation == Op::In) {
    // A list of both kinds allows either: no single kind to require.
    if (term.NumCount && term.StrCount)
      return;
    if (term.StrCount) {
      d.String = true;
      intersect(d.Strings, std::vector<std::string>(p.strings().begin() + term.StrBegin,
                                                    p.strings().begin() + term.StrBegin + term.StrCount));
    } else {
      d.Number = true;
      intersect(d.Numbers, std::vector<double>(p.numbers().begin() + term.NumBegin,
                                               p.numbers().begin() + term.NumBegin + term.NumCount));
    }
    return;
  }
  if (term.StringLiteral) {
    d.String = true;
    const std::string &s = p.strings()[term.StrBegin];
    if (term.Operation == Op::Eq)
      intersect(d.Strings, {s});
    else
      d.NotStrings.push_back(s);
    return;
  }
  d.Number = true;
  double v = term.Number;
  switch (term.Operation) {
  case Op::Eq: intersect(d.Numbers, {v}); break;
  case Op::Ne: d.NotNumbers.push_back(v); break;
  case Op::Lt:
  case Op::Le:
    if (v < d.Hi || (v == d.Hi && term.Operation == Op::Lt)) {
      d.Hi = v;
      d.HiOpen = term.Operation == Op::Lt;
    }
    break;
  case Op::Gt:
  case Op::Ge:
    if (v > d.Lo || (v == d.Lo && term.Operation == Op::Gt)) {
      d.Lo = v;
      d.LoOpen = term.Operation == Op::Gt;
    }
    break;
  default: break;
  }
}

/// A term still to be absorbed into a case.
struct Pending {
  const Predicate *P;
  uint32_t Term;
};

/// True when the conjunction of `pending` and the case `domains` holds for no document.
/// `budget` bounds the cases `or` splits into; running out proves nothing.
bool refuted(std::vector<Pending> pending, std::map<std::string, Domain> domains, unsigned &budget) {
  using Op = Predicate::Op;
  while (!pending.empty()) {
    Pending at = pending.back();
    pending.pop_back();
    const Predicate::Term &term = at.P->terms()[at.Term];
    switch (term.Operation) {
    case Op::True:
    case Op::Not: break;
    case Op::False: return true;
    case Op::And:
      pending.push_back({at.P, term.Lhs});
      pending.push_back({at.P, term.Rhs});
      break;
    case Op::Or: {
      if (budget == 0)
        return false;
      --budget;
      std::vector<Pending> left = pending, right = std::move(pending);
      left.push_back({at.P, term.Lhs});
      right.push_back({at.P, term.Rhs});
      return refuted(std::move(left), domains, budget) && refuted(std::move(right), std::move(domains), budget);
    }
    default: {
      constrain(*at.P, term, domains);
      if (domains[at.P->columnNames()[term.Column]].empty())
        return true;
    }
    }
  }
  return false;
}

} // namespace

bool mixtape::plan::provablyDisjoint(llvm::ArrayRef<Predicate> a, llvm::ArrayRef<Predicate> b) {
  std::vector<Pending> pending;
  for (llvm::ArrayRef<Predicate> side : {a, b})
    for (const Predicate &p : side)
      if (!p.empty())
        pending.push_back({&p, static_cast<uint32_t>(p.terms().size() - 1)});
  unsigned budget = 256;
  return refuted(std::move(pending), {}, budget);
}
