// Clustering with the site's structure; see constraints.hpp.
#include "faceadapt/learner/constraints.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include <torch/torch.h>

namespace faceadapt::learner {
namespace {

using IndexPair = std::pair<int64_t, int64_t>;

// Union-find with the member lists kept per root (small into large), for the conflict checks.
class Units {
public:
    explicit Units(int64_t n) : parent_(n), members_(n) {
        std::iota(parent_.begin(), parent_.end(), 0);
        for (int64_t i = 0; i < n; ++i) members_[i] = {i};
    }
    int64_t find(int64_t x) {
        while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
        return x;
    }
    const std::vector<int64_t>& members(int64_t root) const { return members_[root]; }
    // Joins the units of a and b unless a cannot-link (adjacency `cannot`) runs between them.
    // Returns false when refused.
    bool join(int64_t a, int64_t b, const std::vector<std::vector<int64_t>>& cannot) {
        a = find(a), b = find(b);
        if (a == b) return true;
        if (members_[a].size() < members_[b].size()) std::swap(a, b);
        for (int64_t m : members_[b])
            for (int64_t c : cannot[m])
                if (find(c) == a) return false;
        parent_[b] = a;
        members_[a].insert(members_[a].end(), members_[b].begin(), members_[b].end());
        members_[b].clear();
        members_[b].shrink_to_fit();
        return true;
    }

private:
    std::vector<int64_t> parent_;
    std::vector<std::vector<int64_t>> members_;
};

// The members of each track, in time order (ties: index). Key: the track id.
std::map<int64_t, std::vector<int64_t>> tracks_in_order(const std::vector<int64_t>& track,
                                                        const std::vector<int64_t>& time_ms) {
    std::map<int64_t, std::vector<int64_t>> out;
    for (int64_t i = 0; i < static_cast<int64_t>(track.size()); ++i)
        if (track[i] >= 0) out[track[i]].push_back(i);
    for (auto& [t, m] : out)
        std::stable_sort(m.begin(), m.end(), [&](int64_t a, int64_t b) { return time_ms[a] < time_ms[b]; });
    return out;
}

double cosine(const float* a, const float* b, int64_t d) {
    double dot = 0, na = 0, nb = 0;
    for (int64_t t = 0; t < d; ++t) dot += double(a[t]) * b[t], na += double(a[t]) * a[t], nb += double(b[t]) * b[t];
    return na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : 0.0;
}

// Recursive binary segmentation of one track (`m` in time order) at the cut whose two parts'
// mean features are least similar, while that similarity is below `threshold`.
void segment(const float* f, int64_t d, const std::vector<int64_t>& m, size_t begin, size_t end, double threshold,
             std::vector<size_t>& cuts) {
    if (end - begin < 2) return;
    std::vector<double> prefix((end - begin + 1) * d, 0.0);
    for (size_t i = begin; i < end; ++i)
        for (int64_t t = 0; t < d; ++t)
            prefix[(i - begin + 1) * d + t] = prefix[(i - begin) * d + t] + f[m[i] * d + t];
    double best = 2.0;
    size_t at = 0;
    std::vector<float> left(d), right(d);
    for (size_t c = begin + 1; c < end; ++c) {
        for (int64_t t = 0; t < d; ++t) {
            left[t] = static_cast<float>(prefix[(c - begin) * d + t]);
            right[t] = static_cast<float>(prefix[(end - begin) * d + t] - prefix[(c - begin) * d + t]);
        }
        const double s = cosine(left.data(), right.data(), d);
        if (s < best) best = s, at = c;
    }
    if (best >= threshold) return;
    cuts.push_back(at);
    segment(f, d, m, begin, at, threshold, cuts);
    segment(f, d, m, at, end, threshold, cuts);
}

void check_features(const at::Tensor& f, int64_t n, const char* who) {
    if (!f.defined() || f.dim() != 2 || f.scalar_type() != torch::kFloat32 || f.size(0) != n)
        throw std::invalid_argument(std::string(who) + ": features must be float32 [N, D] with N = the structure's size");
}

}  // namespace

bool SiteStructure::empty() const {
    auto none = [](const std::vector<int64_t>& v) { return std::all_of(v.begin(), v.end(), [](int64_t x) { return x < 0; }); };
    return none(track) && none(frame) && none(named) && cannot.empty();
}

void SiteStructure::validate(int64_t n) const {
    auto check = [&](const std::vector<int64_t>& v, const char* name) {
        if (static_cast<int64_t>(v.size()) != n)
            throw std::invalid_argument(std::string("SiteStructure.") + name + ": " + std::to_string(v.size()) +
                                        " entries for " + std::to_string(n) + " samples");
    };
    check(track, "track");
    check(time_ms, "time_ms");
    check(frame, "frame");
    check(named, "named");
    for (const auto& [a, b] : cannot)
        if (a < 0 || b < 0 || a >= n || b >= n || a == b)
            throw std::invalid_argument("SiteStructure.cannot: pair (" + std::to_string(a) + ", " + std::to_string(b) +
                                        ") is out of range or a sample with itself");
}

SiteStructure SiteStructure::subset(const std::vector<int64_t>& keep) const {
    SiteStructure out;
    std::unordered_map<int64_t, int64_t> where;
    for (int64_t k = 0; k < static_cast<int64_t>(keep.size()); ++k) {
        const int64_t i = keep[k];
        where[i] = k;
        out.track.push_back(track.at(i));
        out.time_ms.push_back(time_ms.at(i));
        out.frame.push_back(frame.at(i));
        out.named.push_back(named.at(i));
    }
    for (const auto& [a, b] : cannot) {
        const auto x = where.find(a), y = where.find(b);
        if (x != where.end() && y != where.end()) out.cannot.emplace_back(x->second, y->second);
    }
    return out;
}

std::vector<IndexPair> cannot_link_pairs(const SiteStructure& s) {
    std::vector<IndexPair> out;
    std::map<int64_t, std::vector<int64_t>> frames;
    for (int64_t i = 0; i < s.size(); ++i)
        if (s.frame[i] >= 0) frames[s.frame[i]].push_back(i);
    for (const auto& [f, m] : frames)
        for (size_t a = 0; a < m.size(); ++a)
            for (size_t b = a + 1; b < m.size(); ++b)
                if (s.track[m[a]] < 0 || s.track[m[a]] != s.track[m[b]]) out.emplace_back(m[a], m[b]);
    for (auto [a, b] : s.cannot) out.emplace_back(std::min(a, b), std::max(a, b));
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

int64_t count_violations(const std::vector<int64_t>& labels, const std::vector<IndexPair>& pairs) {
    int64_t v = 0;
    for (const auto& [a, b] : pairs) v += labels.at(a) >= 0 && labels.at(a) == labels.at(b);
    return v;
}

double switch_threshold(const at::Tensor& features, const SiteStructure& s, double quantile, uint64_t seed) {
    check_features(features, s.size(), "switch_threshold");
    const auto f = features.contiguous();
    const float* p = f.data_ptr<float>();
    const int64_t d = f.size(1), n = f.size(0);
    std::vector<double> sims;
    for (const auto& [a, b] : cannot_link_pairs(s)) sims.push_back(cosine(p + a * d, p + b * d, d));
    if (sims.size() < 20 && n >= 2) {  // too few known-different pairs: random pairs of different tracks
        sims.clear();
        std::mt19937_64 rng(seed ^ 0x5317C4ull);
        std::uniform_int_distribution<int64_t> pick(0, n - 1);
        for (int tries = 0; tries < 8000 && sims.size() < 2000; ++tries) {
            const int64_t a = pick(rng), b = pick(rng);
            if (a == b || (s.track[a] >= 0 && s.track[a] == s.track[b])) continue;
            sims.push_back(cosine(p + a * d, p + b * d, d));
        }
    }
    if (sims.empty()) return -1.0;  // nothing known: never cut
    std::sort(sims.begin(), sims.end());
    const auto at = static_cast<size_t>(std::clamp(quantile, 0.0, 1.0) * static_cast<double>(sims.size() - 1));
    return sims[at];
}

std::vector<int64_t> split_switched_tracks(const at::Tensor& features, const SiteStructure& s, double threshold,
                                           int64_t* cuts_out) {
    check_features(features, s.size(), "split_switched_tracks");
    const auto f = features.contiguous();
    const float* p = f.data_ptr<float>();
    const int64_t d = f.size(1);
    std::vector<int64_t> out(s.track.size(), -1);
    int64_t cuts_total = 0;
    // Segments first get (track, part) keys, then ids in order of their first sample index.
    std::vector<std::pair<int64_t, int64_t>> first;  // (first index, segment key)
    std::vector<std::vector<int64_t>> segments;
    for (const auto& [t, m] : tracks_in_order(s.track, s.time_ms)) {
        std::vector<size_t> cuts;
        segment(p, d, m, 0, m.size(), threshold, cuts);
        cuts_total += static_cast<int64_t>(cuts.size());
        cuts.push_back(0);
        cuts.push_back(m.size());
        std::sort(cuts.begin(), cuts.end());
        for (size_t c = 0; c + 1 < cuts.size(); ++c) {
            std::vector<int64_t> seg(m.begin() + static_cast<std::ptrdiff_t>(cuts[c]),
                                     m.begin() + static_cast<std::ptrdiff_t>(cuts[c + 1]));
            first.emplace_back(*std::min_element(seg.begin(), seg.end()), static_cast<int64_t>(segments.size()));
            segments.push_back(std::move(seg));
        }
    }
    std::sort(first.begin(), first.end());
    for (size_t id = 0; id < first.size(); ++id)
        for (int64_t i : segments[first[id].second]) out[i] = static_cast<int64_t>(id);
    if (cuts_out) *cuts_out = cuts_total;
    return out;
}

ClusterResult cluster_within_cannot_links(const at::Tensor& features, const ClusterOptions& cluster,
                                          const SiteStructure& s, const ConstraintOptions& o, EpsChoice* choice) {
    if (!(o.max_violation_rate > 0 && o.max_violation_rate <= 1))
        throw std::invalid_argument("ConstraintOptions.max_violation_rate must be in (0, 1]");
    const int64_t n = features.dim() == 2 ? features.size(0) : 0;
    s.validate(n);
    const auto pairs = cannot_link_pairs(s);
    EpsChoice c;
    c.pairs = static_cast<int64_t>(pairs.size());
    if (cluster.method != "dbscan" || o.max_violation_rate >= 1 || c.pairs < std::max(1, o.min_rate_pairs)) {
        auto r = cluster_features(features, cluster);
        c.rule_eps = c.eps = r.eps;
        c.rule_violations = c.violations = count_violations(r.labels, pairs);
        if (choice) *choice = c;
        return r;
    }
    check_cluster_input(features, cluster);
    const auto g = jaccard_distances(features, cluster.k1, cluster.k2);
    const int64_t allowed = static_cast<int64_t>(std::floor(o.max_violation_rate * static_cast<double>(c.pairs)));
    c.rule_eps = c.eps = rule_eps(g, cluster);
    auto r = dbscan_sparse(g, c.eps, cluster.min_samples);
    c.rule_violations = c.violations = count_violations(r.labels, pairs);
    constexpr double kStep = 0.025;
    while (c.violations > allowed && c.eps > kStep) {
        auto lower = dbscan_sparse(g, c.eps - kStep, cluster.min_samples);
        if (2 * lower.num_noise > n) break;  // more than half noise: keep the last eps
        c.eps -= kStep;
        ++c.steps;
        r = std::move(lower);
        c.violations = count_violations(r.labels, pairs);
    }
    r.eps = c.eps;
    if (choice) *choice = c;
    return r;
}

ClusterResult apply_constraints(const at::Tensor& features, const SiteStructure& s, const ClusterResult& base,
                                const ConstraintOptions& o, ConstraintReport* report_out) {
    const int64_t n = s.size();
    s.validate(n);
    check_features(features, n, "apply_constraints");
    if (static_cast<int64_t>(base.labels.size()) != n)
        throw std::invalid_argument("apply_constraints: " + std::to_string(base.labels.size()) + " labels for " +
                                    std::to_string(n) + " samples");
    torch::NoGradGuard no_grad;
    const auto f = features.contiguous();
    const float* fp = f.data_ptr<float>();
    const int64_t d = f.size(1);
    ConstraintReport rep;
    const auto pairs = cannot_link_pairs(s);
    rep.cannot_pairs = static_cast<int64_t>(pairs.size());
    rep.violations_before = count_violations(base.labels, pairs);
    std::vector<std::vector<int64_t>> cannot(n);
    for (const auto& [a, b] : pairs) cannot[a].push_back(b), cannot[b].push_back(a);

    // 1. Tracks cut at their feature jumps.
    std::vector<int64_t> track = s.track;
    if (o.split_tracks) {
        rep.switch_threshold = switch_threshold(f, s, o.switch_quantile);
        track = split_switched_tracks(f, s, rep.switch_threshold, &rep.track_cuts);
    }
    // 2. Must-link units: named groups, then track segments.
    Units units(n);
    std::map<int64_t, std::vector<int64_t>> names;
    for (int64_t i = 0; i < n; ++i)
        if (s.named[i] >= 0) names[s.named[i]].push_back(i);
    for (const auto& [name, m] : names)
        for (size_t k = 1; k < m.size(); ++k) rep.refused_unions += !units.join(m[0], m[k], cannot);
    const auto segs = tracks_in_order(track, s.time_ms);
    for (const auto& [t, m] : segs)
        for (size_t k = 1; k < m.size(); ++k) rep.refused_unions += !units.join(m[k - 1], m[k], cannot);

    // 3. Clusters joined by named groups (always) and by enough distinct tracks.
    int64_t clusters = 0;
    for (auto l : base.labels) clusters = std::max(clusters, l + 1);
    std::vector<int64_t> cparent(clusters);
    std::iota(cparent.begin(), cparent.end(), 0);
    auto cfind = [&](int64_t x) {
        while (cparent[x] != x) x = cparent[x] = cparent[cparent[x]];
        return x;
    };
    auto cjoin = [&](int64_t a, int64_t b) {
        a = cfind(a), b = cfind(b);
        if (a == b) return;
        cparent[std::max(a, b)] = std::min(a, b);
        ++rep.clusters_joined;
    };
    auto labels_of = [&](const std::vector<int64_t>& m) {
        std::vector<int64_t> ls;
        for (int64_t i : m)
            if (base.labels[i] >= 0) ls.push_back(base.labels[i]);
        std::sort(ls.begin(), ls.end());
        ls.erase(std::unique(ls.begin(), ls.end()), ls.end());
        return ls;
    };
    std::map<IndexPair, int64_t> track_links;
    for (const auto& [name, m] : names) {
        const auto ls = labels_of(units.members(units.find(m[0])));
        for (size_t k = 1; k < ls.size(); ++k) cjoin(ls[0], ls[k]);
    }
    for (const auto& [t, m] : segs) {
        const auto ls = labels_of(m);
        for (size_t a = 0; a < ls.size(); ++a)
            for (size_t b = a + 1; b < ls.size(); ++b) ++track_links[{ls[a], ls[b]}];
    }
    for (const auto& [ab, count] : track_links)
        if (count >= o.min_track_links) cjoin(ab.first, ab.second);

    // 4. Each unit takes its majority cluster.
    std::vector<int64_t> labels(n, -1);
    for (int64_t i = 0; i < n; ++i)
        if (base.labels[i] >= 0) labels[i] = cfind(base.labels[i]);
    int64_t next_label = clusters;
    std::vector<int64_t> roots;
    for (int64_t i = 0; i < n; ++i)
        if (units.find(i) == i) roots.push_back(i);
    for (int64_t r : roots) {
        const auto& m = units.members(r);
        if (m.size() < 2) continue;
        std::map<int64_t, int64_t> votes;
        for (int64_t i : m)
            if (labels[i] >= 0) ++votes[labels[i]];
        int64_t label = -1, best = 0;
        for (const auto& [l, c] : votes)
            if (c > best) best = c, label = l;
        if (label < 0 && s.named[m[0]] >= 0) label = next_label++;  // an operator's group, all noise
        if (label < 0) continue;
        for (int64_t i : m) {
            rep.noise_adopted += labels[i] < 0;
            labels[i] = label;
        }
    }

    // 5. Clusters holding a cannot-linked pair are split between their units.
    std::map<int64_t, std::vector<int64_t>> violated;  // cluster -> its unit roots
    for (const auto& [a, b] : pairs)
        if (labels[a] >= 0 && labels[a] == labels[b]) violated[labels[a]];
    for (int64_t r : roots)
        if (labels[r] >= 0 && violated.count(labels[r])) violated[labels[r]].push_back(r);
    for (auto& [label, unit_roots] : violated) {
        ++rep.clusters_split;
        std::stable_sort(unit_roots.begin(), unit_roots.end(), [&](int64_t a, int64_t b) {
            return units.members(a).size() > units.members(b).size();
        });
        const size_t u = unit_roots.size();
        std::unordered_map<int64_t, size_t> unit_of;  // root -> position in unit_roots
        for (size_t k = 0; k < u; ++k) unit_of[unit_roots[k]] = k;
        std::vector<std::vector<size_t>> conflicts(u);
        std::vector<std::vector<double>> centroid(u, std::vector<double>(d, 0.0));
        for (size_t k = 0; k < u; ++k)
            for (int64_t i : units.members(unit_roots[k])) {
                for (int64_t t = 0; t < d; ++t) centroid[k][t] += fp[i * d + t];
                for (int64_t c : cannot[i]) {
                    const auto it = unit_of.find(units.find(c));
                    if (it != unit_of.end()) conflicts[k].push_back(it->second);
                }
            }
        std::vector<int64_t> part(u, -1);
        std::vector<std::vector<double>> sums;
        auto score = [&](size_t k, size_t p) {
            double dot = 0, nu = 0, ns = 0;
            for (int64_t t = 0; t < d; ++t) {
                const double x = centroid[k][t], y = sums[p][t];
                dot += x * y, nu += x * x, ns += y * y;
            }
            return nu > 0 && ns > 0 ? dot / std::sqrt(nu * ns) : -2.0;
        };
        auto place = [&](size_t k) {
            int64_t best = -1;
            double best_score = -3.0;
            for (size_t p = 0; p < sums.size(); ++p) {
                if (std::any_of(conflicts[k].begin(), conflicts[k].end(),
                                [&](size_t c) { return part[c] == static_cast<int64_t>(p); }))
                    continue;
                const double sc = score(k, p);
                if (sc > best_score) best_score = sc, best = static_cast<int64_t>(p);
            }
            if (best < 0) {
                best = static_cast<int64_t>(sums.size());
                sums.emplace_back(d, 0.0);
            }
            part[k] = best;
            for (int64_t t = 0; t < d; ++t) sums[best][t] += centroid[k][t];
        };
        for (size_t k = 0; k < u; ++k) place(k);
        for (int pass = 0; pass < 2; ++pass)
            for (size_t k = 0; k < u; ++k) {
                for (int64_t t = 0; t < d; ++t) sums[part[k]][t] -= centroid[k][t];
                part[k] = -1;
                place(k);
            }
        std::vector<int64_t> part_size(sums.size(), 0), part_label(sums.size(), -1);
        for (size_t k = 0; k < u; ++k) part_size[part[k]] += static_cast<int64_t>(units.members(unit_roots[k]).size());
        bool kept_original = false;
        for (size_t p = 0; p < sums.size(); ++p) {
            if (part_size[p] < 2) continue;  // one sample alone: noise
            part_label[p] = kept_original ? next_label++ : label;
            kept_original = true;
        }
        for (size_t k = 0; k < u; ++k)
            for (int64_t i : units.members(unit_roots[k])) labels[i] = part_label[part[k]];
    }

    // Labels 0..C-1 in order of first appearance.
    ClusterResult out;
    out.eps = base.eps;
    out.labels.assign(n, -1);
    std::unordered_map<int64_t, int64_t> remap;
    for (int64_t i = 0; i < n; ++i) {
        if (labels[i] < 0) continue;
        const auto [it, added] = remap.emplace(labels[i], static_cast<int64_t>(remap.size()));
        out.labels[i] = it->second;
    }
    out.num_clusters = static_cast<int64_t>(remap.size());
    out.num_noise = std::count(out.labels.begin(), out.labels.end(), int64_t{-1});
    if (report_out) *report_out = rep;
    return out;
}

}  // namespace faceadapt::learner
