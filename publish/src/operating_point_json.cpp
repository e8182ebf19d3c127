#include "faceadapt/publish/operating_point_json.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace faceadapt::publish {
namespace {

using nlohmann::json;

const json& member(const json& j, const char* key) {
    const auto it = j.find(key);
    if (it == j.end()) throw std::invalid_argument(std::string("operating_point.") + key + " is missing");
    return *it;
}

double number(const json& j, const char* key, bool nullable = false) {
    const json& v = member(j, key);
    if (nullable && v.is_null()) return NAN;
    if (!v.is_number()) throw std::invalid_argument(std::string("operating_point.") + key + " is not a number");
    const double d = v.get<double>();
    if (!std::isfinite(d)) throw std::invalid_argument(std::string("operating_point.") + key + " is not finite");
    return d;
}

std::size_t count(const json& j, const char* key) {
    const json& v = member(j, key);
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0))
        throw std::invalid_argument(std::string("operating_point.") + key + " is not a count");
    return v.get<std::size_t>();
}

json nullable(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

}  // namespace

json to_json(const calib::OperatingPoint& p) {
    return {{"threshold", p.threshold},
            {"margin", p.margin},
            {"target_far", p.target_far},
            {"far_kind", std::string(calib::to_string(p.far_kind))},
            {"comparisons", p.comparisons},
            {"pair_far_target", p.pair_far_target},
            {"confidence", p.confidence},
            {"impostor_pairs", p.impostor_pairs},
            {"impostor_accepted", p.impostor_accepted},
            {"pair_far_measured", nullable(p.pair_far_measured)},
            {"pair_far_bound", p.pair_far_bound},
            {"door_far_bound", p.door_far_bound},
            {"min_resolvable_far", p.min_resolvable_far},
            {"smallest_impostor_distance", nullable(p.smallest_impostor_distance)},
            {"genuine_pairs", p.genuine_pairs},
            {"frr", nullable(p.frr)},
            {"calibrated", p.calibrated},
            {"method", std::string(calib::kMethodName)},
            {"method_version", p.method_version},
            {"note", p.note}};
}

calib::OperatingPoint operating_point_from_json(const json& j) {
    if (!j.is_object()) throw std::invalid_argument("operating_point is not an object");
    calib::OperatingPoint p;
    try {
        p.threshold = number(j, "threshold");
        p.margin = number(j, "margin");
        p.target_far = number(j, "target_far");
        const json& kind = member(j, "far_kind");
        const auto k = kind.is_string() ? calib::far_kind_from_string(kind.get<std::string>()) : std::nullopt;
        if (!k) throw std::invalid_argument("operating_point.far_kind is neither \"door\" nor \"pair\"");
        p.far_kind = *k;
        p.comparisons = count(j, "comparisons");
        p.pair_far_target = number(j, "pair_far_target");
        p.confidence = number(j, "confidence");
        p.impostor_pairs = count(j, "impostor_pairs");
        p.impostor_accepted = count(j, "impostor_accepted");
        p.pair_far_measured = number(j, "pair_far_measured", true);
        p.pair_far_bound = number(j, "pair_far_bound");
        p.door_far_bound = number(j, "door_far_bound");
        p.min_resolvable_far = number(j, "min_resolvable_far");
        p.smallest_impostor_distance = number(j, "smallest_impostor_distance", true);
        p.genuine_pairs = count(j, "genuine_pairs");
        p.frr = number(j, "frr", true);
        const json& cal = member(j, "calibrated");
        if (!cal.is_boolean()) throw std::invalid_argument("operating_point.calibrated is not true/false");
        p.calibrated = cal.get<bool>();
        const json& mv = member(j, "method_version");
        if (!mv.is_number_integer()) throw std::invalid_argument("operating_point.method_version is not an integer");
        p.method_version = mv.get<int>();
        if (const auto it = j.find("note"); it != j.end()) {
            if (!it->is_string()) throw std::invalid_argument("operating_point.note is not a string");
            p.note = it->get<std::string>().substr(0, 500);
        }
    } catch (const json::exception& e) {  // a count out of range for its type
        throw std::invalid_argument(std::string("operating_point: ") + e.what());
    }
    if (const std::string problem = calib::check(p); !problem.empty())
        throw std::invalid_argument("operating_point." + problem);
    return p;
}

}  // namespace faceadapt::publish
