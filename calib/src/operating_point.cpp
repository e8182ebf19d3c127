#include "faceadapt/calib/operating_point.hpp"

#include <algorithm>

#include "faceadapt/calib/statistics.hpp"
#include "text.hpp"

namespace faceadapt::calib {
namespace {

std::string g(double v) { return detail::number(v, "%.3g"); }

bool in_open_unit(double v) { return std::isfinite(v) && v > 0.0 && v < 1.0; }

// Below this the threshold is moved under d(k+1) by at most this much (or half the gap to the
// distance before it): a safety against the 4e-7 embedding differences of the door's runtime.
constexpr double kBelow = 1e-4;

}  // namespace

std::string_view to_string(FarKind kind) { return kind == FarKind::door ? "door" : "pair"; }

std::optional<FarKind> far_kind_from_string(std::string_view name) {
    if (name == "door") return FarKind::door;
    if (name == "pair") return FarKind::pair;
    return std::nullopt;
}

double accepted_fraction(const std::vector<double>& d, double t) {
    if (d.empty()) return NAN;
    return static_cast<double>(std::count_if(d.begin(), d.end(), [t](double x) { return x <= t; })) / d.size();
}

double rejected_fraction(const std::vector<double>& d, double t) {
    if (d.empty()) return NAN;
    return 1.0 - accepted_fraction(d, t);
}

namespace {

void check_request(const std::vector<double>& impostor, const std::vector<double>& genuine, const CalibrationRequest& r) {
    if (!in_open_unit(r.target_far)) throw std::invalid_argument("calibrate: target_far must be in (0, 1)");
    if (!in_open_unit(r.confidence)) throw std::invalid_argument("calibrate: confidence must be in (0, 1)");
    if (r.comparisons < 1) throw std::invalid_argument("calibrate: comparisons must be >= 1");
    if (!(r.margin_fraction >= 0.0 && r.margin_fraction < 1.0))
        throw std::invalid_argument("calibrate: margin_fraction must be in [0, 1)");
    if (!(r.fallback_threshold > 0.0 && std::isfinite(r.fallback_threshold)))
        throw std::invalid_argument("calibrate: fallback_threshold must be finite and > 0");
    for (const std::vector<double>* set : {static_cast<const std::vector<double>*>(&impostor), &genuine})
        for (double d : *set)
            if (!std::isfinite(d) || d < 0.0) throw std::invalid_argument("calibrate: a distance is not finite and >= 0");
}

// The request's members of a point.
OperatingPoint start(const CalibrationRequest& r) {
    OperatingPoint p;
    p.target_far = r.target_far;
    p.far_kind = r.far_kind;
    p.comparisons = r.far_kind == FarKind::door ? r.comparisons : 1;
    p.confidence = r.confidence;
    p.pair_far_target = r.far_kind == FarKind::door ? pair_far_from_door(r.target_far, p.comparisons) : r.target_far;
    return p;
}

double as_kind(const OperatingPoint& p, double pair) {
    return p.far_kind == FarKind::door ? door_far_from_pair(pair, p.comparisons) : pair;
}

}  // namespace

OperatingPoint calibrate(std::vector<double> impostor, const std::vector<double>& genuine, const CalibrationRequest& r) {
    check_request(impostor, genuine, r);
    OperatingPoint p = start(r);
    auto as_kind = [&](double pair) { return calib::as_kind(p, pair); };

    std::sort(impostor.begin(), impostor.end());
    const std::size_t n = impostor.size();
    p.impostor_pairs = n;
    p.genuine_pairs = genuine.size();
    if (n == 0) {
        p.threshold = r.fallback_threshold;
        p.note = "no impostor pairs: the fallback threshold " + g(p.threshold) + " is not calibrated (" +
                 std::to_string(pairs_to_resolve(p.pair_far_target, r.confidence)) + " pairs would resolve the target)";
    } else {
        p.smallest_impostor_distance = impostor.front();
        p.min_resolvable_far = as_kind(clopper_pearson_upper(0, n, r.confidence));
        // The largest k whose bound is within the target (the bound grows with k).
        std::size_t k = 0;
        const bool resolvable = clopper_pearson_upper(0, n, r.confidence) <= p.pair_far_target;
        if (resolvable) {
            std::size_t lo = 0, hi = n - 1;  // bound(lo) <= target; find the last such
            while (lo < hi) {
                const std::size_t mid = lo + (hi - lo + 1) / 2;
                if (clopper_pearson_upper(mid, n, r.confidence) <= p.pair_far_target) lo = mid;
                else hi = mid - 1;
            }
            k = lo;
        }
        // Just below d(k+1) = impostor[k], above the largest distance smaller than it.
        const double upper = impostor[k];
        std::size_t j = k;
        while (j > 0 && impostor[j - 1] == upper) --j;
        const double below = j > 0 ? impostor[j - 1] : 0.0;
        p.threshold = upper - std::min(kBelow, 0.5 * (upper - below));
        if (!(p.threshold > 0.0)) p.threshold = std::max(upper * 0.5, 1e-6);
        // Unresolved, the best-resolved threshold rests on a handful of pairs: never looser than
        // the fallback (the legacy rule) then.
        const bool capped = !resolvable && p.threshold > r.fallback_threshold;
        if (capped) p.threshold = r.fallback_threshold;
        p.impostor_accepted = static_cast<std::size_t>(
            std::upper_bound(impostor.begin(), impostor.end(), p.threshold) - impostor.begin());
        p.pair_far_measured = static_cast<double>(p.impostor_accepted) / n;
        p.pair_far_bound = clopper_pearson_upper(p.impostor_accepted, n, r.confidence);
        p.calibrated = resolvable && p.pair_far_bound <= p.pair_far_target * (1 + 1e-12);
        if (p.calibrated)
            p.note = "calibrated: " + std::to_string(p.impostor_accepted) + " of " + std::to_string(n) +
                     " impostor pairs accepted, " + to_string(r.far_kind).data() + " FAR <= " +
                     g(as_kind(p.pair_far_bound)) + " at " + g(100 * r.confidence) + "% confidence (target " +
                     g(r.target_far) + ")";
        else
            p.note = "not resolvable: " + std::to_string(n) + " impostor pairs resolve a " +
                     std::string(to_string(r.far_kind)) + " FAR of " + g(p.min_resolvable_far) + " at best (target " +
                     g(r.target_far) + ", needs " + std::to_string(pairs_to_resolve(p.pair_far_target, r.confidence)) +
                     " pairs); the best-resolved threshold" +
                     (capped ? " (capped at the fallback " + g(r.fallback_threshold) + ")" : std::string()) +
                     " is not calibrated";
    }
    p.door_far_bound = door_far_from_pair(p.pair_far_bound, p.comparisons);
    p.margin = r.margin_fraction * p.threshold;
    p.frr = rejected_fraction(genuine, p.threshold);
    return p;
}

OperatingPoint at_threshold(double threshold, std::vector<double> impostor, const std::vector<double>& genuine,
                            const CalibrationRequest& r) {
    check_request(impostor, genuine, r);
    if (!(std::isfinite(threshold) && threshold > 0.0 && threshold <= 10.0))
        throw std::invalid_argument("at_threshold: threshold must be finite in (0, 10]");
    OperatingPoint p = start(r);
    p.threshold = threshold;
    p.impostor_pairs = impostor.size();
    p.genuine_pairs = genuine.size();
    if (!impostor.empty()) {
        p.smallest_impostor_distance = *std::min_element(impostor.begin(), impostor.end());
        p.min_resolvable_far = as_kind(p, clopper_pearson_upper(0, impostor.size(), r.confidence));
        p.impostor_accepted = static_cast<std::size_t>(
            std::count_if(impostor.begin(), impostor.end(), [&](double d) { return d <= threshold; }));
        p.pair_far_measured = static_cast<double>(p.impostor_accepted) / impostor.size();
        p.pair_far_bound = clopper_pearson_upper(p.impostor_accepted, impostor.size(), r.confidence);
    }
    p.door_far_bound = door_far_from_pair(p.pair_far_bound, p.comparisons);
    p.calibrated = !impostor.empty() && p.pair_far_bound <= p.pair_far_target * (1 + 1e-12);
    p.margin = r.margin_fraction * p.threshold;
    p.frr = rejected_fraction(genuine, p.threshold);
    p.note = "fixed threshold " + g(threshold) + ": " + std::to_string(p.impostor_accepted) + " of " +
             std::to_string(p.impostor_pairs) + " impostor pairs accepted, " + std::string(to_string(r.far_kind)) +
             " FAR <= " + g(as_kind(p, p.pair_far_bound)) + " at " + g(100 * r.confidence) + "% confidence (target " +
             g(r.target_far) + (p.calibrated ? ", met)" : ", NOT shown)");
    return p;
}

std::string check(const OperatingPoint& p) {
    auto unit = [](double v) { return std::isfinite(v) && v >= 0.0 && v <= 1.0; };
    if (!(std::isfinite(p.threshold) && p.threshold > 0.0 && p.threshold <= 10.0)) return "threshold is not finite in (0, 10]";
    if (!(std::isfinite(p.margin) && p.margin >= 0.0 && p.margin < p.threshold)) return "margin is not finite in [0, threshold)";
    if (!in_open_unit(p.target_far)) return "target_far is not in (0, 1)";
    if (!in_open_unit(p.pair_far_target)) return "pair_far_target is not in (0, 1)";
    if (!in_open_unit(p.confidence)) return "confidence is not in (0, 1)";
    if (p.comparisons < 1) return "comparisons is not >= 1";
    if (p.impostor_accepted > p.impostor_pairs) return "impostor_accepted exceeds impostor_pairs";
    if (!unit(p.pair_far_bound) || !unit(p.door_far_bound) || !unit(p.min_resolvable_far)) return "a FAR bound is not in [0, 1]";
    if (!std::isnan(p.pair_far_measured) && !unit(p.pair_far_measured)) return "pair_far_measured is not in [0, 1]";
    if (!std::isnan(p.frr) && !unit(p.frr)) return "frr is not in [0, 1]";
    if (!std::isnan(p.smallest_impostor_distance) && !(p.smallest_impostor_distance >= 0.0 && std::isfinite(p.smallest_impostor_distance)))
        return "smallest_impostor_distance is not finite and >= 0";
    if (p.method_version < 1) return "method_version is not >= 1";
    if (p.calibrated && p.impostor_pairs == 0) return "calibrated without impostor pairs";
    return "";
}

}  // namespace faceadapt::calib
