// Publisher: sends signed packages to a site's door controllers over MQTT and collects acks.
//
// WHAT THIS REPRESENTS
//   One Paho MQTT async client of the daemon (or of `faceadapt publish`), connected with the
//   broker, TLS and credentials of config::MqttConfig. It announces faceadapt/<site>/daemon/status
//   "online" (retained; last will "offline"), follows the retained manifest and every door's
//   state. publish() sends the payload chunks (QoS 1, retained), then the manifest (QoS 1,
//   retained: it only ever names a version whose chunks are all on the broker), then clears
//   the previous version's retained chunks with empty retained messages. Topics: docs/mqtt.md.
//   Reconnects with backoff. A publish interrupted by a lost connection starts over once the
//   client is back (the broker may have lost its retained messages); with
//   republish_on_reconnect, the last package is sent again after every reconnection so that a
//   restarted broker without persistence serves it again.
// THREAD SAFETY
//   All members may be called from any thread; publish() calls are serialised.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "faceadapt/config/config.hpp"
#include "faceadapt/publish/package.hpp"
#include "faceadapt/publish/protocol.hpp"

namespace faceadapt::publish {

struct PublisherOptions {
    std::string site;                      // topic segment, [A-Za-z0-9_-]+
    config::MqttConfig mqtt;               // client_id "" -> "faceadapt-<site>"
    int qos = 1;                           // 1 or 2 for chunks and manifest
    std::size_t window = 32;               // chunks in flight before waiting for PUBACKs
    std::chrono::milliseconds connect_timeout{10'000};
    std::chrono::milliseconds publish_timeout{600'000};  // one publish(), reconnections included
    bool republish_on_reconnect = true;
    // Bounds on what the daemon keeps of door states (anyone allowed to publish door topics
    // could invent doors): states over max_door_state_bytes are ignored, and so are doors
    // beyond max_doors (those already known keep updating).
    std::size_t max_doors = 10'000;
    std::size_t max_door_state_bytes = 64 * 1024;
};

struct PublishReport {
    std::int64_t version = 0;
    std::size_t chunks = 0;
    std::uint64_t payload_bytes = 0;
    std::uint64_t bytes_sent = 0;       // payload bytes of every PUBLISH sent, resends included
    int restarts = 0;                   // times the transfer started over after a lost connection
    std::int64_t cleared_version = 0;   // previous version whose retained chunks were cleared (0: none)
    double seconds = 0;
};

struct AckResult {
    std::vector<std::string> acked;      // installed exactly the version asked for
    std::vector<std::string> rejected;   // refused it (state "rejected" for that version, or refused_version)
    std::vector<std::string> missing;    // no answer in time
    std::map<std::string, DoorState> states;
    bool all_acked() const { return rejected.empty() && missing.empty(); }
};

class Publisher {
public:
    // Connects (retrying until options.connect_timeout).
    // throws std::invalid_argument for a bad site or broker URI; std::runtime_error naming the
    // broker when it cannot connect (refused credentials, TLS failure, nothing listening).
    explicit Publisher(PublisherOptions options);
    ~Publisher();  // disconnects; the will "offline" is not sent, "offline" is published instead
    Publisher(const Publisher&) = delete;
    Publisher& operator=(const Publisher&) = delete;

    using Progress = std::function<void(std::size_t chunks_acked, std::size_t chunks_total)>;
    // Publishes `package` (not re-verified here: build or verify it first).
    // ensures: returns once the broker has acknowledged every chunk and the manifest.
    // throws std::runtime_error naming the broker and topic when publish_timeout passes.
    PublishReport publish(const Package& package, const Progress& progress = {});

    // Waits until every door in `doors` (all doors that have reported a state, when empty)
    // has installed `version` or rejected it, or `timeout` passes.
    AckResult wait_for_acks(std::int64_t version, const std::vector<std::string>& doors,
                            std::chrono::milliseconds timeout) const;

    // Latest state of each door seen on faceadapt/<site>/door/+/state.
    std::map<std::string, DoorState> door_states() const;
    // Called (on a Paho thread; keep it short) for each door state received.
    void set_door_state_handler(std::function<void(const DoorState&)> handler);
    // Version named by the retained manifest on the broker, as last seen.
    std::optional<std::int64_t> broker_version() const;
    bool connected() const;
    const Topics& topics() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace faceadapt::publish
