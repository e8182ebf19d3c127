#include "faceadapt/common/time.hpp"

#include <ctime>

namespace faceadapt::common {
namespace {
std::string format_utc(std::chrono::system_clock::time_point t, const char* format) {
    const std::time_t s = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    ::gmtime_r(&s, &tm);
    char buf[32];
    const std::size_t n = std::strftime(buf, sizeof buf, format, &tm);
    return std::string(buf, n);
}
}  // namespace

std::string utc_timestamp(std::chrono::system_clock::time_point t) { return format_utc(t, "%Y-%m-%dT%H:%M:%SZ"); }

std::string utc_compact(std::chrono::system_clock::time_point t) { return format_utc(t, "%Y%m%dT%H%M%SZ"); }

}  // namespace faceadapt::common
