#include "faceadapt/daemon/scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <regex>
#include <stdexcept>

#include <fmt/format.h>

#include "faceadapt/config/config.hpp"

namespace faceadapt::daemon {

bool QuietHours::contains(int minute) const {
    if (start_minute < end_minute) return minute >= start_minute && minute < end_minute;
    return minute >= start_minute || minute < end_minute;  // wraps midnight
}

std::optional<QuietHours> parse_quiet_hours(const std::string& text) {
    if (text.empty()) return std::nullopt;
    static const std::regex re(R"(^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$)");
    std::smatch m;
    if (!std::regex_match(text, m, re))
        throw std::invalid_argument("learner.quiet_hours '" + text + "': expected HH:MM-HH:MM");
    const int h1 = std::stoi(m[1]), m1 = std::stoi(m[2]), h2 = std::stoi(m[3]), m2 = std::stoi(m[4]);
    if (h1 > 23 || h2 > 23 || m1 > 59 || m2 > 59)
        throw std::invalid_argument("learner.quiet_hours '" + text + "': hours 0..23, minutes 0..59");
    QuietHours q{h1 * 60 + m1, h2 * 60 + m2};
    if (q.start_minute == q.end_minute)
        throw std::invalid_argument("learner.quiet_hours '" + text + "': empty window");
    return q;
}

ScheduleDecision should_start_cycle(const config::LearnerConfig& learner, const SchedulerState& state,
                                    std::chrono::system_clock::time_point now, int minute_of_day) {
    const auto quiet = parse_quiet_hours(learner.quiet_hours);
    if (state.cycle_running) return {false, "a cycle is running"};
    if (state.last_cycle_end && state.failed_cycles > 0) {
        const auto since = std::chrono::duration<double>(now - *state.last_cycle_end);
        const auto wait = retry_backoff(learner, state.failed_cycles);
        if (since < wait)
            return {false, fmt::format("{:.0f} s since failed cycle {} in a row, retry after {:.0f} s", since.count(),
                                       state.failed_cycles, wait.count())};
    } else if (state.last_cycle_end) {
        const double hours = std::chrono::duration<double, std::ratio<3600>>(now - *state.last_cycle_end).count();
        if (hours < learner.interval_hours)
            return {false, fmt::format("{:.2f} h since the last cycle, interval is {:.2f} h", hours,
                                       learner.interval_hours)};
    }
    const std::int64_t fresh = state.crops_total - state.crops_at_last_cycle;
    if (fresh < learner.min_new_crops)
        return {false, fmt::format("{} new crops, need {}", fresh, learner.min_new_crops)};
    if (quiet && !quiet->contains(minute_of_day))
        return {false, fmt::format("outside quiet hours {} (now {:02d}:{:02d})", learner.quiet_hours,
                                   minute_of_day / 60, minute_of_day % 60)};
    return {true, fmt::format("{} new crops{}{}", fresh,
                              !state.last_cycle_end      ? ", first cycle"
                              : state.failed_cycles > 0 ? fmt::format(", retry after {} failed cycle(s)", state.failed_cycles)
                                                        : ", interval elapsed",
                              quiet ? ", inside quiet hours" : "")};
}

std::chrono::duration<double> retry_backoff(const config::LearnerConfig& learner, int failed_cycles) {
    const int doublings = std::clamp(failed_cycles - 1, 0, 40);  // 2^40 minutes exceed any cap
    const double minutes = learner.retry_minutes * std::ldexp(1.0, doublings);
    const double cap_minutes = 60.0 * std::min(learner.retry_max_hours, learner.interval_hours);
    return std::chrono::duration<double>(60.0 * std::min(minutes, cap_minutes));
}

int local_minute_of_day(std::chrono::system_clock::time_point t) {
    const std::time_t tt = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    localtime_r(&tt, &tm);
    return tm.tm_hour * 60 + tm.tm_min;
}

}  // namespace faceadapt::daemon
