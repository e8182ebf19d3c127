// The open-set door benchmark's protocol (bench/learner/open_set.hpp) on constructed embeddings:
// what the site's own pipeline changes. Each identity's "bright" images lie near its own centre,
// its "dark" ones all near the origin whatever the person (Yale B's black chips: their embeddings
// nearly coincide across people). Unfiltered, the dark impostor pairs collapse the calibrated
// threshold; through the site's pipeline (the crop store keeps no dark crop, the enrollment gate
// takes no dark photo, the detector misses some) the threshold separates the people again, the
// gallery holds no dark photo, and a probe without a face is the door's no_face.
// The folds (open_set_folds.hpp): rotated enrolled/stranger splits, pooled, with their intervals.
#include <random>

#include <gtest/gtest.h>

#include "open_set_folds.hpp"

namespace fb = faceadapt::bench;
using faceadapt::learner::Embedding;

namespace {

struct Half {
    std::vector<Embedding> rows;
    std::vector<int> labels;
    fb::SiteMask mask;
};

// `per_id` images of each of `ids` identities; image j is dark when dark(j). Dark images are
// detected unless undetected(j); never kept or enrollable.
template <class Dark, class Undetected>
Half make_half(int ids, int per_id, Dark dark, Undetected undetected, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> noise(0.0f, 0.003f);  // two images of one look ~0.05 apart
    Half h;
    for (int id = 0; id < ids; ++id)
        for (int j = 0; j < per_id; ++j) {
            Embedding e{};
            if (!dark(j)) e[static_cast<std::size_t>(id)] = 1.0f;  // centres sqrt(2) apart
            for (auto& x : e) x += noise(rng);
            h.rows.push_back(e);
            h.labels.push_back(id);
            h.mask.detected.push_back(dark(j) && undetected(j) ? 0 : 1);
            h.mask.kept.push_back(dark(j) ? 0 : 1);
            h.mask.enrollable.push_back(dark(j) ? 0 : 1);
        }
    return h;
}

constexpr int kIds = 8, kEnrolled = 4, kFrames = 3000;

}  // namespace

TEST(OpenSetBenchmark, DarkLookAlikesCollapseTheThresholdUnlessTheSitePipelineDropsThem) {
    // Test half: 9 per identity, positions 0 (an enrollment pick) and 4, 7 dark; 7 also undetected.
    const auto test = make_half(kIds, 9, [](int j) { return j == 0 || j == 4 || j == 7; }, [](int j) { return j == 7; }, 1);
    // Adapt half: 24 per identity, every third dark (16 kept: about 7,000 distinct cross-person
    // pairs of kept crops, which resolve a door FAR of 1e-2 over 12 entries; 8 kept did not).
    const auto adapt = make_half(kIds, 24, [](int j) { return j % 3 == 2; }, [](int) { return false; }, 2);

    const fb::OpenSet raw(test.rows, test.labels, adapt.rows, adapt.labels, nullptr, nullptr, kEnrolled, kFrames);
    const auto raw_point = raw.calibrated(1e-2, fb::OpenSet::Statistic::entry_pairs);
    ASSERT_TRUE(raw_point.calibrated) << raw_point.note;
    EXPECT_LT(raw_point.threshold, 0.2) << "the dark pairs (~0.05 apart) set the tail";
    const auto raw_row = raw.measure("raw", raw_point);
    EXPECT_GT(raw_row.frr(), 0.9) << "a collapsed threshold rejects nearly everyone";

    const fb::OpenSet site(test.rows, test.labels, adapt.rows, adapt.labels, &test.mask, &adapt.mask, kEnrolled, kFrames);
    const auto c = site.counts();
    EXPECT_EQ(c.identities, std::size_t(kEnrolled));
    EXPECT_EQ(c.entries, std::size_t(3 * kEnrolled)) << "a refused pick is replaced by the next enrollable photo";
    EXPECT_EQ(c.without_gate, 0u);
    const auto point = site.calibrated(1e-2, fb::OpenSet::Statistic::entry_pairs);
    ASSERT_TRUE(point.calibrated) << point.note;
    EXPECT_GT(point.threshold, 0.5) << "bright impostors lie ~1.41 apart, bright genuine ~0.05";
    EXPECT_LT(point.threshold, 1.5);
    const auto row = site.measure("site", point);
    // Probes: every test image but the gallery's; dark position 7 has no face (no_face, apart).
    EXPECT_EQ(row.no_face_enrolled, std::size_t(kEnrolled));
    EXPECT_EQ(row.no_face_strangers, std::size_t(kIds - kEnrolled));
    EXPECT_EQ(row.stranger_probes, std::size_t((kIds - kEnrolled) * 8));
    EXPECT_EQ(row.strangers_accepted, 0u);
    EXPECT_EQ(row.enrolled_probes, std::size_t(kEnrolled * 5));  // 9 - 3 enrolled - 1 no_face
    // The gallery took 1, 3, 6 (1 in place of the dark 0). The dark probes with a face (0, 4) lie
    // ~1.0 from every bright photo of everyone: refused as ambiguous; the bright ones (2, 5, 8)
    // are accepted as themselves.
    EXPECT_EQ(row.enrolled_rejected, std::size_t(2 * kEnrolled));
    EXPECT_EQ(row.ambiguous, std::size_t(2 * kEnrolled));
    EXPECT_EQ(row.wrong, 0u);

    // The door statistic: a probe against each identity's nearest photo, over the identities.
    const auto door = site.calibrated(1e-2, fb::OpenSet::Statistic::nearest_identity);
    ASSERT_TRUE(door.calibrated) << door.note;
    EXPECT_EQ(door.comparisons, std::size_t(kEnrolled));
    EXPECT_GT(c.nearest, c.enrolled_nearest);
}

TEST(OpenSetFolds, RotateWhoIsEnrolledInComplementaryPairs) {
    std::vector<int> labels;
    for (int id = 0; id < kIds; ++id)
        for (int j = 0; j < 9 + id; ++j) labels.push_back(id);
    const auto folds = fb::make_open_set_folds(labels, 6, kEnrolled);
    ASSERT_EQ(folds.size(), 6u);
    EXPECT_EQ(folds[0].enrolled, (std::set<int>{0, 1, 2, 3})) << "fold 0 is the single split";
    EXPECT_TRUE(folds[0].photo_shift.empty());
    EXPECT_EQ(folds[0].frame_seed, 12u);
    std::map<int, int> enrolled_in;
    for (std::size_t f = 0; f < folds.size(); ++f) {
        EXPECT_EQ(folds[f].enrolled.size(), std::size_t(kEnrolled));
        for (int id : folds[f].enrolled) ++enrolled_in[id];
        if (f % 2 == 1) {
            for (int id : folds[f].enrolled) EXPECT_FALSE(folds[f - 1].enrolled.count(id)) << "fold " << f << " complements " << f - 1;
        }
        for (const auto& [id, shift] : folds[f].photo_shift) EXPECT_LT(shift, std::size_t(std::max(1, (9 + id) / 3)));
    }
    for (int id = 0; id < kIds; ++id) EXPECT_EQ(enrolled_in[id], 3) << "identity " << id << " enrolled in half the folds";
    EXPECT_NE(folds[2].enrolled, folds[4].enrolled) << "seeded splits differ";
    EXPECT_EQ(fb::make_open_set_folds(labels, 6, kEnrolled)[4].enrolled, folds[4].enrolled) << "and are reproducible";
    EXPECT_THROW(fb::make_open_set_folds(labels, 2, kIds), std::invalid_argument);
}

TEST(OpenSetFolds, PoolTheFoldsWithoutEverProbingAnEnrolledPhoto) {
    const auto test = make_half(kIds, 9, [](int j) { return j == 0 || j == 4 || j == 7; }, [](int j) { return j == 7; }, 1);
    const auto adapt = make_half(kIds, 24, [](int j) { return j % 3 == 2; }, [](int) { return false; }, 2);
    fb::OpenSetFoldOptions o;
    o.folds = 4;
    o.enrolled = kEnrolled;
    o.frames = kFrames;
    o.targets = {1e-2};
    const std::vector<fb::OpenSetModel> models{{"m", &test.rows, &adapt.rows}};
    const auto rows = fb::run_open_set_folds(models, test.labels, adapt.labels, &test.mask, &adapt.mask, o);
    ASSERT_EQ(rows.size(), 2u);  // m @ 0.6, m @ calibrated 1e-2
    EXPECT_TRUE(std::isnan(rows[0].target));
    EXPECT_EQ(rows[1].target, 1e-2);
    const auto folds = fb::make_open_set_folds(test.labels, o.folds, o.enrolled);
    for (const auto& r : rows) {
        ASSERT_EQ(r.folds.size(), 4u);
        std::size_t strangers = 0, enrolled = 0;
        for (std::size_t f = 0; f < 4; ++f) {
            const auto& x = r.folds[f];
            // Every test image is a probe, a gallery photo (3 per enrolled identity) or no_face, once.
            EXPECT_EQ(x.stranger_probes + x.enrolled_probes + x.no_face_strangers + x.no_face_enrolled + 3 * kEnrolled,
                      test.rows.size());
            for (const auto& [id, c] : x.stranger_by_id) EXPECT_FALSE(folds[f].enrolled.count(id)) << id;
            for (const auto& [id, c] : x.enrolled_by_id) EXPECT_TRUE(folds[f].enrolled.count(id)) << id;
            strangers += x.stranger_probes, enrolled += x.enrolled_probes;
        }
        EXPECT_EQ(r.far.trials, strangers);
        EXPECT_EQ(r.frr.trials, enrolled);
        EXPECT_EQ(r.far.by_id.size(), std::size_t(kIds)) << "over the folds every identity is a stranger";
    }
    // Bright impostors lie ~1.41 apart: the calibrated threshold accepts no stranger, in any fold.
    EXPECT_EQ(rows[1].calibrated, 4u);
    EXPECT_EQ(rows[1].far.events, 0u);
    EXPECT_EQ(rows[1].far.clopper_pearson().first, 0.0);
    EXPECT_NEAR(rows[1].far.clopper_pearson().second, 1 - std::pow(0.025, 1.0 / double(rows[1].far.trials)), 1e-9);
    // The crop store keeps no dark probe, so its "kept" rates count the bright ones only.
    EXPECT_EQ(rows[1].stranger_probes_kept, std::size_t(4 * (kIds - kEnrolled) * 6));
}

TEST(OpenSetFolds, TheIdentityBootstrapWidensTheIntervalWhenAcceptsComeFromFewPeople) {
    // 20 identities with 500 probes each; 20 accepts: all from one identity, or one from each.
    fb::PooledRate one, spread;
    for (int id = 0; id < 20; ++id) {
        one.add({{id, {id == 0 ? 20u : 0u, 500u}}});
        spread.add({{id, {1u, 500u}}});
    }
    EXPECT_EQ(one.rate(), spread.rate());
    EXPECT_EQ(one.clopper_pearson(), spread.clopper_pearson()) << "CP sees only the pooled counts";
    EXPECT_EQ(one.identities_with_events(), 1u);
    const auto [ol, ou] = one.identity_bootstrap(2000);
    const auto [sl, su] = spread.identity_bootstrap(2000);
    EXPECT_EQ(ol, 0.0) << "the one identity is left out of many resamples";
    EXPECT_GT(ou, one.clopper_pearson().second);
    EXPECT_EQ(sl, su) << "one accept per identity: every resample has the same rate";
    EXPECT_NEAR(sl, 0.002, 1e-12);
}

// Held-out calibration (adapt_benchmark --calib-holdout): the holdout takes whole tracks of 4
// kept crops, at least one per identity, and the same-frame pairs come from those tracks only.
// Here every crop the models would train on is a look-alike (all near the origin, whoever they
// show: as if training had collapsed them) and every held-out crop lies at its person's centre:
// calibrated on all kept crops the threshold collapses; on the held-out tracks it does not.
TEST(OpenSetHoldout, HoldsOutWholeTracksAndCalibratesOnThemOnly) {
    constexpr int per_id = 20;  // crop j kept unless j % 5 == 4: 16 kept, 4 tracks of 4
    std::vector<int> labels;
    fb::SiteMask mask;
    for (int id = 0; id < kIds; ++id)
        for (int j = 0; j < per_id; ++j) {
            labels.push_back(id);
            const char kept = j % 5 == 4 ? 0 : 1;
            mask.detected.push_back(1), mask.kept.push_back(kept), mask.enrollable.push_back(kept);
        }
    const auto h = fb::make_calibration_holdout(labels, &mask, 0.25, 3);
    ASSERT_EQ(h.tracks.size(), std::size_t(kIds)) << "round(0.25 x 4) = 1 track per identity";
    std::set<int> ids;
    std::size_t held = 0;
    for (const auto& t : h.tracks) {
        ASSERT_EQ(t.size(), 4u);
        ids.insert(labels[t.front()]);
        for (std::size_t i : t) {
            EXPECT_EQ(labels[i], labels[t.front()]) << "a track is one person";
            EXPECT_TRUE(mask.kept[i]) << "only crops the crop store keeps";
            EXPECT_TRUE(h.held_out[i]);
        }
    }
    EXPECT_EQ(ids.size(), std::size_t(kIds));
    for (char c : h.held_out) held += c;
    EXPECT_EQ(held, std::size_t(4 * kIds));
    EXPECT_EQ(h.trained(), labels.size() - held);
    for (std::size_t i : h.training_indices()) EXPECT_FALSE(h.held_out[i]);
    EXPECT_EQ(fb::make_calibration_holdout(labels, &mask, 0.5, 3).tracks.size(), std::size_t(2 * kIds));
    EXPECT_EQ(fb::make_calibration_holdout(labels, &mask, 0.01, 3).tracks.size(), std::size_t(kIds)) << "at least one";
    EXPECT_EQ(fb::make_calibration_holdout(labels, &mask, 0.25, 4).tracks.size(), std::size_t(kIds));
    EXPECT_THROW(fb::make_calibration_holdout(labels, &mask, 0.0, 3), std::invalid_argument);

    std::mt19937 rng(5);
    std::normal_distribution<float> noise(0.0f, 0.003f);
    std::vector<Embedding> adapt;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        Embedding e{};
        if (h.held_out[i]) e[static_cast<std::size_t>(labels[i])] = 1.0f;
        for (auto& x : e) x += noise(rng);
        adapt.push_back(e);
    }
    const auto test = make_half(kIds, 9, [](int) { return false; }, [](int) { return false; }, 1);
    fb::OpenSetFold fold;
    for (int id = 0; id < kEnrolled; ++id) fold.enrolled.insert(id);
    const fb::OpenSet all(test.rows, test.labels, adapt, labels, &test.mask, &mask, fold, kFrames);
    EXPECT_LT(all.calibrated(1e-2, fb::OpenSet::Statistic::entry_pairs).threshold, 0.1);
    const fb::OpenSet held_set(test.rows, test.labels, adapt, labels, &test.mask, &mask, fold, kFrames, &h);
    const auto point = held_set.calibrated(1e-2, fb::OpenSet::Statistic::entry_pairs);
    EXPECT_GT(point.threshold, 0.5) << point.note;
    // The frames draw the 8 held-out tracks with replacement: at most 8 x 7 / 2 x 16 distinct
    // pairs, each counted once (a repeated frame shows the same two faces again).
    const auto c = held_set.counts();
    EXPECT_LE(c.distinct_frame_pairs, std::size_t(kIds * (kIds - 1) / 2 * 16));
    EXPECT_EQ(c.entry_pairs - c.enrolled_entry_pairs, c.distinct_frame_pairs) << "each crop pair once";
    EXPECT_EQ(held_set.measure("held", point).strangers_accepted, 0u);
    // The count before: every repeat taken for a new pair, so the bound "resolved" more than the
    // pool holds.
    fb::OpenSetFold repeats = fold;
    repeats.count_frame_repeats = true;
    const fb::OpenSet repeated(test.rows, test.labels, adapt, labels, &test.mask, &mask, repeats, kFrames, &h);
    const auto rc = repeated.counts();
    EXPECT_EQ(rc.distinct_frame_pairs, c.distinct_frame_pairs);
    EXPECT_GT(rc.entry_pairs - rc.enrolled_entry_pairs, 10 * rc.distinct_frame_pairs) << "repeats";
    EXPECT_GT(repeated.impostor_pairs(fb::OpenSet::Statistic::nearest_identity),
              held_set.impostor_pairs(fb::OpenSet::Statistic::nearest_identity));
    // A door FAR of 1e-3 over 12 entries is a pair FAR of 8.3e-5: about 36,000 independent pairs
    // with none accepted. The distinct pool (< 500) cannot resolve it and says so; counting the
    // repeats claimed it could.
    const auto strict = held_set.calibrated(1e-3, fb::OpenSet::Statistic::entry_pairs);
    EXPECT_FALSE(strict.calibrated) << strict.note;
    EXPECT_GT(strict.min_resolvable_far, 1e-3);
    EXPECT_TRUE(repeated.calibrated(1e-3, fb::OpenSet::Statistic::entry_pairs).calibrated) << "the overclaim";
}

// The door's quality gate (--door-quality-gate, faceadapt-door match's "retry"): a probe with a
// face the crop store would not keep is asked to retry, counted apart like no_face; the FAR and
// FRR are then over the kept probes, exactly the "kept" columns of the ungated door.
TEST(OpenSetFolds, TheDoorsQualityGateCountsRetryProbesApart) {
    const auto test = make_half(kIds, 9, [](int j) { return j == 0 || j == 4 || j == 7; }, [](int j) { return j == 7; }, 1);
    const auto adapt = make_half(kIds, 24, [](int j) { return j % 3 == 2; }, [](int) { return false; }, 2);
    fb::OpenSetFoldOptions o;
    o.folds = 2;
    o.enrolled = kEnrolled;
    o.frames = kFrames;
    o.targets = {1e-2};
    const std::vector<fb::OpenSetModel> models{{"m", &test.rows, &adapt.rows}};
    const auto open = fb::run_open_set_folds(models, test.labels, adapt.labels, &test.mask, &adapt.mask, o);
    o.door_quality_gate = true;
    const auto gated = fb::run_open_set_folds(models, test.labels, adapt.labels, &test.mask, &adapt.mask, o);
    ASSERT_EQ(open.size(), gated.size());
    for (std::size_t r = 0; r < open.size(); ++r) {
        EXPECT_EQ(open[r].retry_strangers + open[r].retry_enrolled, 0u);
        // Per fold: each stranger's dark probe with a face (position 4; 0 is dark too) retries.
        EXPECT_EQ(gated[r].retry_strangers, open[r].far.trials - open[r].stranger_probes_kept);
        EXPECT_EQ(gated[r].retry_enrolled, open[r].frr.trials - open[r].enrolled_probes_kept);
        EXPECT_GT(gated[r].retry_strangers, 0u);
        EXPECT_EQ(gated[r].far.trials, open[r].stranger_probes_kept);
        EXPECT_EQ(gated[r].far.events, open[r].strangers_accepted_kept);
        EXPECT_EQ(gated[r].frr.trials, open[r].enrolled_probes_kept);
        EXPECT_EQ(gated[r].frr.events, open[r].enrolled_rejected_kept);
        EXPECT_EQ(gated[r].no_face_strangers, open[r].no_face_strangers);
    }
}
