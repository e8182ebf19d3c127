// The MQTT protocol between the daemon and door controllers: topic names and the door state
// message. docs/mqtt.md is the normative description.
//
// WHAT THIS REPRESENTS
//   Topics: the topic names of one site.
//     faceadapt/<site>/daemon/status              retained "online" | "offline" (last will)
//     faceadapt/<site>/model/manifest             retained, QoS 1: the signed envelope
//     faceadapt/<site>/model/<version>/chunk/<i>  retained, QoS 1: payload chunk i (current version only)
//     faceadapt/<site>/door/<door>/state          retained: DoorState JSON
//     faceadapt/<site>/door/<door>/online         retained "online" | "offline" (last will)
//   DoorState: what a door controller reports about itself.
// THREAD SAFETY
//   Plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace faceadapt::publish {

// true when `s` is a non-empty [A-Za-z0-9_-]+ (site and door ids).
bool valid_topic_segment(std::string_view s);

class Topics {
public:
    // throws std::invalid_argument naming the site when it is not a valid topic segment.
    explicit Topics(std::string site);
    const std::string& site() const { return site_; }
    std::string daemon_status() const;
    std::string manifest() const;
    std::string chunk(std::int64_t version, std::size_t index) const;
    std::string chunk_filter(std::int64_t version) const;   // .../model/<version>/chunk/+
    std::string door_state(std::string_view door) const;
    std::string door_state_filter() const;                  // .../door/+/state
    std::string door_online(std::string_view door) const;
    // Parses .../model/<version>/chunk/<i>; nullopt for any other topic.
    std::optional<std::pair<std::int64_t, std::size_t>> parse_chunk(std::string_view topic) const;
    // Parses .../door/<door>/state; nullopt for any other topic.
    std::optional<std::string> parse_door_state(std::string_view topic) const;
private:
    std::string site_;
    std::string prefix_;  // "faceadapt/<site>/"
};

struct DoorState {
    std::string door;
    // "idle" (nothing installed yet), "receiving", "installed", "rejected" (the last package
    // offered was refused; `error` says why), "error" (a fault while receiving; it keeps waiting).
    std::string status = "idle";
    std::int64_t installed_version = 0;
    std::int64_t previous_version = 0;
    std::int64_t offered_version = 0;    // version of the last manifest seen (0: none)
    std::uint64_t chunks_received = 0;   // of offered_version
    std::uint64_t chunks_total = 0;
    std::string error;                   // "" when none
    // Messages that failed verification (bad signature, junk, another site, tampered chunks,
    // oversized) or named a version not newer than the one installed or being received:
    // counted here and never acted on (docs/mqtt.md, "What a door ignores").
    std::uint64_t ignored = 0;
    std::string last_ignored;            // why the last one was ignored ("" when none)
    // The last validly signed manifest of this site refused as stale (not newer than the
    // installed version, or rolled back): its version and why. Unlike `rejected`, it does not
    // change `status`; Publisher::wait_for_acks counts it as a refusal of that version.
    std::int64_t refused_version = 0;
    std::string refused_reason;
    std::string damage;                  // the install folder is damaged: what ("" when sound)
    std::string time;                    // ISO 8601 UTC of this report

    // Strings are made printable (faceadapt/common/text.hpp) on the way out.
    std::string to_json() const;
    // throws std::invalid_argument when `json_text` is not a door state.
    static DoorState parse(std::string_view json_text);
};

}  // namespace faceadapt::publish
