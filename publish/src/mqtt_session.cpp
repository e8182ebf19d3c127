#include "mqtt_session.hpp"

#include <spdlog/spdlog.h>

#include <thread>

namespace faceadapt::publish::detail {

std::string paho_uri(const std::string& broker) {
    if (broker.starts_with("mqtt://")) return "tcp://" + broker.substr(7);
    if (broker.starts_with("mqtts://")) return "ssl://" + broker.substr(8);
    return broker;
}

MqttSession::MqttSession(const config::MqttConfig& cfg, std::string client_id, std::optional<Will> will,
                         SessionCallbacks callbacks)
    : broker_(paho_uri(cfg.broker)),
      shown_(config::mask_url_credentials(broker_)),
      secrets_(config::url_secrets(broker_)),
      client_id_(std::move(client_id)),
      callbacks_(std::move(callbacks)) {
    try {
        client_ = std::make_unique<mqtt::async_client>(broker_, client_id_);
    } catch (const mqtt::exception& e) {
        throw std::invalid_argument("MQTT broker URI \"" + config::mask_url_credentials(cfg.broker) + "\": " + scrub(e.what()));
    }
    auto builder = mqtt::connect_options_builder()
                       .mqtt_version(MQTTVERSION_3_1_1)  // no silent fallback to 3.1: refusals are reported at once
                       .clean_session(true)
                       .keep_alive_interval(std::chrono::seconds(cfg.keepalive_s))
                       .connect_timeout(std::chrono::seconds(5))
                       .automatic_reconnect(std::chrono::seconds(1), std::chrono::seconds(16))
                       .max_inflight(64);
    if (!cfg.username.empty()) builder.user_name(cfg.username);
    if (!cfg.password.empty()) builder.password(cfg.password.str());
    bool tls = broker_.starts_with("ssl://") || broker_.starts_with("wss://");
    if (tls || !cfg.ca_file.empty()) {
        auto ssl = mqtt::ssl_options_builder();
        ssl.enable_server_cert_auth(true).verify(true);
        if (!cfg.ca_file.empty()) ssl.trust_store(cfg.ca_file.string());
        if (!cfg.cert_file.empty()) ssl.key_store(cfg.cert_file.string());
        if (!cfg.key_file.empty()) ssl.private_key(cfg.key_file.string());
        // No ssl error_handler: Paho C++ (1.2, Debian) hands Paho C a pointer to the ssl_options
        // inside connect()'s by-value connect_options, and Paho C calls the handler later from
        // its own thread: a read of a dead stack frame (ASan, make test-asan, Tls test). TLS
        // failures still surface as the connect error (scrubbed below).
        builder.ssl(ssl.finalize());
    }
    if (will) builder.will(mqtt::message(will->topic, will->payload, 1, true));
    options_ = builder.finalize();

    client_->set_connected_handler([this](const std::string&) {
        {
            std::lock_guard lock(mutex_);
            connected_ = true;
        }
        cv_.notify_all();
        if (callbacks_.on_connected) callbacks_.on_connected();
    });
    client_->set_connection_lost_handler([this](const std::string& cause) {
        {
            std::lock_guard lock(mutex_);
            connected_ = false;
            ++epoch_;
        }
        cv_.notify_all();
        spdlog::warn("MQTT {} ({}): connection lost{}{}; reconnecting", shown_, client_id_,
                     cause.empty() ? "" : ": ", scrub(cause));
        if (callbacks_.on_lost) callbacks_.on_lost(cause);
    });
    client_->set_message_callback([this](mqtt::const_message_ptr msg) {
        if (callbacks_.on_message) callbacks_.on_message(std::move(msg));
    });
}

std::string MqttSession::scrub(std::string text) const {
    for (const auto& secret : secrets_)
        for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 3)) text.replace(at, secret.size(), "***");
    return text;
}

MqttSession::~MqttSession() {
    stop();
    try {
        if (client_->is_connected()) client_->disconnect(std::chrono::milliseconds(500))->wait_for(std::chrono::seconds(2));
    } catch (const std::exception& e) {
        spdlog::debug("MQTT {} ({}): disconnect: {}", shown_, client_id_, scrub(e.what()));
    }
    try {
        client_->disable_callbacks();
    } catch (const std::exception& e) {
        spdlog::debug("MQTT {} ({}): disable callbacks: {}", shown_, client_id_, scrub(e.what()));
    }
}

void MqttSession::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
}

void MqttSession::connect(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto backoff = std::chrono::milliseconds(100);
    std::string last_error = "timed out";
    while (!stopping_) {
        try {
            auto tok = client_->connect(options_);
            auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (tok->wait_for(std::max(remaining, std::chrono::milliseconds(1000)))) {
                spdlog::info("MQTT {} ({}): connected", shown_, client_id_);
                return;
            }
            last_error = "no answer to CONNECT";
        } catch (const mqtt::exception& e) {
            last_error = scrub(e.what());
            // CONNACK refusals that retrying cannot fix (MQTT 3.1.1 return codes).
            if (e.get_return_code() == 4 || e.get_return_code() == 5)
                throw std::runtime_error("MQTT broker " + shown_ + " refused " + client_id_ +
                                         ": not authorized (check the user name, password and ACL)");
            if (e.get_return_code() == 2)
                throw std::runtime_error("MQTT broker " + shown_ + " rejected the client id " + client_id_);
        }
        if (std::chrono::steady_clock::now() + backoff > deadline) break;
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, backoff, [this] { return stopping_.load(); });
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    }
    throw std::runtime_error("cannot connect to MQTT broker " + shown_ + " as " + client_id_ + ": " + last_error);
}

bool MqttSession::wait_connected(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [this] { return connected_.load() || stopping_.load(); }) && connected_;
}

}  // namespace faceadapt::publish::detail
