#include "faceadapt/daemon/daemon.hpp"

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/common/log_format.hpp"
#include "faceadapt/common/time.hpp"
#include "faceadapt/daemon/console_backend.hpp"
#include "faceadapt/daemon/gallery_update.hpp"
#include "faceadapt/daemon/gate.hpp"
#include "faceadapt/daemon/metrics.hpp"
#include "faceadapt/daemon/metrics_server.hpp"
#include "faceadapt/daemon/model_registry.hpp"
#include "faceadapt/daemon/release.hpp"
#include "faceadapt/daemon/retention.hpp"
#include "faceadapt/daemon/scheduler.hpp"
#include "faceadapt/daemon/sd_notify.hpp"
#include "faceadapt/daemon/training_child.hpp"
#include "faceadapt/daemon/training_cycle.hpp"
#include "faceadapt/ingest/face_landmarks.hpp"
#include "faceadapt/ingest/face_pipeline.hpp"
#include "faceadapt/ingest/frame_snapshot.hpp"
#include "faceadapt/publish/publisher.hpp"
#include "faceadapt/quality/crop_store.hpp"
#include "faceadapt/quality/gallery.hpp"
#include "faceadapt/quality/quality.hpp"
#include "faceadapt/ui/console.hpp"
#include "faceadapt/ui/users.hpp"
#include "faceadapt/ui/audit.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;
using json = nlohmann::json;

namespace faceadapt::daemon {
namespace {

// Everything that makes a camera's pipeline: a change in any of these restarts it.
std::string camera_fingerprint(const config::CameraConfig& c, const config::DetectConfig& d) {
    return fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", c.url, c.username, c.password.str(),
                       c.transport, c.latency_ms, c.detect_fps, c.stall_timeout_s, c.backoff_initial_s,
                       c.backoff_max_s, c.min_face_px, d.min_face_px, d.motion_gating, d.track_iou,
                       d.track_max_age_s, d.landmarks_model.string(), d.queue_depth);
}

json read_json_file(const fs::path& p) {
    std::ifstream in(p);
    if (!in) return json();
    try {
        return json::parse(in);
    } catch (const std::exception& e) {
        spdlog::warn("daemon: ignoring unreadable {}: {}", p.string(), e.what());
        return json();
    }
}

// The trainer as given (--trainer, else [learner] trainer), else the one installed with us.
fs::path find_trainer(const fs::path& configured) {
    if (!configured.empty()) {
        // A bare name is looked up on PATH here: the child is started with execv, which does not.
        if (configured.has_parent_path()) return configured;
        if (const char* path = std::getenv("PATH")) {
            std::stringstream ss(path);
            std::string dir;
            while (std::getline(ss, dir, ':'))
                if (!dir.empty() && fs::exists(fs::path(dir) / configured)) return fs::path(dir) / configured;
        }
        return configured;
    }
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        for (const fs::path& p : {self.parent_path() / "faceadapt", self.parent_path().parent_path() / "tools" / "faceadapt"})
            if (fs::exists(p)) return p;
    }
    if (const char* path = std::getenv("PATH")) {
        std::stringstream ss(path);
        std::string dir;
        while (std::getline(ss, dir, ':'))
            if (fs::exists(fs::path(dir) / "faceadapt")) return fs::path(dir) / "faceadapt";
    }
    return "faceadapt";
}

// The trainer must be a regular file this process may execute: checked at start so that a
// misplaced one stops faceadaptd at once, with its path and the reason, not at the first cycle.
// throws std::runtime_error naming the path and the errno text.
void check_trainer(const fs::path& trainer) {
    if (!trainer.has_parent_path())
        throw std::runtime_error(fmt::format("trainer \"{}\": not found next to faceadaptd, in ../tools or on PATH; "
                                             "set [learner] trainer or --trainer", trainer.string()));
    struct stat st {};
    if (::stat(trainer.c_str(), &st) != 0 || ::access(trainer.c_str(), X_OK) != 0) {
        const int err = errno;
        throw std::runtime_error(fmt::format("trainer {}: cannot be executed: {} (errno {}); set [learner] trainer or "
                                             "--trainer", trainer.string(), std::strerror(err), err));
    }
    if (!S_ISREG(st.st_mode))
        throw std::runtime_error(fmt::format("trainer {}: cannot be executed: not a regular file", trainer.string()));
}

}  // namespace

struct Daemon::Impl {
    DaemonOptions options;
    config::Config config;                 // guarded by config_mutex
    mutable std::mutex config_mutex;
    MetricsRegistry metrics;
    SystemdNotifier notifier;
    std::unique_ptr<quality::CropStore> store;
    std::unique_ptr<ModelRegistry> registry;
    std::shared_ptr<const quality::QualityScorer> scorer;  // swapped on reload (atomic_load/store)
    std::unique_ptr<MetricsServer> server;
    // The operator console ([ui]): its backend and server; the doors' last states it shows
    // (under doors_mutex: set from the MQTT client's thread); a rollback it asked for (-1:
    // none), started by the main loop when the learner is idle.
    std::unique_ptr<SiteConsole> console_backend;
    std::unique_ptr<ui::ConsoleServer> console;
    std::mutex doors_mutex;
    std::map<std::string, json> door_states;
    std::atomic<int> pending_rollback{-1};

    struct Camera {
        config::CameraConfig config;
        std::string fingerprint;
        std::unique_ptr<ingest::FacePipeline> pipeline;
    };
    std::map<std::string, Camera> cameras;  // main thread only
    // Each camera's latest full picture (a small JPEG every 2 s), for the console's Overview;
    // offered by the cameras' workers (the processor wrapper in start_camera).
    ingest::FrameSnapshots frame_snapshots;
    std::vector<std::string> disabled_cameras;  // enabled = false in the site file; main thread only
    // The 68-point model (~100 MB) is loaded once and shared by every camera's face stage;
    // reloaded only when [detect].landmarks_model names another file. Main thread only.
    std::shared_ptr<const ingest::LandmarkModel> landmarks;
    std::filesystem::path landmarks_file;

    std::shared_ptr<const ingest::LandmarkModel> shared_landmarks(const std::filesystem::path& file) {
        if (!landmarks || landmarks_file != file) {
            landmarks = std::make_shared<const ingest::LandmarkModel>(file);
            landmarks_file = file;
        }
        return landmarks;
    }

    std::atomic<bool> stop{false};
    std::atomic<bool> reload{false};
    std::atomic<std::int64_t> loop_heartbeat{0};

    // Learner thread: one cycle (or startup recovery) at a time.
    std::thread learner;
    std::atomic<bool> learner_busy{false};
    std::unique_ptr<TrainingCycle> cycle;   // the cycle's steps; run on the learner thread
    std::atomic<int> progress_cycle{0}, progress_cycles{0}, progress_iter{0}, progress_iters{0};
    // The daemon's one MQTT session (retained status "online", last will "offline", door
    // states mirrored in /metrics), made on the learner thread at start and kept for the
    // daemon's life (Paho reconnects it); retried while the broker cannot be reached.
    std::unique_ptr<publish::Publisher> publisher;  // learner thread only
    std::atomic<bool> have_publisher{false};
    std::chrono::steady_clock::time_point publisher_retry_at{};  // main thread
    std::chrono::seconds publisher_backoff{5};                   // main thread

    // Gallery updates (gallery_update.hpp): main thread, but gallery_retry_at (learner thread
    // sets it after a failure; read by the main thread) under status_mutex.
    std::int64_t gallery_seen = -1;                 // the revision at the last look
    std::chrono::steady_clock::time_point gallery_retry_at{};
    int gallery_failures = 0;                       // learner thread
    // Learner thread: the children of a gallery update (an operator waits for them) run at the
    // daemon's own priority, not at [learner] nice: at nice 10 on a busy NVR the few seconds of
    // embedding took nearly a minute.
    bool operator_waits = false;
    std::string trainer_status = "idle";   // under status_mutex
    std::mutex status_mutex;

    SchedulerState sched;                   // main thread (snapshot copies to the learner)
    std::int64_t last_crop_id = 0;          // scheduler.json
    std::atomic<std::int64_t> crops_since_last{0};

    explicit Impl(DaemonOptions o) : options(std::move(o)) {
        config = config::load_config(options.config_file);
        options.trainer = find_trainer(options.trainer.empty() ? config.learner.trainer : options.trainer);
        check_trainer(options.trainer);
    }

    config::Config current_config() const {
        std::lock_guard lock(config_mutex);
        return config;
    }

    void describe_metrics() {
        using T = MetricType;
        const std::pair<const char*, std::pair<T, const char*>> families[] = {
            {"faceadapt_up", {T::gauge, "1 while faceadaptd runs"}},
            {"faceadapt_camera_up", {T::gauge, "1 when the camera is streaming"}},
            {"faceadapt_camera_state", {T::gauge, "1 for the camera's current state"}},
            {"faceadapt_camera_frames_total", {T::counter, "Frames sampled for detection"}},
            {"faceadapt_camera_decoded_frames_total", {T::counter, "Frames decoded"}},
            {"faceadapt_camera_faces_total", {T::counter, "Faces detected and aligned"}},
            {"faceadapt_camera_queue_drops_total", {T::counter, "Frames dropped from a full queue"}},
            {"faceadapt_camera_reconnects_total", {T::counter, "Times the camera streamed again after a fault"}},
            {"faceadapt_camera_faults_total", {T::counter, "Camera errors, stalls and failed starts"}},
            {"faceadapt_crops_stored_total", {T::counter, "Crops written to the store"}},
            {"faceadapt_crops_rejected_total", {T::counter, "Faces not stored, by reason"}},
            {"faceadapt_crops_evicted_total", {T::counter, "Crops evicted to respect the store limits"}},
            {"faceadapt_store_crops", {T::gauge, "Crops in the store"}},
            {"faceadapt_store_bytes", {T::gauge, "Bytes of crops in the store"}},
            {"faceadapt_training_progress", {T::gauge, "Progress of the running cycle (0..1)"}},
            {"faceadapt_publish_total", {T::counter, "Package publications by result"}},
            {"faceadapt_publish_last_seconds", {T::gauge, "Duration of the last publication"}},
            {"faceadapt_door_acks_total", {T::counter, "Door answers to publications"}},
            {"faceadapt_door_installed_version", {T::gauge, "Version each door reports installed"}},
            {"faceadapt_door_ignored_messages", {T::gauge, "Messages each door reports it ignored (unverified, stale, other site)"}},
            {"faceadapt_door_damaged", {T::gauge, "1 while a door reports a damaged install folder"}},
            {"faceadapt_config_reloads_total", {T::counter, "SIGHUP reloads by result"}},
            {"faceadapt_state_bytes", {T::gauge, "Bytes of the files under site.state_dir (crops, models, keys)"}},
            {"faceadapt_gallery_revision", {T::gauge, "Revision of the enrolled gallery (raised by enroll and gallery remove)"}},
            {"faceadapt_gallery_updates_total", {T::counter, "Gallery updates shipped to the doors, by result"}},
            {"faceadapt_mqtt_connected", {T::gauge, "1 while the daemon's MQTT session is connected"}},
        };
        for (const auto& [name, f] : families) metrics.describe(name, f.first, f.second);
        // Present from the start (at 0), so that alerts on them can fire before any publication.
        for (const char* r : {"acked", "rejected", "missing"}) metrics.add("faceadapt_door_acks_total", {{"result", r}}, 0);
        for (const char* r : {"ok", "failed"}) metrics.add("faceadapt_gallery_updates_total", {{"result", r}}, 0);
        metrics.set("faceadapt_mqtt_connected", {}, 0);
        // The cycle's own families (training, gate, model version): TrainingCycle describes them.
        metrics.set("faceadapt_up", {}, 1);
    }

    // ---- cameras ------------------------------------------------------------------------
    void on_observation(ingest::FaceObservation&& obs) {
        const auto s = std::atomic_load(&scorer);
        const quality::QualityScore score = s->score(obs);
        if (!score.accepted) {
            spdlog::debug("camera {}: face of track {} not kept: {} (score {:.3f})", obs.camera, obs.track_id,
                          score.reason, score.normalized);
            metrics.add("faceadapt_crops_rejected_total", {{"camera", obs.camera}, {"reason", "quality"}});
            return;
        }
        try {
            quality::CropInput in;
            in.camera = obs.camera;
            in.timestamp = obs.timestamp;
            in.track_id = obs.track_id;
            in.chip = obs.chip;
            in.score = score.normalized;
            in.quality_json = quality::to_json(score);
            const quality::InsertResult r = store->insert(in);
            if (r.evicted > 0) metrics.add("faceadapt_crops_evicted_total", {}, r.evicted);
            switch (r.outcome) {
            case quality::InsertOutcome::stored:
                metrics.add("faceadapt_crops_stored_total", {{"camera", obs.camera}});
                ++crops_since_last;
                break;
            case quality::InsertOutcome::rejected_track_full:
                metrics.add("faceadapt_crops_rejected_total", {{"camera", obs.camera}, {"reason", "track_full"}});
                break;
            case quality::InsertOutcome::rejected_too_old:
                metrics.add("faceadapt_crops_rejected_total", {{"camera", obs.camera}, {"reason", "too_old"}});
                break;
            }
        } catch (const std::exception& e) {
            metrics.add("faceadapt_crops_rejected_total", {{"camera", obs.camera}, {"reason", "store_error"}});
            spdlog::error("camera {}: crop not stored: {}", obs.camera, e.what());
        }
    }

    void start_camera(const config::CameraConfig& cam, const config::DetectConfig& detect, std::size_t n_enabled) {
        config::DetectConfig d = detect;
        const int total = detect.workers > 0 ? detect.workers : static_cast<int>(std::thread::hardware_concurrency());
        d.workers = std::max(1, total / static_cast<int>(std::max<std::size_t>(1, n_enabled)));
        try {
            // The tracker numbers tracks 1, 2, ... from this start: the store's run base keeps
            // them distinct from every earlier run's in crops.db (issue 18).
            const std::int64_t track_base = store->begin_track_run(cam.id);
            auto pipeline = std::make_unique<ingest::FacePipeline>(
                std::vector<config::CameraConfig>{cam}, d,
                [this, track_base](ingest::FaceObservation&& o) {
                    if (o.track_id >= 0) o.track_id += track_base;
                    on_observation(std::move(o));
                },
                [this, stage = ingest::face_stage_factory(d, shared_landmarks(d.landmarks_model))](
                    const config::CameraConfig& c) -> ingest::FrameProcessor {
                    // Every frame the worker takes passes the snapshot keeper first (a JPEG at
                    // most every 2 s); a failure there never costs the frame its faces.
                    return [this, inner = stage(c)](const ingest::Frame& f) {
                        try {
                            frame_snapshots.offer(f);
                        } catch (const std::exception& e) {
                            spdlog::debug("camera {}: no snapshot: {}", f.camera, e.what());
                        }
                        return inner(f);
                    };
                });
            pipeline->start();
            cameras[cam.id] = Camera{cam, camera_fingerprint(cam, detect), std::move(pipeline)};
            spdlog::info("camera {}: started ({}, {} worker(s))", cam.id, config::mask_url_credentials(cam.url),
                         d.workers);
        } catch (const std::exception& e) {
            spdlog::error("camera {}: cannot start: {}", cam.id, e.what());
        }
    }

    void stop_camera(const std::string& id) {
        auto it = cameras.find(id);
        if (it == cameras.end()) return;
        it->second.pipeline->stop();
        cameras.erase(it);
        frame_snapshots.forget(id);
        metrics.remove_matching("camera", id);
    }

    void apply_cameras(const config::Config& next) {
        std::map<std::string, const config::CameraConfig*> wanted;
        for (const auto& c : next.cameras)
            if (c.enabled) wanted[c.id] = &c;
        std::vector<std::string> removed;
        for (const auto& [id, cam] : cameras)
            if (!wanted.count(id) || camera_fingerprint(*wanted[id], next.detect) != cam.fingerprint) removed.push_back(id);
        for (const auto& id : removed) {
            spdlog::info("camera {}: {}", id, wanted.count(id) ? "changed, restarting" : "removed, stopping");
            stop_camera(id);
        }
        for (const auto& [id, c] : wanted)
            if (!cameras.count(id)) start_camera(*c, next.detect, wanted.size());
        for (const auto& id : disabled_cameras) metrics.remove_matching("camera", id);
        disabled_cameras.clear();
        for (const auto& c : next.cameras)
            if (!c.enabled) {
                disabled_cameras.push_back(c.id);
                spdlog::info("camera {}: disabled in {} (enabled = false); not started", c.id,
                             options.config_file.string());
            }
    }

    void update_camera_metrics() {
        for (const auto& id : disabled_cameras) {  // visible, never "up"
            metrics.set("faceadapt_camera_up", {{"camera", id}}, 0);
            metrics.set("faceadapt_camera_state", {{"camera", id}, {"state", "disabled"}}, 1);
        }
        for (const auto& [id, cam] : cameras) {
            for (const auto& st : cam.pipeline->stats()) {
                const Labels l{{"camera", st.camera}};
                metrics.set("faceadapt_camera_up", l, st.source.state == ingest::CameraState::streaming ? 1 : 0);
                for (auto s : {ingest::CameraState::connecting, ingest::CameraState::streaming,
                               ingest::CameraState::backing_off, ingest::CameraState::stopped})
                    metrics.set("faceadapt_camera_state", {{"camera", st.camera}, {"state", ingest::to_string(s)}},
                                st.source.state == s ? 1 : 0);
                metrics.set("faceadapt_camera_frames_total", l, double(st.source.frames));
                metrics.set("faceadapt_camera_decoded_frames_total", l, double(st.source.decoded));
                metrics.set("faceadapt_camera_faces_total", l, double(st.faces));
                metrics.set("faceadapt_camera_queue_drops_total", l, double(st.drops));
                metrics.set("faceadapt_camera_reconnects_total", l, double(st.source.reconnects));
                metrics.set("faceadapt_camera_faults_total", l, double(st.source.faults));
            }
        }
    }

    int cameras_up() const {
        int up = 0;
        for (const auto& [id, cam] : cameras)
            for (const auto& st : cam.pipeline->stats()) up += st.source.state == ingest::CameraState::streaming;
        return up;
    }

    // ---- reload -------------------------------------------------------------------------
    void do_reload() {
        notifier.reloading();
        config::Config next;
        try {
            next = config::load_config(options.config_file);
        } catch (const config::ConfigError& e) {
            spdlog::error("reload: {} is invalid; keeping the running configuration:", options.config_file.string());
            for (const auto& issue : e.issues()) spdlog::error("  {}", issue.to_string());
            metrics.add("faceadapt_config_reloads_total", {{"result", "rejected"}});
            notifier.notify("READY=1");
            return;
        } catch (const std::exception& e) {
            spdlog::error("reload: {}; keeping the running configuration", e.what());
            metrics.add("faceadapt_config_reloads_total", {{"result", "rejected"}});
            notifier.notify("READY=1");
            return;
        }
        const config::Config old = current_config();
        if (next.site.state_dir != old.site.state_dir) {
            spdlog::warn("reload: site.state_dir changed to {}; it takes effect after a restart",
                         next.site.state_dir.string());
            next.site.state_dir = old.site.state_dir;
        }
        if (next.metrics.listen != old.metrics.listen || next.metrics.enabled != old.metrics.enabled)
            spdlog::warn("reload: [metrics] changed; it takes effect after a restart");
        if (!(next.ui == old.ui)) spdlog::warn("reload: [ui] changed; it takes effect after a restart");
        if (next.learner.trainer != old.learner.trainer)
            spdlog::warn("reload: [learner] trainer changed; it takes effect after a restart (checked then)");
        try {
            std::atomic_store(&scorer, std::shared_ptr<const quality::QualityScorer>(
                                           std::make_shared<quality::QualityScorer>(next.quality)));
        } catch (const std::exception& e) {
            spdlog::error("reload: [quality]: {}; keeping the old scoring", e.what());
        }
        apply_cameras(next);
        {
            std::lock_guard lock(config_mutex);
            config = next;
        }
        spdlog::set_level(spdlog::level::from_str(next.site.log_level));
        metrics.add("faceadapt_config_reloads_total", {{"result", "ok"}});
        spdlog::info("reload: {} applied ({} camera(s) running)", options.config_file.string(), cameras.size());
        notifier.notify("READY=1");
    }

    // ---- scheduler state ----------------------------------------------------------------
    void load_scheduler_state() {
        const json j = read_json_file(registry->dir() / "scheduler.json");
        if (j.is_object()) {
            last_crop_id = j.value("last_crop_id", std::int64_t{0});
            if (j.contains("last_cycle_end_unix_ms"))  // the retry backoff may be seconds: keep ms
                sched.last_cycle_end = Clock::time_point(std::chrono::milliseconds(j["last_cycle_end_unix_ms"].get<std::int64_t>()));
            else if (j.contains("last_cycle_end_unix"))
                sched.last_cycle_end = Clock::time_point(std::chrono::seconds(j["last_cycle_end_unix"].get<std::int64_t>()));
            sched.failed_cycles = std::max(0, j.value("failed_cycles", 0));
        }
    }

    // failed: cycles failed in a row (0 after one that ended promoted or refused).
    void save_scheduler_state(Clock::time_point end, std::int64_t crop_id, int failed) {
        json j{{"last_crop_id", crop_id},
               {"failed_cycles", failed},
               {"last_cycle_end_unix", std::chrono::duration_cast<std::chrono::seconds>(end.time_since_epoch()).count()},
               {"last_cycle_end_unix_ms", std::chrono::duration_cast<std::chrono::milliseconds>(end.time_since_epoch()).count()},
               {"last_cycle_end", common::utc_timestamp()}};
        common::write_file_atomic(registry->dir() / "scheduler.json", j.dump(2) + "\n");
    }

    // scheduler.json as saved (read on the learner thread; the main thread only reads it too).
    int sched_failures_in_file() const {
        const json j = read_json_file(registry->dir() / "scheduler.json");
        return j.is_object() ? std::max(0, j.value("failed_cycles", 0)) : 0;
    }
    std::int64_t last_crop_id_in_file() const {
        const json j = read_json_file(registry->dir() / "scheduler.json");
        return j.is_object() ? j.value("last_crop_id", std::int64_t{0}) : 0;
    }

    void set_trainer_status(std::string s) {
        std::lock_guard lock(status_mutex);
        trainer_status = std::move(s);
    }

    std::string status_line() {
        std::string t;
        {
            std::lock_guard lock(status_mutex);
            t = trainer_status;
        }
        const auto st = store->stats();
        return fmt::format("cameras {}/{} up{}, {} crops stored, model v{}, training: {}", cameras_up(), cameras.size(),
                           disabled_cameras.empty() ? std::string()
                                                    : fmt::format(" ({} disabled: {})", disabled_cameras.size(),
                                                                  fmt::join(disabled_cameras, ",")),
                           st.crops, registry->current_version(), t);
    }

    // ---- the learner thread -------------------------------------------------------------
    // Main thread: `publisher` is set once, before have_publisher, and kept until shutdown.
    bool mqtt_connected() const { return have_publisher && publisher->connected(); }

    void mirror_door_state(const publish::DoorState& s) {
        metrics.set("faceadapt_door_installed_version", {{"door", s.door}}, double(s.installed_version));
        // Messages the door refused to act on (failed verification, stale, other site):
        // a rising count means someone is publishing junk or replays on the broker.
        metrics.set("faceadapt_door_ignored_messages", {{"door", s.door}}, double(s.ignored));
        metrics.set("faceadapt_door_damaged", {{"door", s.door}}, s.damage.empty() ? 0.0 : 1.0);
        std::lock_guard lock(doors_mutex);
        door_states[s.door] = json{{"door", s.door},
                                   {"status", s.status},
                                   {"installed_version", s.installed_version},
                                   {"time", s.time},
                                   {"error", !s.damage.empty() ? "damaged: " + s.damage
                                             : !s.error.empty() ? s.error
                                             : s.refused_version > 0 ? fmt::format("refused v{}: {}", s.refused_version, s.refused_reason)
                                                                     : std::string()}};
    }

    // The session, connected once and kept (Paho reconnects it); nullptr while the broker has
    // never been reached (the main loop retries with a backoff).
    publish::Publisher* ensure_publisher(const config::Config& cfg) {
        if (publisher) return publisher.get();
        try {
            publish::PublisherOptions po;
            po.site = cfg.site.id;
            po.mqtt = cfg.mqtt;
            po.qos = std::max(1, cfg.publish.qos);
            po.connect_timeout = 3s;
            po.publish_timeout = 120s;  // a broker gone for longer fails the release (retried at start)
            publisher = std::make_unique<publish::Publisher>(po);
            publisher->set_door_state_handler([this](const publish::DoorState& s) { mirror_door_state(s); });
            // The retained states that came in before the handler was set.
            for (const auto& [door, s] : publisher->door_states()) mirror_door_state(s);
            have_publisher = true;
            spdlog::info("mqtt: connected to {} as the daemon of site {} (status online, {} door(s) known)",
                         config::mask_url_credentials(cfg.mqtt.broker), cfg.site.id, publisher->door_states().size());
            return publisher.get();
        } catch (const std::exception& e) {
            spdlog::warn("mqtt: broker {} unavailable: {}", config::mask_url_credentials(cfg.mqtt.broker), e.what());
            return nullptr;
        }
    }

    // The release's ONNX export, made by a `faceadapt export` child (torch stays out of this process).
    OnnxExporter child_onnx_export() {
        return [this](const fs::path& model_file, int version, const std::string& weights, const fs::path& out) {
            std::vector<std::string> argv{options.trainer.string(), "export", "--format", "onnx", "--weights", weights,
                                          "--model-version", std::to_string(version), "--out", out.string()};
            if (!model_file.empty()) argv.insert(argv.end(), {"--model", model_file.string()});
            const TrainingResult result = run_child("export", argv);
            if (!result.ok() || !fs::exists(out))
                throw std::runtime_error(fmt::format("ONNX export of version {} ({}) to {}: {}", version,
                                                     model_file.empty() ? "source model" : model_file.string(),
                                                     out.string(), result.ok() ? "no file written" : result.describe()));
        };
    }

    void release(const config::Config& cfg, int version, const EmbeddedGallery& gallery) {
        publish::Publisher* pub = ensure_publisher(cfg);
        count_release(release_version(cfg, *registry, version, gallery, child_onnx_export(), pub));
    }

    void count_release(const ReleaseReport& r) {
        metrics.add("faceadapt_publish_total", {{"result", r.published ? "ok" : "failed"}});
        metrics.set("faceadapt_publish_last_seconds", {}, r.publish_seconds);
        metrics.add("faceadapt_door_acks_total", {{"result", "acked"}}, double(r.acked.size()));
        metrics.add("faceadapt_door_acks_total", {{"result", "rejected"}}, double(r.rejected.size()));
        metrics.add("faceadapt_door_acks_total", {{"result", "missing"}}, double(r.missing.size()));
    }

    // A child of the cycle (`faceadapt train|evaluate`) under the [learner] limits; its text
    // lines go to the journal, its progress to the status line and the progress gauge.
    TrainingResult run_child(const std::string& name, const std::vector<std::string>& argv) {
        const config::Config cfg = current_config();
        const bool cuda = cfg.learner.device.rfind("cuda", 0) == 0;
        ChildSupervision sv;
        sv.limits = TrainingLimits{operator_waits ? 0 : cfg.learner.nice, !operator_waits,
                                   cuda ? 0.0 : cfg.learner.memory_limit_mb};
        sv.stop_grace = options.stop_grace;
        sv.stop = &stop;
        sv.on_output = [name](const std::string& line) {
            // The child's "<level> <text>" at its level, not "info cycle train: info train: ...".
            const common::RelayedLine r = common::relayed_line(line);
            spdlog::log(r.level ? spdlog::level::from_str(std::string(*r.level)) : spdlog::level::info, "cycle {}: {}",
                        name, r.text);
        };
        sv.on_progress = [this](const ChildProgress& p) {
            if (p.cycle) { progress_cycle = *p.cycle; progress_cycles = *p.cycles; }
            if (p.iter) { progress_iter = *p.iter; progress_iters = *p.iters; }
            if (!p.cycle && !p.iter) return;
            set_trainer_status(fmt::format("cycle {}/{} iter {}/{}", progress_cycle.load(), progress_cycles.load(),
                                           progress_iter.load(), progress_iters.load()));
            if (progress_cycles > 0) {
                const double per = 1.0 / progress_cycles;
                const double in_cycle = progress_iters > 0 ? double(progress_iter) / progress_iters : 0.0;
                metrics.set("faceadapt_training_progress", {}, per * (progress_cycle - 1 + in_cycle));
            }
        };
        return run_child_supervised(argv, sv);
    }

    void make_cycle() {
        TrainingCycle::Hooks hooks;
        hooks.run_child = [this](const std::string& name, const std::vector<std::string>& argv) {
            return run_child(name, argv);
        };
        hooks.release = [this](int version, const EmbeddedGallery& gallery) {
            release(current_config(), version, gallery);
        };
        hooks.status = [this](const std::string& s) { set_trainer_status(s); };
        cycle = std::make_unique<TrainingCycle>(*store, *registry, metrics,
                                                TrainingCycle::Options{options.trainer, options.config_file},
                                                std::move(hooks));
    }

    // One cycle, new or resumed; an ended one moves the scheduler's mark.
    void run_cycle() {
        const TrainingCycle::Report r = cycle->run(current_config(), stop);
        if (r.outcome == TrainingCycle::Outcome::stopped) return;  // cycle.json stays: the next start resumes
        // A cycle that never reached the gate (a child that crashed or could not run, a failed
        // evaluation) failed: it is retried after its own backoff, on the same crops (the mark
        // stays). One the gate decided ended: the interval and the new-crop count apply again.
        const bool failed = !r.state.decision.has_value();
        const int failures = failed ? sched_failures_in_file() + 1 : 0;
        save_scheduler_state(Clock::now(), failed ? last_crop_id_in_file()
                                                  : (r.state.prepared ? r.state.prepared->max_crop_id : 0),
                             failures);
        if (failed)
            spdlog::warn("scheduler: cycle {} failed ({} in a row); retrying in {:.0f} s", r.state.name, failures,
                         retry_backoff(current_config().learner, failures).count());
        retain("");
        set_trainer_status("idle");
    }

    // A gallery update (gallery_update.hpp), on the learner thread.
    void gallery_update(bool republish) {
        const config::Config cfg = current_config();
        fs::path source_model;
        bool ok = false;
        operator_waits = true;
        try {
            const int current = registry->current_version();
            fs::path model;
            if (current == 0) {
                // The pretrained source is never stored: a child writes it (no torch here).
                source_model = registry->dir() / "source.model.tmp";
                const TrainingResult r = run_child("export", {options.trainer.string(), "export", "--format", "model",
                                                              "--out", source_model.string()});
                if (!r.ok() || !fs::exists(source_model))
                    throw std::runtime_error("writing the source model to " + source_model.string() + ": " +
                                             (r.ok() ? "no file written" : r.describe()));
                model = source_model;
            } else {
                model = registry->get(current).model_file;
            }
            set_trainer_status("gallery update: embedding");
            const EmbeddedGallery g = cycle->embed_gallery(cfg, model);
            set_trainer_status("gallery update: publishing");
            const ReleaseReport r =
                republish ? release_version(cfg, *registry, current, g, child_onnx_export(), ensure_publisher(cfg))
                          : release_gallery_update(cfg, *registry, g, child_onnx_export(), ensure_publisher(cfg),
                                                   source_model);
            count_release(r);
            metrics.set("faceadapt_model_version", {}, registry->current_version());
            ok = r.published;
            spdlog::info("gallery update: version {} ({} entries, gallery revision {}) {}", r.version,
                         r.gallery_entries, g.revision,
                         r.published ? fmt::format("published; doors acked [{}] rejected [{}] missing [{}]",
                                                   fmt::join(r.acked, ","), fmt::join(r.rejected, ","),
                                                   fmt::join(r.missing, ","))
                                     : "NOT published: " + r.error);
        } catch (const std::exception& e) {
            spdlog::error("gallery update: {}", e.what());
        }
        operator_waits = false;
        if (!source_model.empty()) {
            std::error_code ec;
            fs::remove(source_model, ec);
        }
        metrics.add("faceadapt_gallery_updates_total", {{"result", ok ? "ok" : "failed"}});
        gallery_failures = ok ? 0 : gallery_failures + 1;
        {
            // A failed update (no child, no key, no broker) is tried again after 30 s, doubling to 10 min.
            std::lock_guard lock(status_mutex);
            gallery_retry_at = std::chrono::steady_clock::now() +
                               (ok ? 0s : std::min<std::chrono::seconds>(600s, 30s * (1 << std::min(gallery_failures - 1, 5))));
        }
        retain("");
        set_trainer_status("idle");
    }

    // Main thread, while the learner is idle: true when it started a gallery update.
    bool check_gallery(const config::Config& cfg) {
        std::int64_t revision = 0;
        try {
            revision = quality::Gallery::read_revision(cfg.site.state_dir);
        } catch (const std::exception& e) {
            spdlog::debug("gallery update: cannot read the gallery's revision: {}", e.what());
            return false;
        }
        metrics.set("faceadapt_gallery_revision", {}, double(revision));
        // One look at a revision first: the photos of one `enroll` ship together.
        const bool settled = revision == gallery_seen;
        gallery_seen = revision;
        if (!settled || !cfg.publish.gallery_updates) return false;
        {
            std::lock_guard lock(status_mutex);
            if (std::chrono::steady_clock::now() < gallery_retry_at) return false;
        }
        const int current = registry->current_version();
        const GalleryUpdateDecision decision = decide_gallery_update(
            current, current > 0 && registry->contains(current) ? registry->get(current).meta : json::object(), revision);
        if (!decision.update) return false;
        spdlog::info("gallery update: {}; shipping it to the doors", decision.reason);
        start_learner([this, republish = decision.republish] { gallery_update(republish); });
        return true;
    }

    // State retention (docs/operations.md, "State retention"): on the learner thread, between cycles.
    void retain(const std::string& active_cycle) {
        try {
            const config::LearnerConfig l = current_config().learner;
            apply_retention(*registry, RetentionPolicy{l.keep_packages, l.keep_versions}, active_cycle);
        } catch (const std::exception& e) {
            spdlog::warn("retention: {}", e.what());
        }
    }

    // A rollback the console asked for: `faceadapt models rollback` (the CLI's path: it embeds
    // the gallery with that version's model, registers the copy, publishes it), on the learner thread.
    void console_rollback(int version) {
        operator_waits = true;
        set_trainer_status(fmt::format("rollback to version {}", version));
        const TrainingResult r = run_child("rollback", {options.trainer.string(), "models", "rollback", "--config",
                                                        options.config_file.string(), std::to_string(version)});
        operator_waits = false;
        if (r.ok()) spdlog::info("console: rollback to version {} done (now version {})", version, registry->current_version());
        else spdlog::error("console: rollback to version {} failed: {}", version, r.describe());
        metrics.set("faceadapt_model_version", {}, registry->current_version());
        retain("");
        set_trainer_status("idle");
    }

    // The console ([ui] enabled): started after the store and registry are open.
    void start_console(const config::Config& cfg) {
        SiteConsoleHooks hooks;
        hooks.config = [this] { return current_config(); };
        hooks.trainer_status = [this] {
            std::lock_guard lock(status_mutex);
            return trainer_status;
        };
        hooks.doors = [this] {
            std::lock_guard lock(doors_mutex);
            json list = json::array();
            for (const auto& [door, s] : door_states) list.push_back(s);
            return list;
        };
        hooks.rollback = [this](int version) {
            int none = -1;
            if (!pending_rollback.compare_exchange_strong(none, version))
                throw std::invalid_argument(fmt::format("a rollback to version {} is already waiting", none));
            return fmt::format("Rollback to version {} started{}: it becomes a new version and is published to the doors.",
                               version, learner_busy ? " (after the running task)" : "");
        };
        hooks.frame = [this](const std::string& camera) -> std::optional<CameraFrame> {
            auto snap = frame_snapshots.latest(camera);
            if (!snap) return std::nullopt;
            return CameraFrame{std::move(snap->jpeg), snap->timestamp};
        };
        console_backend = std::make_unique<SiteConsole>(cfg.site.state_dir, *store, metrics, std::move(hooks));
        ui::ConsoleServer::Options o;
        o.listen = cfg.ui.listen;
        o.cert_file = cfg.ui.cert_file;
        o.key_file = cfg.ui.key_file;
        o.allowed_hosts = cfg.ui.allowed_hosts;
        o.users_file = ui::users_file(cfg.site.state_dir);
        o.audit_file = ui::audit_file(cfg.site.state_dir);
        o.site = cfg.site.id;
        o.sessions.lifetime = std::chrono::seconds(static_cast<std::int64_t>(cfg.ui.session_hours * 3600));
        o.sessions.idle = std::chrono::seconds(static_cast<std::int64_t>(cfg.ui.idle_minutes * 60));
        console = std::make_unique<ui::ConsoleServer>(o, *console_backend);
        if (!fs::exists(o.users_file))
            spdlog::warn("console: no users yet ({}): create the first admin with `faceadapt user add admin --role "
                         "admin --config {}`",
                         o.users_file.string(), options.config_file.string());
    }

    // Startup: resume an interrupted cycle, republish a current version not fully published.
    void recover() {
        const config::Config cfg = current_config();
        ensure_publisher(cfg);
        const int current = registry->current_version();
        const auto saved = cycle->saved_state();
        // A cycle killed in its release step publishes its version itself when resumed.
        const bool cycle_releases = saved && saved->step == CycleStep::release && saved->version == current;
        if (current > 0 && !registry->get(current).published() && !cycle_releases) {
            spdlog::info("startup: version {} is current but was not fully published; publishing it again", current);
            try {
                release(cfg, current, cycle->embed_gallery(cfg, registry->get(current).model_file));
            } catch (const std::exception& e) {
                spdlog::error("startup: version {} not published again: {}", current, e.what());
            }
        }
        retain(saved ? saved->name : "");
        if (saved && !stop) {
            spdlog::info("startup: resuming interrupted cycle {}", saved->name);
            run_cycle();
        }
    }

    void start_learner(std::function<void()> work) {
        if (learner.joinable()) learner.join();
        learner_busy = true;
        learner = std::thread([this, work = std::move(work)] {
            try {
                work();
            } catch (const std::exception& e) {
                spdlog::error("learner: {}", e.what());
                set_trainer_status("idle");
            }
            learner_busy = false;
        });
    }
};

Daemon::Daemon(DaemonOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Daemon::~Daemon() {
    impl_->stop = true;
    if (impl_->learner.joinable()) impl_->learner.join();
}

void Daemon::block_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
}

void Daemon::request_stop() { impl_->stop = true; }
void Daemon::request_reload() { impl_->reload = true; }
const MetricsRegistry& Daemon::metrics() const { return impl_->metrics; }

int Daemon::run() {
    Impl& d = *impl_;
    config::Config cfg = d.current_config();
    spdlog::set_level(spdlog::level::from_str(cfg.site.log_level));
    if (!cfg.learner.weights_dir.empty()) ::setenv("FACEADAPT_WEIGHTS_DIR", cfg.learner.weights_dir.c_str(), 1);
    d.describe_metrics();
    try {
        fs::create_directories(cfg.site.state_dir);
        d.store = std::make_unique<quality::CropStore>(cfg.site.state_dir, cfg.store);
        const auto& rep = d.store->open_report();
        if (rep.temp_files_removed || rep.orphan_files_removed || rep.rows_without_file || rep.files_quarantined ||
            rep.index_quarantined)
            spdlog::warn("store: repaired at open: {} temp files, {} orphan files, {} rows without file, {} "
                         "quarantined{}",
                         rep.temp_files_removed, rep.orphan_files_removed, rep.rows_without_file,
                         rep.files_quarantined, rep.index_quarantined ? ", index replaced: " + rep.index_problem : "");
        d.registry = std::make_unique<ModelRegistry>(cfg.site.state_dir / "models");
        d.make_cycle();
        d.scorer = std::make_shared<quality::QualityScorer>(cfg.quality);
        if (cfg.metrics.enabled)
            d.server = std::make_unique<MetricsServer>(cfg.metrics.listen, d.metrics, [&d] {
                const auto age = std::chrono::steady_clock::now().time_since_epoch().count() - d.loop_heartbeat.load();
                const bool alive = std::chrono::steady_clock::duration(age) < 30s;
                std::lock_guard lock(d.status_mutex);
                return Health{alive, alive ? "main loop alive" : "main loop stuck"};
            });
        if (cfg.ui.enabled) d.start_console(cfg);
    } catch (const std::exception& e) {
        spdlog::critical("faceadaptd: cannot start: {}", e.what());
        return 1;
    }
    d.load_scheduler_state();
    d.metrics.set("faceadapt_model_version", {}, d.registry->current_version());
    d.apply_cameras(cfg);
    d.start_learner([&d] { d.recover(); });

    d.notifier.ready(d.status_line());
    spdlog::info("faceadaptd: ready ({} camera(s), state {}, trainer {})", d.cameras.size(), cfg.site.state_dir.string(),
                 d.options.trainer.string());
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    auto last_status = std::chrono::steady_clock::now() - 1h;
    auto last_state_size = last_status;
    std::string last_line;
    while (!d.stop) {
        d.loop_heartbeat = std::chrono::steady_clock::now().time_since_epoch().count();
        const auto tick_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d.options.tick).count();
        timespec ts{static_cast<time_t>(tick_ns / 1'000'000'000), static_cast<long>(tick_ns % 1'000'000'000)};
        const int sig = sigtimedwait(&set, nullptr, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            spdlog::info("faceadaptd: {} received, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            d.stop = true;
            break;
        }
        if (sig == SIGHUP || d.reload.exchange(false)) d.do_reload();
        d.notifier.watchdog();
        d.update_camera_metrics();
        const auto now = std::chrono::steady_clock::now();
        if (now - last_status >= 2s) {
            last_status = now;
            const auto st = d.store->stats();
            d.metrics.set("faceadapt_store_crops", {}, double(st.crops));
            d.metrics.set("faceadapt_store_bytes", {}, double(st.bytes));
            if (now - last_state_size >= 60s) {  // a walk of every crop file: not every tick
                last_state_size = now;
                d.metrics.set("faceadapt_state_bytes", {}, double(folder_bytes(cfg.site.state_dir)));
            }
            d.metrics.set("faceadapt_model_version", {}, d.registry->current_version());
            const std::string line = d.status_line();
            if (line != last_line) d.notifier.status(line);
            last_line = line;
            d.metrics.set("faceadapt_mqtt_connected", {}, d.have_publisher && d.mqtt_connected() ? 1 : 0);
            if (d.console_backend) d.console_backend->sample();
            if (!d.learner_busy && d.pending_rollback >= 0) {
                const int version = d.pending_rollback;
                spdlog::info("console: rolling back to version {}", version);
                d.start_learner([&d, version] {
                    d.console_rollback(version);
                    d.pending_rollback = -1;
                });
                continue;
            }
            if (!d.learner_busy && !d.have_publisher && now >= d.publisher_retry_at) {
                d.publisher_retry_at = now + d.publisher_backoff;
                d.publisher_backoff = std::min<std::chrono::seconds>(300s, d.publisher_backoff * 2);
                d.start_learner([&d] { d.ensure_publisher(d.current_config()); });
            }
            if (!d.learner_busy && d.check_gallery(d.current_config())) continue;
            if (!d.learner_busy) {
                cfg = d.current_config();
                d.load_scheduler_state();
                d.sched.cycle_running = false;
                d.sched.crops_at_last_cycle = 0;
                d.sched.crops_total = d.store->count_after(d.last_crop_id);
                ScheduleDecision decision;
                try {
                    decision = should_start_cycle(cfg.learner, d.sched, Clock::now(), local_minute_of_day(Clock::now()));
                } catch (const std::exception& e) {
                    decision = {false, e.what()};
                }
                if (decision.start) {
                    spdlog::info("scheduler: starting a training cycle ({})", decision.reason);
                    d.start_learner([&d] { d.run_cycle(); });
                } else {
                    spdlog::debug("scheduler: {}", decision.reason);
                }
            }
        }
    }
    // Shutdown: cameras first (workers finish their frame: store writes complete), then the
    // training child (SIGTERM, it checkpoints), then the rest.
    d.notifier.stopping();
    const auto t0 = std::chrono::steady_clock::now();
    d.console.reset();  // no new operator requests while the rest stops
    for (auto& [id, cam] : d.cameras) cam.pipeline->stop();
    d.cameras.clear();
    if (d.learner.joinable()) d.learner.join();
    d.publisher.reset();
    d.server.reset();
    d.store.reset();
    spdlog::info("faceadaptd: stopped in {:.1f} s",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return 0;
}

}  // namespace faceadapt::daemon
