// SiteConsole: what the operator console (ui/console.hpp) shows and does, from the daemon's parts.
//
// WHAT THIS REPRESENTS
//   ui::ConsoleBackend over: the metrics registry (cameras' state and counters, door states),
//   the crop store (latest crops, thumbnails), the gallery (people, enroll, erase: the daemon's
//   gallery watch then ships a gallery update without the erased person, gallery_update.hpp),
//   the model registry (versions, gate figures, history) and the daemon's hooks (trainer status,
//   door states, a rollback request: run as `faceadapt models rollback` on the learner thread,
//   the CLI's own path). Rates (fps, faces per minute) are measured over the last minute from
//   sample(), which the daemon calls every few seconds; a camera's snapshot is its latest full
//   frame (SiteConsoleHooks::frame, kept in memory by the ingest side), never a face crop; a running cycle's ETA from its progress
//   since the console first saw it (remaining = elapsed * (1 - p) / (p - p0)).
//   Unknown faces: the stored crops grouped by the latest clustering (the training cycle's
//   <models>/clustering.csv, latest_clustering_file, read again when it changes): a unit (a
//   track, camera + track id, or an untracked crop) goes whole to the cluster most of its
//   clustered crops are in; a unit with no crop in the clustering (newer crops) or only noise
//   is a group of its own; the operator's merges ("same,<crop>,<crop>" rows) join the groups
//   holding those crops. Largest first.
//   Naming a group enrolls its crops (they passed the site-crop gate when stored; a crop is
//   already an aligned chip, so the photo gate's face-size and exposure checks do not apply) and
//   records "must,<crop>,<name>" rows; "not this person" records "cannot,<crop>,name:<name>"
//   rows; a merge "same,<crop>,<crop>" rows, all in <state_dir>/console/constraints.csv
//   (docs/site-snapshot.md's format, read and written by common/site_files.hpp, crash-safe),
//   which the next training cycle's snapshot carries to the learner.
//   Enrollment decodes each upload with ingest's bounded reader (size from the header first),
//   then applies quality::check_enrollment_image with the [enroll] gate; the landmark model is
//   loaded at the first enrollment. Thumbnails are JPEG, cached (at most 4096).
// THREAD SAFETY
//   Every member may be called from any thread (the console's workers and the main loop).
#pragma once

#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "faceadapt/config/config.hpp"
#include "faceadapt/ui/console.hpp"

namespace faceadapt::quality { class CropStore; class Gallery; }
namespace faceadapt::common { struct OperatorConstraints; }
namespace faceadapt::ingest { class FaceAligner; }

namespace faceadapt::daemon {

class MetricsRegistry;
class ModelRegistry;

// A camera's latest full picture (JPEG), as the cameras' snapshot keeper has it.
struct CameraFrame {
    std::string jpeg;
    std::chrono::system_clock::time_point time;
};

struct SiteConsoleHooks {
    std::function<config::Config()> config;        // the running configuration
    std::function<std::string()> trainer_status;   // "idle", "cycle 1/2 iter 30/100", ...
    std::function<nlohmann::json()> doors;         // [{"door", "status", "installed_version", "time", "error"}]
    // Queues a rollback to `version` (validated here first). Returns what will happen.
    std::function<std::string(int)> rollback;
    // The camera's latest full frame (faceadaptd: ingest::FrameSnapshots); nullopt when none yet.
    // Optional (absent: no snapshot).
    std::function<std::optional<CameraFrame>(const std::string& camera)> frame;
};

class SiteConsole : public ui::ConsoleBackend {
public:
    // requires: store and metrics outlive this object. throws std::runtime_error naming the
    // gallery or models folder when they cannot be opened.
    SiteConsole(const std::filesystem::path& state_dir, quality::CropStore& store, const MetricsRegistry& metrics,
                SiteConsoleHooks hooks);
    ~SiteConsole() override;

    // Records the cameras' counters now (call every few seconds).
    void sample();

    nlohmann::json overview() override;
    nlohmann::json people() override;
    std::vector<ui::EnrollResult> enroll(const std::string& name, const std::vector<ui::UploadedPhoto>& photos,
                                         const std::string& by) override;
    int erase(const std::string& name) override;
    bool remove_photo(std::int64_t entry_id) override;
    nlohmann::json models() override;
    std::string rollback(int version) override;
    std::optional<std::string> crop_jpeg(std::int64_t crop_id) override;
    std::optional<std::string> gallery_jpeg(std::int64_t entry_id) override;
    std::optional<std::string> snapshot_jpeg(const std::string& camera) override;
    nlohmann::json unknown_faces(std::size_t max_groups) override;
    std::vector<ui::EnrollResult> name_crops(const std::string& name, const std::vector<std::int64_t>& crops,
                                             const std::string& by) override;
    int not_person(const std::string& name, const std::vector<std::int64_t>& crops) override;
    int merge_groups(const std::vector<std::int64_t>& crops) override;

    // <state_dir>/console/constraints.csv
    static std::filesystem::path constraints_file(const std::filesystem::path& state_dir);

private:
    struct Point {
        std::chrono::steady_clock::time_point t;
        double decoded = 0, faces = 0;
    };
    // The latest clustering: crop id -> cluster (-1 noise), read again when the file changes.
    struct Clustering {
        std::filesystem::file_time_type mtime;
        std::string time;  // UTC, when it was written
        std::unordered_map<std::int64_t, std::int64_t> cluster;
    };
    std::shared_ptr<const Clustering> latest_clustering();
    // Appends rows to constraints.csv (read, extended, written whole and crash-safe).
    void add_constraints(const common::OperatorConstraints& rows);
    std::optional<std::string> cached_jpeg(const std::string& key, const std::function<std::optional<std::string>()>& make);

    std::filesystem::path state_dir_;
    quality::CropStore& store_;
    const MetricsRegistry& metrics_;
    SiteConsoleHooks hooks_;
    std::unique_ptr<quality::Gallery> gallery_;
    std::unique_ptr<ModelRegistry> registry_;   // guarded by mutex_
    std::unique_ptr<ingest::FaceAligner> aligner_;  // guarded by enroll_mutex_
    std::mutex mutex_, enroll_mutex_, cache_mutex_;
    std::map<std::string, std::deque<Point>> rates_;  // guarded by mutex_
    // The running cycle's progress when first seen, for its ETA (guarded by mutex_).
    std::optional<std::pair<std::chrono::steady_clock::time_point, double>> progress_start_;
    double last_progress_ = 0, eta_s_ = -1;
    std::shared_ptr<const Clustering> clustering_;  // guarded by mutex_
    std::map<std::string, std::string> jpegs_;        // guarded by cache_mutex_
    std::deque<std::string> jpeg_order_;
};

}  // namespace faceadapt::daemon
