#include "faceadapt/learner/eval.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace faceadapt::learner {

double tar_at_far(std::vector<float> genuine, std::vector<float> impostor, double far) {
    if (genuine.empty()) return 0.0;
    if (impostor.empty()) return 1.0;
    const auto k = static_cast<std::size_t>(std::floor(far * static_cast<double>(impostor.size())));
    if (k >= impostor.size()) return 1.0;
    std::nth_element(impostor.begin(), impostor.begin() + static_cast<std::ptrdiff_t>(k), impostor.end());
    const float threshold = impostor[k];
    const auto accepted = std::count_if(genuine.begin(), genuine.end(), [&](float d) { return d < threshold; });
    return static_cast<double>(accepted) / static_cast<double>(genuine.size());
}

VerificationResult verify_all_pairs(const std::vector<Embedding>& embeddings, const std::vector<int>& labels,
                                    double threshold) {
    if (embeddings.size() != labels.size())
        throw std::invalid_argument("verify_all_pairs: " + std::to_string(embeddings.size()) + " embeddings but " +
                                    std::to_string(labels.size()) + " labels");
    std::vector<float> genuine, impostor;
    const std::size_t n = embeddings.size();
    impostor.reserve(n * (n - (n > 0)) / 2);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = i + 1; j < n; ++j) {
            const float d = euclidean_distance(embeddings[i], embeddings[j]);
            (labels[i] == labels[j] ? genuine : impostor).push_back(d);
        }
    VerificationResult r;
    r.genuine_pairs = genuine.size();
    r.impostor_pairs = impostor.size();
    const auto below = [&](const std::vector<float>& v) {
        return static_cast<double>(std::count_if(v.begin(), v.end(), [&](float d) { return d < threshold; }));
    };
    const double ga = genuine.empty() ? 0.0 : below(genuine) / static_cast<double>(genuine.size());
    const double ir = impostor.empty() ? 0.0 : 1.0 - below(impostor) / static_cast<double>(impostor.size());
    r.pair_accuracy = genuine.empty() ? ir : impostor.empty() ? ga : 0.5 * (ga + ir);
    const auto mean = [](const std::vector<float>& v) {
        return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
    };
    r.mean_genuine_distance = mean(genuine);
    r.mean_impostor_distance = mean(impostor);
    r.tar_at_far_1e3 = tar_at_far(genuine, impostor, 1e-3);
    r.tar_at_far_1e4 = tar_at_far(std::move(genuine), std::move(impostor), 1e-4);
    return r;
}

namespace {

struct Scored {
    float distance;
    bool same;
};

// The threshold maximising accuracy (same when distance < t) on `train`; ties: the smallest.
double best_threshold(std::vector<Scored> train) {
    std::sort(train.begin(), train.end(), [](const Scored& a, const Scored& b) { return a.distance < b.distance; });
    // Accepting the first i pairs (t between train[i-1] and train[i]).
    std::size_t total_diff = 0;
    for (const auto& s : train) total_diff += !s.same;
    std::size_t same_below = 0, diff_below = 0;
    std::size_t best_correct = total_diff;  // i = 0: accept nothing
    double best_t = train.empty() ? 0.0 : train.front().distance;
    for (std::size_t i = 1; i <= train.size(); ++i) {
        (train[i - 1].same ? same_below : diff_below) += 1;
        if (i < train.size() && train[i].distance == train[i - 1].distance) continue;  // not separable here
        const std::size_t correct = same_below + (total_diff - diff_below);
        if (correct > best_correct) {
            best_correct = correct;
            best_t = i < train.size() ? 0.5 * (static_cast<double>(train[i - 1].distance) + train[i].distance)
                                      : static_cast<double>(train[i - 1].distance) + 1e-6;
        }
    }
    return best_t;
}

}  // namespace

PairsResult pairs_accuracy(const std::vector<Embedding>& embeddings, const std::vector<Pair>& pairs, int folds) {
    if (folds < 2) throw std::invalid_argument("pairs_accuracy: folds must be >= 2");
    if (pairs.size() < static_cast<std::size_t>(folds))
        throw std::invalid_argument("pairs_accuracy: " + std::to_string(pairs.size()) + " pairs for " +
                                    std::to_string(folds) + " folds");
    std::vector<Scored> scored;
    scored.reserve(pairs.size());
    for (std::size_t i = 0; i < pairs.size(); ++i) {
        const Pair& p = pairs[i];
        if (p.a >= embeddings.size() || p.b >= embeddings.size())
            throw std::invalid_argument("pairs_accuracy: pair " + std::to_string(i) + " indexes past " +
                                        std::to_string(embeddings.size()) + " embeddings");
        scored.push_back({euclidean_distance(embeddings[p.a], embeddings[p.b]), p.same});
    }
    PairsResult r;
    r.pairs = pairs.size();
    std::vector<double> accs;
    double tsum = 0.0;
    for (int f = 0; f < folds; ++f) {
        std::vector<Scored> train, test;
        for (std::size_t i = 0; i < scored.size(); ++i)
            (static_cast<int>(i % static_cast<std::size_t>(folds)) == f ? test : train).push_back(scored[i]);
        const double t = best_threshold(train);
        tsum += t;
        std::size_t correct = 0;
        for (const auto& s : test) correct += ((s.distance < t) == s.same);
        accs.push_back(static_cast<double>(correct) / static_cast<double>(test.size()));
    }
    r.accuracy = std::accumulate(accs.begin(), accs.end(), 0.0) / folds;
    double var = 0.0;
    for (double a : accs) var += (a - r.accuracy) * (a - r.accuracy);
    r.accuracy_std = std::sqrt(var / folds);
    r.mean_threshold = tsum / folds;
    return r;
}

Rank1Result rank1_leave_one_out(const std::vector<Embedding>& embeddings, const std::vector<int>& labels) {
    if (embeddings.size() != labels.size())
        throw std::invalid_argument("rank1_leave_one_out: embeddings and labels differ in size");
    std::unordered_map<int, std::size_t> count;
    for (int l : labels) ++count[l];
    Rank1Result r;
    std::size_t hits = 0;
    for (std::size_t i = 0; i < embeddings.size(); ++i) {
        if (count[labels[i]] < 2) continue;
        ++r.queries;
        float best = std::numeric_limits<float>::infinity();
        std::size_t best_j = i;
        for (std::size_t j = 0; j < embeddings.size(); ++j) {
            if (j == i) continue;
            const float d = euclidean_distance(embeddings[i], embeddings[j]);
            if (d < best) {
                best = d;
                best_j = j;
            }
        }
        hits += (labels[best_j] == labels[i]);
    }
    r.rank1 = r.queries ? static_cast<double>(hits) / static_cast<double>(r.queries) : 0.0;
    return r;
}

namespace {

double ratio(double num, double den) { return den == 0.0 ? 1.0 : num / den; }
double harmonic(double p, double r) { return p + r == 0.0 ? 0.0 : 2.0 * p * r / (p + r); }
double pairs_of(double n) { return n * (n - 1.0) / 2.0; }

}  // namespace

ClusteringQuality clustering_quality(const std::vector<int>& truth, const std::vector<int>& predicted) {
    if (truth.size() != predicted.size())
        throw std::invalid_argument("clustering_quality: " + std::to_string(truth.size()) + " truth labels but " +
                                    std::to_string(predicted.size()) + " predicted");
    ClusteringQuality q;
    const std::size_t n = truth.size();
    // Noise samples become singleton clusters with fresh ids below -1.
    std::vector<long> pred(n);
    std::map<long, int> distinct;
    for (std::size_t i = 0; i < n; ++i) {
        if (truth[i] < 0) throw std::invalid_argument("clustering_quality: truth label < 0 at " + std::to_string(i));
        if (predicted[i] < -1)
            throw std::invalid_argument("clustering_quality: predicted label < -1 at " + std::to_string(i));
        if (predicted[i] == -1) {
            ++q.noise;
            pred[i] = -2 - static_cast<long>(i);
        } else {
            pred[i] = predicted[i];
            distinct[predicted[i]] = 1;
        }
    }
    q.clusters = distinct.size();
    if (n == 0) return q;

    std::map<std::pair<long, int>, double> joint;  // (cluster, truth) -> count
    std::map<long, double> csize;
    std::map<int, double> tsize;
    for (std::size_t i = 0; i < n; ++i) {
        joint[{pred[i], truth[i]}] += 1.0;
        csize[pred[i]] += 1.0;
        tsize[truth[i]] += 1.0;
    }
    // pairwise
    double tp = 0.0, pred_pairs = 0.0, true_pairs = 0.0;
    for (const auto& [k, c] : joint) tp += pairs_of(c);
    for (const auto& [k, c] : csize) pred_pairs += pairs_of(c);
    for (const auto& [k, c] : tsize) true_pairs += pairs_of(c);
    q.pairwise_precision = ratio(tp, pred_pairs);
    q.pairwise_recall = ratio(tp, true_pairs);
    q.pairwise_f = harmonic(q.pairwise_precision, q.pairwise_recall);
    // BCubed: every sample of a (cluster, truth) cell has the same per-sample P and R.
    double bp = 0.0, br = 0.0;
    for (const auto& [k, c] : joint) {
        bp += c * (c / csize[k.first]);
        br += c * (c / tsize[k.second]);
    }
    const double dn = static_cast<double>(n);
    q.bcubed_precision = bp / dn;
    q.bcubed_recall = br / dn;
    q.bcubed_f = harmonic(q.bcubed_precision, q.bcubed_recall);
    // NMI (arithmetic normalisation)
    double mi = 0.0, hc = 0.0, ht = 0.0;
    for (const auto& [k, c] : joint) mi += (c / dn) * std::log(c * dn / (csize[k.first] * tsize[k.second]));
    for (const auto& [k, c] : csize) hc -= (c / dn) * std::log(c / dn);
    for (const auto& [k, c] : tsize) ht -= (c / dn) * std::log(c / dn);
    const double denom = 0.5 * (hc + ht);
    q.nmi = denom <= 0.0 ? 1.0 : std::max(0.0, mi / denom);
    return q;
}

}  // namespace faceadapt::learner
