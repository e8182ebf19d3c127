// Gallery: the enrolled people of the site (the labelled set the promotion gate and the door
// controllers use).
//
// WHAT THIS REPRESENTS
//   <state_dir>/gallery/gallery.db  SQLite (WAL): one row per enrolled chip (name, file, score,
//                                   quality JSON, source image, time).
//   <state_dir>/gallery/img/        the chips, 150x150 RGB stored as PNG (temp + fsync + rename).
//   The revision: a counter in gallery.db that SQLite triggers raise with every row added,
//   removed or changed, in the same transaction, whichever process (or version) writes. The
//   daemon watches it to ship a gallery update to the doors (docs/operations.md, "Enrolling").
//   enroll_image() is the enrollment policy: exactly one face, big enough, quality accepted;
//   otherwise a refusal with the reason.
// THREAD SAFETY
//   A Gallery serialises its own calls; several processes may open it (SQLite locking).
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

namespace faceadapt::ingest { class FaceAligner; }

namespace faceadapt::quality {

struct GalleryEntry {
    std::int64_t id = 0;
    std::string name;
    std::filesystem::path file;           // absolute path of the chip PNG
    double score = 0.0;                   // normalized quality score
    std::string source;                   // the image it was enrolled from
    std::chrono::system_clock::time_point enrolled;
    std::string quality_json;
};

class Gallery {
public:
    // throws std::runtime_error naming the path when the folder or index cannot be opened.
    explicit Gallery(const std::filesystem::path& state_dir);
    ~Gallery();
    Gallery(const Gallery&) = delete;
    Gallery& operator=(const Gallery&) = delete;

    // requires: name matches [A-Za-z0-9 ._-]{1,64} (else std::invalid_argument); chip non-empty RGB.
    std::int64_t add(const std::string& name, const cv::Mat& chip_rgb, const QualityScore& score,
                     const std::string& source);
    std::vector<GalleryEntry> entries() const;            // ordered by name, then id
    std::vector<std::string> names() const;               // distinct, sorted
    int remove(const std::string& name);                  // rows+files removed; 0 if unknown
    bool remove_entry(std::int64_t id);                   // one photo (row+file); false if unknown
    // The gallery's revision: 0 for a new gallery, raised by every add(), and by every remove()
    // that removed something. Read before entries(), it is at most the revision they show.
    std::int64_t revision() const;
    // The revision of the gallery under state_dir without opening it for writing (no folder
    // created, no debris removed): 0 when there is no gallery yet. For a process that only
    // watches (faceadaptd). throws std::runtime_error naming the file when it cannot be read.
    static std::int64_t read_revision(const std::filesystem::path& state_dir);
    // The chip as RGB 8UC3; std::nullopt (logged) when the file is missing or corrupt.
    std::optional<cv::Mat> load_chip(const GalleryEntry& entry) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// The outcome of checking one photo for enrollment.
struct EnrollCheck {
    bool ok = false;
    std::string reason;                   // why refused ("no face found", "2 faces found", ...)
    cv::Mat chip;                         // the aligned chip when exactly one face was found
    QualityScore score;                   // when a chip was scored
};

// Detect + align one photo (BGR or grey) and judge it with the enrollment gate
// (enroll_gate.hpp: calibrated on recognisability, not the site-crop score). Refuses: an
// unreadable/empty image, no face, several faces none of which dominates (dominant_face), a face
// whose box side is below min_face_px, and what judge_enrollment refuses. The site-crop score is
// still computed and recorded (score), never used to refuse.
EnrollCheck check_enrollment_image(const cv::Mat& image, const ingest::FaceAligner& aligner,
                                   const QualityScorer& scorer, int min_face_px,
                                   const config::EnrollConfig& gate = {});

}  // namespace faceadapt::quality
