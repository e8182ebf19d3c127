#include "faceadapt/ui/throttle.hpp"

#include <algorithm>

namespace faceadapt::ui {

std::chrono::milliseconds LoginThrottle::delay_for(int failures) const {
    if (failures < limits_.free_failures) return std::chrono::milliseconds(0);
    const int doublings = std::min(failures - limits_.free_failures, 30);
    const auto d = limits_.base_delay * (std::int64_t{1} << doublings);
    return std::min<std::chrono::milliseconds>(d, limits_.max_delay);
}

void LoginThrottle::prune(Clock::time_point now) {
    std::erase_if(entries_, [&](const auto& kv) { return now - kv.second.last > limits_.forget_after; });
    while (entries_.size() > limits_.max_keys) {
        auto oldest = std::min_element(entries_.begin(), entries_.end(),
                                       [](const auto& a, const auto& b) { return a.second.last < b.second.last; });
        entries_.erase(oldest);
    }
}

std::optional<std::chrono::milliseconds> LoginThrottle::locked(const std::string& user, const std::string& address,
                                                               Clock::time_point now) {
    std::lock_guard lock(mutex_);
    std::chrono::milliseconds wait{0};
    for (const std::string& key : {"user:" + user, "addr:" + address}) {
        auto it = entries_.find(key);
        if (it == entries_.end()) continue;
        const auto until = it->second.last + delay_for(it->second.failures);
        if (until > now) wait = std::max(wait, std::chrono::duration_cast<std::chrono::milliseconds>(until - now));
    }
    if (wait.count() > 0) return wait;
    return std::nullopt;
}

void LoginThrottle::failure(const std::string& user, const std::string& address, Clock::time_point now) {
    std::lock_guard lock(mutex_);
    for (const std::string& key : {"user:" + user, "addr:" + address}) {
        Entry& e = entries_[key];
        ++e.failures;
        e.last = now;
    }
    prune(now);
}

void LoginThrottle::success(const std::string& user, const std::string& address) {
    std::lock_guard lock(mutex_);
    entries_.erase("user:" + user);
    entries_.erase("addr:" + address);
}

int LoginThrottle::failures(const std::string& key) const {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    return it == entries_.end() ? 0 : it->second.failures;
}

}  // namespace faceadapt::ui
