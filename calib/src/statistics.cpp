#include "faceadapt/calib/statistics.hpp"

#include <algorithm>
#include <cmath>

namespace faceadapt::calib {

double binomial_cdf(std::size_t k, std::size_t n, double p) {
    if (k >= n || p <= 0.0) return 1.0;
    if (p >= 1.0) return 0.0;
    const double nn = static_cast<double>(n);
    const double lp = std::log(p), lq = std::log1p(-p), lg = std::lgamma(nn + 1.0);
    auto log_term = [&](std::size_t i) {
        const double ii = static_cast<double>(i);
        return lg - std::lgamma(ii + 1.0) - std::lgamma(nn - ii + 1.0) + ii * lp + (nn - ii) * lq;
    };
    // Terms grow up to the mode and fall after it: sum from the largest one included, in log space.
    const double mode = std::floor((nn + 1.0) * p);
    const std::size_t top = static_cast<std::size_t>(std::min(mode, static_cast<double>(k)));
    const double lmax = log_term(top);
    double sum = 0.0;
    for (std::size_t i = top + 1; i-- > 0;) {  // down from the largest term
        const double t = std::exp(log_term(i) - lmax);
        sum += t;
        if (t < 1e-17 * sum) break;  // the rest are smaller still (away from the mode the terms fall)
    }
    for (std::size_t i = top + 1; i <= k; ++i) {  // up to k, when k is past the mode
        const double t = std::exp(log_term(i) - lmax);
        sum += t;
        if (t < 1e-17 * sum) break;
    }
    return std::min(1.0, sum * std::exp(lmax));
}

double clopper_pearson_upper(std::size_t k, std::size_t n, double confidence) {
    if (n == 0 || k >= n) return 1.0;
    const double alpha = 1.0 - confidence;
    if (k == 0) return -std::expm1(std::log(alpha) / static_cast<double>(n));  // 1 - alpha^(1/n), exact
    double lo = static_cast<double>(k) / static_cast<double>(n), hi = 1.0;  // cdf(lo) >= alpha > cdf(hi)
    for (int i = 0; i < 200 && hi - lo > 1e-14; ++i) {
        const double mid = 0.5 * (lo + hi);
        (binomial_cdf(k, n, mid) > alpha ? lo : hi) = mid;
    }
    return hi;
}

double clopper_pearson_lower(std::size_t k, std::size_t n, double confidence) {
    if (n == 0 || k == 0) return 0.0;
    const double alpha = 1.0 - confidence;
    if (k >= n) return std::exp(std::log(alpha) / static_cast<double>(n));  // alpha^(1/n)
    // P(X >= k) = 1 - cdf(k - 1) rises with p: cdf(k - 1, lo) > 1 - alpha >= cdf(k - 1, hi).
    double lo = 0.0, hi = static_cast<double>(k) / static_cast<double>(n);
    for (int i = 0; i < 200 && hi - lo > 1e-14; ++i) {
        const double mid = 0.5 * (lo + hi);
        (binomial_cdf(k - 1, n, mid) > 1.0 - alpha ? lo : hi) = mid;
    }
    return lo;
}

double door_far_from_pair(double pair_far, std::size_t comparisons) {
    if (comparisons == 0) return 0.0;
    return -std::expm1(static_cast<double>(comparisons) * std::log1p(-std::min(pair_far, 1.0)));
}

double pair_far_from_door(double door_far, std::size_t comparisons) {
    if (comparisons == 0) return door_far;
    return -std::expm1(std::log1p(-std::min(door_far, 1.0)) / static_cast<double>(comparisons));
}

std::size_t pairs_to_resolve(double pair_far, double confidence) {
    const double n = std::log(1.0 - confidence) / std::log1p(-pair_far);
    auto out = static_cast<std::size_t>(std::ceil(n - 1e-9));
    while (out > 1 && clopper_pearson_upper(0, out - 1, confidence) <= pair_far) --out;  // rounding
    while (clopper_pearson_upper(0, out, confidence) > pair_far) ++out;
    return out;
}

}  // namespace faceadapt::calib
