#include "faceadapt/daemon/gate.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "faceadapt/calib/statistics.hpp"
#include "faceadapt/config/config.hpp"
#include "faceadapt/publish/operating_point_json.hpp"

namespace faceadapt::daemon {

double DoorFigures::measured_far() const {
    return point.far_kind == calib::FarKind::door ? calib::door_far_from_pair(point.pair_far_measured, point.comparisons)
                                                  : point.pair_far_measured;
}

double target_door_far(const config::GateConfig& gate) { return gate.door_far > 0 ? gate.door_far : gate.far; }

GateDecision decide(const ModelFigures& current, const ModelFigures& candidate, const config::GateConfig& gate,
                    const std::vector<GateReference>& references) {
    GateDecision d;
    // The models compared with: the current one first (its lines read as before issue 12).
    std::vector<std::pair<std::string, const ModelFigures*>> others{{"current", &current}};
    for (const auto& r : references) others.emplace_back(r.name, &r.figures);
    // higher_is_better: the candidate may be at most `tolerance` below; else at most above.
    auto check = [&](const std::string& name, const std::string& vs, double ref, double cand, double tolerance,
                     bool higher_is_better = true) {
        const bool finite = std::isfinite(cand) && std::isfinite(ref);
        const bool ok = finite && (higher_is_better ? cand >= ref - tolerance : cand <= ref + tolerance);
        d.checks.push_back(fmt::format("{}: candidate {:.4f} vs {} {:.4f} (tolerance {:.4f}) {}", name, cand, vs, ref,
                                       tolerance, ok ? "ok" : "WORSE"));
        if (!ok)
            d.reasons.push_back(finite ? fmt::format("{} {} from {:.4f} to {:.4f} (more than {:.4f}){}", name,
                                                     higher_is_better ? "dropped" : "rose", ref, cand, tolerance,
                                                     vs == "current" ? "" : " against the " + vs)
                                       : fmt::format("{} is not a number", name));
    };
    int measured = 0;
    for (const auto& [vs, ref] : others) {
        if (ref->gallery.evaluated && candidate.gallery.evaluated) {
            check(fmt::format("gallery TAR@FAR={:g}", gate.far), vs, ref->gallery.tar, candidate.gallery.tar,
                  gate.max_tar_drop);
            check("gallery rank-1", vs, ref->gallery.rank1, candidate.gallery.rank1, gate.max_rank1_drop);
            if (ref->gallery.tar == candidate.gallery.tar && ref->gallery.rank1 == candidate.gallery.rank1 &&
                candidate.gallery.rank1 == 1.0)
                d.checks.push_back(fmt::format("gallery: candidate and {} both at 1.0000 on {} people: these figures "
                                               "cannot discriminate",
                                               vs, candidate.gallery.people));
            measured += 2;
        } else if (vs == "current") {
            d.checks.push_back(fmt::format("gallery: not evaluated ({} people with >= 2 images enrolled; need 2)",
                                           candidate.gallery.people));
        }
        if (ref->site.evaluated && candidate.site.evaluated) {
            check("site consistency", vs, ref->site.consistency, candidate.site.consistency, gate.max_compactness_drop);
            check("site compactness", vs, ref->site.compactness, candidate.site.compactness, gate.max_compactness_drop);
            measured += 2;
        } else if (vs == "current") {
            d.checks.push_back(fmt::format("site: not evaluated ({} held-out tracks with >= 2 crops; need 2)",
                                           candidate.site.groups));
        }
    }
    // The door's figures: the candidate at its own calibrated threshold.
    if (!candidate.door) {
        d.checks.push_back("door: no operating point measured (the evaluation child did not calibrate)");
    } else {
        const auto& p = candidate.door->point;
        const auto& src = candidate.door->sources;
        d.checks.push_back(fmt::format(
            "door: candidate threshold {:.4f} (margin {:.4f}) from {} impostor pairs ({} enrolled, {} same-frame, {} "
            "strangers): {} FAR <= {:.3g} at {:g}% confidence (target {:.3g}; these pairs resolve {:.3g} at best), "
            "smallest impostor distance {:.4f}, FRR {:.4f} on {} genuine pairs ({} enrolled, {} same-track)",
            p.threshold, p.margin, p.impostor_pairs, src.enrolled_impostor, src.same_frame_impostor,
            src.stranger_impostor, calib::to_string(p.far_kind),
            p.far_kind == calib::FarKind::door ? p.door_far_bound : p.pair_far_bound, 100 * p.confidence, p.target_far,
            p.min_resolvable_far, p.smallest_impostor_distance, p.frr, p.genuine_pairs, src.enrolled_genuine,
            src.track_genuine));
        if (!p.calibrated) {
            d.checks.push_back("door: the candidate's threshold is NOT calibrated: " + p.note);
            if (gate.require_calibrated)
                d.reasons.push_back("the candidate's threshold is not calibrated (" + p.note +
                                    "); the current model is kept");
        }
        const double far = candidate.door->measured_far();
        const bool far_ok = std::isfinite(far) && far <= p.target_far;
        d.checks.push_back(fmt::format("door: measured {} FAR at the shipped threshold {:.4g} vs target {:.4g} {}",
                                       calib::to_string(p.far_kind), far, p.target_far, far_ok ? "ok" : "EXCEEDED"));
        if (!far_ok && (std::isfinite(far) || gate.require_calibrated))
            d.reasons.push_back(fmt::format("measured FAR at the shipped threshold {:.4g} exceeds the target {:.4g}",
                                            far, p.target_far));
        for (const auto& [vs, ref] : others) {
            if (!ref->door) {
                d.checks.push_back("door FRR: " + vs + " has no operating point to compare with");
                continue;
            }
            const auto& r = ref->door->point;
            const std::size_t pairs = std::min(p.genuine_pairs, r.genuine_pairs);
            if (pairs < 2 || std::isnan(p.frr) || std::isnan(r.frr)) {
                d.checks.push_back(fmt::format("door FRR vs {}: cannot discriminate ({} genuine pairs)", vs, pairs));
                continue;
            }
            check(fmt::format("door FRR at target FAR {:.3g}", p.target_far), vs, r.frr, p.frr, gate.max_frr_rise, false);
            if (1.0 / pairs > gate.max_frr_rise)
                d.checks.back() += fmt::format(" (one of {} genuine pairs is {:.4f}, more than the tolerance: changes "
                                               "under it cannot be seen)",
                                               pairs, 1.0 / pairs);
        }
        ++measured;
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
nlohmann::json to_json(const DoorFigures& f) {
    nlohmann::json j = publish::to_json(f.point);
    j["measured_far"] = std::isnan(f.measured_far()) ? nlohmann::json(nullptr) : nlohmann::json(f.measured_far());
    j["sources"] = {{"enrolled_impostor", f.sources.enrolled_impostor},
                    {"same_frame_impostor", f.sources.same_frame_impostor},
                    {"stranger_impostor", f.sources.stranger_impostor},
                    {"enrolled_genuine", f.sources.enrolled_genuine},
                    {"track_genuine", f.sources.track_genuine}};
    return j;
}
nlohmann::json to_json(const ModelFigures& f) {
    nlohmann::json j = {{"gallery", to_json(f.gallery)}, {"site", to_json(f.site)}};
    if (f.door) j["door"] = to_json(*f.door);
    return j;
}
nlohmann::json to_json(const GateDecision& d) {
    return {{"promote", d.promote}, {"checks", d.checks}, {"reasons", d.reasons}};
}

}  // namespace faceadapt::daemon
