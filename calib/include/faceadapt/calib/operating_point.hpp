// A model's operating point: the distance threshold a door decides with, and what it is worth.
//
// WHAT THIS REPRESENTS
//   calibrate() turns the distances of impostor pairs (pairs CERTAINLY of two different people)
//   and of genuine pairs (one person) into the threshold that keeps a target false-accept rate,
//   with a one-sided confidence bound instead of a point estimate (docs/operating-point.md):
//     sort the n impostor distances d(1) <= ... <= d(n); take the largest k with
//     clopper_pearson_upper(k, n, confidence) <= the target pair rate; the threshold lies just
//     below d(k+1), so at most k impostors are accepted (distance <= threshold) and, since
//     F(d(k+1)) ~ Beta(k+1, n-k) for the impostor distance law F, the true pair FAR is below
//     the bound with that confidence, whatever F is.
//   The target is a door rate (a stranger against every one of the gallery's `comparisons`
//   entries; converted with pair_far_from_door) or a pair rate, as the request says.
//   When even k = 0 is above the target the pairs cannot resolve it: the threshold is the
//   best-resolved one (just below d(1), but never above the fallback: a few pairs must not
//   loosen the legacy rule) and the point is NOT calibrated (calibrated = false, note says how
//   many pairs it would take). With no impostor pair at all the threshold is the
//   request's fallback (today's 0.6), not calibrated.
//   The ambiguity margin (the door refuses when the two nearest identities are closer to each
//   other than it: decision.hpp) is margin_fraction * threshold.
// THREAD SAFETY
//   Plain values and pure functions.
#pragma once

#include <cmath>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace faceadapt::calib {

// Version of the method below; a package names the one that calibrated it.
inline constexpr int kMethodVersion = 1;
inline constexpr std::string_view kMethodName = "order-statistic threshold, one-sided Clopper-Pearson bound";
// The source model's rule, shipped before calibration (issue 12), and the fallback without pairs.
inline constexpr double kLegacyThreshold = 0.6;

// Which rate a figure is: one probe against one gallery entry, or a stranger at a door that
// compares it with every entry.
enum class FarKind { pair, door };
std::string_view to_string(FarKind kind);
std::optional<FarKind> far_kind_from_string(std::string_view name);

struct CalibrationRequest {
    double target_far = 1e-3;          // in (0, 1)
    FarKind far_kind = FarKind::door;
    std::size_t comparisons = 1;       // door kind: gallery entries each probe is compared with (>= 1)
    double confidence = 0.95;          // of the one-sided bound, in (0, 1)
    double margin_fraction = 0.05;     // ambiguity margin / threshold, in [0, 1)
    double fallback_threshold = kLegacyThreshold;
};

struct OperatingPoint {
    double threshold = kLegacyThreshold;  // Euclidean: a probe matches at distance <= threshold
    double margin = 0.0;                  // ambiguity margin (same unit)
    double target_far = 0.0;              // as asked, of kind far_kind
    FarKind far_kind = FarKind::door;
    std::size_t comparisons = 1;
    double pair_far_target = 0.0;         // the target as a pair rate
    double confidence = 0.95;
    std::size_t impostor_pairs = 0;
    std::size_t impostor_accepted = 0;    // impostor distances <= threshold
    double pair_far_measured = NAN;       // impostor_accepted / impostor_pairs
    double pair_far_bound = 1.0;          // upper confidence bound on the pair FAR at threshold
    double door_far_bound = 1.0;          // the same bound for the door (comparisons entries)
    double min_resolvable_far = 1.0;      // smallest target (kind far_kind) these pairs resolve
    double smallest_impostor_distance = NAN;  // the most similar impostor pair
    std::size_t genuine_pairs = 0;
    double frr = NAN;                     // genuine distances > threshold / genuine_pairs
    bool calibrated = false;              // the bound is at or below the target
    int method_version = kMethodVersion;
    std::string note;                     // one line: how it was chosen, or why it is not calibrated
};

// requires: the request's ranges above (throws std::invalid_argument naming the member);
// distances must be finite and >= 0 (throws std::invalid_argument).
OperatingPoint calibrate(std::vector<double> impostor, const std::vector<double>& genuine,
                         const CalibrationRequest& request);

// The same figures at a given threshold (a fixed rule such as the legacy 0.6, or `faceadapt
// package --threshold`): calibrated is true when the bound at it is within the target, and the
// note says it was fixed. requires threshold finite in (0, 10]; otherwise as calibrate().
OperatingPoint at_threshold(double threshold, std::vector<double> impostor, const std::vector<double>& genuine,
                            const CalibrationRequest& request);

// Fraction of `distances` at or below `threshold` (NaN for none): the FAR of impostor
// distances, the TAR of genuine ones.
double accepted_fraction(const std::vector<double>& distances, double threshold);
// Fraction above it (NaN for none): the FRR of genuine distances.
double rejected_fraction(const std::vector<double>& distances, double threshold);

// What a reader of a stored operating point requires: finite numbers in their ranges, counts
// consistent. Returns "" when fine, else the first problem (naming the member).
std::string check(const OperatingPoint& point);

// Euclidean distance of two equally long vectors of numbers (embeddings).
template <class A, class B>
double euclidean(const A& a, const B& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
        s += d * d;
    }
    return std::sqrt(s);
}

// Genuine and impostor distances collected from what a site has.
struct PairDistances {
    std::vector<double> genuine, impostor;
};
// Every pair of rows: the same label -> genuine, different labels -> impostor (enrolled people
// against each other). requires rows.size() == labels.size() (throws std::invalid_argument).
template <class Rows, class Labels>
void add_labelled_pairs(const Rows& rows, const Labels& labels, PairDistances& out) {
    if (rows.size() != labels.size()) throw std::invalid_argument("calib: rows and labels differ in size");
    for (std::size_t a = 0; a < rows.size(); ++a)
        for (std::size_t b = a + 1; b < rows.size(); ++b)
            (labels[a] == labels[b] ? out.genuine : out.impostor).push_back(euclidean(rows[a], rows[b]));
}
// Every row of `a` against every row of `b`, all impostors (two people seen in one frame, a
// stranger against an enrolled photo).
template <class RowsA, class RowsB>
void add_cross_pairs(const RowsA& a, const RowsB& b, std::vector<double>& impostor) {
    for (const auto& x : a)
        for (const auto& y : b) impostor.push_back(euclidean(x, y));
}

}  // namespace faceadapt::calib
