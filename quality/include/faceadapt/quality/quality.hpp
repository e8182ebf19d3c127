// Quality features and the patent's face image quality evaluation (CN112686171A, steps 121-133).
//
// WHAT THIS REPRESENTS
//   compute_features() measures one FaceObservation: pose deviation (solvePnP of 6 of the 68
//   landmarks against a 3D mean face), integrity (share of the face inside the frame), feature
//   point distribution density, information entropy, sharpness, exposure and the frame's ambient
//   brightness. QualityScorer turns those into the patent's face image quality evaluation value
//   with every intermediate of steps 122-133 kept, so a refusal can be explained and the crop
//   store can record why a crop was kept. docs/quality.md maps each field to its patent step.
// THREAD SAFETY
//   Free functions are pure. A QualityScorer is immutable after construction: share it freely.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include <opencv2/core.hpp>

#include "faceadapt/config/config.hpp"
#include "faceadapt/ingest/face_observation.hpp"

namespace faceadapt::quality {

// Step 121 (and 128, 131): the measurements of one face image.
struct QualityFeatures {
    double yaw_deg = 0.0;            // + face turned to the image's right
    double pitch_deg = 0.0;          // + face tilted up
    double roll_deg = 0.0;           // in-plane rotation
    double deviation_deg = 0.0;      // angle between the face's normal and the camera axis
    double integrity = 1.0;          // [0,1]: min(box area inside frame, landmarks inside frame)
    double landmark_density = 0.0;   // landmarks inside the frame / face box area (px^-2), recorded
    double density = 0.0;            // feature points / face area on the chip (px^-2), steps 124, 126
    double entropy = 0.0;            // Shannon entropy of the chip's luma histogram, bits [0, 8]
    double sharpness = 0.0;          // variance of the Laplacian of the chip's luma
    double exposure = 0.0;           // mean luma of the chip's face region, 0..255 (step 128)
    double contrast = 0.0;           // stddev of that luma (recorded)
    double ambient = 0.0;            // mean luma of the whole frame, 0..255 (step 131)
};

// Every intermediate of steps 122-133. Quality values are on the form's scale: [0,1] for
// "unit", [0,100] for "percent".
struct QualityScore {
    QualityFeatures features;
    bool gated = false;              // step 122 gate failed: score is 0
    std::string reason;              // why gated / below threshold; "" when accepted
    double deviation_value = 0.0;    // step 122: target first reference evaluation value
    double integrity_value = 0.0;    // step 123: target second reference evaluation value
    double w1 = 0.0, w2 = 0.0;       // step 124: weight pair from density
    double first_reference = 0.0;    // step 125
    double density_quality = 0.0;    // step 126: first image quality evaluation value
    double entropy_deviation = 0.0;  // step 127: target image quality deviation value
    double exposure_factor = 1.0;    // step 129: (1 + coefficient) for exposure
    double sharpness_factor = 1.0;   // step 129: (1 + coefficient) for focus
    double coefficient = 0.0;        // step 129: target optimisation coefficient
    double second_reference = 0.0;   // step 130
    double W1 = 0.0, W2 = 0.0;       // step 132: weight coefficient pair from ambient brightness
    double score = 0.0;              // step 133, on the form's scale
    double normalized = 0.0;         // score / scale, in [0,1]: what the threshold is compared with
    bool accepted = false;           // !gated && normalized > threshold
};

// ---- features (each usable on its own; tests check them on constructed inputs) ----

struct Pose { double yaw_deg = 0, pitch_deg = 0, roll_deg = 0, deviation_deg = 0; };
// requires: landmarks in the iBUG 68 layout, frame pixels; frame_size non-empty.
// ensures:  head pose of a 3D mean face fitted to 6 landmarks (eye corners, nose tip, chin,
//           mouth corners) with a pinhole camera of focal length = frame width.
Pose estimate_pose(const std::array<cv::Point2f, 68>& landmarks, cv::Size frame_size);
// Share of the face inside the frame: min(area(box ∩ frame)/area(box), landmarks inside / 68).
double face_integrity(const cv::Rect& box, const std::array<cv::Point2f, 68>& landmarks,
                      cv::Size frame_size);
// Shannon entropy (bits) of the 256-bin histogram of an 8-bit image (grey or RGB -> luma).
double image_entropy(const cv::Mat& image);
// Variance of the 3x3 Laplacian of the luma.
double laplacian_variance(const cv::Mat& image);
// Feature points (FAST corners, threshold 20) per pixel of the chip's face region.
double feature_point_density(const cv::Mat& chip);
// Luma of an RGB (or grey) 8-bit image.
cv::Mat luma(const cv::Mat& image_rgb);

// All features of one observation. requires: obs.chip is 8UC3 RGB (150x150) or 8UC1.
// throws std::invalid_argument when the chip is empty or not 8-bit.
QualityFeatures compute_features(const ingest::FaceObservation& obs);

// Evaluates a piecewise-linear table (clamped at both ends). An empty table yields `fallback`.
double evaluate(const config::Table& table, double x, double fallback = 0.0);

// Steps 122-133 on given features.
class QualityScorer {
public:
    // throws std::invalid_argument when coefficient_form is not "unit" or "percent".
    explicit QualityScorer(config::QualityConfig config = {});
    QualityScore score(const QualityFeatures& features) const;
    QualityScore score(const ingest::FaceObservation& obs) const { return score(compute_features(obs)); }
    const config::QualityConfig& config() const { return config_; }
    double scale() const { return percent_ ? 100.0 : 1.0; }
private:
    config::QualityConfig config_;
    bool percent_ = false;
};

// The score with its features and intermediates as one JSON object (crop store metadata), and back.
// quality_from_json throws std::invalid_argument on malformed text.
std::string to_json(const QualityScore& score);
QualityScore quality_from_json(std::string_view json);

// A FaceObservation for a still image and one aligned face found in it (enrollment, datasets):
// frame_size, frame_brightness/contrast from `image` (BGR or grey), chip/box/landmarks from `face`.
ingest::FaceObservation observation_from_still(const cv::Mat& image, const cv::Rect& bbox,
                                               const std::array<cv::Point2f, 68>& landmarks,
                                               const cv::Mat& chip_rgb);

}  // namespace faceadapt::quality
