// Dense reference for the sparse clustering (tests and bench_cluster only): MMT's
// compute_jaccard_distance with N x N matrices, then DBSCAN over the full matrix. Written
// straight from the Python, without any of the sparse code, to cross-check it on <= 10k rows.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace faceadapt::learner::reference {

inline std::vector<int64_t> k_reciprocal_neigh(const std::vector<int64_t>& rank, int64_t width, int64_t i, int64_t k) {
    std::vector<int64_t> out;
    const int64_t kk = std::min(k + 1, width);
    for (int64_t a = 0; a < kk; ++a) {
        const int64_t c = rank[i * width + a];
        bool back = false;
        for (int64_t b = 0; b < kk; ++b) back |= rank[c * width + b] == i;
        if (back) out.push_back(c);
    }
    return out;
}

// Returns the dense Jaccard matrix [N, N] (float32, row-major).
inline std::vector<float> dense_jaccard(const torch::Tensor& f, int k1, int k2) {
    torch::NoGradGuard ng;
    const int64_t n = f.size(0);
    const int64_t width = std::min<int64_t>(n, k1 + 1);
    auto sim = torch::mm(f, f.t());
    sim.fill_diagonal_(2.0f);
    auto rank_t = std::get<1>(sim.topk(width, 1, true, true)).contiguous();
    std::vector<int64_t> rank(rank_t.data_ptr<int64_t>(), rank_t.data_ptr<int64_t>() + n * width);
    auto fa = f.accessor<float, 2>();
    std::vector<std::vector<int64_t>> nn, nn_half;
    for (int64_t i = 0; i < n; ++i) {
        nn.push_back(k_reciprocal_neigh(rank, width, i, k1));
        nn_half.push_back(k_reciprocal_neigh(rank, width, i, std::lround(k1 / 2.0)));
    }
    std::vector<float> v(static_cast<size_t>(n * n), 0.0f);
    for (int64_t i = 0; i < n; ++i) {
        std::vector<int64_t> exp = nn[i];
        for (int64_t c : nn[i]) {
            int64_t common = 0;
            for (int64_t x : nn_half[c]) common += std::count(nn[i].begin(), nn[i].end(), x) > 0;
            if (common > 2.0 / 3.0 * static_cast<double>(nn_half[c].size()))
                exp.insert(exp.end(), nn_half[c].begin(), nn_half[c].end());
        }
        std::sort(exp.begin(), exp.end());
        exp.erase(std::unique(exp.begin(), exp.end()), exp.end());
        std::vector<double> w;
        double mx = -1e30, sum = 0;
        for (int64_t j : exp) {
            double dot = 0;
            for (int64_t t = 0; t < f.size(1); ++t) dot += double(fa[i][t]) * double(fa[j][t]);
            w.push_back(-(2 - 2 * dot));
            mx = std::max(mx, w.back());
        }
        for (auto& x : w) { x = std::exp(x - mx); sum += x; }
        for (size_t a = 0; a < exp.size(); ++a) v[i * n + exp[a]] = static_cast<float>(w[a] / sum);
    }
    if (k2 > 1) {
        std::vector<float> qe(static_cast<size_t>(n * n), 0.0f);
        const int64_t kq = std::min<int64_t>(k2, width);
        std::vector<double> row(n);
        for (int64_t i = 0; i < n; ++i) {
            std::fill(row.begin(), row.end(), 0.0);
            for (int64_t a = 0; a < kq; ++a)
                for (int64_t c = 0; c < n; ++c) row[c] += v[rank[i * width + a] * n + c];
            for (int64_t c = 0; c < n; ++c) qe[i * n + c] = static_cast<float>(row[c] / static_cast<double>(kq));
        }
        v.swap(qe);
    }
    // invIndex[c] = rows with V[:, c] != 0, as MMT builds it with np.where.
    std::vector<std::vector<int64_t>> inv(n);
    for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < n; ++c)
            if (v[r * n + c] != 0.0f) inv[c].push_back(r);
    std::vector<float> jac(static_cast<size_t>(n * n), 1.0f);
    std::vector<double> temp_min(n);
    for (int64_t i = 0; i < n; ++i) {
        std::fill(temp_min.begin(), temp_min.end(), 0.0);
        for (int64_t c = 0; c < n; ++c) {
            const float a = v[i * n + c];
            if (a == 0.0f) continue;
            for (int64_t r : inv[c]) temp_min[r] += std::min(a, v[r * n + c]);
        }
        for (int64_t j = 0; j < n; ++j)
            jac[i * n + j] = static_cast<float>(std::max(0.0, 1.0 - temp_min[j] / (2.0 - temp_min[j])));
    }
    return jac;
}

// Dense DBSCAN (sklearn semantics, metric precomputed).
inline std::vector<int64_t> dense_dbscan(const std::vector<float>& d, int64_t n, double eps, int min_samples) {
    std::vector<std::vector<int64_t>> nb(n);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
            if (d[i * n + j] <= eps || i == j) nb[i].push_back(j);
    std::vector<int64_t> labels(n, -1);
    int64_t next = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (labels[i] != -1 || static_cast<int64_t>(nb[i].size()) < min_samples) continue;
        std::vector<int64_t> stack{i};
        while (!stack.empty()) {
            const int64_t p = stack.back();
            stack.pop_back();
            if (labels[p] != -1) continue;
            labels[p] = next;
            if (static_cast<int64_t>(nb[p].size()) < min_samples) continue;
            for (int64_t q : nb[p])
                if (labels[q] == -1) stack.push_back(q);
        }
        ++next;
    }
    return labels;
}

// Synthetic clustered unit vectors: `clusters` centres on the sphere, each point the centre
// plus Gaussian noise of `spread` per dimension, renormalised. truth gets the centre index.
inline torch::Tensor synthetic_blobs(int64_t n, int64_t dim, int64_t clusters, double spread, uint64_t seed,
                                     std::vector<int64_t>* truth) {
    auto gen = at::detail::createCPUGenerator(seed);
    auto centres = torch::nn::functional::normalize(at::randn({clusters, dim}, gen),
                                                    torch::nn::functional::NormalizeFuncOptions().dim(1));
    auto assign = at::randint(clusters, {n}, gen, torch::kInt64);
    auto x = centres.index_select(0, assign) + spread * at::randn({n, dim}, gen);
    if (truth) truth->assign(assign.data_ptr<int64_t>(), assign.data_ptr<int64_t>() + n);
    return torch::nn::functional::normalize(x, torch::nn::functional::NormalizeFuncOptions().dim(1)).contiguous();
}

}  // namespace faceadapt::learner::reference
