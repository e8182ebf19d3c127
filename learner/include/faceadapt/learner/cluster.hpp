// Clustering of L2-normalised face embeddings into pseudo-identities (patent claim 4; MMT's
// k-reciprocal Jaccard DBSCAN made sparse).
//
// WHAT THIS REPRESENTS
//   cluster_features() turns N unit-norm feature rows into cluster labels (-1 = noise):
//   - "dbscan": exact cosine k-nearest neighbours (blocked matrix products, O(N*k) memory,
//     never an N x N matrix), MMT's k-reciprocal encoding with query expansion (k1, k2) as a
//     sparse matrix, the sparse Jaccard distance between those encodings, then DBSCAN over
//     the sparse distance graph (pairs not stored are at distance 1). eps comes from
//     `eps_rule`: "otsu" (Otsu threshold of every sample's 10th-nearest-neighbour Jaccard
//     distance, recomputed at each call), "mmt" (mean of the smallest 0.16% of all pairwise
//     Jaccard distances, MMT's rule) or "fixed" (`eps`).
//   - "kmeans": spherical k-means (k-means++ seeding from `seed`, cosine assignment,
//     normalised centroids), K = min(kmeans_k, N); no noise.
// THREAD SAFETY
//   Free functions without shared state; safe to call concurrently. Uses torch's intra-op
//   thread pool.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace at { class Tensor; }

namespace faceadapt::learner {

struct ClusterOptions {
    std::string method = "dbscan";     // dbscan|kmeans
    int k1 = 20;                       // k-reciprocal neighbourhood
    int k2 = 6;                        // query expansion (1 = none)
    int min_samples = 4;               // DBSCAN core size, the point itself included
    std::string eps_rule = "otsu";     // otsu|mmt|fixed
    double eps = 0.45;                 // used with eps_rule "fixed"
    int kmeans_k = 500;
    int kmeans_iters = 30;
    uint64_t seed = 0;
};

struct ClusterResult {
    std::vector<int64_t> labels;       // one per row; 0..num_clusters-1, -1 = noise
    int64_t num_clusters = 0;
    double eps = 0.0;                  // the eps DBSCAN used (0 for kmeans)
    int64_t num_noise = 0;
};

// Sparse symmetric distance graph: for row i, neighbours[offsets[i]..offsets[i+1]) with
// their distances, sorted by distance ascending (then index). Pairs absent are at distance 1.
struct SparseDistances {
    int64_t n = 0;
    std::vector<int64_t> offsets;      // n + 1
    std::vector<int32_t> neighbours;
    std::vector<float> distances;
};

// Exact k nearest neighbours by cosine similarity (the row itself always first).
// requires: features [N, D] float on CPU, rows L2-normalised, 1 <= k <= N.
// ensures: returns [N, k] int64 indices sorted by similarity descending (ties: lower index
// first). Memory O(N*k) plus two 2048 x 2048 tiles of similarities.
at::Tensor knn_cosine(const at::Tensor& features, int64_t k);

// MMT's k-reciprocal Jaccard distance, sparse. requires: as knn_cosine, k1 >= 1, k2 >= 1.
SparseDistances jaccard_distances(const at::Tensor& features, int k1, int k2);

// eps rules on a Jaccard graph. otsu_eps: Otsu threshold of each row's `nth`-nearest
// (self excluded) distance. mmt_eps: mean of the smallest `rho` fraction of the upper
// triangle's non-zero distances (absent pairs count as 1).
double otsu_eps(const SparseDistances& graph, int nth = 10);
double mmt_eps(const SparseDistances& graph, double rho = 1.6e-3);
// The eps `options.eps_rule` gives on `graph` (otsu_eps, mmt_eps or options.eps). throws
// std::invalid_argument naming the field for an unknown rule.
double rule_eps(const SparseDistances& graph, const ClusterOptions& options);

// DBSCAN on a sparse graph (sklearn's order: clusters grow from the lowest index; a border
// point joins the first cluster that reaches it). Neighbourhood: distance <= eps, self
// included. ensures: labels in 0..C-1 or -1.
ClusterResult dbscan_sparse(const SparseDistances& graph, double eps, int min_samples);

// Spherical k-means. requires: features as above.
ClusterResult spherical_kmeans(const at::Tensor& features, int k, int iters, uint64_t seed);

// The whole pipeline selected by options.
// throws std::invalid_argument naming the field for an unknown method/eps_rule, a features
//        tensor that is not 2-D float, or fewer rows than k1 + 1 (dbscan) / 1 (kmeans).
ClusterResult cluster_features(const at::Tensor& l2normalised_features, const ClusterOptions& options);

// cluster_features()'s argument checks alone (the same exceptions); nothing is computed.
void check_cluster_input(const at::Tensor& l2normalised_features, const ClusterOptions& options);

// Adjusted Rand index of two labelings, each noise point (-1) a singleton. throws
// std::invalid_argument when the sizes differ. (Other agreement figures: eval.hpp.)
double adjusted_rand_index(const std::vector<int64_t>& a, const std::vector<int64_t>& b);

// The labels with every noise point (-1) given a fresh id of its own (all >= 0).
std::vector<int64_t> noise_as_singletons(const std::vector<int64_t>& labels);

}  // namespace faceadapt::learner
