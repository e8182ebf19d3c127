// How faceadapt's programs format their log lines (spdlog patterns; this header needs no spdlog).
//
// WHAT THIS REPRESENTS
//   journald stamps every line itself, so a line written to the journal is "<level> <text>";
//   anywhere else (a terminal, a file, a container log) it carries an ISO-8601 UTC timestamp
//   with milliseconds first. systemd tells a service that its stderr is the journal with
//   JOURNAL_STREAM="<device>:<inode>" (systemd.exec(5)); it is trusted only when fd 2 is that
//   very file. FACEADAPT_LOG_FORMAT=plain forces the plain form: faceadaptd sets it for its
//   children, whose lines it relays under its own prefix (relayed_line()).
//   relayed_line() splits a child's line "<level> <text>" so that the relay logs <text> at that
//   level instead of "info cycle train: info train: ..." (the level twice).
// THREAD SAFETY
//   Pure functions but log_pattern(), which reads the environment and fstat(2)s fd 2.
#pragma once

#include <optional>
#include <string_view>

namespace faceadapt::common {

// True when fd 2 is the journal stream named by JOURNAL_STREAM.
bool stderr_is_journal();

// The spdlog pattern for this process: "%^%l%$ %v" for the journal or FACEADAPT_LOG_FORMAT=plain,
// "%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v" (UTC) otherwise. Call spdlog::set_pattern(p, spdlog::pattern_time_type::utc).
const char* log_pattern();

struct RelayedLine {
    std::optional<std::string_view> level;  // "trace", "debug", "info", "warning", "error", "critical"
    std::string_view text;                  // the line without its level word
};
// Splits a leading spdlog level word (the names spdlog prints: trace, debug, info, warning,
// error, critical) and the one space after it off `line`; level is nullopt (text = line) when
// the line does not start with one (a child's printf, a library's own output).
RelayedLine relayed_line(std::string_view line);

}  // namespace faceadapt::common
