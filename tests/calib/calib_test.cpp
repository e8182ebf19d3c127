// calib: the statistics, calibrate() on distance sets whose quantiles are known by construction,
// the not-resolvable path, and the door's decision rule (ambiguity refusal).
#include <algorithm>
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "faceadapt/calib/decision.hpp"
#include "faceadapt/calib/operating_point.hpp"
#include "faceadapt/calib/statistics.hpp"

namespace fc = faceadapt::calib;

namespace {

// P(X <= k), X ~ Binomial(n, p), by the plain product formula (small n only): an independent
// computation to check binomial_cdf against.
double direct_cdf(std::size_t k, std::size_t n, double p) {
    double sum = 0;
    for (std::size_t i = 0; i <= k && i <= n; ++i) {
        double c = 1;
        for (std::size_t j = 0; j < i; ++j) c = c * double(n - j) / double(j + 1);
        sum += c * std::pow(p, double(i)) * std::pow(1 - p, double(n - i));
    }
    return sum;
}

// n distances spread evenly over (0, 1]: the FAR at threshold t is t (to 1/n) by construction.
std::vector<double> uniform_grid(std::size_t n, double scale = 1.0) {
    std::vector<double> d;
    for (std::size_t i = 1; i <= n; ++i) d.push_back(scale * double(i) / double(n));
    std::shuffle(d.begin(), d.end(), std::mt19937(7));
    return d;
}

}  // namespace

TEST(Statistics, BinomialCdfMatchesTheDirectSum) {
    for (std::size_t n : {1u, 7u, 30u, 60u})
        for (double p : {1e-4, 0.01, 0.2, 0.5, 0.93})
            for (std::size_t k = 0; k <= n; k += 3) EXPECT_NEAR(fc::binomial_cdf(k, n, p), direct_cdf(k, n, p), 1e-12) << n << " " << p << " " << k;
    EXPECT_EQ(fc::binomial_cdf(3, 10, 0.0), 1.0);
    EXPECT_EQ(fc::binomial_cdf(3, 10, 1.0), 0.0);
    EXPECT_EQ(fc::binomial_cdf(10, 10, 0.7), 1.0);
}

TEST(Statistics, ClopperPearsonUpperBound) {
    // Reference values by exact summation (Python math.comb + bisection), one-sided 95 %.
    EXPECT_NEAR(fc::clopper_pearson_upper(1, 10, 0.95), 0.3941633024, 1e-9);
    EXPECT_NEAR(fc::clopper_pearson_upper(5, 20, 0.95), 0.4555824040, 1e-9);
    EXPECT_NEAR(fc::clopper_pearson_upper(0, 100, 0.95), 0.0295130496, 1e-9);
    EXPECT_NEAR(fc::clopper_pearson_upper(3, 1000, 0.95), 0.0077352447, 1e-9);
    EXPECT_NEAR(fc::clopper_pearson_upper(10, 1000, 0.95), 0.0169031751, 1e-9);
    // By definition: P(X <= k | n, upper) = 1 - confidence.
    for (std::size_t k : {0u, 2u, 17u}) {
        const double u = fc::clopper_pearson_upper(k, 5000, 0.9);
        EXPECT_NEAR(fc::binomial_cdf(k, 5000, u), 0.1, 1e-9);
    }
    // With no exceedance in n pairs the 95 % bound is ~3/n (the "rule of three").
    EXPECT_NEAR(fc::clopper_pearson_upper(0, 30000, 0.95) * 30000, 2.9957, 1e-3);
    EXPECT_EQ(fc::clopper_pearson_upper(0, 0, 0.95), 1.0);
    EXPECT_EQ(fc::clopper_pearson_upper(9, 9, 0.95), 1.0);
    // Monotone in k.
    double last = 0;
    for (std::size_t k = 0; k < 50; ++k) {
        const double u = fc::clopper_pearson_upper(k, 2000, 0.95);
        EXPECT_GT(u, last);
        last = u;
    }
}

TEST(Statistics, ClopperPearsonLowerBound) {
    // The two-sided 95% intervals of the tables (lower at 0.975): 1/10 -> 0.0025, 5/20 -> 0.0866.
    EXPECT_NEAR(fc::clopper_pearson_lower(1, 10, 0.975), 0.00253, 1e-5);
    EXPECT_NEAR(fc::clopper_pearson_lower(5, 20, 0.975), 0.0866, 1e-4);
    // By definition: P(X >= k | n, lower) = 1 - confidence, and the mirror of the upper bound
    // (n - X is binomial with 1 - p).
    for (std::size_t k : {1u, 2u, 17u, 400u}) {
        const double l = fc::clopper_pearson_lower(k, 5000, 0.9);
        EXPECT_NEAR(1.0 - fc::binomial_cdf(k - 1, 5000, l), 0.1, 1e-9) << k;
        EXPECT_NEAR(l, 1.0 - fc::clopper_pearson_upper(5000 - k, 5000, 0.9), 1e-9) << k;
        EXPECT_LT(l, double(k) / 5000);
    }
    EXPECT_EQ(fc::clopper_pearson_lower(0, 100, 0.975), 0.0);
    EXPECT_EQ(fc::clopper_pearson_lower(0, 0, 0.975), 0.0);
    EXPECT_NEAR(fc::clopper_pearson_lower(10, 10, 0.975), std::pow(0.025, 0.1), 1e-12);
}

TEST(Statistics, PairAndDoorRates) {
    // A stranger compared with 19 entries, each accepting with 1e-3: 1 - 0.999^19.
    EXPECT_NEAR(fc::door_far_from_pair(1e-3, 19), 1 - std::pow(0.999, 19), 1e-15);
    EXPECT_LT(fc::door_far_from_pair(1e-3, 19), 19e-3);  // below the union bound
    EXPECT_NEAR(fc::pair_far_from_door(fc::door_far_from_pair(2e-4, 57), 57), 2e-4, 1e-15);
    EXPECT_EQ(fc::door_far_from_pair(0.1, 0), 0.0);
    EXPECT_EQ(fc::pair_far_from_door(0.1, 1), fc::pair_far_from_door(0.1, 1));
    EXPECT_NEAR(fc::pair_far_from_door(0.1, 1), 0.1, 1e-15);
    // pairs_to_resolve is the first n whose zero-exceedance bound is within the rate.
    for (double far : {1e-2, 1e-3, 5.3e-5}) {
        const std::size_t n = fc::pairs_to_resolve(far, 0.95);
        EXPECT_LE(fc::clopper_pearson_upper(0, n, 0.95), far);
        EXPECT_GT(fc::clopper_pearson_upper(0, n - 1, 0.95), far);
    }
    EXPECT_EQ(fc::pairs_to_resolve(1e-3, 0.95), 2995u);
}

TEST(Calibrate, UniformImpostorsGiveTheKnownQuantileWithItsBound) {
    const auto impostor = uniform_grid(100000);  // FAR(t) = t
    fc::CalibrationRequest r;
    r.target_far = 1e-2;
    r.far_kind = fc::FarKind::pair;
    const auto p = fc::calibrate(impostor, {}, r);
    ASSERT_TRUE(p.calibrated) << p.note;
    EXPECT_EQ(p.impostor_pairs, 100000u);
    EXPECT_LE(p.pair_far_bound, 1e-2);
    // The bound is conservative: the threshold is below the true 1e-2 quantile, by about
    // 1.645 standard deviations of the count (sqrt(1000) ~ 31.6 of 1000 accepted pairs).
    EXPECT_LT(p.threshold, 0.01);
    EXPECT_GT(p.threshold, 0.0093);
    EXPECT_NEAR(p.pair_far_measured, p.threshold, 1.5e-5);  // measured FAR = t on this set
    EXPECT_EQ(p.impostor_accepted, static_cast<std::size_t>(std::floor(p.threshold * 100000 + 1e-9)));
    // One more accepted pair would break the target: the threshold is the largest with the bound.
    EXPECT_GT(fc::clopper_pearson_upper(p.impostor_accepted + 1, 100000, 0.95), 1e-2);
    EXPECT_NEAR(p.min_resolvable_far, fc::clopper_pearson_upper(0, 100000, 0.95), 1e-15);
    EXPECT_DOUBLE_EQ(p.smallest_impostor_distance, 1e-5);
    EXPECT_DOUBLE_EQ(p.margin, 0.05 * p.threshold);
    EXPECT_EQ(fc::check(p), "");
}

TEST(Calibrate, FrrFromGenuineDistances) {
    // Impostors in [1, 2]: FAR(t) = t - 1; genuine in (0, 2]: FRR(t) = 1 - t / 2.
    const auto impostor = uniform_grid(50000, 1.0);
    std::vector<double> shifted;
    for (double d : impostor) shifted.push_back(1.0 + d);
    const auto genuine = uniform_grid(20000, 2.0);
    fc::CalibrationRequest r;
    r.target_far = 0.05;
    r.far_kind = fc::FarKind::pair;
    const auto p = fc::calibrate(shifted, genuine, r);
    ASSERT_TRUE(p.calibrated);
    EXPECT_NEAR(p.threshold, 1.0 + 0.05, 0.004);
    EXPECT_LT(p.threshold, 1.05);
    EXPECT_NEAR(p.frr, 1.0 - p.threshold / 2.0, 1e-4);
    EXPECT_EQ(p.genuine_pairs, 20000u);
}

TEST(Calibrate, DoorRateIsTheStrangerAgainstEveryEntry) {
    const auto impostor = uniform_grid(200000);
    fc::CalibrationRequest r;
    r.target_far = 1e-2;
    r.far_kind = fc::FarKind::door;
    r.comparisons = 57;  // 19 people x 3 photos
    const auto p = fc::calibrate(impostor, {}, r);
    ASSERT_TRUE(p.calibrated) << p.note;
    EXPECT_NEAR(p.pair_far_target, 1 - std::pow(0.99, 1.0 / 57), 1e-12);
    EXPECT_LE(p.pair_far_bound, p.pair_far_target);
    EXPECT_LE(p.door_far_bound, 1e-2);
    EXPECT_NEAR(p.door_far_bound, fc::door_far_from_pair(p.pair_far_bound, 57), 1e-15);
    EXPECT_LT(p.threshold, p.pair_far_target);  // much stricter than a pair target of 1e-2
    EXPECT_NE(p.note.find("door FAR"), std::string::npos) << p.note;
}

TEST(Calibrate, NotResolvableWithTooFewPairs) {
    // 1000 pairs resolve 3e-3 at best (rule of three): a 1e-3 target is not resolvable.
    const auto impostor = uniform_grid(1000, 1.0);
    fc::CalibrationRequest r;
    r.target_far = 1e-3;
    r.far_kind = fc::FarKind::pair;
    const auto p = fc::calibrate(impostor, {0.0005, 0.5}, r);
    EXPECT_FALSE(p.calibrated);
    EXPECT_NEAR(p.min_resolvable_far, 0.002991, 1e-5);
    EXPECT_GT(p.pair_far_bound, 1e-3);
    // The best-resolved threshold: below the smallest impostor distance, nothing accepted.
    EXPECT_LT(p.threshold, 0.001);
    EXPECT_GT(p.threshold, 0.0);
    EXPECT_EQ(p.impostor_accepted, 0u);
    EXPECT_NE(p.note.find("not resolvable"), std::string::npos);
    EXPECT_NE(p.note.find("2995 pairs"), std::string::npos) << p.note;
    EXPECT_DOUBLE_EQ(p.frr, 0.5);
    EXPECT_EQ(fc::check(p), "");
    // 2995 pairs resolve it.
    const auto enough = fc::calibrate(uniform_grid(2995, 1.0), {}, r);
    EXPECT_TRUE(enough.calibrated) << enough.note;
}

TEST(Calibrate, NoImpostorPairsKeepsTheFallbackUncalibrated) {
    fc::CalibrationRequest r;
    const auto p = fc::calibrate({}, {0.3, 0.7}, r);
    EXPECT_FALSE(p.calibrated);
    EXPECT_DOUBLE_EQ(p.threshold, fc::kLegacyThreshold);
    EXPECT_DOUBLE_EQ(p.frr, 0.5);
    EXPECT_NE(p.note.find("no impostor pairs"), std::string::npos);
    EXPECT_EQ(fc::check(p), "");
}

TEST(Calibrate, TiesAtTheCutAreNotAccepted) {
    // 10000 impostors, 300 of them at exactly 0.2 and the rest above 0.5: at a pair target of
    // 1e-2 the cut falls inside the tie, so the threshold goes below 0.2 and accepts none of it.
    std::vector<double> d(300, 0.2);
    for (int i = 0; i < 9700; ++i) d.push_back(0.5 + i * 1e-5);
    fc::CalibrationRequest r;
    r.target_far = 1e-2;
    r.far_kind = fc::FarKind::pair;
    const auto p = fc::calibrate(d, {}, r);
    EXPECT_LT(p.threshold, 0.2);
    EXPECT_EQ(p.impostor_accepted, 0u);
    EXPECT_TRUE(p.calibrated);
    EXPECT_NEAR(fc::accepted_fraction(d, p.threshold), 0.0, 0.0);
}

TEST(Calibrate, RefusesBadRequestsAndDistances) {
    fc::CalibrationRequest r;
    r.target_far = 0;
    EXPECT_THROW(fc::calibrate({0.5}, {}, r), std::invalid_argument);
    r.target_far = 1e-3;
    r.comparisons = 0;
    EXPECT_THROW(fc::calibrate({0.5}, {}, r), std::invalid_argument);
    r.comparisons = 1;
    EXPECT_THROW(fc::calibrate({NAN}, {}, r), std::invalid_argument);
    EXPECT_THROW(fc::calibrate({0.5}, {-1.0}, r), std::invalid_argument);
    fc::OperatingPoint bad;
    bad.target_far = 1e-3;
    bad.pair_far_target = 1e-3;
    bad.threshold = 0.5;
    EXPECT_EQ(fc::check(bad), "");
    bad.margin = 0.6;
    EXPECT_NE(fc::check(bad), "");
}

TEST(Calibrate, CollectsPairsFromLabelsAndCrossGroups) {
    const std::vector<std::vector<float>> rows{{0, 0}, {0, 1}, {3, 4}};
    const std::vector<std::string> labels{"a", "a", "b"};
    fc::PairDistances pd;
    fc::add_labelled_pairs(rows, labels, pd);
    ASSERT_EQ(pd.genuine.size(), 1u);
    EXPECT_DOUBLE_EQ(pd.genuine[0], 1.0);
    ASSERT_EQ(pd.impostor.size(), 2u);
    EXPECT_DOUBLE_EQ(pd.impostor[0], 5.0);
    const std::vector<std::vector<float>> other{{0, 2}};
    fc::add_cross_pairs(rows, other, pd.impostor);
    EXPECT_EQ(pd.impostor.size(), 5u);
}

TEST(Decision, NearestIdentityWithinTheThreshold) {
    const std::vector<std::pair<std::string, double>> e{{"ann", 0.45}, {"bob", 0.62}, {"ann", 0.30}, {"cy", 0.9}};
    const auto d = fc::decide(e, 0.5, 0.05);
    EXPECT_EQ(d.decision, fc::Decision::accept);
    EXPECT_EQ(d.identity, "ann");
    EXPECT_DOUBLE_EQ(d.distance, 0.30);  // the identity's nearest photo
    EXPECT_EQ(d.second_identity, "bob");
    EXPECT_DOUBLE_EQ(d.second_distance, 0.62);
    const auto far = fc::decide(e, 0.25, 0.05);
    EXPECT_EQ(far.decision, fc::Decision::unknown);
    EXPECT_EQ(far.identity, "ann");
    EXPECT_NE(far.reason.find("beyond the threshold"), std::string::npos);
    const auto none = fc::decide({}, 0.5, 0.05);
    EXPECT_EQ(none.decision, fc::Decision::unknown);
    EXPECT_EQ(none.reason, "the gallery is empty");
}

TEST(Decision, RefusesAmbiguousMatches) {
    // ann at 0.40 and bob at 0.43: both within 0.5, 0.03 apart, closer than the margin 0.05.
    const std::vector<std::pair<std::string, double>> e{{"ann", 0.40}, {"bob", 0.43}, {"ann", 0.7}};
    const auto d = fc::decide(e, 0.5, 0.05);
    EXPECT_EQ(d.decision, fc::Decision::ambiguous);
    EXPECT_FALSE(d.accepted());
    EXPECT_EQ(d.identity, "ann");
    EXPECT_EQ(d.second_identity, "bob");
    EXPECT_NE(d.reason.find("closer to each other than the margin"), std::string::npos) << d.reason;
    // The second identity beyond the threshold but within the margin is still ambiguous.
    const auto near_edge = fc::decide({{"ann", 0.48}, {"bob", 0.51}}, 0.5, 0.05);
    EXPECT_EQ(near_edge.decision, fc::Decision::ambiguous);
    // Margin 0: the rule before issue 12, the nearest within the threshold.
    EXPECT_EQ(fc::decide(e, 0.5, 0.0).decision, fc::Decision::accept);
    // Two photos of one person never make it ambiguous.
    EXPECT_EQ(fc::decide({{"ann", 0.40}, {"ann", 0.41}}, 0.5, 0.05).decision, fc::Decision::accept);
}

TEST(Calibrate, FiguresAtAFixedThreshold) {
    const auto impostor = uniform_grid(100000);  // FAR(t) = t
    fc::CalibrationRequest r;
    r.target_far = 1e-2;
    r.far_kind = fc::FarKind::pair;
    const auto loose = fc::at_threshold(0.6, impostor, {0.1, 0.7}, r);
    EXPECT_EQ(loose.threshold, 0.6);
    EXPECT_EQ(loose.impostor_accepted, 60000u);
    EXPECT_NEAR(loose.pair_far_measured, 0.6, 1e-12);
    EXPECT_FALSE(loose.calibrated);  // 60 % of impostors accepted: far from 1e-2
    EXPECT_DOUBLE_EQ(loose.frr, 0.5);
    EXPECT_NE(loose.note.find("NOT shown"), std::string::npos);
    const auto strict = fc::at_threshold(0.009, impostor, {}, r);
    EXPECT_TRUE(strict.calibrated) << strict.note;
    EXPECT_EQ(strict.impostor_accepted, 900u);
    EXPECT_EQ(fc::check(strict), "");
    EXPECT_THROW(fc::at_threshold(0.0, impostor, {}, r), std::invalid_argument);
}

TEST(Calibrate, AnUnresolvedThresholdIsNeverLooserThanTheFallback) {
    // Two impostor pairs far apart (0.9, 1.1): unresolvable; "just below 0.9" would loosen 0.6.
    fc::CalibrationRequest r;
    r.target_far = 1e-3;
    const auto p = fc::calibrate({0.9, 1.1}, {}, r);
    EXPECT_FALSE(p.calibrated);
    EXPECT_DOUBLE_EQ(p.threshold, fc::kLegacyThreshold);
    EXPECT_NE(p.note.find("capped at the fallback"), std::string::npos) << p.note;
}
