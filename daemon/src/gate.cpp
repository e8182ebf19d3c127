#include "faceadapt/daemon/gate.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "faceadapt/config/config.hpp"

namespace faceadapt::daemon {

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
