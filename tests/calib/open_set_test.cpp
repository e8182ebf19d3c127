// The open-set door benchmark's protocol (bench/learner/open_set.hpp) on constructed embeddings:
// what the site's own pipeline changes. Each identity's "bright" images lie near its own centre,
// its "dark" ones all near the origin whatever the person (Yale B's black chips: their embeddings
// nearly coincide across people). Unfiltered, the dark impostor pairs collapse the calibrated
// threshold; through the site's pipeline (the crop store keeps no dark crop, the enrollment gate
// takes no dark photo, the detector misses some) the threshold separates the people again, the
// gallery holds no dark photo, and a probe without a face is the door's no_face.
#include <random>

#include <gtest/gtest.h>

#include "open_set.hpp"

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
    // Adapt half: 12 per identity, every third dark.
    const auto adapt = make_half(kIds, 12, [](int j) { return j % 3 == 2; }, [](int) { return false; }, 2);

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
