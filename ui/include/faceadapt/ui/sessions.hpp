// Sessions: who is logged in to the console, by an unguessable cookie.
//
// WHAT THIS REPRESENTS
//   In memory only (a daemon restart logs everyone out). Each session has a random id (32 bytes
//   of libsodium's randombytes_buf, hex: the cookie's value), a CSRF token (another 32 random
//   bytes, hex) that every POST/PUT/DELETE must carry, the user and role, and two expiries: idle
//   (no request for `idle`) and absolute (`lifetime` after login). At most `max_sessions`; the
//   one used least recently is dropped beyond.
// THREAD SAFETY
//   Every member may be called from any thread (one mutex).
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "faceadapt/ui/users.hpp"

namespace faceadapt::ui {

using SteadyClock = std::chrono::steady_clock;

struct Session {
    std::string id;
    std::string csrf;
    std::string user;
    Role role = Role::viewer;
    SteadyClock::time_point created;
    SteadyClock::time_point last_used;
};

// Random bytes as lowercase hex (2 * bytes characters), from randombytes_buf.
std::string random_hex(std::size_t bytes);
// Constant-time equality (sodium_memcmp) of two strings; false when sizes differ.
bool equal_secret(std::string_view a, std::string_view b);

class SessionStore {
public:
    struct Limits {
        std::chrono::seconds idle{std::chrono::minutes(30)};
        std::chrono::seconds lifetime{std::chrono::hours(12)};
        std::size_t max_sessions = 1000;
    };
    SessionStore() : SessionStore(Limits{}) {}
    explicit SessionStore(Limits limits) : limits_(limits) {}

    // A new session for `user` (its id and CSRF token fresh).
    Session create(const std::string& user, Role role, SteadyClock::time_point now = SteadyClock::now());
    // The live session with this id (its last use set to now); nullopt when unknown or expired
    // (an expired one is dropped).
    std::optional<Session> find(std::string_view id, SteadyClock::time_point now = SteadyClock::now());
    // Ends a session (logout); no-op when unknown.
    void end(std::string_view id);
    // Ends every session of `user` (removed, or role changed). Returns how many.
    int end_user(const std::string& user);
    std::size_t size() const;

private:
    Limits limits_;
    mutable std::mutex mutex_;
    std::map<std::string, Session, std::less<>> sessions_;
};

}  // namespace faceadapt::ui
