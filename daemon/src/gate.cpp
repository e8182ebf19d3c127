#include "faceadapt/daemon/gate.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <stdexcept>

#include <fmt/format.h>

#include "faceadapt/config/config.hpp"
#include "faceadapt/learner/eval.hpp"

namespace faceadapt::daemon {
namespace {

using Rows = std::vector<learner::Embedding>;

void check_sizes(const Rows& rows, const std::vector<std::string>& labels) {
    if (rows.size() != labels.size())
        throw std::invalid_argument(fmt::format("gate: {} embeddings but {} labels", rows.size(), labels.size()));
}

double dot(const learner::Embedding& a, const learner::Embedding& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
    return s;
}

// Indices of rows whose label occurs at least twice, and the number of such labels.
std::pair<std::vector<std::size_t>, int> repeated(const std::vector<std::string>& labels) {
    std::map<std::string, int> count;
    for (const auto& l : labels) ++count[l];
    std::vector<std::size_t> idx;
    for (std::size_t i = 0; i < labels.size(); ++i)
        if (count[labels[i]] >= 2) idx.push_back(i);
    int groups = 0;
    for (const auto& [l, c] : count) groups += c >= 2;
    return {idx, groups};
}

}  // namespace

GalleryFigures evaluate_gallery(const Rows& rows, const std::vector<std::string>& labels, double far) {
    check_sizes(rows, labels);
    GalleryFigures g;
    g.far = far;
    const auto [idx, people] = repeated(labels);
    g.people = people;
    g.images = static_cast<int>(idx.size());
    if (people < 2) return g;
    std::map<std::string, int> ids;
    Rows x;
    std::vector<int> y;
    for (std::size_t i : idx) {
        x.push_back(rows[i]);
        y.push_back(ids.try_emplace(labels[i], static_cast<int>(ids.size())).first->second);
    }
    std::vector<float> genuine, impostor;
    for (std::size_t a = 0; a < x.size(); ++a)
        for (std::size_t b = a + 1; b < x.size(); ++b)
            (y[a] == y[b] ? genuine : impostor).push_back(learner::euclidean_distance(x[a], x[b]));
    g.tar = learner::tar_at_far(std::move(genuine), std::move(impostor), far);
    g.rank1 = learner::rank1_leave_one_out(x, y).rank1;
    g.evaluated = true;
    return g;
}

SiteFigures evaluate_site(const Rows& rows, const std::vector<std::string>& labels) {
    check_sizes(rows, labels);
    Rows x;
    for (const auto& r : rows) x.push_back(learner::l2_normalized(r));
    SiteFigures s;
    s.crops = static_cast<int>(rows.size());
    const auto [idx, groups] = repeated(labels);
    s.groups = groups;
    if (groups < 2) return s;
    // Centroids of the repeated groups.
    std::map<std::string, std::vector<double>> sum;
    for (std::size_t i : idx) {
        auto& c = sum[labels[i]];
        c.resize(x[i].size(), 0.0);
        for (std::size_t k = 0; k < x[i].size(); ++k) c[k] += x[i][k];
    }
    std::map<std::string, learner::Embedding> centroid;
    for (auto& [l, c] : sum) {
        learner::Embedding f{};
        for (std::size_t k = 0; k < f.size(); ++k) f[k] = static_cast<float>(c[k]);
        centroid[l] = learner::l2_normalized(f);
    }
    std::size_t consistent = 0;
    double margin = 0;
    for (std::size_t a : idx) {
        double best = -2;
        std::size_t best_j = a;
        for (std::size_t b = 0; b < x.size(); ++b) {
            if (a == b) continue;
            const double sim = dot(x[a], x[b]);
            if (sim > best) { best = sim; best_j = b; }
        }
        consistent += labels[best_j] == labels[a];
        double own = 0, other = -2;
        for (const auto& [l, c] : centroid) {
            const double sim = dot(x[a], c);
            if (l == labels[a]) own = sim;
            else other = std::max(other, sim);
        }
        margin += own - other;
    }
    s.consistency = double(consistent) / idx.size();
    s.compactness = margin / idx.size();
    s.evaluated = true;
    return s;
}

GateDecision decide(const ModelFigures& current, const ModelFigures& candidate, const config::GateConfig& gate) {
    GateDecision d;
    auto check = [&](const char* name, double cur, double cand, double tolerance) {
        const bool finite = std::isfinite(cand) && std::isfinite(cur);
        const bool ok = finite && cand >= cur - tolerance;
        d.checks.push_back(fmt::format("{}: candidate {:.4f} vs current {:.4f} (tolerance {:.4f}) {}", name, cand,
                                       cur, tolerance, ok ? "ok" : "WORSE"));
        if (!ok)
            d.reasons.push_back(finite ? fmt::format("{} dropped from {:.4f} to {:.4f} (more than {:.4f})", name,
                                                     cur, cand, tolerance)
                                       : fmt::format("{} is not a number", name));
    };
    int measured = 0;
    if (current.gallery.evaluated && candidate.gallery.evaluated) {
        check(fmt::format("gallery TAR@FAR={:g}", gate.far).c_str(), current.gallery.tar, candidate.gallery.tar,
              gate.max_tar_drop);
        check("gallery rank-1", current.gallery.rank1, candidate.gallery.rank1, gate.max_rank1_drop);
        measured += 2;
    } else {
        d.checks.push_back(fmt::format("gallery: not evaluated ({} people with >= 2 images enrolled; need 2)",
                                       candidate.gallery.people));
    }
    if (current.site.evaluated && candidate.site.evaluated) {
        check("site consistency", current.site.consistency, candidate.site.consistency, gate.max_compactness_drop);
        check("site compactness", current.site.compactness, candidate.site.compactness, gate.max_compactness_drop);
        measured += 2;
    } else {
        d.checks.push_back(fmt::format("site: not evaluated ({} held-out tracks with >= 2 crops; need 2)",
                                       candidate.site.groups));
    }
    if (measured == 0)
        d.reasons.push_back("nothing to evaluate on: no enrolled gallery and too few held-out site tracks");
    d.promote = d.reasons.empty();
    return d;
}

nlohmann::json to_json(const GalleryFigures& g) {
    return {{"evaluated", g.evaluated}, {"people", g.people}, {"images", g.images}, {"far", g.far},
            {"tar", g.tar}, {"rank1", g.rank1}};
}
nlohmann::json to_json(const SiteFigures& s) {
    return {{"evaluated", s.evaluated}, {"crops", s.crops}, {"groups", s.groups},
            {"consistency", s.consistency}, {"compactness", s.compactness}};
}
nlohmann::json to_json(const ModelFigures& f) { return {{"gallery", to_json(f.gallery)}, {"site", to_json(f.site)}}; }
nlohmann::json to_json(const GateDecision& d) {
    return {{"promote", d.promote}, {"checks", d.checks}, {"reasons", d.reasons}};
}

}  // namespace faceadapt::daemon
