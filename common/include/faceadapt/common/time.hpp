// UTC timestamps as the project writes them in its files (model metadata, registry history,
// packages, door states).
//
// THREAD SAFETY
//   Free functions (gmtime_r); safe from any thread.
#pragma once

#include <chrono>
#include <string>

namespace faceadapt::common {

// ISO-8601 UTC to the second: "2026-11-27T01:02:03Z".
std::string utc_timestamp(std::chrono::system_clock::time_point t = std::chrono::system_clock::now());

// The same instant without separators, for names: "20261127T010203Z".
std::string utc_compact(std::chrono::system_clock::time_point t = std::chrono::system_clock::now());

}  // namespace faceadapt::common
