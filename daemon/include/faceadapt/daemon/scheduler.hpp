// Scheduler rule: when the daemon starts a co-training cycle.
//
// WHAT THIS REPRESENTS
//   A pure decision from the [learner] scheduling keys and what the daemon knows:
//     - no cycle is running;
//     - at least interval_hours since the last cycle ended (or none has run yet); after a
//       failed cycle (failed_cycles > 0 in a row) instead retry_backoff() since it ended;
//     - at least min_new_crops crops stored since the last cycle started;
//     - when quiet_hours ("HH:MM-HH:MM", local time, may wrap midnight) is set, the current
//       local time lies inside that window: the site's quiet hours are when the NVR has spare
//       CPU, so training only starts then. A cycle that has started is never stopped by the
//       window closing.
//   The reason string says which condition held or failed, for the log and STATUS.
// THREAD SAFETY
//   Pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace faceadapt::config {
struct LearnerConfig;
}

namespace faceadapt::daemon {

// Minutes since local midnight, [start, end). start == end is rejected.
struct QuietHours {
    int start_minute = 0;
    int end_minute = 0;
    bool contains(int minute_of_day) const;
};

// "" -> empty; "22:30-05:00" -> {1350, 300}.
// throws std::invalid_argument naming the text when it is not HH:MM-HH:MM with a non-empty window.
std::optional<QuietHours> parse_quiet_hours(const std::string& text);

struct SchedulerState {
    bool cycle_running = false;
    std::optional<std::chrono::system_clock::time_point> last_cycle_end;  // empty: never ran
    std::int64_t crops_total = 0;             // crops stored, ever (monotonic counter)
    std::int64_t crops_at_last_cycle = 0;     // crops_total when the last cycle started
    int failed_cycles = 0;                    // cycles failed in a row since the last that ended
};

// The wait before retrying after `failed_cycles` (>= 1) failures in a row:
// retry_minutes * 2^(failed_cycles - 1), capped at retry_max_hours and at interval_hours.
std::chrono::duration<double> retry_backoff(const config::LearnerConfig& learner, int failed_cycles);

struct ScheduleDecision {
    bool start = false;
    std::string reason;
};

// requires: learner.quiet_hours is "" or valid (else throws std::invalid_argument).
// `minute_of_day` is the local time of `now` in minutes since midnight (the caller converts,
// so that tests do not depend on the machine's time zone).
ScheduleDecision should_start_cycle(const config::LearnerConfig& learner, const SchedulerState& state,
                                    std::chrono::system_clock::time_point now, int minute_of_day);

// Local minutes since midnight of `t` (localtime_r).
int local_minute_of_day(std::chrono::system_clock::time_point t);

}  // namespace faceadapt::daemon
