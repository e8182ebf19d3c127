#include "faceadapt/publish/protocol.hpp"

#include <charconv>
#include <optional>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "faceadapt/common/text.hpp"
#include "json_integer.hpp"

namespace faceadapt::publish {

bool valid_topic_segment(std::string_view s) {
    if (s.empty() || s.size() > 128) return false;
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
    return true;
}

Topics::Topics(std::string site) : site_(std::move(site)) {
    if (!valid_topic_segment(site_))
        throw std::invalid_argument("site id \"" + site_ + "\" is not a valid MQTT topic segment ([A-Za-z0-9_-]+)");
    prefix_ = "faceadapt/" + site_ + "/";
}

std::string Topics::daemon_status() const { return prefix_ + "daemon/status"; }
std::string Topics::manifest() const { return prefix_ + "model/manifest"; }
std::string Topics::chunk(std::int64_t version, std::size_t index) const {
    return prefix_ + "model/" + std::to_string(version) + "/chunk/" + std::to_string(index);
}
std::string Topics::chunk_filter(std::int64_t version) const { return prefix_ + "model/" + std::to_string(version) + "/chunk/+"; }
std::string Topics::door_state(std::string_view door) const { return prefix_ + "door/" + std::string(door) + "/state"; }
std::string Topics::door_state_filter() const { return prefix_ + "door/+/state"; }
std::string Topics::door_online(std::string_view door) const { return prefix_ + "door/" + std::string(door) + "/online"; }

namespace {
template <class T>
std::optional<T> parse_number(std::string_view s) {
    T v{};
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}
}  // namespace

std::optional<std::pair<std::int64_t, std::size_t>> Topics::parse_chunk(std::string_view topic) const {
    const std::string head = prefix_ + "model/";  // a string: a view of the temporary would dangle
    if (!topic.starts_with(head)) return std::nullopt;
    topic.remove_prefix(head.size());
    auto slash = topic.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    auto version = parse_number<std::int64_t>(topic.substr(0, slash));
    topic.remove_prefix(slash);
    if (!version || !topic.starts_with("/chunk/")) return std::nullopt;
    auto index = parse_number<std::size_t>(topic.substr(7));
    if (!index) return std::nullopt;
    return std::pair{*version, *index};
}

std::optional<std::string> Topics::parse_door_state(std::string_view topic) const {
    auto head = prefix_ + "door/";
    if (!topic.starts_with(head) || !topic.ends_with("/state")) return std::nullopt;
    auto door = topic.substr(head.size(), topic.size() - head.size() - 6);
    if (!valid_topic_segment(door)) return std::nullopt;
    return std::string(door);
}

std::string DoorState::to_json() const {
    nlohmann::json j = {{"door", common::printable(door)},
                        {"status", common::printable(status)},
                        {"installed_version", installed_version},
                        {"previous_version", previous_version},
                        {"offered_version", offered_version},
                        {"chunks_received", chunks_received},
                        {"chunks_total", chunks_total},
                        {"error", common::printable(error, 1000)},
                        {"ignored", ignored},
                        {"last_ignored", common::printable(last_ignored)},
                        {"refused_version", refused_version},
                        {"refused_reason", common::printable(refused_reason)},
                        {"damage", common::printable(damage)},
                        {"time", common::printable(time)}};
    return j.dump();
}

namespace {

// The integer member `key` of a door state; `fallback` when absent (nullopt: required).
// throws std::invalid_argument naming the key for a float, a non-number or a value out of T's range.
template <class T>
T integer_member(const nlohmann::json& j, const char* key, std::optional<T> fallback) {
    const auto it = j.find(key);
    if (it == j.end()) {
        if (fallback) return *fallback;
        throw std::invalid_argument(std::string("door state: ") + key + " is missing");
    }
    if (const auto v = detail::json_integer<T>(*it)) return *v;
    throw std::invalid_argument(std::string("door state: ") + key + " is not an integer in range");
}

}  // namespace

DoorState DoorState::parse(std::string_view json_text) {
    try {
        auto j = nlohmann::json::parse(json_text);
        if (!j.is_object()) throw std::invalid_argument("door state: not a JSON object");
        DoorState s;
        s.door = j.at("door").get<std::string>();
        s.status = j.at("status").get<std::string>();
        s.installed_version = integer_member<std::int64_t>(j, "installed_version", std::nullopt);
        s.previous_version = integer_member<std::int64_t>(j, "previous_version", 0);
        s.offered_version = integer_member<std::int64_t>(j, "offered_version", 0);
        s.chunks_received = integer_member<std::uint64_t>(j, "chunks_received", 0);
        s.chunks_total = integer_member<std::uint64_t>(j, "chunks_total", 0);
        s.error = j.value("error", "");
        s.ignored = integer_member<std::uint64_t>(j, "ignored", 0);
        s.last_ignored = j.value("last_ignored", "");
        s.refused_version = integer_member<std::int64_t>(j, "refused_version", 0);
        s.refused_reason = j.value("refused_reason", "");
        s.damage = j.value("damage", "");
        s.time = j.value("time", "");
        return s;
    } catch (const nlohmann::json::exception& e) {
        throw std::invalid_argument(std::string("door state: ") + e.what());
    }
}

}  // namespace faceadapt::publish
