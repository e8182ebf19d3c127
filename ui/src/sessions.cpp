#include "faceadapt/ui/sessions.hpp"

#include <sodium.h>

#include <stdexcept>
#include <vector>

namespace faceadapt::ui {

std::string random_hex(std::size_t bytes) {
    if (sodium_init() < 0) throw std::runtime_error("libsodium could not be initialised");
    std::vector<unsigned char> raw(bytes);
    randombytes_buf(raw.data(), raw.size());
    std::string hex(bytes * 2 + 1, '\0');
    sodium_bin2hex(hex.data(), hex.size(), raw.data(), raw.size());
    hex.pop_back();
    return hex;
}

bool equal_secret(std::string_view a, std::string_view b) {
    if (a.size() != b.size() || a.empty()) return false;
    return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

Session SessionStore::create(const std::string& user, Role role, SteadyClock::time_point now) {
    Session s{random_hex(32), random_hex(32), user, role, now, now};
    std::lock_guard lock(mutex_);
    while (sessions_.size() >= limits_.max_sessions && !sessions_.empty()) {
        auto oldest = sessions_.begin();
        for (auto it = sessions_.begin(); it != sessions_.end(); ++it)
            if (it->second.last_used < oldest->second.last_used) oldest = it;
        sessions_.erase(oldest);
    }
    sessions_[s.id] = s;
    return s;
}

std::optional<Session> SessionStore::find(std::string_view id, SteadyClock::time_point now) {
    std::lock_guard lock(mutex_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return std::nullopt;
    Session& s = it->second;
    if (now - s.last_used > limits_.idle || now - s.created > limits_.lifetime) {
        sessions_.erase(it);
        return std::nullopt;
    }
    s.last_used = now;
    return s;
}

void SessionStore::end(std::string_view id) {
    std::lock_guard lock(mutex_);
    if (auto it = sessions_.find(id); it != sessions_.end()) sessions_.erase(it);
}

int SessionStore::end_user(const std::string& user) {
    std::lock_guard lock(mutex_);
    return static_cast<int>(std::erase_if(sessions_, [&](const auto& kv) { return kv.second.user == user; }));
}

std::size_t SessionStore::size() const {
    std::lock_guard lock(mutex_);
    return sessions_.size();
}

}  // namespace faceadapt::ui
