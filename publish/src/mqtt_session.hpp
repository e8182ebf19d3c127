// Internal: one Paho MQTT async client connected with the settings of config::MqttConfig.
//
// WHAT THIS REPRESENTS
//   Owns an mqtt::async_client. The first connect() retries with backoff until a deadline;
//   after it succeeded, Paho's automatic reconnect (backoff 1 s .. 16 s) keeps the session up.
//   Events go to the callbacks given at construction; they run on Paho's threads and must not
//   wait on Paho tokens.
// THREAD SAFETY
//   publish/subscribe may be called from any thread (Paho's client is thread-safe).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <mqtt/async_client.h>

#include "faceadapt/config/config.hpp"

namespace faceadapt::publish::detail {

struct Will {
    std::string topic;
    std::string payload;
};

struct SessionCallbacks {
    std::function<void()> on_connected;                          // every (re)connection
    std::function<void(const std::string&)> on_lost;             // cause
    std::function<void(mqtt::const_message_ptr)> on_message;
};

// "mqtt://" -> "tcp://", "mqtts://" -> "ssl://"; others unchanged.
std::string paho_uri(const std::string& broker);

class MqttSession {
public:
    // throws std::invalid_argument naming the broker URI (credentials masked) when Paho rejects it.
    // Every log line and error names the broker as broker(): user:password@ and secret query
    // parameters masked, and the secrets scrubbed from Paho's own messages.
    MqttSession(const config::MqttConfig& cfg, std::string client_id, std::optional<Will> will,
                SessionCallbacks callbacks);
    ~MqttSession();  // disconnects (publishing nothing more; the broker keeps the will unsent)
    MqttSession(const MqttSession&) = delete;
    MqttSession& operator=(const MqttSession&) = delete;

    // Connects, retrying with backoff until `timeout` or until stop() is called.
    // throws std::runtime_error naming the broker and the last reason when it gives up.
    void connect(std::chrono::milliseconds timeout);
    // Ends connect() retries and waits (used on shutdown).
    void stop();

    bool connected() const { return connected_.load(); }
    // Number of connection losses so far (changes when the broker went away).
    std::uint64_t epoch() const { return epoch_.load(); }
    // Waits until connected; false on timeout or stop().
    bool wait_connected(std::chrono::milliseconds timeout);

    mqtt::async_client& client() { return *client_; }
    // The broker URI for logs and errors: config::mask_url_credentials of the Paho URI.
    const std::string& broker() const { return shown_; }
    const std::string& client_id() const { return client_id_; }

private:
    std::string scrub(std::string text) const;  // each of secrets_ replaced by "***"

    std::string broker_;                 // the Paho URI, secrets and all: only for Paho
    std::string shown_;                  // broker_ masked
    std::vector<std::string> secrets_;   // config::url_secrets(broker_)
    std::string client_id_;
    mqtt::connect_options options_;
    SessionCallbacks callbacks_;
    std::atomic<bool> connected_{false};
    std::atomic<bool> stopping_{false};
    std::atomic<std::uint64_t> epoch_{0};
    std::mutex mutex_;
    std::condition_variable cv_;
    std::unique_ptr<mqtt::async_client> client_;  // last: destroyed first
};

}  // namespace faceadapt::publish::detail
