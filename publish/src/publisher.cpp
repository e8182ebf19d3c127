#include "faceadapt/publish/publisher.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "faceadapt/common/text.hpp"
#include "mqtt_session.hpp"
#include "util.hpp"

namespace faceadapt::publish {

namespace {
using Clock = std::chrono::steady_clock;

struct OutMessage {
    std::string topic;
    std::string_view payload;
};

// Latest retained manifest seen on the broker: enough to clear its chunks later.
struct SeenManifest {
    std::int64_t version = 0;
    std::size_t chunks = 0;
};
}  // namespace

struct Publisher::Impl {
    PublisherOptions options;
    Topics topics;

    mutable std::mutex mutex;  // guards the fields below
    mutable std::condition_variable cv;
    std::map<std::string, DoorState> doors;
    std::optional<SeenManifest> seen_manifest;
    std::function<void(const DoorState&)> door_handler;
    std::shared_ptr<const Package> current;  // last package published in full
    std::uint64_t published_epoch = 0;       // session epoch when `current` was last fully sent
    bool reconnected = false;
    bool stopping = false;
    std::atomic<bool> shutting_down{false};  // ends waits inside publish() on destruction

    std::mutex publish_mutex;  // serialises publish()
    std::unique_ptr<detail::MqttSession> session;
    std::thread republisher;

    // Paho calls on_message from one thread: these are only touched there.
    detail::LogThrottle bad_manifest_log, bad_state_log;

    explicit Impl(PublisherOptions opts) : options(std::move(opts)), topics(options.site) {}

    // Anyone who may publish on the site can send junk: its warnings are throttled, with counts.
    static void warn_throttled(detail::LogThrottle& throttle, const char* what, const std::string& topic, const char* error) {
        std::uint64_t held = 0;
        if (throttle.allow(held))
            spdlog::warn("publisher: {} {}: {}{}", what, topic, common::printable(error),
                         held ? " (and " + std::to_string(held) + " more not logged)" : std::string());
    }

    void on_message(const mqtt::const_message_ptr& msg) {
        const auto& topic = msg->get_topic();
        if (topic == topics.manifest()) {
            std::optional<SeenManifest> seen;
            if (!msg->get_payload().empty()) {
                try {
                    auto sm = SignedManifest::parse_envelope(msg->get_payload_str());
                    auto m = Manifest::parse(sm.manifest_json);
                    seen = SeenManifest{m.model_version, m.chunk_count()};
                } catch (const std::exception& e) {
                    warn_throttled(bad_manifest_log, "ignoring the manifest on", topic, e.what());
                    return;  // junk does not make it forget the version whose chunks it must clear
                }
            }
            std::lock_guard lock(mutex);
            seen_manifest = seen;
            cv.notify_all();
            return;
        }
        if (auto door = topics.parse_door_state(topic)) {
            std::function<void(const DoorState&)> handler;
            std::optional<DoorState> state;
            {
                std::lock_guard lock(mutex);
                if (msg->get_payload().empty()) {
                    doors.erase(*door);
                } else if (msg->get_payload().size() > options.max_door_state_bytes) {
                    warn_throttled(bad_state_log, "ignoring an oversized door state on", topic, "over max_door_state_bytes");
                } else if (!doors.contains(*door) && doors.size() >= options.max_doors) {
                    warn_throttled(bad_state_log, "ignoring the state of a new door on", topic, "max_doors doors are known already");
                } else {
                    try {
                        state = DoorState::parse(msg->get_payload_str());
                        state->door = *door;  // the topic is authoritative (the ACL binds it to the door)
                        doors[*door] = *state;
                    } catch (const std::exception& e) {
                        warn_throttled(bad_state_log, "bad door state on", topic, e.what());
                    }
                }
                handler = door_handler;
            }
            cv.notify_all();
            if (handler && state) handler(*state);
        }
    }

    void on_connected() {
        auto& cli = session->client();
        try {
            cli.publish(topics.daemon_status(), "online", 1, true);
            cli.subscribe(topics.manifest(), 1);
            cli.subscribe(topics.door_state_filter(), 1);
        } catch (const mqtt::exception& e) {
            spdlog::warn("publisher: after connecting to {}: {}", session->broker(), e.what());
        }
        {
            std::lock_guard lock(mutex);
            if (session->epoch() > 0) reconnected = true;
        }
        cv.notify_all();
    }

    // Sends `messages` retained at options.qos with a window of in-flight PUBLISHes.
    // ensures: true when every one was acknowledged within one connection epoch; false when
    //          the connection was lost (or a token failed) meanwhile: the caller starts over.
    // throws std::runtime_error when `deadline` passes.
    bool send_all(const std::vector<OutMessage>& messages, Clock::time_point deadline, std::uint64_t& bytes_sent,
                  const std::function<void(std::size_t)>& acked) {
        auto& cli = session->client();
        auto epoch0 = session->epoch();
        std::deque<std::pair<mqtt::delivery_token_ptr, std::size_t>> in_flight;
        std::size_t done = 0;
        auto wait_front = [&]() -> bool {
            auto& [tok, index] = in_flight.front();
            while (true) {
                if (Clock::now() > deadline)
                    throw std::runtime_error("publish to " + session->broker() + " timed out waiting for the PUBACK of " + messages[index].topic);
                if (shutting_down) throw std::runtime_error("publisher shutting down during a publish");
                try {
                    if (tok->wait_for(std::chrono::milliseconds(100))) break;
                } catch (const mqtt::exception& e) {
                    spdlog::warn("publisher: {} not acknowledged: {}", messages[index].topic, e.what());
                    return false;
                }
                if (session->epoch() != epoch0) return false;
            }
            in_flight.pop_front();
            if (acked) acked(++done);
            return true;
        };
        for (std::size_t i = 0; i < messages.size(); ++i) {
            if (session->epoch() != epoch0) return false;
            while (in_flight.size() >= options.window)
                if (!wait_front()) return false;
            try {
                auto msg = mqtt::message::create(messages[i].topic, messages[i].payload.data(), messages[i].payload.size(),
                                                 options.qos, true);
                in_flight.emplace_back(cli.publish(msg), i);
                bytes_sent += messages[i].payload.size();
            } catch (const mqtt::exception& e) {
                spdlog::warn("publisher: cannot send {}: {}", messages[i].topic, e.what());
                return false;
            }
        }
        while (!in_flight.empty())
            if (!wait_front()) return false;
        return session->epoch() == epoch0;
    }

    // Runs send_all until it completes in one connection epoch.
    void send_until_done(const std::vector<OutMessage>& messages, Clock::time_point deadline, PublishReport& report,
                         const std::function<void(std::size_t)>& acked) {
        while (true) {
            auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (remaining.count() <= 0 || !session->wait_connected(remaining))
                throw std::runtime_error("publish to " + session->broker() + " for site " + options.site +
                                         ": not connected before the publish timeout");
            if (send_all(messages, deadline, report.bytes_sent, acked)) return;
            ++report.restarts;
            spdlog::warn("publisher: connection to {} lost during a publish; starting over once reconnected", session->broker());
        }
    }

    PublishReport publish(const Package& package, const Progress& progress) {
        std::lock_guard publish_lock(publish_mutex);
        auto start = Clock::now();
        auto deadline = start + options.publish_timeout;
        const auto& m = package.manifest;
        if (package.payload.size() != m.payload_size)
            throw std::invalid_argument("package payload is " + std::to_string(package.payload.size()) +
                                        " bytes but its manifest says " + std::to_string(m.payload_size));
        PublishReport report;
        report.version = m.model_version;
        report.chunks = m.chunk_count();
        report.payload_bytes = m.payload_size;
        std::optional<SeenManifest> previous;
        {
            std::lock_guard lock(mutex);
            previous = seen_manifest;
        }
        std::uint64_t epoch_at_start = 0;
        while (true) {
            epoch_at_start = session->epoch();
            std::vector<OutMessage> chunks;
            chunks.reserve(m.chunk_count());
            for (std::size_t i = 0; i < m.chunk_count(); ++i) chunks.push_back({topics.chunk(m.model_version, i), package.chunk(i)});
            send_until_done(chunks, deadline, report, [&](std::size_t n) { if (progress) progress(n, m.chunk_count()); });
            auto envelope = package.signed_manifest.envelope();
            send_until_done({{topics.manifest(), envelope}}, deadline, report, {});
            // Chunks sent before a reconnection may be gone from a restarted broker: resend all.
            if (session->epoch() == epoch_at_start) break;
            ++report.restarts;
        }
        if (previous && previous->version != m.model_version) {
            std::vector<OutMessage> clears;
            for (std::size_t i = 0; i < previous->chunks; ++i) clears.push_back({topics.chunk(previous->version, i), {}});
            send_until_done(clears, deadline, report, {});
            report.cleared_version = previous->version;
        }
        {
            std::lock_guard lock(mutex);
            current = std::make_shared<const Package>(package);
            published_epoch = epoch_at_start;
            seen_manifest = SeenManifest{m.model_version, m.chunk_count()};
        }
        report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
        spdlog::info("published model version {} to site {} ({} chunks, {} bytes, {} restarts, {:.2f} s)", m.model_version,
                     options.site, report.chunks, report.payload_bytes, report.restarts, report.seconds);
        return report;
    }

    // Re-sends the last package after a reconnection (a restarted broker may have lost it).
    void republish_loop() {
        while (true) {
            std::shared_ptr<const Package> pkg;
            {
                std::unique_lock lock(mutex);
                cv.wait(lock, [&] { return stopping || reconnected; });
                if (stopping) return;
                reconnected = false;
                if (!current || published_epoch == session->epoch()) continue;
                pkg = current;
            }
            try {
                spdlog::info("publisher: reconnected to {}; re-asserting model version {}", session->broker(),
                             pkg->manifest.model_version);
                publish(*pkg, {});
            } catch (const std::exception& e) {
                spdlog::warn("publisher: re-asserting model version {} failed: {}", pkg->manifest.model_version, e.what());
            }
        }
    }
};

Publisher::Publisher(PublisherOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
    auto& o = impl_->options;
    if (o.qos < 1 || o.qos > 2) throw std::invalid_argument("publisher qos must be 1 or 2");
    if (o.window == 0) o.window = 1;
    auto client_id = o.mqtt.client_id.empty() ? "faceadapt-" + o.site : o.mqtt.client_id;
    detail::SessionCallbacks callbacks{[this] { impl_->on_connected(); }, {},
                                       [this](mqtt::const_message_ptr msg) { impl_->on_message(msg); }};
    impl_->session = std::make_unique<detail::MqttSession>(o.mqtt, client_id,
                                                           detail::Will{impl_->topics.daemon_status(), "offline"}, callbacks);
    impl_->session->connect(o.connect_timeout);
    // Learn the version the broker holds now (its chunks are cleared after the next publish).
    try {
        impl_->session->client().subscribe(impl_->topics.manifest(), 1)->wait_for(std::chrono::seconds(5));
    } catch (const mqtt::exception& e) {
        throw std::runtime_error("cannot subscribe to " + impl_->topics.manifest() + " on " + impl_->session->broker() + ": " + e.what());
    }
    {
        std::unique_lock lock(impl_->mutex);
        impl_->cv.wait_for(lock, std::chrono::milliseconds(300), [&] { return impl_->seen_manifest.has_value(); });
    }
    if (o.republish_on_reconnect) impl_->republisher = std::thread([this] { impl_->republish_loop(); });
}

Publisher::~Publisher() {
    {
        std::lock_guard lock(impl_->mutex);
        impl_->stopping = true;
        impl_->shutting_down = true;
    }
    impl_->cv.notify_all();
    impl_->session->stop();
    if (impl_->republisher.joinable()) impl_->republisher.join();
    try {
        if (impl_->session->connected())
            impl_->session->client().publish(impl_->topics.daemon_status(), "offline", 1, true)->wait_for(std::chrono::seconds(2));
    } catch (const std::exception& e) {
        spdlog::debug("publisher: announcing offline: {}", e.what());
    }
    impl_->session.reset();
}

PublishReport Publisher::publish(const Package& package, const Progress& progress) { return impl_->publish(package, progress); }

AckResult Publisher::wait_for_acks(std::int64_t version, const std::vector<std::string>& doors,
                                   std::chrono::milliseconds timeout) const {
    std::unique_lock lock(impl_->mutex);
    std::vector<std::string> wanted = doors;
    if (wanted.empty())
        for (const auto& [door, _] : impl_->doors) wanted.push_back(door);
    auto answered = [&](const std::string& door) {
        auto it = impl_->doors.find(door);
        if (it == impl_->doors.end()) return 0;
        if (it->second.installed_version == version) return 1;
        if (it->second.status == "rejected" && it->second.offered_version == version) return 2;
        if (it->second.refused_version == version) return 2;  // refused as stale, status unchanged
        return 0;
    };
    impl_->cv.wait_for(lock, timeout, [&] {
        for (const auto& d : wanted)
            if (answered(d) == 0) return false;
        return true;
    });
    AckResult result;
    for (const auto& d : wanted) {
        switch (answered(d)) {
        case 1: result.acked.push_back(d); break;
        case 2: result.rejected.push_back(d); break;
        default: result.missing.push_back(d);
        }
        if (auto it = impl_->doors.find(d); it != impl_->doors.end()) result.states[d] = it->second;
    }
    return result;
}

std::map<std::string, DoorState> Publisher::door_states() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->doors;
}

void Publisher::set_door_state_handler(std::function<void(const DoorState&)> handler) {
    std::lock_guard lock(impl_->mutex);
    impl_->door_handler = std::move(handler);
}

std::optional<std::int64_t> Publisher::broker_version() const {
    std::lock_guard lock(impl_->mutex);
    if (!impl_->seen_manifest) return std::nullopt;
    return impl_->seen_manifest->version;
}

bool Publisher::connected() const { return impl_->session->connected(); }
const Topics& Publisher::topics() const { return impl_->topics; }

}  // namespace faceadapt::publish
