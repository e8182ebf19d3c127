#include "faceadapt/publish/door_agent.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "model_store.hpp"
#include "mqtt_session.hpp"
#include "util.hpp"

namespace faceadapt::publish {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// A package being received, mirrored in staging/<version>/.
struct Staging {
    std::string envelope;
    Manifest manifest;
    fs::path dir;
    std::vector<bool> have;
    std::size_t received = 0;
};

struct Event {
    enum Kind { connected, message } kind;
    mqtt::const_message_ptr msg;
};

}  // namespace

struct DoorAgent::Impl {
    DoorAgentOptions options;
    Topics topics;
    std::string log_name;  // "door <door> of site <site>"

    // Worker-owned (only the worker thread touches these once started).
    std::optional<Staging> staging;
    std::set<std::string> rejected_envelopes;  // sha256 of envelopes refused already
    Clock::time_point last_progress = Clock::now();
    Clock::time_point last_report = Clock::now();
    std::uint64_t dropped_since_progress = 0;
    std::set<std::string> refetch_topics;  // exact chunk topics subscribed to fetch missing chunks

    // Shared with Paho's callbacks and the API.
    mutable std::mutex mutex;
    mutable std::condition_variable cv;
    std::deque<Event> queue;
    std::size_t queued_bytes = 0;
    std::uint64_t dropped = 0;  // chunks dropped because the worker was behind
    bool stopping = false;
    DoorState current_state;

    std::thread worker;
    std::unique_ptr<detail::MqttSession> session;  // destroyed before the fields it calls into

    explicit Impl(DoorAgentOptions opts)
        : options(std::move(opts)), topics(options.site),
          log_name("door " + options.door + " of site " + options.site) {
        if (!valid_topic_segment(options.door))
            throw std::invalid_argument("door id \"" + options.door + "\" is not a valid MQTT topic segment ([A-Za-z0-9_-]+)");
        fs::create_directories(options.dir / "staging");
        current_state.door = options.door;
        refresh_installed_locked();
        resume_staging();
    }

    void refresh_installed_locked() {
        auto installed = read_installed(options.dir);
        current_state.installed_version = installed ? installed->version : 0;
        current_state.previous_version = installed ? installed->previous_version : 0;
        if (installed && current_state.status == "idle") current_state.status = "installed";
    }

    // ---- state reporting ------------------------------------------------------------------
    void set_state(const std::function<void(DoorState&)>& change) {
        DoorState copy;
        {
            std::lock_guard lock(mutex);
            change(current_state);
            current_state.time = detail::utc_now_iso8601();
            copy = current_state;
        }
        cv.notify_all();
        report(copy);
    }
    void report(const DoorState& s) {
        if (!session || !session->connected()) return;
        try {
            session->client().publish(topics.door_state(options.door), s.to_json(), 1, true);
        } catch (const mqtt::exception& e) {
            spdlog::debug("{}: cannot report state: {}", log_name, e.what());
        }
    }
    void reject(std::int64_t version, const std::string& reason) {
        spdlog::warn("{}: rejected model version {}: {}", log_name, version, reason);
        set_state([&](DoorState& s) {
            s.status = "rejected";
            s.offered_version = version;
            s.error = reason;
        });
    }

    // ---- staging --------------------------------------------------------------------------
    void drop_staging(const char* why) {
        if (!staging) return;
        spdlog::info("{}: dropping the partial package of version {} ({})", log_name, staging->manifest.model_version, why);
        if (session && session->connected()) {
            try {
                session->client().unsubscribe(topics.chunk_filter(staging->manifest.model_version));
                if (!refetch_topics.empty())
                    session->client().unsubscribe(mqtt::string_collection::create(
                        std::vector<std::string>(refetch_topics.begin(), refetch_topics.end())));
            } catch (const mqtt::exception&) {
            }
        }
        refetch_topics.clear();
        std::error_code ec;
        fs::remove_all(staging->dir, ec);
        staging.reset();
    }

    void resume_staging() {
        auto root = options.dir / "staging";
        for (const auto& entry : fs::directory_iterator(root)) {
            std::string problem;
            try {
                auto envelope = detail::read_file(entry.path() / "manifest.json");
                auto m = SignedManifest::parse_envelope(envelope).verify(options.public_key);
                problem = acceptance_problem(options.dir, m.model_version, options.allow_rollback);
                if (problem.empty() && !staging) {
                    Staging st{envelope, m, entry.path(), std::vector<bool>(m.chunk_count()), 0};
                    for (std::size_t i = 0; i < m.chunk_count(); ++i) {
                        auto file = entry.path() / ("chunk-" + std::to_string(i));
                        if (!fs::exists(file)) continue;
                        if (detail::sha256_hex(detail::read_file(file)) == m.chunk_sha256[i]) {
                            st.have[i] = true;
                            ++st.received;
                        } else {
                            fs::remove(file);
                        }
                    }
                    spdlog::info("{}: resuming model version {}: {}/{} chunks already on disk", log_name, m.model_version,
                                 st.received, m.chunk_count());
                    current_state.status = "receiving";
                    current_state.offered_version = m.model_version;
                    current_state.chunks_received = st.received;
                    current_state.chunks_total = m.chunk_count();
                    staging = std::move(st);
                    continue;
                }
                if (problem.empty()) problem = "another partial package is being resumed";
            } catch (const std::exception& e) {
                problem = e.what();
            }
            spdlog::warn("{}: discarding the partial package in {}: {}", log_name, entry.path().string(), problem);
            std::error_code ec;
            fs::remove_all(entry.path(), ec);
        }
    }

    // ---- message handling (worker thread) -------------------------------------------------
    void on_connected() {
        auto& cli = session->client();
        try {
            cli.publish(topics.door_online(options.door), "online", 1, true);
            cli.subscribe(topics.manifest(), 1);
            if (staging) {
                refetch_topics.clear();  // a new session has no subscriptions
                if (staging->received == 0)
                    cli.subscribe(topics.chunk_filter(staging->manifest.model_version), 1);
                else
                    refetch_missing();
            }
        } catch (const mqtt::exception& e) {
            spdlog::warn("{}: after connecting: {}", log_name, e.what());
        }
        last_progress = Clock::now();
        DoorState copy;
        {
            std::lock_guard lock(mutex);
            current_state.time = detail::utc_now_iso8601();
            copy = current_state;
        }
        report(copy);
    }

    void on_manifest(const std::string& envelope) {
        if (envelope.empty()) return;  // cleared
        if (staging && staging->envelope == envelope) return;  // re-asserted; chunks keep coming
        auto envelope_hash = detail::sha256_hex(envelope);
        if (rejected_envelopes.contains(envelope_hash)) return;
        std::int64_t claimed_version = 0;
        Manifest m;
        try {
            auto sm = SignedManifest::parse_envelope(envelope);
            try {
                claimed_version = Manifest::parse(sm.manifest_json).model_version;
            } catch (const PackageError&) {
            }
            m = sm.verify(options.public_key);
            if (m.payload_size > options.max_payload_bytes)
                throw PackageError("payload of " + std::to_string(m.payload_size) + " bytes exceeds the limit of " +
                                   std::to_string(options.max_payload_bytes));
            if (!options.model_formats.empty() &&
                std::find(options.model_formats.begin(), options.model_formats.end(), m.architecture.model_format) ==
                    options.model_formats.end())
                throw PackageError("model format \"" + m.architecture.model_format.substr(0, 64) +
                                   "\" is not one this door runs");
        } catch (const PackageError& e) {
            rejected_envelopes.insert(envelope_hash);
            reject(claimed_version, e.what());
            return;
        }
        auto installed = read_installed(options.dir);
        if (installed && installed->version == m.model_version) {
            drop_staging("that version is installed");
            set_state([&](DoorState& s) {
                s.status = "installed";
                s.offered_version = m.model_version;
                s.error.clear();
            });
            return;
        }
        if (auto problem = acceptance_problem(options.dir, m.model_version, options.allow_rollback); !problem.empty()) {
            rejected_envelopes.insert(envelope_hash);
            reject(m.model_version, problem);
            return;
        }
        drop_staging("a different package was announced");
        auto dir = options.dir / "staging" / std::to_string(m.model_version);
        fs::remove_all(dir);
        fs::create_directories(dir);
        detail::write_file(dir / "manifest.json", envelope);
        staging = Staging{envelope, m, dir, std::vector<bool>(m.chunk_count()), 0};
        spdlog::info("{}: receiving model version {} ({} bytes in {} chunks)", log_name, m.model_version, m.payload_size,
                     m.chunk_count());
        set_state([&](DoorState& s) {
            s.status = "receiving";
            s.offered_version = m.model_version;
            s.chunks_received = 0;
            s.chunks_total = m.chunk_count();
            s.error.clear();
        });
        last_progress = Clock::now();
        try {
            session->client().subscribe(topics.chunk_filter(m.model_version), 1);
        } catch (const mqtt::exception& e) {
            spdlog::warn("{}: cannot subscribe to {}: {} (retrying after reconnecting)", log_name,
                         topics.chunk_filter(m.model_version), e.what());
        }
        if (m.chunk_count() == 0) finish();
    }

    void on_chunk(std::int64_t version, std::size_t index, const std::string& bytes) {
        if (!staging || version != staging->manifest.model_version || bytes.empty()) return;
        auto& st = *staging;
        if (index >= st.have.size()) {
            spdlog::warn("{}: chunk {} of version {} is beyond the manifest's {} chunks; ignored", log_name, index, version,
                         st.have.size());
            return;
        }
        if (st.have[index]) return;  // duplicate
        if (detail::sha256_hex(bytes) != st.manifest.chunk_sha256[index]) {
            auto reason = "chunk " + std::to_string(index) + " of version " + std::to_string(version) +
                          ": sha256 does not match the signed manifest (tampered or corrupted); ignored, waiting for a good copy";
            spdlog::warn("{}: {}", log_name, reason);
            set_state([&](DoorState& s) {
                s.status = "error";
                s.error = reason;
            });
            return;
        }
        detail::write_file(st.dir / ("chunk-" + std::to_string(index)), bytes);
        st.have[index] = true;
        ++st.received;
        last_progress = Clock::now();
        if (st.received == st.have.size()) {
            finish();
            return;
        }
        {
            std::lock_guard lock(mutex);
            current_state.chunks_received = st.received;
        }
        cv.notify_all();
        if (Clock::now() - last_report > std::chrono::milliseconds(500)) {  // report at most 2/s
            last_report = Clock::now();
            set_state([&](DoorState&) {});
        }
    }

    void finish() {
        auto& st = *staging;
        auto version = st.manifest.model_version;
        try {
            auto installed = install_verified(options.dir, st.envelope, st.manifest, [&](std::size_t i) {
                return detail::read_file(st.dir / ("chunk-" + std::to_string(i)));
            });
            drop_staging("installed");
            spdlog::info("{}: installed model version {} (previous {})", log_name, installed.version, installed.previous_version);
            set_state([&](DoorState& s) {
                s.status = "installed";
                s.installed_version = installed.version;
                s.previous_version = installed.previous_version;
                s.offered_version = version;
                s.chunks_received = s.chunks_total;
                s.error.clear();
            });
        } catch (const std::exception& e) {
            rejected_envelopes.insert(detail::sha256_hex(st.envelope));
            drop_staging("it failed verification");
            reject(version, e.what());
        }
    }

    void handle(const Event& ev) {
        if (ev.kind == Event::connected) {
            on_connected();
            return;
        }
        const auto& topic = ev.msg->get_topic();
        if (topic == topics.manifest()) {
            on_manifest(ev.msg->get_payload_str());
        } else if (auto chunk = topics.parse_chunk(topic)) {
            on_chunk(chunk->first, chunk->second, ev.msg->get_payload_str());
        }
    }

    // ---- threads --------------------------------------------------------------------------
    // Called on Paho's threads: never blocks (Paho may hold its own lock while calling us).
    // Over the byte bound, chunks are dropped and fetched again later (check_stall).
    void push(Event ev) {
        std::size_t size = ev.msg ? ev.msg->get_payload().size() : 0;
        {
            std::lock_guard lock(mutex);
            if (stopping) return;
            bool droppable = ev.msg && ev.msg->get_topic() != topics.manifest();
            if (droppable && queued_bytes > 0 && queued_bytes + size > options.queue_bytes) {
                ++dropped;
                return;
            }
            queued_bytes += size;
            queue.push_back(std::move(ev));
        }
        cv.notify_all();
    }

    void run() {
        while (true) {
            try {
                session->connect(std::chrono::hours(24 * 365));
                break;
            } catch (const std::exception& e) {
                {
                    std::lock_guard lock(mutex);
                    if (stopping) return;
                }
                spdlog::warn("{}: {}", log_name, e.what());
            }
        }
        while (true) {
            Event ev;
            {
                std::unique_lock lock(mutex);
                cv.wait_for(lock, std::chrono::milliseconds(250), [&] { return stopping || !queue.empty(); });
                if (stopping) return;
                if (queue.empty()) {
                    lock.unlock();
                    check_stall();
                    continue;
                }
                ev = std::move(queue.front());
                queue.pop_front();
                queued_bytes -= ev.msg ? ev.msg->get_payload().size() : 0;
            }
            cv.notify_all();
            try {
                handle(ev);
            } catch (const std::exception& e) {
                spdlog::error("{}: {}", log_name, e.what());
                set_state([&](DoorState& s) {
                    s.status = "error";
                    s.error = e.what();
                });
            }
        }
    }

    // No new chunk for a while (or chunks were dropped): subscribing again makes the broker
    // send the retained chunks again; duplicates are ignored.
    void check_stall() {
        if (!staging || !session->connected()) return;
        std::uint64_t drops = 0;
        {
            std::lock_guard lock(mutex);
            drops = dropped;
            dropped = 0;
        }
        if (drops > 0) spdlog::info("{}: {} chunks dropped while busy; they will be fetched again", log_name, drops);
        dropped_since_progress += drops;
        auto wait = dropped_since_progress > 0 ? std::min(options.stall_resubscribe, std::chrono::milliseconds(1000))
                                               : options.stall_resubscribe;
        if (Clock::now() - last_progress < wait) return;
        last_progress = Clock::now();
        dropped_since_progress = 0;
        spdlog::info("{}: no chunk of version {} for {} ms ({}/{} received); asking the broker again", log_name,
                     staging->manifest.model_version, wait.count(), staging->received, staging->have.size());
        refetch_missing();
    }

    // Subscribes to the exact topic of each missing chunk: the broker sends just those
    // retained chunks (subscribing to the wildcard again would re-send all of them).
    void refetch_missing() {
        std::vector<std::string> missing;
        for (std::size_t i = 0; i < staging->have.size(); ++i)
            if (!staging->have[i]) missing.push_back(topics.chunk(staging->manifest.model_version, i));
        try {
            for (std::size_t from = 0; from < missing.size(); from += 64) {
                std::vector<std::string> batch(missing.begin() + static_cast<std::ptrdiff_t>(from),
                                               missing.begin() + static_cast<std::ptrdiff_t>(std::min(missing.size(), from + 64)));
                session->client().subscribe(mqtt::string_collection::create(batch), std::vector<int>(batch.size(), 1));
                refetch_topics.insert(batch.begin(), batch.end());
            }
        } catch (const mqtt::exception& e) {
            spdlog::debug("{}: refetch: {}", log_name, e.what());
        }
    }
};

DoorAgent::DoorAgent(DoorAgentOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

DoorAgent::~DoorAgent() { stop(); }

void DoorAgent::start() {
    if (impl_->worker.joinable()) return;
    {
        std::lock_guard lock(impl_->mutex);
        impl_->stopping = false;
    }
    auto& o = impl_->options;
    auto client_id = o.mqtt.client_id.empty() ? "faceadapt-door-" + o.site + "-" + o.door : o.mqtt.client_id;
    detail::SessionCallbacks callbacks{
        [this] { impl_->push({Event::connected, nullptr}); }, {},
        [this](mqtt::const_message_ptr msg) { impl_->push({Event::message, std::move(msg)}); }};
    impl_->session = std::make_unique<detail::MqttSession>(
        o.mqtt, client_id, detail::Will{impl_->topics.door_online(o.door), "offline"}, callbacks);
    impl_->worker = std::thread([this] { impl_->run(); });
}

void DoorAgent::stop() {
    {
        std::lock_guard lock(impl_->mutex);
        impl_->stopping = true;
        impl_->queue.clear();
        impl_->queued_bytes = 0;
    }
    impl_->cv.notify_all();
    if (impl_->session) impl_->session->stop();
    if (impl_->worker.joinable()) impl_->worker.join();
    impl_->session.reset();  // disconnects
}

DoorState DoorAgent::state() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->current_state;
}

bool DoorAgent::wait_for(const std::function<bool(const DoorState&)>& predicate, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(impl_->mutex);
    return impl_->cv.wait_for(lock, timeout, [&] { return predicate(impl_->current_state); });
}

}  // namespace faceadapt::publish
