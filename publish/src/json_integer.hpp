// Internal to faceadapt_publish: integers read from JSON that came from outside (door states,
// manifests, model metadata).
// nlohmann's get<T>() converts a JSON float to an integer with a static_cast, which is undefined
// behaviour when the value does not fit (libFuzzer found a door state with offered_version
// 8.9e64), and wraps a negative or too-large integer silently.
// THREAD SAFETY
//   Pure function.
#pragma once

#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

namespace faceadapt::publish::detail {

// The value as a T when it is a JSON integer (not a float, not a boolean) that fits T; nullopt
// otherwise.
template <class T>
std::optional<T> json_integer(const nlohmann::json& v) {
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
    if (v.is_number_unsigned()) {
        const auto u = v.get<std::uint64_t>();
        if (std::in_range<T>(u)) return static_cast<T>(u);
    } else if (v.is_number_integer()) {
        const auto i = v.get<std::int64_t>();
        if (std::in_range<T>(i)) return static_cast<T>(i);
    }
    return std::nullopt;
}

}  // namespace faceadapt::publish::detail
