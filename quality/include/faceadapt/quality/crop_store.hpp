// CropStore: the crash-safe buffer of quality-passing face crops under state_dir.
//
// WHAT THIS REPRESENTS
//   <state_dir>/crops/crops.db      SQLite index (WAL): one row per crop with camera, time,
//                                   track, score, file, size and the score's features (JSON).
//   <state_dir>/crops/img/<camera>/ the crops, 150x150 RGB chips stored as PNG.
//   <state_dir>/crops/quarantine/   corrupt images and damaged indexes moved aside, never deleted.
//   A crop is written as temp file + fsync + rename (+ directory fsync), THEN its index row is
//   committed; an eviction deletes the row first, then the file. So after a crash at any point
//   no row lacks its file, and the only debris (temp files, files without rows) is removed when
//   the store is next opened (open_report() says what was cleaned).
//   Limits (config::StoreConfig) are enforced on every insert: best K crops per track, a per-camera
//   quota, retention in days and a disk cap; eviction takes the lowest score first, oldest
//   first among equal scores.
// THREAD SAFETY
//   All members may be called from many threads at once. Inserts are serialised on one writer
//   connection; snapshot()/export_snapshot() read through their own connection in one read
//   transaction, so they see a consistent state while writers append (SQLite WAL).
//   Several processes may open the same store; only one should insert (the daemon).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "faceadapt/config/config.hpp"
#include "faceadapt/quality/quality.hpp"

namespace faceadapt::quality {

// One stored crop as the index describes it.
struct CropRecord {
    std::int64_t id = 0;
    std::string camera;
    std::chrono::system_clock::time_point timestamp;
    std::int64_t track_id = -1;
    double score = 0.0;                  // QualityScore::normalized, [0,1]
    std::filesystem::path file;          // absolute path of the PNG
    std::int64_t bytes = 0;
    std::string quality_json;            // to_json(QualityScore) at insert time ("" if none)
};

// What to store. chip: 8UC3 RGB (or 8UC1), any size (150x150 from ingest).
struct CropInput {
    std::string camera;                  // [A-Za-z0-9_-]+ (used as a folder name)
    std::chrono::system_clock::time_point timestamp = std::chrono::system_clock::now();
    std::int64_t track_id = -1;
    cv::Mat chip;
    double score = 0.0;                  // normalized score [0,1]
    std::string quality_json;            // optional metadata
};

// Track ids in the store are unique for the store's life (issue 18): a tracker numbers its tracks
// 1, 2, ... from every start, so each run of a camera's tracker gets a base from
// CropStore::begin_track_run() and its tracks are stored as base + local id. The base is
// run * kTrackRunStride; a run can number 2^32 - 1 tracks (a new track every frame at 30 fps
// for 4.5 years) before its ids would reach the next run's.
inline constexpr std::int64_t kTrackRunStride = std::int64_t{1} << 32;
// The run a stored track id belongs to (0: crops stored before runs existed).
inline constexpr std::int64_t track_run_of(std::int64_t track_id) {
    return track_id < 0 ? -1 : track_id / kTrackRunStride;
}

enum class InsertOutcome {
    stored,                              // written and indexed
    rejected_track_full,                 // track already holds K crops scoring at least as well
    rejected_too_old,                    // older than the retention window
};

struct InsertResult {
    InsertOutcome outcome = InsertOutcome::stored;
    std::int64_t id = 0;                 // the new row's id when stored
    int evicted = 0;                     // crops removed to respect the limits
};

// What opening the store found and repaired.
struct OpenReport {
    int temp_files_removed = 0;          // half-written crops of a crashed writer
    int orphan_files_removed = 0;        // files without an index row
    int rows_without_file = 0;           // index rows whose file is gone (rows deleted)
    int files_quarantined = 0;           // size mismatch with the index (moved to quarantine/)
    bool index_quarantined = false;      // the index failed its integrity check and was replaced
    std::string index_problem;           // SQLite's message when index_quarantined
};

struct StoreStats {
    std::int64_t crops = 0;
    std::int64_t bytes = 0;
};

class CropStore {
public:
    struct Options {
        bool fsync = true;               // false only for tests/benchmarks of the logic itself
    };

    // Opens (creating if needed) the store under state_dir/crops, then repairs it (OpenReport).
    // Only an index SQLite reports as damaged (SQLITE_CORRUPT, SQLITE_NOTADB, a failed
    // quick_check) is quarantined and replaced. A full disk, an I/O error, a lock or a permission
    // problem is not damage: the store is left exactly as it is and the constructor throws.
    // throws std::runtime_error naming the path (and SQLite's message with the errno) when
    // state_dir cannot be created, the index cannot be opened for such a fault, img/ cannot be
    // listed, or the index cannot be opened even after quarantining it.
    CropStore(const std::filesystem::path& state_dir, config::StoreConfig limits);
    CropStore(const std::filesystem::path& state_dir, config::StoreConfig limits, Options options);
    ~CropStore();
    CropStore(const CropStore&) = delete;
    CropStore& operator=(const CropStore&) = delete;

    const OpenReport& open_report() const;
    const std::filesystem::path& root() const;   // state_dir/crops

    // Stores one crop and enforces the limits.
    // throws std::invalid_argument for an empty chip or a bad camera id; std::runtime_error
    //        (naming the file) when the disk write fails; the store is unchanged then.
    InsertResult insert(const CropInput& crop);

    // Starts a new run of `camera`'s tracker: records it durably (table track_runs, committed
    // before returning) and returns its base, run * kTrackRunStride, where run is one more than
    // any run recorded or seen in the camera's stored tracks. Add the base to the tracker's
    // local ids (1, 2, ...); so no two runs, of any daemon or camera restart, share a track id.
    // throws std::invalid_argument for a bad camera id; std::runtime_error (SQLite's message
    //        naming crops.db) when the run cannot be recorded.
    std::int64_t begin_track_run(const std::string& camera);

    // Applies retention (relative to `now`) and the disk cap; returns the number evicted.
    int enforce_limits(std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

    // Every crop, ordered by id, read in one transaction (consistent while others insert).
    std::vector<CropRecord> snapshot() const;
    // The `n` newest crops of `camera` (all cameras when empty), newest first (the console).
    std::vector<CropRecord> latest(const std::string& camera, std::size_t n) const;
    // The crop with this id, if stored.
    std::optional<CropRecord> find(std::int64_t id) const;
    // Crops inserted after the row id `after_id` (for "enough new crops" scheduling).
    std::int64_t count_after(std::int64_t after_id) const;
    StoreStats stats() const;

    // Copies one consistent snapshot into dir as <dir>/<camera>/<id>.png plus <dir>/index.csv
    // (id,camera,unix_ms,track,score,file). Unreadable files are quarantined and skipped.
    // ensures: returns the number of chips exported. throws std::runtime_error naming dir.
    std::size_t export_snapshot(const std::filesystem::path& dir) const;
    // The same for the given records (e.g. one part of a snapshot()): copies each readable one to
    // <dir>/<camera>/<id>.png and lists it in <dir>/index.csv. Unreadable files are quarantined
    // and skipped. ensures: returns the records exported, in order, with `file` naming the copy.
    // throws std::runtime_error naming dir.
    std::vector<CropRecord> export_records(const std::vector<CropRecord>& records,
                                           const std::filesystem::path& dir) const;

    // The chip of a record as RGB 8UC3. A file that does not decode is moved to quarantine/,
    // its row deleted, and std::nullopt returned (logged, never a crash).
    std::optional<cv::Mat> load_chip(const CropRecord& record) const;

    // Decodes every file; corrupt ones are quarantined. Returns how many were.
    int verify();

    // Removes one crop (row first, then file). Returns false when the id is unknown.
    bool remove(std::int64_t id);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace faceadapt::quality
