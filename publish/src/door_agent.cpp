#include "faceadapt/publish/door_agent.hpp"

#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <tuple>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "faceadapt/common/text.hpp"
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
    // A validly signed manifest of the same version as `staging` but other bytes (see on_manifest).
    std::optional<std::pair<std::string, Manifest>> alternative;
    // sha256 of envelopes refused for good (bad contents) or unverifiable: bounded, oldest out.
    std::set<std::string> memo;
    std::deque<std::string> memo_order;
    Clock::time_point last_progress = Clock::now();
    Clock::time_point last_report = Clock::now();
    Clock::time_point last_publish{};
    bool state_dirty = false;              // a throttled state change not yet published
    std::uint64_t dropped_since_progress = 0;
    std::set<std::string> refetch_topics;  // exact chunk topics subscribed to fetch missing chunks
    std::optional<Clock::time_point> install_retry_at;  // a local fault: try finish() again then
    std::chrono::milliseconds install_backoff{0};
    Clock::time_point last_manifest_refetch{};
    // installed.json as last looked at (mtime ns, inode, size): `faceadapt-door rollback` (or an
    // operator) may change it while the agent runs; the state then follows within a second.
    std::tuple<std::int64_t, std::uint64_t, std::int64_t> installed_seen{};
    Clock::time_point installed_checked{};
    detail::LogThrottle ignored_log, fault_log, refetch_log;

    // Shared with Paho's callbacks and the API.
    mutable std::mutex mutex;
    mutable std::condition_variable cv;
    std::deque<Event> queue;
    std::size_t queued_chunk_bytes = 0;
    std::size_t queued_manifest_bytes = 0;
    std::size_t queued_manifests = 0;
    std::uint64_t dropped = 0;             // chunks dropped because the worker was behind
    std::uint64_t dropped_ignored = 0;     // manifests dropped unread (oversized, displaced): counted as ignored
    bool manifest_displaced = false;       // a pending manifest was displaced: ask for it again
    bool stopping = false;
    DoorState current_state;

    std::thread worker;
    std::unique_ptr<detail::MqttSession> session;  // destroyed before the fields it calls into

    static constexpr std::size_t kMemoEntries = 1024;
    static constexpr std::size_t kEventOverhead = 256;  // bytes charged per queued message besides payload + topic
    static constexpr auto kStateEvery = std::chrono::milliseconds(250);

    explicit Impl(DoorAgentOptions opts)
        : options(std::move(opts)), topics(options.site),
          log_name("door " + options.door + " of site " + options.site) {
        if (!valid_topic_segment(options.door))
            throw std::invalid_argument("door id \"" + common::printable(options.door, 60) + "\" is not a valid MQTT topic segment ([A-Za-z0-9_-]+)");
        fs::create_directories(options.dir / "staging");
        current_state.door = options.door;
        refresh_installed(true);
        resume_staging();
    }

    // Reads the install folder into current_state; a damaged one is reported, never fatal.
    InstallFolderState refresh_installed(bool deep = false) {
        auto folder = inspect_install_folder(options.dir, deep, &options.public_key);
        std::lock_guard lock(mutex);
        current_state.installed_version = folder.installed ? folder.installed->version : 0;
        current_state.previous_version = folder.installed ? folder.installed->previous_version : 0;
        if (folder.damage != current_state.damage && !folder.damage.empty())
            spdlog::error("{}: the install folder {} is damaged: {}; waiting for a package to repair it (version >= {})",
                          log_name, options.dir.string(), folder.damage, folder.version_floor);
        current_state.damage = folder.damage;
        if (folder.installed && current_state.status == "idle") current_state.status = "installed";
        return folder;
    }

    void remember(const std::string& envelope_hash) {
        if (!memo.insert(envelope_hash).second) return;
        memo_order.push_back(envelope_hash);
        if (memo_order.size() > kMemoEntries) {
            memo.erase(memo_order.front());
            memo_order.pop_front();
        }
    }

    // ---- state reporting ------------------------------------------------------------------
    // `urgent`: a change of what the door is doing (receiving, installed, rejected), published
    // at once. Anything else (counts, faults) goes out at most every kStateEvery.
    void set_state(const std::function<void(DoorState&)>& change, bool urgent = false) {
        {
            std::lock_guard lock(mutex);
            change(current_state);
            current_state.time = detail::utc_timestamp();
        }
        cv.notify_all();
        state_dirty = true;
        if (urgent || Clock::now() - last_publish >= kStateEvery) flush_state();
    }
    void flush_state() {
        if (!state_dirty) return;
        DoorState copy;
        {
            std::lock_guard lock(mutex);
            copy = current_state;
        }
        state_dirty = false;
        last_publish = Clock::now();
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
    // A signed package for this site, newer than installed, whose contents are refused.
    void reject(std::int64_t version, const std::string& reason) {
        auto text = common::printable(reason, 1000);
        spdlog::warn("{}: rejected model version {}: {}", log_name, version, text);
        set_state([&](DoorState& s) {
            s.status = "rejected";
            s.offered_version = version;
            s.error = text;
        }, true);
    }
    // A message that failed verification or is stale: counted, never acted on.
    void ignore(const std::string& reason, std::uint64_t count = 1) {
        auto text = common::printable(reason);
        std::uint64_t held = 0;
        if (ignored_log.allow(held))
            spdlog::warn("{}: ignored: {}{}", log_name, text,
                         held ? " (and " + std::to_string(held) + " more ignored messages not logged)" : std::string());
        set_state([&](DoorState& s) {
            s.ignored += count;
            s.last_ignored = text;
        });
    }
    // A validly signed manifest of this site naming a stale version: reported as refused_version.
    void refuse_stale(std::int64_t version, const std::string& reason) {
        auto text = common::printable(reason);
        std::uint64_t held = 0;
        if (ignored_log.allow(held))
            spdlog::warn("{}: ignored model version {}: {}{}", log_name, version, text,
                         held ? " (and " + std::to_string(held) + " more ignored messages not logged)" : std::string());
        bool changed = false;
        set_state([&](DoorState& s) {
            changed = s.refused_version != version;
            s.ignored += 1;
            s.last_ignored = text;
            s.refused_version = version;
            s.refused_reason = text;
        });
        if (changed) flush_state();  // the publisher waits for this answer
    }
    // A local fault (disk full, I/O error): reported with its errno text, retried, not memorised.
    void fault(const std::string& reason) {
        auto text = common::printable(reason, 1000);
        std::uint64_t held = 0;
        if (fault_log.allow(held))
            spdlog::error("{}: {}{}", log_name, text,
                          held ? " (and " + std::to_string(held) + " more faults not logged)" : std::string());
        set_state([&](DoorState& s) {
            s.status = "error";
            s.error = text;
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
        alternative.reset();
        install_retry_at.reset();
        install_backoff = std::chrono::milliseconds(0);
        std::error_code ec;
        fs::remove_all(staging->dir, ec);
        staging.reset();
    }

    void resume_staging() {
        auto root = options.dir / "staging";
        auto folder = inspect_install_folder(options.dir);
        for (const auto& entry : fs::directory_iterator(root)) {
            std::string problem;
            try {
                auto envelope = detail::read_file(entry.path() / "manifest.json");
                auto m = SignedManifest::parse_envelope(envelope).verify(options.public_key);
                m.check_installable(options.site);
                problem = acceptance_problem(folder, m.model_version, options.allow_rollback);
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
                    if (st.received == st.have.size()) install_retry_at = Clock::now();  // only the install is left
                    staging = std::move(st);
                    continue;
                }
                if (problem.empty()) problem = "another partial package is being resumed";
            } catch (const std::exception& e) {
                problem = e.what();
            }
            spdlog::warn("{}: discarding the partial package in {}: {}", log_name, entry.path().string(), common::printable(problem));
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
                else if (staging->received < staging->have.size())
                    refetch_missing();
            }
        } catch (const mqtt::exception& e) {
            spdlog::warn("{}: after connecting: {}", log_name, e.what());
        }
        last_progress = Clock::now();
        {
            std::lock_guard lock(mutex);
            current_state.time = detail::utc_timestamp();
        }
        state_dirty = true;
        flush_state();
    }

    void on_manifest(const std::string& envelope) {
        if (envelope.empty()) return;  // cleared
        if (staging && staging->envelope == envelope) {  // re-asserted; chunks keep coming
            if (install_retry_at) install_retry_at = Clock::now();  // a re-publish: retry a failed install now
            return;
        }
        auto envelope_hash = detail::sha256_hex(envelope);
        if (memo.contains(envelope_hash)) {
            std::lock_guard lock(mutex);
            ++current_state.ignored;  // seen and refused before: count it, say nothing more
            state_dirty = true;
            return;
        }
        Manifest m;
        try {
            m = SignedManifest::parse_envelope(envelope).verify(options.public_key);
        } catch (const PackageError& e) {
            remember(envelope_hash);
            ignore(std::string("manifest: ") + e.what());
            return;
        }
        if (m.site != options.site) {
            remember(envelope_hash);
            ignore(m.site.empty() ? "manifest of version " + std::to_string(m.model_version) +
                                        " names no site (format_version " + std::to_string(m.format_version) + ")"
                                  : "manifest of version " + std::to_string(m.model_version) + " is signed for site \"" +
                                        m.site + "\", not this one");
            return;
        }
        // Stale: not newer than what is being received, or refused by the install folder.
        if (staging && m.model_version == staging->manifest.model_version) {
            // Another signing of the version being received (e.g. a rebuilt package): the door
            // goes on with the one it has, and switches only when a chunk that fails the staged
            // manifest matches this one (the broker holds its chunks). Not a refusal of the
            // version, so no refused_version.
            try {
                m.check_installable(options.site);
                alternative = std::pair{envelope, m};
            } catch (const PackageError&) {
            }
            ignore("another manifest of version " + std::to_string(m.model_version) +
                   ", which is being received; going on with the first one");
            return;
        }
        if (staging && m.model_version < staging->manifest.model_version) {
            refuse_stale(m.model_version, "version " + std::to_string(m.model_version) +
                                              " is not newer than version " + std::to_string(staging->manifest.model_version) +
                                              " being received");
            return;
        }
        bool damaged = false;
        {
            std::lock_guard lock(mutex);
            damaged = !current_state.damage.empty();
        }
        auto folder = refresh_installed(damaged);  // a damaged folder is checked in depth until repaired
        if (folder.installed && folder.installed->version == m.model_version && !staging)
            return;  // the retained manifest of what is installed (every (re)connection sees it): nothing to do
        if (auto problem = acceptance_problem(folder, m.model_version, options.allow_rollback); !problem.empty()) {
            refuse_stale(m.model_version, problem);
            return;
        }
        try {
            m.check_installable(options.site);
            if (m.payload_size > options.max_payload_bytes)
                throw PackageError("payload of " + std::to_string(m.payload_size) + " bytes exceeds the limit of " +
                                   std::to_string(options.max_payload_bytes));
            if (!options.model_formats.empty() &&
                std::find(options.model_formats.begin(), options.model_formats.end(), m.architecture.model_format) ==
                    options.model_formats.end())
                throw PackageError("model format \"" + m.architecture.model_format.substr(0, 64) +
                                   "\" is not one this door runs");
        } catch (const PackageError& e) {
            remember(envelope_hash);
            reject(m.model_version, e.what());
            return;
        }
        drop_staging("a newer package was announced");
        start_staging(envelope, m);
    }

    // Stages a verified, acceptable, installable manifest and asks for its chunks.
    void start_staging(const std::string& envelope, const Manifest& m) {
        auto dir = options.dir / "staging" / std::to_string(m.model_version);
        try {
            fs::remove_all(dir);
            fs::create_directories(dir);
            detail::write_file(dir / "manifest.json", envelope);
        } catch (const std::exception& e) {
            std::error_code ec;
            fs::remove_all(dir, ec);
            fault("cannot stage model version " + std::to_string(m.model_version) + ": " + e.what() +
                  " (asking for the manifest again)");
            std::lock_guard lock(mutex);
            manifest_displaced = true;  // housekeeping re-subscribes: the retained manifest comes again
            return;
        }
        staging = Staging{envelope, m, dir, std::vector<bool>(m.chunk_count()), 0};
        spdlog::info("{}: receiving model version {} ({} bytes in {} chunks)", log_name, m.model_version, m.payload_size,
                     m.chunk_count());
        set_state([&](DoorState& s) {
            s.status = "receiving";
            s.offered_version = m.model_version;
            s.chunks_received = 0;
            s.chunks_total = m.chunk_count();
            s.error.clear();
        }, true);
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
            ignore("chunk " + std::to_string(index) + " of version " + std::to_string(version) + " is beyond the manifest's " +
                   std::to_string(st.have.size()) + " chunks");
            return;
        }
        if (st.have[index]) return;  // duplicate
        auto expected = std::min<std::uint64_t>(st.manifest.chunk_size, st.manifest.payload_size - index * st.manifest.chunk_size);
        if (bytes.size() != expected || detail::sha256_hex(bytes) != st.manifest.chunk_sha256[index]) {
            if (alternative && alternative->second.model_version == version && index < alternative->second.chunk_count() &&
                detail::sha256_hex(bytes) == alternative->second.chunk_sha256[index]) {
                auto [envelope, m] = std::move(*alternative);
                alternative.reset();
                drop_staging("the broker holds the chunks of another signing of this version");
                start_staging(envelope, m);
                if (staging) on_chunk(version, index, bytes);
                return;
            }
            ignore("chunk " + std::to_string(index) + " of version " + std::to_string(version) +
                   ": sha256 does not match the signed manifest (tampered or corrupted); waiting for a good copy");
            return;
        }
        try {
            detail::write_file(st.dir / ("chunk-" + std::to_string(index)), bytes);
        } catch (const std::exception& e) {
            fault("cannot stage chunk " + std::to_string(index) + " of version " + std::to_string(version) + ": " + e.what() +
                  " (it will be fetched again)");
            return;
        }
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
            if (current_state.status == "error") {  // the fault went away
                current_state.status = "receiving";
                current_state.error.clear();
            }
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
        install_retry_at.reset();
        try {
            auto installed = install_verified(options.dir, st.envelope, st.manifest, options.site, [&](std::size_t i) {
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
                s.damage.clear();
            }, true);
        } catch (const PackageError& e) {  // the signed package itself is bad: refused for good
            remember(detail::sha256_hex(st.envelope));
            drop_staging("it failed verification");
            reject(version, e.what());
        } catch (const std::exception& e) {  // a local fault: keep the chunks, try again later
            install_backoff = std::min(std::max(options.install_retry, install_backoff * 2), std::chrono::milliseconds(60'000));
            install_retry_at = Clock::now() + install_backoff;
            {
                std::lock_guard lock(mutex);
                current_state.chunks_received = st.received;
            }
            fault("cannot install model version " + std::to_string(version) + ": " + e.what() + " (retrying in " +
                  std::to_string(install_backoff.count()) + " ms; the received chunks are kept)");
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
    static std::size_t cost(const Event& ev) {
        return ev.msg ? ev.msg->get_payload().size() + ev.msg->get_topic().size() + kEventOverhead : kEventOverhead;
    }

    // Called on Paho's threads: never blocks (Paho may hold its own lock while calling us).
    // Every message is bounded (docs/mqtt.md, "Memory bound"): chunks by options.queue_bytes
    // (dropped beyond it, fetched again later by check_stall), manifests by count and size.
    void push(Event ev) {
        auto size = cost(ev);
        {
            std::lock_guard lock(mutex);
            if (stopping) return;
            if (!ev.msg) {
                if (queue.size() < 64) queue.push_back(std::move(ev));  // (re)connections: one is enough
                cv.notify_all();
                return;
            }
            if (ev.msg->get_topic() == topics.manifest()) {
                if (ev.msg->get_payload().size() > options.max_manifest_bytes) {
                    ++dropped_ignored;
                    return;
                }
                if (queued_manifests >= kMaxPendingManifests) {  // displace the oldest pending manifest
                    for (auto it = queue.begin(); it != queue.end(); ++it) {
                        if (it->msg && it->msg->get_topic() == topics.manifest()) {
                            queued_manifest_bytes -= cost(*it);
                            --queued_manifests;
                            queue.erase(it);
                            break;
                        }
                    }
                    manifest_displaced = true;
                    ++dropped_ignored;
                }
                ++queued_manifests;
                queued_manifest_bytes += size;
            } else {
                if (queued_chunk_bytes > 0 && queued_chunk_bytes + size > options.queue_bytes) {
                    ++dropped;
                    return;
                }
                queued_chunk_bytes += size;
            }
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
                cv.wait_for(lock, kStateEvery, [&] { return stopping || !queue.empty(); });
                if (stopping) return;
                if (queue.empty()) {
                    lock.unlock();
                    housekeeping();
                    continue;
                }
                ev = std::move(queue.front());
                queue.pop_front();
                if (ev.msg && ev.msg->get_topic() == topics.manifest()) {
                    queued_manifest_bytes -= cost(ev);
                    --queued_manifests;
                } else if (ev.msg) {
                    queued_chunk_bytes -= cost(ev);
                }
            }
            cv.notify_all();
            try {
                handle(ev);
            } catch (const std::exception& e) {
                fault(e.what());
            }
            if (Clock::now() - last_publish >= kStateEvery) housekeeping();
        }
    }

    // Between messages: counts from push(), a displaced manifest, a due install retry, a stalled
    // transfer, the throttled state.
    void housekeeping() {
        std::uint64_t oversized = 0;
        bool refetch_manifest = false;
        {
            std::lock_guard lock(mutex);
            std::swap(oversized, dropped_ignored);
            if (manifest_displaced && queued_manifests == 0 && Clock::now() - last_manifest_refetch > std::chrono::seconds(1)) {
                manifest_displaced = false;
                refetch_manifest = true;
            }
        }
        if (oversized > 0)
            ignore(std::to_string(oversized) + " manifest message(s) dropped unread (over " +
                   std::to_string(options.max_manifest_bytes) + " bytes, or displaced by newer ones while busy)", oversized);
        if (refetch_manifest && session->connected()) {
            last_manifest_refetch = Clock::now();
            try {
                session->client().subscribe(topics.manifest(), 1);  // the broker sends the retained one again
            } catch (const mqtt::exception& e) {
                spdlog::debug("{}: manifest refetch: {}", log_name, e.what());
            }
        }
        if (staging && install_retry_at && Clock::now() >= *install_retry_at) finish();
        check_stall();
        check_installed_changed();
        flush_state();
    }

    // Once a second: installed.json changed by someone else (an offline rollback) is reported.
    void check_installed_changed() {
        if (Clock::now() - installed_checked < std::chrono::seconds(1)) return;
        installed_checked = Clock::now();
        struct stat st {};
        const bool there = ::stat((options.dir / "installed.json").c_str(), &st) == 0;
        const std::tuple<std::int64_t, std::uint64_t, std::int64_t> seen{
            there ? std::int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec : 0,
            there ? std::uint64_t(st.st_ino) : 0, there ? std::int64_t(st.st_size) : -1};
        if (seen == installed_seen) return;
        const bool first = installed_seen == decltype(installed_seen){};
        installed_seen = seen;
        if (first) return;
        std::int64_t before = 0;
        {
            std::lock_guard lock(mutex);
            before = current_state.installed_version;
        }
        const auto folder = refresh_installed();
        const std::int64_t now = folder.installed ? folder.installed->version : 0;
        if (now == before) return;
        spdlog::info("{}: {} now names version {} (was {}): changed outside the agent", log_name,
                     (options.dir / "installed.json").string(), now, before);
        set_state([&](DoorState& s) { s.status = now > 0 ? "installed" : "idle"; }, true);
    }

    // No new chunk for a while (or chunks were dropped): subscribing again makes the broker
    // send the retained chunks again; duplicates are ignored.
    void check_stall() {
        if (!staging || !session->connected() || staging->received == staging->have.size()) return;
        std::uint64_t drops = 0;
        {
            std::lock_guard lock(mutex);
            drops = dropped;
            dropped = 0;
        }
        dropped_since_progress += drops;
        auto wait = dropped_since_progress > 0 ? std::min(options.stall_resubscribe, std::chrono::milliseconds(1000))
                                               : options.stall_resubscribe;
        if (Clock::now() - last_progress < wait) return;
        last_progress = Clock::now();
        std::uint64_t held = 0;
        if (refetch_log.allow(held))
            spdlog::info("{}: no new chunk of version {} for {} ms ({}/{} received, {} dropped while busy); asking the "
                         "broker again{}",
                         log_name, staging->manifest.model_version, wait.count(), staging->received, staging->have.size(),
                         dropped_since_progress,
                         held ? " (" + std::to_string(held) + " such lines not logged)" : std::string());
        dropped_since_progress = 0;
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
        impl_->queued_chunk_bytes = impl_->queued_manifest_bytes = impl_->queued_manifests = 0;
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
