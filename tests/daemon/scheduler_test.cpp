// The scheduler rule: interval, minimum new crops, quiet hours.
#include <gtest/gtest.h>

#include "faceadapt/config/config.hpp"
#include "faceadapt/daemon/scheduler.hpp"

using namespace faceadapt::daemon;
using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

namespace {
faceadapt::config::LearnerConfig learner(double hours, int min_crops, std::string quiet = "") {
    faceadapt::config::LearnerConfig l;
    l.interval_hours = hours;
    l.min_new_crops = min_crops;
    l.quiet_hours = std::move(quiet);
    return l;
}
}  // namespace

TEST(Scheduler, FirstCycleNeedsOnlyEnoughCrops) {
    SchedulerState s;
    s.crops_total = 499;
    const auto now = Clock::now();
    auto d = should_start_cycle(learner(24, 500), s, now, 600);
    EXPECT_FALSE(d.start);
    EXPECT_EQ(d.reason, "499 new crops, need 500");
    s.crops_total = 500;
    d = should_start_cycle(learner(24, 500), s, now, 600);
    EXPECT_TRUE(d.start) << d.reason;
    EXPECT_NE(d.reason.find("first cycle"), std::string::npos);
}

TEST(Scheduler, WaitsForTheIntervalAndCountsCropsSinceTheLastCycle) {
    const auto now = Clock::now();
    SchedulerState s;
    s.last_cycle_end = now - 23h;
    s.crops_at_last_cycle = 1000;
    s.crops_total = 5000;
    auto d = should_start_cycle(learner(24, 500), s, now, 600);
    EXPECT_FALSE(d.start);
    EXPECT_NE(d.reason.find("interval is 24.00 h"), std::string::npos) << d.reason;
    s.last_cycle_end = now - 25h;
    EXPECT_TRUE(should_start_cycle(learner(24, 500), s, now, 600).start);
    s.crops_total = 1400;  // only 400 new since the last cycle
    d = should_start_cycle(learner(24, 500), s, now, 600);
    EXPECT_FALSE(d.start);
    EXPECT_EQ(d.reason, "400 new crops, need 500");
}

TEST(Scheduler, NeverStartsWhileACycleRuns) {
    SchedulerState s;
    s.crops_total = 10000;
    s.cycle_running = true;
    EXPECT_FALSE(should_start_cycle(learner(0, 1), s, Clock::now(), 0).start);
}

TEST(Scheduler, QuietHoursIncludingAWindowAcrossMidnight) {
    SchedulerState s;
    s.crops_total = 10000;
    const auto now = Clock::now();
    const auto night = learner(0, 1, "22:30-05:00");
    EXPECT_TRUE(should_start_cycle(night, s, now, 23 * 60).start);
    EXPECT_TRUE(should_start_cycle(night, s, now, 2 * 60).start);
    EXPECT_TRUE(should_start_cycle(night, s, now, 22 * 60 + 30).start);
    EXPECT_FALSE(should_start_cycle(night, s, now, 5 * 60).start);  // end is exclusive
    const auto d = should_start_cycle(night, s, now, 12 * 60 + 5);
    EXPECT_FALSE(d.start);
    EXPECT_EQ(d.reason, "outside quiet hours 22:30-05:00 (now 12:05)");
    const auto day = learner(0, 1, "01:00-04:00");
    EXPECT_TRUE(should_start_cycle(day, s, now, 3 * 60).start);
    EXPECT_FALSE(should_start_cycle(day, s, now, 4 * 60).start);
}

TEST(Scheduler, RejectsMalformedQuietHours) {
    for (const char* bad : {"22-05", "25:00-01:00", "10:61-11:00", "10:00-10:00", "night"}) {
        try {
            parse_quiet_hours(bad);
            FAIL() << bad << " was accepted";
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
        }
    }
    EXPECT_FALSE(parse_quiet_hours("").has_value());
    EXPECT_EQ(parse_quiet_hours("1:05-2:00")->start_minute, 65);
    EXPECT_GE(local_minute_of_day(Clock::now()), 0);
    EXPECT_LT(local_minute_of_day(Clock::now()), 24 * 60);
}

TEST(Scheduler, AFailedCycleIsRetriedAfterItsOwnDoublingBackoffNotTheInterval) {
    auto l = learner(24, 0);
    l.retry_minutes = 5;
    l.retry_max_hours = 1;
    EXPECT_DOUBLE_EQ(retry_backoff(l, 1).count(), 300);
    EXPECT_DOUBLE_EQ(retry_backoff(l, 2).count(), 600);
    EXPECT_DOUBLE_EQ(retry_backoff(l, 3).count(), 1200);
    EXPECT_DOUBLE_EQ(retry_backoff(l, 4).count(), 2400);
    EXPECT_DOUBLE_EQ(retry_backoff(l, 5).count(), 3600);      // capped at retry_max_hours
    EXPECT_DOUBLE_EQ(retry_backoff(l, 10'000).count(), 3600);  // no overflow
    l.interval_hours = 0.25;
    EXPECT_DOUBLE_EQ(retry_backoff(l, 4).count(), 900);       // never beyond interval_hours
    l.interval_hours = 24;

    const auto now = Clock::now();
    SchedulerState s;
    s.last_cycle_end = now - 4min;
    s.failed_cycles = 1;
    auto d = should_start_cycle(l, s, now, 600);
    EXPECT_FALSE(d.start);
    EXPECT_EQ(d.reason, "240 s since failed cycle 1 in a row, retry after 300 s");
    s.last_cycle_end = now - 6min;
    d = should_start_cycle(l, s, now, 600);
    EXPECT_TRUE(d.start) << d.reason;
    EXPECT_NE(d.reason.find("retry after 1 failed cycle(s)"), std::string::npos) << d.reason;
    s.failed_cycles = 2;  // the second failure in a row waits twice as long
    EXPECT_FALSE(should_start_cycle(l, s, now, 600).start);
    s.failed_cycles = 0;  // a cycle that ended: the interval again
    EXPECT_FALSE(should_start_cycle(l, s, now, 600).start);
}
