// Sparse k-reciprocal Jaccard DBSCAN and spherical k-means; see cluster.hpp.
#include "faceadapt/learner/cluster.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <stdexcept>
#include <unordered_map>

#include <ATen/Parallel.h>
#include <torch/torch.h>

namespace faceadapt::learner {
namespace {

void check_features(const at::Tensor& f, const char* who) {
    if (!f.defined() || f.dim() != 2 || f.scalar_type() != torch::kFloat32)
        throw std::invalid_argument(std::string(who) + ": features must be a 2-D float32 tensor [N, D]");
}

// A sparse row: sorted column indices with values.
struct SparseRow {
    std::vector<int32_t> cols;
    std::vector<float> vals;
};

// k-reciprocal neighbours of i within the first k+1 columns of rank (self included).
std::vector<int32_t> k_reciprocal(const int64_t* rank, int64_t width, int64_t i, int64_t k) {
    std::vector<int32_t> out;
    const int64_t kk = std::min<int64_t>(k + 1, width);
    for (int64_t a = 0; a < kk; ++a) {
        const int64_t c = rank[i * width + a];
        const int64_t* back = rank + c * width;
        if (std::find(back, back + kk, i) != back + kk) out.push_back(static_cast<int32_t>(c));
    }
    return out;
}

}  // namespace

// a @ b^T for float rows, computed as a 1x1 convolution: libtorch's CPU matrix product goes
// to whatever BLAS the system has (Debian's reference BLAS runs at ~1 GFLOP/s), while its
// convolutions run on oneDNN at full speed. Batch >= 16 keeps the convolution on oneDNN.
static torch::Tensor similarity_tile(const torch::Tensor& a, const torch::Tensor& b) {
    if (!a.device().is_cpu()) return torch::mm(a, b.t());
    constexpr int64_t kBatch = 16;
    const int64_t m = a.size(0), n = b.size(0), d = a.size(1);
    const int64_t cols = (n + kBatch - 1) / kBatch;
    auto bp = b;
    if (cols * kBatch != n) bp = torch::cat({b, torch::zeros({cols * kBatch - n, d}, b.options())});
    const auto input = bp.reshape({kBatch, cols, d}).permute({0, 2, 1}).unsqueeze(2).contiguous();  // [16,d,1,cols]
    const auto out = torch::conv2d(input, a.reshape({m, d, 1, 1}));                                  // [16,m,1,cols]
    return out.squeeze(2).permute({1, 0, 2}).reshape({m, kBatch * cols}).slice(1, 0, n);
}

namespace {
// The k best (similarity, index) of one row, as a min-heap on similarity (ties: larger index
// is worse, so the result matches a stable descending sort).
struct TopK {
    static bool worse(const std::pair<float, int64_t>& x, const std::pair<float, int64_t>& y) {
        return x.first > y.first || (x.first == y.first && x.second < y.second);
    }
    void push(std::vector<std::pair<float, int64_t>>& heap, int64_t k, float v, int64_t j) const {
        if (static_cast<int64_t>(heap.size()) < k) {
            heap.emplace_back(v, j);
            std::push_heap(heap.begin(), heap.end(), worse);
        } else if (v > heap.front().first || (v == heap.front().first && j < heap.front().second)) {
            std::pop_heap(heap.begin(), heap.end(), worse);
            heap.back() = {v, j};
            std::push_heap(heap.begin(), heap.end(), worse);
        }
    }
};
}  // namespace

at::Tensor knn_cosine(const at::Tensor& features, int64_t k) {
    check_features(features, "knn_cosine");
    torch::NoGradGuard no_grad;
    const auto f = features.contiguous();
    const int64_t n = f.size(0);
    if (k < 1 || k > n) throw std::invalid_argument("knn_cosine: k must be in [1, N]");
    // Square tiles of the similarity matrix, each computed once for the pair (I, J >= I) and
    // scanned by rows for I and by columns (the transposed tile) for J: half the products,
    // memory O(N*k) + two tiles.
    constexpr int64_t kTile = 2048;
    std::vector<std::vector<std::pair<float, int64_t>>> heaps(n);
    for (auto& h : heaps) h.reserve(k);
    const TopK topk;
    auto offer = [&](std::vector<std::pair<float, int64_t>>& heap, float v, int64_t index) {
        if (static_cast<int64_t>(heap.size()) == k && v < heap.front().first) return;
        topk.push(heap, k, v, index);
    };
    // Rows of the tile for I's heaps.
    auto scan_rows = [&](const float* p, int64_t rows, int64_t cols, int64_t row0, int64_t col0, bool diagonal) {
        at::parallel_for(0, rows, 64, [&](int64_t b, int64_t e) {
            for (int64_t r = b; r < e; ++r) {
                auto& heap = heaps[row0 + r];
                const float* row = p + r * cols;
                // The row itself always ranks first (a duplicate may tie its similarity).
                for (int64_t j = 0; j < cols; ++j) offer(heap, diagonal && j == r ? 2.0f : row[j], col0 + j);
            }
        });
    };
    // Columns of the same tile for J's heaps, read in place (a transposed copy would cost a fresh
    // 16 MB buffer per tile, and glibc's page faults on it doubled a cold 100k run). Each heap
    // still sees its candidates in row order, so the result is the same as scanning the copy.
    auto scan_columns = [&](const float* p, int64_t rows, int64_t cols, int64_t row0, int64_t col0) {
        at::parallel_for(0, cols, 64, [&](int64_t b, int64_t e) {
            for (int64_t r = 0; r < rows; ++r) {
                const float* row = p + r * cols;
                for (int64_t j = b; j < e; ++j) offer(heaps[col0 + j], row[j], row0 + r);
            }
        });
    };
    for (int64_t i0 = 0; i0 < n; i0 += kTile) {
        const auto a = f.slice(0, i0, std::min(n, i0 + kTile));
        for (int64_t j0 = i0; j0 < n; j0 += kTile) {
            const auto b = f.slice(0, j0, std::min(n, j0 + kTile));
            const auto sim = similarity_tile(a, b).contiguous();
            const float* p = sim.data_ptr<float>();
            scan_rows(p, sim.size(0), sim.size(1), i0, j0, i0 == j0);
            if (j0 != i0) scan_columns(p, sim.size(0), sim.size(1), i0, j0);
        }
    }
    auto out = torch::empty({n, k}, torch::kInt64);
    int64_t* o = out.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
        auto& h = heaps[i];
        std::sort(h.begin(), h.end(), [](const auto& x, const auto& y) {
            return x.first > y.first || (x.first == y.first && x.second < y.second);
        });
        for (int64_t t = 0; t < k; ++t) o[i * k + t] = h[t].second;
    }
    return out;
}

SparseDistances jaccard_distances(const at::Tensor& features, int k1, int k2) {
    check_features(features, "jaccard_distances");
    if (k1 < 1 || k2 < 1) throw std::invalid_argument("jaccard_distances: k1 and k2 must be >= 1");
    torch::NoGradGuard no_grad;
    const auto f = features.contiguous();
    const int64_t n = f.size(0);
    const int64_t width = std::min<int64_t>(n, k1 + 1);
    const auto rank_t = knn_cosine(f, width);
    const int64_t* rank = rank_t.data_ptr<int64_t>();
    const float* fp = f.data_ptr<float>();
    const int64_t d = f.size(1);
    const int64_t half = static_cast<int64_t>(std::lround(k1 / 2.0));

    std::vector<std::vector<int32_t>> nn_half(n);
    at::parallel_for(0, n, 256, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) nn_half[i] = k_reciprocal(rank, width, i, half);
    });

    // V: softmax(-(2 - 2 cos)) over each row's expanded k-reciprocal set.
    std::vector<SparseRow> v(n);
    at::parallel_for(0, n, 256, [&](int64_t b, int64_t e) {
        std::vector<int32_t> expansion;
        for (int64_t i = b; i < e; ++i) {
            const auto base = k_reciprocal(rank, width, i, k1);
            std::vector<int32_t> sorted_base = base;
            std::sort(sorted_base.begin(), sorted_base.end());
            expansion = base;
            for (int32_t cand : base) {
                const auto& ch = nn_half[cand];
                int64_t common = 0;
                for (int32_t x : ch) common += std::binary_search(sorted_base.begin(), sorted_base.end(), x);
                if (static_cast<double>(common) > 2.0 / 3.0 * static_cast<double>(ch.size()))
                    expansion.insert(expansion.end(), ch.begin(), ch.end());
            }
            std::sort(expansion.begin(), expansion.end());
            expansion.erase(std::unique(expansion.begin(), expansion.end()), expansion.end());
            SparseRow row;
            row.cols = expansion;
            row.vals.resize(expansion.size());
            double mx = -1e30;
            std::vector<double> logits(expansion.size());
            for (size_t a = 0; a < expansion.size(); ++a) {
                const float* x = fp + i * d;
                const float* y = fp + int64_t{expansion[a]} * d;
                double dot = 0;
                for (int64_t t = 0; t < d; ++t) dot += double(x[t]) * double(y[t]);
                logits[a] = -(2.0 - 2.0 * dot);
                mx = std::max(mx, logits[a]);
            }
            double sum = 0;
            for (auto& l : logits) { l = std::exp(l - mx); sum += l; }
            for (size_t a = 0; a < expansion.size(); ++a) row.vals[a] = static_cast<float>(logits[a] / sum);
            v[i] = std::move(row);
        }
    });

    // Query expansion: V_qe[i] = mean of V over i's k2 nearest neighbours.
    if (k2 > 1) {
        const int64_t kq = std::min<int64_t>(k2, width);
        std::vector<SparseRow> qe(n);
        at::parallel_for(0, n, 256, [&](int64_t b, int64_t e) {
            std::map<int32_t, double> acc;
            for (int64_t i = b; i < e; ++i) {
                acc.clear();
                for (int64_t a = 0; a < kq; ++a) {
                    const auto& r = v[rank[i * width + a]];
                    for (size_t t = 0; t < r.cols.size(); ++t) acc[r.cols[t]] += r.vals[t];
                }
                SparseRow row;
                row.cols.reserve(acc.size());
                row.vals.reserve(acc.size());
                for (const auto& [c, s] : acc) {
                    row.cols.push_back(c);
                    row.vals.push_back(static_cast<float>(s / static_cast<double>(kq)));
                }
                qe[i] = std::move(row);
            }
        });
        v = std::move(qe);
    }

    // Inverted index: for each column, the rows that are non-zero there, with their values.
    std::vector<int64_t> col_count(n + 1, 0);
    for (const auto& r : v)
        for (int32_t c : r.cols) ++col_count[c + 1];
    std::partial_sum(col_count.begin(), col_count.end(), col_count.begin());
    std::vector<int32_t> inv_rows(col_count[n]);
    std::vector<float> inv_vals(col_count[n]);
    {
        std::vector<int64_t> fill(col_count.begin(), col_count.end() - 1);
        for (int64_t i = 0; i < n; ++i)
            for (size_t t = 0; t < v[i].cols.size(); ++t) {
                const int64_t pos = fill[v[i].cols[t]]++;
                inv_rows[pos] = static_cast<int32_t>(i);
                inv_vals[pos] = v[i].vals[t];
            }
    }

    // Jaccard: 1 - m/(2 - m), m = sum over shared columns of min(V[i,c], V[j,c]).
    std::vector<SparseRow> rows(n);
    at::parallel_for(0, n, 256, [&](int64_t b, int64_t e) {
        std::unordered_map<int32_t, double> acc;
        std::vector<std::pair<float, int32_t>> tmp;
        for (int64_t i = b; i < e; ++i) {
            acc.clear();
            const auto& r = v[i];
            for (size_t t = 0; t < r.cols.size(); ++t) {
                const int32_t c = r.cols[t];
                for (int64_t p = col_count[c]; p < col_count[c + 1]; ++p)
                    acc[inv_rows[p]] += std::min(r.vals[t], inv_vals[p]);
            }
            tmp.clear();
            for (const auto& [j, m] : acc) {
                const double dist = std::max(0.0, 1.0 - m / (2.0 - m));
                if (dist < 1.0) tmp.emplace_back(static_cast<float>(dist), j);
            }
            std::sort(tmp.begin(), tmp.end());
            SparseRow out;
            out.cols.reserve(tmp.size());
            out.vals.reserve(tmp.size());
            for (const auto& [dist, j] : tmp) {
                out.cols.push_back(j);
                out.vals.push_back(dist);
            }
            rows[i] = std::move(out);
        }
    });
    v.clear();
    v.shrink_to_fit();

    SparseDistances g;
    g.n = n;
    g.offsets.resize(n + 1, 0);
    for (int64_t i = 0; i < n; ++i) g.offsets[i + 1] = g.offsets[i] + static_cast<int64_t>(rows[i].cols.size());
    g.neighbours.resize(g.offsets[n]);
    g.distances.resize(g.offsets[n]);
    for (int64_t i = 0; i < n; ++i) {
        std::copy(rows[i].cols.begin(), rows[i].cols.end(), g.neighbours.begin() + g.offsets[i]);
        std::copy(rows[i].vals.begin(), rows[i].vals.end(), g.distances.begin() + g.offsets[i]);
        rows[i] = {};
    }
    return g;
}

double otsu_eps(const SparseDistances& g, int nth) {
    if (g.n == 0) return 0.0;
    std::vector<double> x(g.n, 1.0);
    for (int64_t i = 0; i < g.n; ++i) {
        int seen = 0;
        for (int64_t p = g.offsets[i]; p < g.offsets[i + 1]; ++p) {
            if (g.neighbours[p] == i) continue;
            if (++seen == nth) { x[i] = g.distances[p]; break; }
        }
    }
    std::sort(x.begin(), x.end());
    // Exact Otsu over the sorted values: maximise between-class variance over the splits.
    const double n = static_cast<double>(x.size());
    const double total = std::accumulate(x.begin(), x.end(), 0.0);
    double best = -1.0, threshold = x.back();
    double left = 0.0;
    for (size_t s = 1; s < x.size(); ++s) {
        left += x[s - 1];
        if (x[s] == x[s - 1]) continue;
        const double w0 = static_cast<double>(s) / n, w1 = 1.0 - w0;
        const double m0 = left / static_cast<double>(s), m1 = (total - left) / (n - static_cast<double>(s));
        const double between = w0 * w1 * (m0 - m1) * (m0 - m1);
        if (between > best) {
            best = between;
            threshold = 0.5 * (x[s - 1] + x[s]);
        }
    }
    return threshold;
}

double mmt_eps(const SparseDistances& g, double rho) {
    const double n = static_cast<double>(g.n);
    std::vector<float> upper;
    int64_t zeros = 0;
    for (int64_t i = 0; i < g.n; ++i)
        for (int64_t p = g.offsets[i]; p < g.offsets[i + 1]; ++p)
            if (g.neighbours[p] > i) {
                if (g.distances[p] > 0.0f) upper.push_back(g.distances[p]);
                else ++zeros;
            }
    const double size = n * (n - 1) / 2.0 - static_cast<double>(zeros);
    const auto top = static_cast<int64_t>(std::llround(rho * size));
    if (top <= 0) return upper.empty() ? 1.0 : *std::min_element(upper.begin(), upper.end());
    std::sort(upper.begin(), upper.end());
    double sum = 0.0;
    for (int64_t t = 0; t < top; ++t) sum += t < static_cast<int64_t>(upper.size()) ? upper[t] : 1.0;
    return sum / static_cast<double>(top);
}

ClusterResult dbscan_sparse(const SparseDistances& g, double eps, int min_samples) {
    const int64_t n = g.n;
    auto neighbours = [&](int64_t i, std::vector<int32_t>& out) {
        out.clear();
        bool self = false;
        for (int64_t p = g.offsets[i]; p < g.offsets[i + 1] && g.distances[p] <= eps; ++p) {
            out.push_back(g.neighbours[p]);
            self |= g.neighbours[p] == i;
        }
        if (!self) out.push_back(static_cast<int32_t>(i));
    };
    std::vector<int32_t> nb;
    std::vector<char> core(n, 0);
    for (int64_t i = 0; i < n; ++i) {
        neighbours(i, nb);
        core[i] = static_cast<int64_t>(nb.size()) >= min_samples;
    }
    ClusterResult r;
    r.labels.assign(n, -1);
    r.eps = eps;
    std::vector<int64_t> stack;
    for (int64_t i = 0; i < n; ++i) {
        if (r.labels[i] != -1 || !core[i]) continue;
        const int64_t label = r.num_clusters++;
        r.labels[i] = label;
        stack.assign(1, i);
        while (!stack.empty()) {
            const int64_t p = stack.back();
            stack.pop_back();
            if (!core[p]) continue;
            neighbours(p, nb);
            for (int32_t q : nb)
                if (r.labels[q] == -1) {
                    r.labels[q] = label;
                    if (core[q]) stack.push_back(q);
                }
        }
    }
    r.num_noise = std::count(r.labels.begin(), r.labels.end(), int64_t{-1});
    return r;
}

ClusterResult spherical_kmeans(const at::Tensor& features, int k, int iters, uint64_t seed) {
    check_features(features, "spherical_kmeans");
    torch::NoGradGuard no_grad;
    const auto f = features.contiguous();
    const int64_t n = f.size(0);
    if (n < 1) throw std::invalid_argument("spherical_kmeans: no features");
    k = static_cast<int>(std::clamp<int64_t>(k, 1, n));
    std::mt19937_64 rng(seed);
    // k-means++ on cosine distance.
    std::vector<int64_t> centre_ids{static_cast<int64_t>(rng() % static_cast<uint64_t>(n))};
    auto best_sim = torch::mv(f, f[centre_ids[0]]);
    for (int c = 1; c < k; ++c) {
        auto dist = (1.0 - best_sim).clamp_min(0.0).to(torch::kFloat64);
        const double* dp = dist.data_ptr<double>();
        const double total = dist.sum().item<double>();
        int64_t pick = 0;
        if (total <= 0.0) {
            pick = static_cast<int64_t>(rng() % static_cast<uint64_t>(n));
        } else {
            double u = std::uniform_real_distribution<double>(0.0, total)(rng), acc = 0.0;
            for (pick = 0; pick < n - 1; ++pick) {
                acc += dp[pick];
                if (acc >= u) break;
            }
        }
        centre_ids.push_back(pick);
        best_sim = torch::maximum(best_sim, torch::mv(f, f[pick]));
    }
    auto centres = f.index_select(0, torch::tensor(centre_ids, torch::kInt64)).clone();
    auto labels = torch::zeros({n}, torch::kInt64);
    for (int it = 0; it < iters; ++it) {
        auto sims = torch::mm(f, centres.t());
        auto [best, assign] = sims.max(1);
        const bool same = it > 0 && torch::equal(assign, labels);
        labels = assign;
        auto sums = torch::zeros_like(centres).index_add_(0, labels, f);
        auto counts = torch::bincount(labels, {}, k);
        auto norms = sums.norm(2, 1, true);
        auto empty = (counts == 0).nonzero().flatten();
        centres = sums / norms.clamp_min(1e-12);
        // Empty clusters restart at the points worst served by their centre.
        if (empty.numel() > 0) {
            auto worst = std::get<1>(best.topk(empty.numel(), 0, false, true));
            centres.index_copy_(0, empty, f.index_select(0, worst));
        } else if (same) {
            break;
        }
    }
    ClusterResult r;
    // Relabel to 0..C-1 in order of first appearance so labels do not depend on seeding order.
    std::unordered_map<int64_t, int64_t> remap;
    const int64_t* lp = labels.data_ptr<int64_t>();
    r.labels.resize(n);
    for (int64_t i = 0; i < n; ++i) {
        auto [itr, inserted] = remap.emplace(lp[i], static_cast<int64_t>(remap.size()));
        r.labels[i] = itr->second;
    }
    r.num_clusters = static_cast<int64_t>(remap.size());
    return r;
}

void check_cluster_input(const at::Tensor& features, const ClusterOptions& o) {
    check_features(features, "cluster_features");
    if (o.method == "kmeans") return;
    if (o.method != "dbscan")
        throw std::invalid_argument("ClusterOptions.method: '" + o.method + "' is not dbscan or kmeans");
    if (o.eps_rule != "otsu" && o.eps_rule != "mmt" && o.eps_rule != "fixed")
        throw std::invalid_argument("ClusterOptions.eps_rule: '" + o.eps_rule + "' is not otsu, mmt or fixed");
    if (features.size(0) < o.k1 + 1)
        throw std::invalid_argument("cluster_features: " + std::to_string(features.size(0)) +
                                    " rows, dbscan needs at least k1 + 1 = " + std::to_string(o.k1 + 1));
}

ClusterResult cluster_features(const at::Tensor& features, const ClusterOptions& o) {
    check_cluster_input(features, o);
    if (o.method == "kmeans") return spherical_kmeans(features, o.kmeans_k, o.kmeans_iters, o.seed);
    const auto g = jaccard_distances(features, o.k1, o.k2);
    return dbscan_sparse(g, rule_eps(g, o), o.min_samples);
}

double rule_eps(const SparseDistances& g, const ClusterOptions& o) {
    if (o.eps_rule == "otsu") return otsu_eps(g);
    if (o.eps_rule == "mmt") return mmt_eps(g);
    if (o.eps_rule == "fixed") return o.eps;
    throw std::invalid_argument("ClusterOptions.eps_rule: '" + o.eps_rule + "' is not otsu, mmt or fixed");
}

namespace {
double comb2(double x) { return x * (x - 1.0) / 2.0; }
}  // namespace

std::vector<int64_t> noise_as_singletons(const std::vector<int64_t>& a) {
    std::vector<int64_t> out(a);
    int64_t next = a.empty() ? 0 : std::max<int64_t>(0, *std::max_element(a.begin(), a.end()) + 1);
    for (auto& x : out)
        if (x < 0) x = next++;
    return out;
}

double adjusted_rand_index(const std::vector<int64_t>& a_in, const std::vector<int64_t>& b_in) {
    if (a_in.size() != b_in.size()) throw std::invalid_argument("adjusted_rand_index: sizes differ");
    const auto a = noise_as_singletons(a_in), b = noise_as_singletons(b_in);
    std::map<std::pair<int64_t, int64_t>, double> joint;
    std::map<int64_t, double> ca, cb;
    for (size_t i = 0; i < a.size(); ++i) {
        joint[{a[i], b[i]}] += 1;
        ca[a[i]] += 1;
        cb[b[i]] += 1;
    }
    double sj = 0, sa = 0, sb = 0;
    for (const auto& [key, c] : joint) sj += comb2(c);
    for (const auto& [key, c] : ca) sa += comb2(c);
    for (const auto& [key, c] : cb) sb += comb2(c);
    const double expected = sa * sb / std::max(1.0, comb2(static_cast<double>(a.size())));
    const double max_index = 0.5 * (sa + sb);
    if (max_index == expected) return 1.0;
    return (sj - expected) / (max_index - expected);
}

}  // namespace faceadapt::learner
