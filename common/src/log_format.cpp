// Log line format: see log_format.hpp.
#include "faceadapt/common/log_format.hpp"

#include <cstdlib>
#include <cstring>
#include <string>

#include <sys/stat.h>

namespace faceadapt::common {

bool stderr_is_journal() {
    const char* js = std::getenv("JOURNAL_STREAM");
    if (!js) return false;
    const char* colon = std::strchr(js, ':');
    if (!colon) return false;
    char* end = nullptr;
    const unsigned long long dev = std::strtoull(js, &end, 10);
    if (end != colon) return false;
    const unsigned long long ino = std::strtoull(colon + 1, &end, 10);
    if (*end != '\0') return false;
    struct stat st {};
    if (::fstat(2, &st) != 0) return false;
    return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

const char* log_pattern() {
    const char* forced = std::getenv("FACEADAPT_LOG_FORMAT");
    if ((forced && std::string_view(forced) == "plain") || stderr_is_journal()) return "%^%l%$ %v";
    return "%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v";
}

RelayedLine relayed_line(std::string_view line) {
    for (std::string_view level : {"trace", "debug", "info", "warning", "error", "critical"})
        if (line.size() > level.size() && line.substr(0, level.size()) == level && line[level.size()] == ' ')
            return {level, line.substr(level.size() + 1)};
    return {std::nullopt, line};
}

}  // namespace faceadapt::common
