// The statistics of a false-accept rate measured on a finite set of impostor pairs.
//
// WHAT THIS REPRESENTS
//   Exact binomial (Clopper-Pearson) confidence bounds and the conversion between the rate of
//   one comparison (a probe against one gallery entry: the "pair" FAR) and the rate a door sees
//   (a stranger is compared with every entry of the gallery: the "door" FAR). The method and its
//   assumptions are in docs/operating-point.md.
//   Hand-written (the binomial tail through std::lgamma, a bisection): Debian's only packaged
//   incomplete-beta inverse is Boost.Math, whose headers the project does not otherwise need.
// THREAD SAFETY
//   Pure functions.
#pragma once

#include <cstddef>

namespace faceadapt::calib {

// P(X <= k) for X ~ Binomial(n, p). requires 0 <= p <= 1. Exact to ~1e-12 relative for n up to
// 1e8 (terms summed in log space from the mode down).
double binomial_cdf(std::size_t k, std::size_t n, double p);

// The one-sided Clopper-Pearson upper bound on a rate of which k events were seen in n trials:
// the p with P(X <= k | n, p) = 1 - confidence (1 when k >= n; 1 when n == 0).
// requires 0 < confidence < 1. Solved by bisection to 1e-14 absolute.
double clopper_pearson_upper(std::size_t k, std::size_t n, double confidence);
// The one-sided Clopper-Pearson lower bound: the p with P(X >= k | n, p) = 1 - confidence (0 when
// k == 0; 0 when n == 0). With confidence 0.975 it and clopper_pearson_upper(k, n, 0.975) are the
// two-sided 95% interval. requires k <= n, 0 < confidence < 1. Bisection to 1e-14 absolute.
double clopper_pearson_lower(std::size_t k, std::size_t n, double confidence);

// The door's false-accept rate when each of `comparisons` independent comparisons accepts a
// stranger with probability pair_far: 1 - (1 - pair_far)^comparisons (Sidak). For positively
// dependent comparisons (a face close to one enrolled face is close to others) it is an upper
// bound; pair_far * comparisons (the union bound) is always one and differs little below 1e-2.
// comparisons == 0 gives 0.
double door_far_from_pair(double pair_far, std::size_t comparisons);
// Its inverse: the pair rate that keeps the door's at door_far. comparisons == 0 gives door_far.
double pair_far_from_door(double door_far, std::size_t comparisons);

// The fewest impostor pairs with which a pair rate `pair_far` can be resolved at `confidence`:
// the smallest n with clopper_pearson_upper(0, n, confidence) <= pair_far, i.e.
// ceil(ln(1 - confidence) / ln(1 - pair_far)) (about 3 / pair_far at 95 %).
// requires 0 < pair_far < 1, 0 < confidence < 1.
std::size_t pairs_to_resolve(double pair_far, double confidence);

}  // namespace faceadapt::calib
