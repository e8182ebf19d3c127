// Evaluation metrics on small hand-computed cases (values worked out in the comments).
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "faceadapt/learner/eval.hpp"

using namespace faceadapt::learner;

namespace {
// Embeddings on one axis: distance between two = |x_a - x_b|.
std::vector<Embedding> on_axis(const std::vector<float>& xs) {
    std::vector<Embedding> out;
    for (float x : xs) {
        Embedding e{};
        e[0] = x;
        out.push_back(e);
    }
    return out;
}
}  // namespace

TEST(Eval, TarAtFar) {
    const std::vector<float> genuine{0.1f, 0.2f, 0.3f, 0.4f};
    const std::vector<float> impostor{0.25f, 0.35f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1.0f, 1.1f, 1.2f};
    // FAR 0.1 of 10 impostors: k = 1, threshold = 2nd smallest impostor 0.35 -> 3 of 4 genuine below
    EXPECT_DOUBLE_EQ(tar_at_far(genuine, impostor, 0.1), 0.75);
    // FAR 0.05: k = 0, threshold 0.25 -> 0.1, 0.2 below
    EXPECT_DOUBLE_EQ(tar_at_far(genuine, impostor, 0.05), 0.5);
    EXPECT_DOUBLE_EQ(tar_at_far(genuine, impostor, 1e-3), 0.5);
    // ties with the threshold are rejected
    EXPECT_DOUBLE_EQ(tar_at_far({0.25f}, impostor, 0.0), 0.0);
    EXPECT_DOUBLE_EQ(tar_at_far({}, impostor, 0.1), 0.0);
    EXPECT_DOUBLE_EQ(tar_at_far(genuine, {}, 0.1), 1.0);
}

TEST(Eval, VerificationOverAllPairs) {
    // x = 0, 0.5 (id 0), 2.0, 2.3 (id 1): genuine 0.5, 0.3; impostor 2.0, 2.3, 1.5, 1.8
    auto r = verify_all_pairs(on_axis({0.0f, 0.5f, 2.0f, 2.3f}), {0, 0, 1, 1});
    EXPECT_EQ(r.genuine_pairs, 2u);
    EXPECT_EQ(r.impostor_pairs, 4u);
    EXPECT_DOUBLE_EQ(r.pair_accuracy, 1.0);
    EXPECT_NEAR(r.mean_genuine_distance, 0.4, 1e-6);
    EXPECT_NEAR(r.mean_impostor_distance, 1.9, 1e-6);
    // x1 = 0.7: genuine 0.7 (rejected at 0.6), 0.3; impostors 2.0, 2.3, 1.3, 1.6 -> balanced 0.75
    r = verify_all_pairs(on_axis({0.0f, 0.7f, 2.0f, 2.3f}), {0, 0, 1, 1});
    EXPECT_DOUBLE_EQ(r.pair_accuracy, 0.75);
    // FAR 1e-3 of 4 impostors: k = 0, threshold = 1.3 -> both genuine accepted
    EXPECT_DOUBLE_EQ(r.tar_at_far_1e3, 1.0);
    EXPECT_DOUBLE_EQ(r.tar_at_far_1e4, 1.0);
    // impostor at 0.2 below every genuine pair: TAR 0
    r = verify_all_pairs(on_axis({0.0f, 0.5f, 0.7f, 1.4f}), {0, 0, 1, 1});
    EXPECT_DOUBLE_EQ(r.tar_at_far_1e3, 0.0);
    EXPECT_THROW(verify_all_pairs(on_axis({0.0f}), {0, 1}), std::invalid_argument);
}

TEST(Eval, PairsAccuracyTenFoldStyle) {
    // 4 pairs, 2 folds (fold = index mod 2):
    //   p0 same 0.2, p1 diff 0.9, p2 diff 0.5, p3 same 0.6
    // fold 0 tests {p0,p2}, trains on {p3 same 0.6, p1 diff 0.9}: t = 0.75 -> p0 right, p2 wrong
    // fold 1 tests {p1,p3}, trains on {p0 same 0.2, p2 diff 0.5}: t = 0.35 -> p1 right, p3 wrong
    const auto emb = on_axis({0.0f, 0.2f, 0.0f, 0.9f, 0.0f, 0.5f, 0.0f, 0.6f});
    const std::vector<Pair> pairs{{0, 1, true}, {2, 3, false}, {4, 5, false}, {6, 7, true}};
    auto r = pairs_accuracy(emb, pairs, 2);
    EXPECT_EQ(r.pairs, 4u);
    EXPECT_DOUBLE_EQ(r.accuracy, 0.5);
    EXPECT_DOUBLE_EQ(r.accuracy_std, 0.0);
    EXPECT_NEAR(r.mean_threshold, 0.55, 1e-6);
    // separable pairs: every fold is right
    const std::vector<Pair> sep{{0, 1, true}, {2, 3, false}, {6, 7, true}, {2, 3, false}};
    EXPECT_DOUBLE_EQ(pairs_accuracy(emb, sep, 2).accuracy, 1.0);
    EXPECT_THROW(pairs_accuracy(emb, {{0, 99, true}, {0, 1, true}}, 2), std::invalid_argument);
    EXPECT_THROW(pairs_accuracy(emb, pairs, 10), std::invalid_argument);
}

TEST(Eval, Rank1LeaveOneOut) {
    // x: 0 (a), 0.1 (a), 1.0 (b), 1.05 (c, alone), 2.0 (b), 5.0 (d, alone)
    // queries: the a's and b's (c, d have no other sample). a's find each other; 1.0 (b) finds
    // 1.05 (c); 2.0 (b) finds 1.05 (0.95 < 1.0). rank-1 = 2/4.
    const auto r = rank1_leave_one_out(on_axis({0.0f, 0.1f, 1.0f, 1.05f, 2.0f, 5.0f}), {0, 0, 1, 2, 1, 3});
    EXPECT_EQ(r.queries, 4u);
    EXPECT_DOUBLE_EQ(r.rank1, 0.5);
}

TEST(Eval, ClusteringQualityMixedCase) {
    // truth [0,0,0,1,1,2], predicted [0,0,1,1,1,-1]; cells (c0,t0)=2 (c1,t0)=1 (c1,t1)=2 (noise,t2)=1
    // pairwise: TP = 1 + 1 = 2; predicted pairs 1 + 3 = 4; true pairs 3 + 1 = 4 -> P = R = F = 0.5
    // BCubed P = (1+1+1/3+2/3+2/3+1)/6 = 7/9; R = (2/3+2/3+1/3+1+1+1)/6 = 7/9
    // NMI: H(C) = H(T) = entropy of sizes (3,2,1)/6 = 1.011404; I = 2*(1/3)ln2 + (1/6)ln(2/3)
    //      + (1/6)ln6 = ln2 = 0.693147 -> 0.685332
    const auto q = clustering_quality({0, 0, 0, 1, 1, 2}, {0, 0, 1, 1, 1, -1});
    EXPECT_NEAR(q.pairwise_precision, 0.5, 1e-12);
    EXPECT_NEAR(q.pairwise_recall, 0.5, 1e-12);
    EXPECT_NEAR(q.pairwise_f, 0.5, 1e-12);
    EXPECT_NEAR(q.bcubed_precision, 7.0 / 9, 1e-12);
    EXPECT_NEAR(q.bcubed_recall, 7.0 / 9, 1e-12);
    EXPECT_NEAR(q.bcubed_f, 7.0 / 9, 1e-12);
    EXPECT_NEAR(q.nmi, 0.685332, 1e-5);
    EXPECT_EQ(q.clusters, 2u);
    EXPECT_EQ(q.noise, 1u);
}

TEST(Eval, ClusteringQualityEdgeCases) {
    // perfect up to renaming
    auto q = clustering_quality({0, 0, 1, 1}, {5, 5, 7, 7});
    EXPECT_DOUBLE_EQ(q.pairwise_f, 1.0);
    EXPECT_DOUBLE_EQ(q.bcubed_f, 1.0);
    EXPECT_NEAR(q.nmi, 1.0, 1e-12);
    EXPECT_EQ(q.clusters, 2u);
    // everything noise: pairwise P = 0/0 = 1, R = 0 -> F 0; BCubed P 1, R (1/2+1/2+1)/3 = 2/3,
    // F 0.8; NMI = H(T) / ((ln 3 + H(T)) / 2) with H(T) = 0.636514 -> 0.733680
    q = clustering_quality({0, 0, 1}, {-1, -1, -1});
    EXPECT_DOUBLE_EQ(q.pairwise_precision, 1.0);
    EXPECT_DOUBLE_EQ(q.pairwise_recall, 0.0);
    EXPECT_DOUBLE_EQ(q.pairwise_f, 0.0);
    EXPECT_NEAR(q.bcubed_recall, 2.0 / 3, 1e-12);
    EXPECT_NEAR(q.bcubed_f, 0.8, 1e-12);
    EXPECT_NEAR(q.nmi, 0.733680, 1e-5);
    EXPECT_EQ(q.clusters, 0u);
    EXPECT_EQ(q.noise, 3u);
    // one cluster for one identity: both entropies 0 -> NMI 1
    EXPECT_DOUBLE_EQ(clustering_quality({3, 3}, {0, 0}).nmi, 1.0);
    EXPECT_THROW(clustering_quality({0, 1}, {0}), std::invalid_argument);
    EXPECT_THROW(clustering_quality({0, 1}, {0, -2}), std::invalid_argument);
}
