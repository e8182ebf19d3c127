// LoginThrottle: slows password guessing, per user name and per client address.
//
// WHAT THIS REPRESENTS
//   A count of consecutive failed logins per key ("user:<name>" and "addr:<address>"). The first
//   `free_failures` (5) cost nothing; after them each key is locked for base_delay * 2^(n - 5)
//   (1 s, 2 s, 4 s, ... at most max_delay, 15 min) from its last failure, and a login attempted
//   while either key is locked is refused (HTTP 429 with Retry-After) without checking the
//   password. A success clears the user's key and the address's key. Keys unused for
//   forget_after are forgotten; at most max_keys are kept (the oldest dropped), so a flood of
//   made-up names cannot grow memory.
// THREAD SAFETY
//   Every member may be called from any thread (one mutex).
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace faceadapt::ui {

class LoginThrottle {
public:
    using Clock = std::chrono::steady_clock;
    struct Limits {
        int free_failures = 5;
        std::chrono::milliseconds base_delay{1000};
        std::chrono::milliseconds max_delay{std::chrono::minutes(15)};
        std::chrono::seconds forget_after{std::chrono::hours(24)};
        std::size_t max_keys = 10000;
    };
    LoginThrottle() : LoginThrottle(Limits{}) {}
    explicit LoginThrottle(Limits limits) : limits_(limits) {}

    // How long the caller must wait before this user may try from this address; nullopt: now.
    std::optional<std::chrono::milliseconds> locked(const std::string& user, const std::string& address,
                                                    Clock::time_point now = Clock::now());
    // Records a failed login (wrong password or unknown user).
    void failure(const std::string& user, const std::string& address, Clock::time_point now = Clock::now());
    // Records a successful login: both keys cleared.
    void success(const std::string& user, const std::string& address);
    // The consecutive failures recorded for the key (0 when none), for tests and the audit log.
    int failures(const std::string& key) const;

private:
    struct Entry {
        int failures = 0;
        Clock::time_point last;
    };
    std::chrono::milliseconds delay_for(int failures) const;
    void prune(Clock::time_point now);
    Limits limits_;
    mutable std::mutex mutex_;
    std::map<std::string, Entry> entries_;
};

}  // namespace faceadapt::ui
