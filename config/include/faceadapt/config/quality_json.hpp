// The [quality] section as a JSON object: the package manifest's "quality" member
// (docs/package-format.md section 4.3), so that a door scores faces by its site's crop-store rule.
// The keys, types, bounds and messages are the site file's own (one schema: config.cpp's
// quality_fields()); tables are arrays of [x, y] pairs, as in TOML:
//   {"threshold":0.5, "max_deviation_deg":45.0, "deviation_score":[[0.0,1.0],[10.0,0.95]], ...,
//    "coefficient_form":"unit"}
// THREAD SAFETY
//   Pure functions.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "faceadapt/config/config.hpp"

namespace faceadapt::config {

// ensures: every key of [quality], defaults filled in; quality_from_json(quality_to_json(q)) == q.
nlohmann::json quality_to_json(const QualityConfig& quality);

// The object above. A missing key keeps its default, as in the site file.
// requires: nothing; `j` may be anything (it comes from outside).
// throws:   ConfigError, its issues located in `origin` (e.g. "manifest") with key paths
//           "quality.<key>", for a value that is not an object, an unknown key, a mistyped,
//           non-finite or out-of-range value, a table of over 256 knots, or nesting deeper than
//           a table's. Key names are quoted as given: escape the messages before showing them.
QualityConfig quality_from_json(const nlohmann::json& j, const std::string& origin);

}  // namespace faceadapt::config
