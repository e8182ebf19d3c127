// Faces of people from a folder, for the gallery and the strangers of a calibration.
//   DIR/<name>/<images>: one person per folder; with loose_files_are_people, an image directly in
//   DIR is a person of its own (a folder of strangers' badge photos). Each image's largest face
//   is detected and aligned (ingest::FaceAligner); unreadable images and images without a face
//   are skipped with a warning naming the file (through common::printable).
//   With a PhotoGate each image must pass the site's enrollment check instead
//   (quality::check_enrollment_image: one dominant face, at least min_face_px, and the enrollment
//   gate's pose, integrity, sharpness and exposure bounds): a strangers folder of very dark or
//   faceless photos would otherwise give near-identical impostor pairs (black chips embed alike
//   whoever they show) and collapse a calibrated threshold (docs/operating-point.md, section 1).
// THREAD SAFETY
//   One call at a time per thread (each call makes its own aligner).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "faceadapt/config/config.hpp"

namespace faceadapt::tools {

// The checks a site applies to a photo it takes as a person's: its [detect].min_face_px,
// [enroll] and [quality] (the score is recorded by the check, never used to refuse).
struct PhotoGate {
    int min_face_px = config::DetectConfig{}.min_face_px;
    config::EnrollConfig enroll;
    config::QualityConfig quality;
    static PhotoGate from(const config::Config& c) { return {c.detect.min_face_px, c.enroll, c.quality}; }
};

struct SkippedPhoto {
    std::filesystem::path file;
    std::string reason;  // the check's own words (no file content in it)
};

struct PeopleChips {
    std::vector<std::string> names;  // names[i] is chips[i]'s person
    std::vector<cv::Mat> chips;      // RGB 150x150
    std::size_t people = 0;          // people with at least one usable image
    std::size_t photos = 0;          // image files looked at
    std::vector<SkippedPhoto> skipped;  // the images not used, in folder order
    // "3 of 10 photos skipped: 2 no face found, 1 the face is too dark" ("" when none was).
    std::string skipped_summary() const;
};

// `what` names the folder in messages ("gallery", "strangers"). gate: nullptr = the detector only.
// Logs each skipped photo (file name through printable) and the summary.
// throws std::invalid_argument when dir is not a folder.
PeopleChips load_people_chips(const std::filesystem::path& dir, const std::string& what, bool loose_files_are_people,
                              const PhotoGate* gate = nullptr);

}  // namespace faceadapt::tools
