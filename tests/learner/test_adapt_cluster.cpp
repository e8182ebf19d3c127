// Clustering: sparse k-reciprocal Jaccard DBSCAN against a dense reference, eps rules,
// spherical k-means on synthetic blobs, bad input.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "dense_jaccard_reference.hpp"
#include "faceadapt/learner/cluster.hpp"

namespace fl = faceadapt::learner;

TEST(Cluster, KnnMatchesBruteForce) {
    auto f = fl::reference::synthetic_blobs(700, 16, 10, 0.3, 1, nullptr);
    auto knn = fl::knn_cosine(f, 5);
    ASSERT_EQ(knn.sizes(), (std::vector<int64_t>{700, 5}));
    auto sim = torch::mm(f, f.t());
    sim.fill_diagonal_(2.0f);
    auto expect = std::get<1>(sim.topk(5, 1));
    EXPECT_TRUE(torch::equal(knn, expect));
    EXPECT_TRUE(torch::equal(knn.select(1, 0), torch::arange(700)));
}

TEST(Cluster, SparseJaccardEqualsDenseReference) {
    auto f = fl::reference::synthetic_blobs(600, 32, 12, 0.25, 2, nullptr);
    const auto g = fl::jaccard_distances(f, 20, 6);
    const auto dense = fl::reference::dense_jaccard(f, 20, 6);
    const int64_t n = 600;
    std::vector<float> from_sparse(n * n, 1.0f);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t p = g.offsets[i]; p < g.offsets[i + 1]; ++p) from_sparse[i * n + g.neighbours[p]] = g.distances[p];
    double worst = 0;
    for (size_t t = 0; t < dense.size(); ++t) worst = std::max(worst, double(std::abs(dense[t] - from_sparse[t])));
    EXPECT_LT(worst, 1e-5);
    // Symmetric, self at distance 0, rows sorted.
    for (int64_t i = 0; i < n; ++i) {
        EXPECT_NEAR(from_sparse[i * n + i], 0.0f, 1e-6);
        for (int64_t p = g.offsets[i] + 1; p < g.offsets[i + 1]; ++p) ASSERT_LE(g.distances[p - 1], g.distances[p]);
    }
    for (int64_t i = 0; i < n; i += 7)
        for (int64_t j = 0; j < n; j += 5) ASSERT_NEAR(from_sparse[i * n + j], from_sparse[j * n + i], 1e-6);
}

TEST(Cluster, DbscanOnBlobsRecoversTruthAndMatchesDense) {
    std::vector<int64_t> truth;
    auto f = fl::reference::synthetic_blobs(1200, 64, 30, 0.09, 3, &truth);
    fl::ClusterOptions o;  // dbscan, otsu
    const auto r = fl::cluster_features(f, o);
    ASSERT_EQ(r.labels.size(), 1200u);
    EXPECT_GT(r.eps, 0.05);
    EXPECT_LT(r.eps, 0.95);
    EXPECT_GE(r.num_clusters, 27);
    EXPECT_LE(r.num_clusters, 40);
    // Jaccard DBSCAN leaves the blobs' fringe as noise; the points it clusters are grouped right.
    EXPECT_LT(r.num_noise, 1200 / 5);
    std::vector<int64_t> kept, kept_truth;
    for (size_t i = 0; i < truth.size(); ++i)
        if (r.labels[i] >= 0) kept.push_back(r.labels[i]), kept_truth.push_back(truth[i]);
    EXPECT_GT(fl::adjusted_rand_index(kept, kept_truth), 0.95) << "eps " << r.eps << " clusters " << r.num_clusters;
    const auto dense = fl::reference::dense_jaccard(f, o.k1, o.k2);
    const auto ref = fl::reference::dense_dbscan(dense, 1200, r.eps, o.min_samples);
    EXPECT_GE(fl::adjusted_rand_index(r.labels, ref), 0.99);
    EXPECT_EQ(r.labels, ref);
}

TEST(Cluster, EpsRules) {
    std::vector<int64_t> truth;
    auto f = fl::reference::synthetic_blobs(800, 32, 20, 0.1, 4, &truth);
    const auto g = fl::jaccard_distances(f, 20, 6);
    const double otsu = fl::otsu_eps(g);
    const double mmt = fl::mmt_eps(g);
    EXPECT_GT(otsu, 0.0);
    EXPECT_LT(otsu, 1.0);
    // MMT's rule takes the mean of a tiny fraction of the smallest distances: well below Otsu.
    EXPECT_GT(mmt, 0.0);
    EXPECT_LT(mmt, otsu);
    // Hand-made graph: 4 rows whose 1st-neighbour distances are 0.1, 0.1, 0.9, 0.9.
    fl::SparseDistances h;
    h.n = 4;
    h.offsets = {0, 2, 4, 6, 8};
    h.neighbours = {0, 1, 1, 0, 2, 3, 3, 2};
    h.distances = {0, 0.1f, 0, 0.1f, 0, 0.9f, 0, 0.9f};
    EXPECT_NEAR(fl::otsu_eps(h, 1), 0.5, 1e-6);
    // Upper-triangle distances: 0.1, 0.9 and four absent pairs at 1; rho 1/3 -> 2 smallest.
    EXPECT_NEAR(fl::mmt_eps(h, 1.0 / 3.0), 0.5, 1e-6);
    const auto db = fl::dbscan_sparse(h, 0.5, 2);
    EXPECT_EQ(db.labels, (std::vector<int64_t>{0, 0, -1, -1}));
    EXPECT_EQ(db.num_noise, 2);
    fl::ClusterOptions fixed;
    fixed.eps_rule = "fixed";
    fixed.eps = 0.3;
    EXPECT_DOUBLE_EQ(fl::cluster_features(f, fixed).eps, 0.3);
}

TEST(Cluster, SphericalKmeansOnBlobs) {
    std::vector<int64_t> truth;
    auto f = fl::reference::synthetic_blobs(1000, 32, 8, 0.1, 5, &truth);
    fl::ClusterOptions o;
    o.method = "kmeans";
    o.kmeans_k = 8;
    const auto r = fl::cluster_features(f, o);
    EXPECT_EQ(r.num_clusters, 8);
    EXPECT_GT(fl::adjusted_rand_index(r.labels, truth), 0.95);
    EXPECT_EQ(std::count(r.labels.begin(), r.labels.end(), -1), 0);
    // Same seed, same labels; K larger than N is capped.
    EXPECT_EQ(fl::cluster_features(f, o).labels, r.labels);
    o.kmeans_k = 5000;
    EXPECT_LE(fl::cluster_features(f.slice(0, 0, 20), o).num_clusters, 20);
}

TEST(Cluster, IndicesOfAgreement) {
    EXPECT_DOUBLE_EQ(fl::adjusted_rand_index({0, 0, 1, 1}, {5, 5, 7, 7}), 1.0);
    EXPECT_EQ(fl::noise_as_singletons({-1, 0, -1, 1}), (std::vector<int64_t>{2, 0, 3, 1}));
    // Hand-computed: a={0,0,0,1,1,1}, b={0,0,1,1,2,2}: sum C(nij,2)=2, a:6, b:3, pairs 15.
    // expected 6*3/15 = 1.2, max 4.5 -> ARI (2-1.2)/(4.5-1.2) = 0.242424...
    EXPECT_NEAR(fl::adjusted_rand_index({0, 0, 0, 1, 1, 1}, {0, 0, 1, 1, 2, 2}), 0.8 / 3.3, 1e-12);
    EXPECT_THROW(fl::adjusted_rand_index({0}, {0, 1}), std::invalid_argument);
}

TEST(Cluster, BadInputIsRejectedClearly) {
    fl::ClusterOptions o;
    EXPECT_THROW(fl::cluster_features(torch::zeros({10}), o), std::invalid_argument);
    EXPECT_THROW(fl::cluster_features(torch::zeros({30, 4}, torch::kFloat64), o), std::invalid_argument);
    try {
        fl::cluster_features(torch::randn({5, 4}), o);
        FAIL() << "5 rows with k1 20 must throw";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("k1"), std::string::npos);
    }
    o.method = "spectral";
    EXPECT_THROW(fl::cluster_features(torch::randn({50, 4}), o), std::invalid_argument);
    o.method = "dbscan";
    o.eps_rule = "median";
    EXPECT_THROW(fl::cluster_features(torch::randn({50, 4}), o), std::invalid_argument);
}
