#include "faceadapt/calib/decision.hpp"

#include <cmath>
#include <map>

#include "text.hpp"

namespace faceadapt::calib {
namespace {

std::string f4(double v) { return detail::number(v, "%.4f"); }

}  // namespace

std::string_view to_string(Decision d) {
    switch (d) {
    case Decision::accept: return "accept";
    case Decision::ambiguous: return "ambiguous";
    case Decision::unknown: break;
    }
    return "unknown";
}

DoorDecision decide(const std::vector<std::pair<std::string, double>>& entries, double threshold, double margin) {
    DoorDecision out;
    out.threshold = threshold;
    out.margin = margin;
    out.distance = out.second_distance = INFINITY;
    std::map<std::string, double> nearest;  // identity -> its nearest entry
    for (const auto& [name, d] : entries) {
        auto [it, fresh] = nearest.try_emplace(name, d);
        if (!fresh && d < it->second) it->second = d;
    }
    for (const auto& [name, d] : nearest) {  // names in order: ties go to the first name, stably
        if (d < out.distance) {
            out.second_identity = std::move(out.identity);
            out.second_distance = out.distance;
            out.identity = name;
            out.distance = d;
        } else if (d < out.second_distance) {
            out.second_identity = name;
            out.second_distance = d;
        }
    }
    if (nearest.empty()) {
        out.reason = "the gallery is empty";
    } else if (!(out.distance <= threshold)) {
        out.reason = "nearest " + out.identity + " at " + f4(out.distance) + " is beyond the threshold " + f4(threshold);
    } else if (!out.second_identity.empty() && out.second_distance - out.distance < margin) {
        out.decision = Decision::ambiguous;
        out.reason = out.identity + " at " + f4(out.distance) + " and " + out.second_identity + " at " +
                     f4(out.second_distance) + " are closer to each other than the margin " + f4(margin);
    } else {
        out.decision = Decision::accept;
        out.reason = out.identity + " at " + f4(out.distance) + " is within the threshold " + f4(threshold) +
                     (out.second_identity.empty() ? std::string()
                                                  : ", the next (" + out.second_identity + " at " +
                                                        f4(out.second_distance) + ") beyond the margin " + f4(margin));
    }
    return out;
}

}  // namespace faceadapt::calib
