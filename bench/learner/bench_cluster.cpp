// bench_cluster: the clustering scale target of issue 4. 100,000 synthetic clustered 128-D
// unit embeddings through exact kNN + sparse k-reciprocal Jaccard + DBSCAN (target < 60 s and
// < 2 GB peak RSS on 2 cores), then 10,000 of them against the dense N x N reference
// (target adjusted Rand >= 0.99). Optional argument: N for the large run.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <torch/torch.h>

#include "dense_jaccard_reference.hpp"
#include "faceadapt/learner/cluster.hpp"

namespace fl = faceadapt::learner;
using Clock = std::chrono::steady_clock;

static double peak_rss_mb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0;
}
static double seconds(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

int main(int argc, char** argv) {
    const int64_t big = argc > 1 ? std::atoll(argv[1]) : 100000;
    std::printf("threads %d\n", at::get_num_threads());
    {
        // ~20 images per identity, face-like spread (same-identity cosine ~0.8).
        std::vector<int64_t> truth;
        auto f = fl::reference::synthetic_blobs(big, 128, big / 20, 0.045, 7, &truth);
        const double rss0 = peak_rss_mb();
        auto t0 = Clock::now();
        auto knn = fl::knn_cosine(f, 21);
        const double t_knn = seconds(t0);
        knn = torch::Tensor();
        t0 = Clock::now();
        const auto g = fl::jaccard_distances(f, 20, 6);
        const double t_jac = seconds(t0);
        t0 = Clock::now();
        const double eps = fl::otsu_eps(g);
        const auto r = fl::dbscan_sparse(g, eps, 4);
        const double t_db = seconds(t0);
        const double total = t_jac + t_db;
        std::printf("cluster N=%lld D=128: kNN alone %.1f s; kNN+Jaccard %.1f s, otsu eps %.3f + DBSCAN %.2f s; "
                    "total %.1f s (target < 60), peak RSS %.0f MB (features %.0f MB; target < 2048), "
                    "stored pairs %.1f per row, clusters %lld, noise %lld, ARI vs truth %.3f\n",
                    static_cast<long long>(big), t_knn, t_jac, eps, t_db, total, peak_rss_mb(), rss0,
                    static_cast<double>(g.neighbours.size()) / static_cast<double>(big),
                    static_cast<long long>(r.num_clusters), static_cast<long long>(r.num_noise),
                    fl::adjusted_rand_index(r.labels, truth));
        std::printf("RESULT cluster_100k_seconds %.1f %s; peak_rss_mb %.0f %s\n", total, total < 60 ? "PASS" : "FAIL",
                    peak_rss_mb(), peak_rss_mb() < 2048 ? "PASS" : "FAIL");
    }
    {
        const int64_t n = 10000;
        std::vector<int64_t> truth;
        auto f = fl::reference::synthetic_blobs(n, 128, n / 20, 0.045, 8, &truth);
        auto t0 = Clock::now();
        fl::ClusterOptions o;
        const auto r = fl::cluster_features(f, o);
        const double t_sparse = seconds(t0);
        t0 = Clock::now();
        const auto dense = fl::reference::dense_jaccard(f, o.k1, o.k2);
        const auto ref = fl::reference::dense_dbscan(dense, n, r.eps, o.min_samples);
        const double t_dense = seconds(t0);
        const double ari = fl::adjusted_rand_index(r.labels, ref);
        std::printf("cluster N=10000: sparse %.2f s, dense reference %.1f s (same eps %.3f); ARI sparse vs dense %.4f "
                    "(target >= 0.99) %s; ARI vs truth %.3f\n",
                    t_sparse, t_dense, r.eps, ari, ari >= 0.99 ? "PASS" : "FAIL", fl::adjusted_rand_index(r.labels, truth));
    }
    return 0;
}
