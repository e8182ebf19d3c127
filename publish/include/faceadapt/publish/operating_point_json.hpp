// The JSON form of a calibrated operating point (calib/operating_point.hpp): the manifest's
// "operating_point" object (docs/package-format.md section 4.2), the evaluation child's
// "operating_point" member (daemon/child_protocol.hpp) and history.jsonl all use this one form.
//
// {"threshold":0.41, "margin":0.0205, "target_far":0.001, "far_kind":"door", "comparisons":57,
//  "pair_far_target":1.75e-05, "confidence":0.95, "impostor_pairs":200000, "impostor_accepted":1,
//  "pair_far_measured":5e-06, "pair_far_bound":2.4e-05, "door_far_bound":0.00137,
//  "min_resolvable_far":0.00085, "smallest_impostor_distance":0.38, "genuine_pairs":57,
//  "frr":0.12, "calibrated":true, "method":"order-statistic ...", "method_version":1, "note":"..."}
// NaN figures (no genuine pairs, no impostor pairs) are null.
// THREAD SAFETY
//   Pure functions.
#pragma once

#include <nlohmann/json.hpp>

#include "faceadapt/calib/operating_point.hpp"

namespace faceadapt::publish {

nlohmann::json to_json(const calib::OperatingPoint& point);
// The object above, checked with calib::check(). throws std::invalid_argument naming the member
// ("operating_point.frr is not a number") for a missing, mistyped or out-of-range member. The
// note is kept at most 500 bytes (it is informative; callers escape it before showing it).
calib::OperatingPoint operating_point_from_json(const nlohmann::json& j);

}  // namespace faceadapt::publish
