// The door's decision rule: who a probe is, given its distances to the gallery's entries.
//
// WHAT THIS REPRESENTS
//   An identity's distance is the smallest distance to any of its entries (a person may have
//   several photos). With the nearest identity at d1 and the second nearest (another name) at
//   d2:
//     empty gallery            -> unknown ("the gallery is empty")
//     d1 > threshold           -> unknown ("nearest X at d1 is beyond the threshold")
//     d2 - d1 < margin         -> ambiguous: refused, even though d1 <= threshold ("X at d1 and
//                                 Y at d2 are closer to each other than the margin")
//     otherwise                -> accept X
//   margin 0 is the rule every door applied before issue 12 (the nearest entry within the
//   threshold). docs/operating-point.md explains the choice; docs/door-integration.md is the
//   door maker's copy.
// THREAD SAFETY
//   Pure function.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace faceadapt::calib {

enum class Decision { accept, unknown, ambiguous };
std::string_view to_string(Decision d);

struct DoorDecision {
    Decision decision = Decision::unknown;
    std::string identity;           // the nearest identity ("" for an empty gallery)
    double distance = 0;            // d1 (infinity for an empty gallery)
    std::string second_identity;    // the second nearest ("" when there is none)
    double second_distance = 0;     // d2 (infinity when there is none)
    double threshold = 0, margin = 0;
    std::string reason;             // one line, names and figures (names are the caller's to escape)
    bool accepted() const { return decision == Decision::accept; }
};

// entries: (name, distance of the probe to that entry), any order, names may repeat.
// requires threshold > 0 and margin >= 0 (else every probe is unknown/ambiguous by arithmetic).
DoorDecision decide(const std::vector<std::pair<std::string, double>>& entries, double threshold, double margin);

}  // namespace faceadapt::calib
