// Gate figures on constructed embeddings and the promotion decision.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "faceadapt/config/config.hpp"
#include "faceadapt/daemon/gate.hpp"
#include "faceadapt/daemon/gate_figures.hpp"

using namespace faceadapt::daemon;

namespace {
// `people` identities, `per` images each: a random centre per person plus noise of `noise`.
struct Set {
    std::vector<faceadapt::learner::Embedding> rows;
    std::vector<std::string> labels;
};
// Centres have norm ~1 and the noise is per component / sqrt(dim), like dlib-style embeddings
// whose same-person distances are well under 0.6.
Set clustered(int people, int per, double noise, unsigned seed) {
    constexpr int dim = 128;
    const float unit = 1.0f / std::sqrt(float(dim));
    std::mt19937 rng(seed);
    std::normal_distribution<float> n(0, 1);
    Set s;
    for (int p = 0; p < people; ++p) {
        std::vector<float> centre(dim);
        for (auto& x : centre) x = n(rng) * unit;
        for (int i = 0; i < per; ++i) {
            faceadapt::learner::Embedding r{};
            for (int k = 0; k < dim; ++k) r[k] = centre[k] + static_cast<float>(noise) * unit * n(rng);
            s.rows.push_back(r);
            s.labels.push_back("p" + std::to_string(p));
        }
    }
    return s;
}
ModelFigures figures(const Set& gallery, const Set& site, double far = 1e-2) {
    return {evaluate_gallery(gallery.rows, gallery.labels, far), evaluate_site(site.rows, site.labels)};
}
}  // namespace

TEST(GateFigures, WellSeparatedIdentitiesScorePerfectly) {
    const Set g = clustered(10, 4, 0.05, 1);
    const GalleryFigures f = evaluate_gallery(g.rows, g.labels, 1e-3);
    ASSERT_TRUE(f.evaluated);
    EXPECT_EQ(f.people, 10);
    EXPECT_EQ(f.images, 40);
    EXPECT_DOUBLE_EQ(f.tar, 1.0);
    EXPECT_DOUBLE_EQ(f.rank1, 1.0);
    const SiteFigures s = evaluate_site(g.rows, g.labels);
    ASSERT_TRUE(s.evaluated);
    EXPECT_DOUBLE_EQ(s.consistency, 1.0);
    EXPECT_GT(s.compactness, 0.5);
}

TEST(GateFigures, ShuffledLabelsScoreNearChance) {
    Set g = clustered(10, 4, 0.05, 2);
    std::mt19937 rng(3);
    std::shuffle(g.labels.begin(), g.labels.end(), rng);
    const GalleryFigures f = evaluate_gallery(g.rows, g.labels, 1e-2);
    EXPECT_LT(f.tar, 0.4);
    EXPECT_LT(f.rank1, 0.4);
    EXPECT_LT(evaluate_site(g.rows, g.labels).compactness, 0.1);
}

TEST(GateFigures, TooFewRepeatedPeopleAreNotEvaluatedAndBadInputThrows) {
    const Set one = clustered(1, 5, 0.1, 4);
    EXPECT_FALSE(evaluate_gallery(one.rows, one.labels, 1e-3).evaluated);
    const Set singles = clustered(6, 1, 0.1, 5);
    EXPECT_FALSE(evaluate_site(singles.rows, singles.labels).evaluated);
    EXPECT_THROW(evaluate_gallery(one.rows, {"a"}, 1e-3), std::invalid_argument);
    EXPECT_THROW(evaluate_site(one.rows, {"a", "b"}), std::invalid_argument);
}

TEST(GateDecision, PromotesAnEqualOrBetterCandidate) {
    faceadapt::config::GateConfig cfg;
    const Set g = clustered(8, 3, 0.6, 6), site = clustered(12, 4, 0.6, 7);
    const Set g_better = clustered(8, 3, 0.2, 6), site_better = clustered(12, 4, 0.2, 7);
    const ModelFigures current = figures(g, site), candidate = figures(g_better, site_better);
    const GateDecision same = decide(current, current, cfg);
    EXPECT_TRUE(same.promote);
    EXPECT_TRUE(same.reasons.empty());
    EXPECT_EQ(same.checks.size(), 4u);
    const GateDecision better = decide(current, candidate, cfg);
    EXPECT_TRUE(better.promote) << to_json(better).dump();
}

TEST(GateDecision, RefusesACandidateMadeWorseOnPurpose) {
    faceadapt::config::GateConfig cfg;
    const Set g = clustered(8, 3, 0.2, 8), site = clustered(12, 4, 0.2, 9);
    // The "perturbed" candidate: the same identities, embeddings drowned in noise.
    const Set g_bad = clustered(8, 3, 2.0, 8), site_bad = clustered(12, 4, 2.0, 9);
    const GateDecision d = decide(figures(g, site), figures(g_bad, site_bad), cfg);
    EXPECT_FALSE(d.promote);
    ASSERT_FALSE(d.reasons.empty());
    EXPECT_NE(d.reasons.front().find("dropped from"), std::string::npos) << d.reasons.front();
    const auto j = to_json(d);
    EXPECT_FALSE(j["promote"].get<bool>());
    EXPECT_EQ(j["checks"].size(), 4u);
}

TEST(GateDecision, ToleranceAllowsASmallDropAndNothingMeasuredRefuses) {
    faceadapt::config::GateConfig cfg;
    ModelFigures cur, cand;
    cur.site = {100, 10, true, 0.90, 0.30};
    cand.site = {100, 10, true, 0.89, 0.29};
    cfg.max_compactness_drop = 0.02;
    EXPECT_TRUE(decide(cur, cand, cfg).promote);
    cfg.max_compactness_drop = 0.005;
    EXPECT_FALSE(decide(cur, cand, cfg).promote);
    cand.site.compactness = std::nan("");
    cfg.max_compactness_drop = 1;
    EXPECT_FALSE(decide(cur, cand, cfg).promote);
    const GateDecision none = decide(ModelFigures{}, ModelFigures{}, cfg);
    EXPECT_FALSE(none.promote);
    EXPECT_NE(none.reasons.front().find("nothing to evaluate"), std::string::npos);
}
