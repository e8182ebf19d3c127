// Gate figures on constructed embeddings and the promotion decision.
#include <algorithm>
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
    return {evaluate_gallery(gallery.rows, gallery.labels, far), evaluate_site(site.rows, site.labels), std::nullopt};
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
    EXPECT_GE(same.checks.size(), 5u);  // 4 figures, "door: no operating point measured" (and maybe "cannot discriminate")
    EXPECT_TRUE(std::any_of(same.checks.begin(), same.checks.end(),
                            [](const std::string& l) { return l.rfind("door: no operating point", 0) == 0; }));
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
    EXPECT_GE(j["checks"].size(), 5u);
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

// ---- the door's figures (issue 12) -------------------------------------------------------

namespace {

// A model's door figures from constructed distances: impostors spread over [lo, lo + 1]
// (20000 pairs), genuine pairs at i / n * span, calibrated for a door FAR of 1e-2 over 30 entries.
DoorFigures door_at(double impostor_lo, double genuine_span, std::size_t genuine = 400) {
    std::vector<double> impostor, gen;
    for (int i = 1; i <= 20000; ++i) impostor.push_back(impostor_lo + i / 20000.0);
    for (std::size_t i = 1; i <= genuine; ++i) gen.push_back(genuine_span * double(i) / double(genuine));
    faceadapt::calib::CalibrationRequest r;
    r.target_far = 1e-2;
    r.comparisons = 30;
    DoorFigures d;
    d.point = faceadapt::calib::calibrate(impostor, gen, r);
    d.sources.enrolled_impostor = 20000;
    d.sources.enrolled_genuine = genuine;
    return d;
}

bool any_contains(const std::vector<std::string>& lines, const std::string& what) {
    for (const auto& l : lines)
        if (l.find(what) != std::string::npos) return true;
    return false;
}

}  // namespace

// The case: TAR@FAR and rank-1 equal, but at its own calibrated threshold the candidate
// rejects far more genuine pairs: refused on the door's rule.
TEST(GateDoor, RefusesAWorseFrrAtTargetFarThoughTarAtFarIsEqual) {
    faceadapt::config::GateConfig cfg;
    ModelFigures cur, cand;
    cur.gallery = cand.gallery = {8, 24, true, 0.95, 1e-3, 1.0};
    cur.door = door_at(0.5, 0.6);   // threshold ~0.5: FRR ~ 1/6
    cand.door = door_at(0.5, 1.0);  // genuine spread twice as wide: FRR ~ 1/2
    ASSERT_TRUE(cur.door->point.calibrated && cand.door->point.calibrated);
    ASSERT_GT(cand.door->point.frr, cur.door->point.frr + 0.2);
    const GateDecision d = decide(cur, cand, cfg);
    EXPECT_FALSE(d.promote);
    EXPECT_TRUE(any_contains(d.reasons, "door FRR at target FAR")) << to_json(d).dump(1);
    EXPECT_TRUE(any_contains(d.reasons, "rose from")) << to_json(d).dump(1);
    EXPECT_TRUE(any_contains(d.checks, "gallery TAR@FAR=0.001: candidate 0.9500 vs current 0.9500"));
    // The same candidate with the current's genuine spread passes.
    cand.door = door_at(0.5, 0.6);
    EXPECT_TRUE(decide(cur, cand, cfg).promote) << to_json(decide(cur, cand, cfg)).dump(1);
}

TEST(GateDoor, AnUncalibratedCandidateIsRefusedUnlessAllowed) {
    faceadapt::config::GateConfig cfg;
    ModelFigures cur, cand;
    cur.site = cand.site = {100, 10, true, 0.9, 0.3};
    faceadapt::calib::CalibrationRequest r;
    r.target_far = 1e-3;
    r.comparisons = 30;
    cand.door = DoorFigures{faceadapt::calib::calibrate({0.5, 0.6, 0.7}, {0.1, 0.2}, r), {}};  // 3 pairs
    ASSERT_FALSE(cand.door->point.calibrated);
    const GateDecision d = decide(cur, cand, cfg);
    EXPECT_FALSE(d.promote);
    EXPECT_TRUE(any_contains(d.reasons, "not calibrated")) << to_json(d).dump(1);
    EXPECT_TRUE(any_contains(d.reasons, "the current model is kept"));
    cfg.require_calibrated = false;
    const GateDecision allowed = decide(cur, cand, cfg);
    EXPECT_TRUE(allowed.promote) << to_json(allowed).dump(1);
    EXPECT_TRUE(any_contains(allowed.checks, "NOT calibrated"));
}

TEST(GateDoor, RefusesWhenTheMeasuredFarAtTheShippedThresholdExceedsTheTarget) {
    faceadapt::config::GateConfig cfg;
    ModelFigures cur, cand;
    cur.site = cand.site = {100, 10, true, 0.9, 0.3};
    cand.door = door_at(0.5, 0.6);
    // A point whose threshold accepts 5 % of impostor pairs, at a door target of 1e-2.
    cand.door->point.pair_far_measured = 0.05;
    const GateDecision d = decide(cur, cand, cfg);
    EXPECT_FALSE(d.promote);
    EXPECT_TRUE(any_contains(d.reasons, "exceeds the target")) << to_json(d).dump(1);
}

// Issue 18 item 7: within tolerance of the current model, but worse than the best so far and the
// source model by more than it: refused, naming the reference.
TEST(GateDoor, ComparesWithTheBestSoFarAndTheSourceNotOnlyThePredecessor) {
    faceadapt::config::GateConfig cfg;
    cfg.max_frr_rise = 0.02;
    ModelFigures source, best, cur, cand;
    source.door = door_at(0.5, 0.60);
    best.door = door_at(0.5, 0.55);
    cur.door = door_at(0.5, 0.62);
    cand.door = door_at(0.5, 0.63);
    ASSERT_LE(cand.door->point.frr, cur.door->point.frr + 0.02);
    ASSERT_GT(cand.door->point.frr, best.door->point.frr + 0.02);
    EXPECT_TRUE(decide(cur, cand, cfg).promote);
    const GateDecision d = decide(cur, cand, cfg, {{"best so far (version 2)", best}, {"source model", source}});
    EXPECT_FALSE(d.promote);
    EXPECT_TRUE(any_contains(d.reasons, "against the best so far (version 2)")) << to_json(d).dump(1);
    EXPECT_TRUE(any_contains(d.checks, "vs source model"));
}

TEST(GateDoor, SaysWhenAFigureCannotDiscriminate) {
    faceadapt::config::GateConfig cfg;
    ModelFigures cur, cand;
    cur.gallery = cand.gallery = {4, 8, true, 1.0, 1e-3, 1.0};
    cur.door = door_at(0.5, 0.6, 1);  // one genuine pair
    cand.door = door_at(0.5, 0.6, 1);
    const GateDecision d = decide(cur, cand, cfg);
    EXPECT_TRUE(any_contains(d.checks, "cannot discriminate (1 genuine pairs)")) << to_json(d).dump(1);
    EXPECT_TRUE(any_contains(d.checks, "both at 1.0000 on 4 people: these figures cannot discriminate"));
    cur.door = door_at(0.5, 0.6, 20);  // 20 pairs: one is 0.05, more than the 0.02 tolerance
    cand.door = door_at(0.5, 0.6, 20);
    EXPECT_TRUE(any_contains(decide(cur, cand, cfg).checks, "changes under it cannot be seen"));
}

// door_figures on constructed embeddings: the pair sources are counted and the point calibrated.
TEST(GateDoor, DoorFiguresFromEmbeddings) {
    const Set g = clustered(10, 3, 0.2, 21), site = clustered(6, 4, 0.2, 22), strangers = clustered(40, 1, 0.2, 23);
    // Two tracks seen in one frame: 3 crops each of two other people.
    const Set frame = clustered(2, 3, 0.2, 24);
    std::vector<std::string> frame_tracks;
    for (const auto& l : frame.labels) frame_tracks.push_back("cam/" + l);
    const DoorFigures d = door_figures(g.rows, g.labels, site.rows, site.labels, frame.rows, frame_tracks,
                                       {{"cam/p0", "cam/p1"}, {"cam/p0", "cam/none"}}, strangers.rows, strangers.labels,
                                       0.5, faceadapt::calib::FarKind::door);
    EXPECT_EQ(d.sources.enrolled_impostor, 30u * 27u / 2u);
    EXPECT_EQ(d.sources.enrolled_genuine, 30u);
    EXPECT_EQ(d.sources.track_genuine, 6u * 6u);
    EXPECT_EQ(d.sources.same_frame_impostor, 9u);  // the pair with an unknown track adds nothing
    EXPECT_EQ(d.sources.stranger_impostor, 40u * 39u / 2u + 40u * 30u);
    EXPECT_EQ(d.point.impostor_pairs, 405u + 9u + 780u + 1200u);
    EXPECT_EQ(d.point.comparisons, 30u);
    EXPECT_EQ(d.point.genuine_pairs, 66u);
    EXPECT_TRUE(d.point.calibrated) << d.point.note;
    EXPECT_GT(d.point.threshold, 0.0);
    EXPECT_LE(d.point.impostor_accepted, d.point.impostor_pairs);
    EXPECT_LE(d.measured_far(), 0.5);
}
