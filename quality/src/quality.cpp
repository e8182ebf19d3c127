// Quality features and the patent's steps 122-133. See quality.hpp and docs/quality.md.
#include "faceadapt/quality/quality.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>
#include <opencv2/calib3d.hpp>
#include <opencv2/features2d.hpp>
#include <opencv2/imgproc.hpp>

namespace faceadapt::quality {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kFastThreshold = 20;

// A 3D mean face in camera axes (x right, y down, z away from the camera), nose tip at the
// origin; the classic 6-point model (units ~0.1 mm). Indices into the iBUG 68 layout.
struct ModelPoint { int index; cv::Point3d p; };
const std::array<ModelPoint, 6> kMeanFace = {{
    {30, {0.0, 0.0, 0.0}},          // nose tip
    {8, {0.0, 330.0, 65.0}},        // chin
    {36, {-225.0, -170.0, 135.0}},  // outer corner of the eye on the image's left
    {45, {225.0, -170.0, 135.0}},   // outer corner of the eye on the image's right
    {48, {-150.0, 150.0, 125.0}},   // mouth corner, image left
    {54, {150.0, 150.0, 125.0}},    // mouth corner, image right
}};

// The central face region of an aligned chip: get_face_chip_details(.., padding 0.25) puts the
// face in the middle 1/(1+2*0.25) = 2/3 of the chip.
cv::Rect face_region(const cv::Mat& chip) {
    const int w = chip.cols * 2 / 3, h = chip.rows * 2 / 3;
    return {(chip.cols - w) / 2, (chip.rows - h) / 2, std::max(w, 1), std::max(h, 1)};
}

bool inside(const cv::Point2f& p, cv::Size size) {
    return p.x >= 0 && p.y >= 0 && p.x < size.width && p.y < size.height;
}

double clamp01(double v) { return std::clamp(v, 0.0, 1.0); }

}  // namespace

cv::Mat luma(const cv::Mat& image) {
    if (image.empty() || image.depth() != CV_8U)
        throw std::invalid_argument("quality: expected a non-empty 8-bit image");
    if (image.channels() == 1) return image;
    cv::Mat grey;
    if (image.channels() == 3) cv::cvtColor(image, grey, cv::COLOR_RGB2GRAY);
    else if (image.channels() == 4) cv::cvtColor(image, grey, cv::COLOR_RGBA2GRAY);
    else throw std::invalid_argument("quality: expected 1, 3 or 4 channels");
    return grey;
}

Pose estimate_pose(const std::array<cv::Point2f, 68>& lm, cv::Size frame_size) {
    if (frame_size.width <= 0 || frame_size.height <= 0)
        throw std::invalid_argument("estimate_pose: empty frame size");
    std::vector<cv::Point3d> object;
    std::vector<cv::Point2d> image;
    for (const auto& m : kMeanFace) {
        object.push_back(m.p);
        image.emplace_back(lm[m.index].x, lm[m.index].y);
    }
    const double f = frame_size.width;
    const cv::Matx33d camera(f, 0, frame_size.width / 2.0, 0, f, frame_size.height / 2.0, 0, 0, 1);
    // Initial guess: frontal, at the distance that gives the observed eye-corner span.
    const double span = std::max(1.0, cv::norm(image[3] - image[2]));
    const double tz = f * 450.0 / span;
    cv::Mat rvec = cv::Mat::zeros(3, 1, CV_64F);
    cv::Mat tvec = (cv::Mat_<double>(3, 1) << (image[0].x - camera(0, 2)) * tz / f,
                    (image[0].y - camera(1, 2)) * tz / f, tz);
    cv::solvePnP(object, image, camera, cv::noArray(), rvec, tvec, true, cv::SOLVEPNP_ITERATIVE);
    cv::Matx33d R;
    cv::Rodrigues(rvec, R);
    cv::Mat mtxR, mtxQ;
    const cv::Vec3d euler = cv::RQDecomp3x3(cv::Mat(R), mtxR, mtxQ);  // degrees about x, y, z
    Pose pose;
    pose.pitch_deg = -euler[0];
    pose.yaw_deg = euler[1];
    pose.roll_deg = euler[2];
    pose.deviation_deg = std::acos(std::clamp(R(2, 2), -1.0, 1.0)) * 180.0 / kPi;
    return pose;
}

double face_integrity(const cv::Rect& box, const std::array<cv::Point2f, 68>& lm, cv::Size frame) {
    if (box.area() <= 0) return 0.0;
    const cv::Rect visible = box & cv::Rect(0, 0, frame.width, frame.height);
    const double area_share = static_cast<double>(visible.area()) / box.area();
    const auto in = std::count_if(lm.begin(), lm.end(), [&](const auto& p) { return inside(p, frame); });
    return std::min(area_share, static_cast<double>(in) / lm.size());
}

double image_entropy(const cv::Mat& image) {
    const cv::Mat grey = luma(image);
    std::array<double, 256> hist{};
    for (int y = 0; y < grey.rows; ++y) {
        const auto* row = grey.ptr<unsigned char>(y);
        for (int x = 0; x < grey.cols; ++x) hist[row[x]] += 1.0;
    }
    const double n = static_cast<double>(grey.total());
    double h = 0.0;
    for (double c : hist)
        if (c > 0) h -= (c / n) * std::log2(c / n);
    return h;
}

double laplacian_variance(const cv::Mat& image) {
    cv::Mat lap;
    cv::Laplacian(luma(image), lap, CV_64F, 1);
    cv::Scalar mean, stddev;
    cv::meanStdDev(lap, mean, stddev);
    return stddev[0] * stddev[0];
}

double feature_point_density(const cv::Mat& chip) {
    const cv::Mat grey = luma(chip);
    const cv::Mat face = grey(face_region(grey));
    std::vector<cv::KeyPoint> points;
    cv::FAST(face, points, kFastThreshold, true);
    return static_cast<double>(points.size()) / static_cast<double>(face.total());
}

QualityFeatures compute_features(const ingest::FaceObservation& obs) {
    if (obs.chip.empty()) throw std::invalid_argument("compute_features: empty chip (camera " + obs.camera + ")");
    const cv::Mat grey = luma(obs.chip);
    const cv::Mat face = grey(face_region(grey));
    QualityFeatures f;
    const cv::Size frame = obs.frame_size.area() > 0 ? obs.frame_size : obs.chip.size();
    const Pose pose = estimate_pose(obs.landmarks, frame);
    f.yaw_deg = pose.yaw_deg;
    f.pitch_deg = pose.pitch_deg;
    f.roll_deg = pose.roll_deg;
    f.deviation_deg = pose.deviation_deg;
    f.integrity = face_integrity(obs.bbox, obs.landmarks, frame);
    const auto in = std::count_if(obs.landmarks.begin(), obs.landmarks.end(),
                                  [&](const auto& p) { return inside(p, frame); });
    f.landmark_density = obs.bbox.area() > 0 ? static_cast<double>(in) / obs.bbox.area() : 0.0;
    f.density = feature_point_density(grey);
    f.entropy = image_entropy(face);
    f.sharpness = laplacian_variance(face);
    cv::Scalar mean, stddev;
    cv::meanStdDev(face, mean, stddev);
    f.exposure = mean[0];
    f.contrast = stddev[0];
    f.ambient = obs.frame_brightness;
    return f;
}

double evaluate(const config::Table& table, double x, double fallback) {
    if (table.empty()) return fallback;
    if (x <= table.front()[0]) return table.front()[1];
    if (x >= table.back()[0]) return table.back()[1];
    for (std::size_t i = 1; i < table.size(); ++i) {
        const auto& a = table[i - 1];
        const auto& b = table[i];
        if (x <= b[0]) {
            const double t = b[0] > a[0] ? (x - a[0]) / (b[0] - a[0]) : 1.0;
            return a[1] + t * (b[1] - a[1]);
        }
    }
    return table.back()[1];
}

QualityScorer::QualityScorer(config::QualityConfig config) : config_(std::move(config)) {
    if (config_.coefficient_form == "percent") percent_ = true;
    else if (config_.coefficient_form != "unit")
        throw std::invalid_argument("quality.coefficient_form: expected \"unit\" or \"percent\", got \"" +
                                    config_.coefficient_form + "\"");
}

QualityScore QualityScorer::score(const QualityFeatures& f) const {
    const auto& c = config_;
    const double S = scale();
    QualityScore s;
    s.features = f;
    // Step 122: the gate, then deviation -> target first reference evaluation value.
    if (!(f.deviation_deg <= c.max_deviation_deg)) {
        s.gated = true;
        s.reason = fmt::format("pose deviation {:.1f} deg above the maximum {:.1f} deg (yaw {:.1f}, pitch {:.1f})",
                               f.deviation_deg, c.max_deviation_deg, f.yaw_deg, f.pitch_deg);
    } else if (!(f.integrity >= c.min_integrity)) {
        s.gated = true;
        s.reason = fmt::format("face integrity {:.2f} below the minimum {:.2f} (face cut by the frame edge)",
                               f.integrity, c.min_integrity);
    }
    s.deviation_value = evaluate(c.deviation_score, f.deviation_deg) * S;
    // Step 123: integrity -> target second reference evaluation value.
    s.integrity_value = evaluate(c.integrity_score, f.integrity) * S;
    // Step 124: density -> weight pair (w1 for deviation, w2 = 1 - w1 for integrity).
    s.w1 = clamp01(evaluate(c.density_weight, f.density, 0.5));
    s.w2 = 1.0 - s.w1;
    // Step 125: first reference evaluation value.
    s.first_reference = s.w1 * s.deviation_value + s.w2 * s.integrity_value;
    // Step 126: density -> first image quality evaluation value.
    s.density_quality = evaluate(c.density_quality, f.density) * S;
    // Step 127: entropy -> image quality deviation value (a fraction of the full scale).
    s.entropy_deviation = evaluate(c.entropy_deviation, f.entropy);
    // Steps 128-129: shooting parameters (exposure, focus) -> optimisation coefficient; each
    // table gives the factor (1 + coefficient) of its parameter, the factors multiply.
    s.exposure_factor = std::max(0.0, evaluate(c.exposure_coefficient, f.exposure, 1.0));
    s.sharpness_factor = std::max(0.0, evaluate(c.sharpness_score, f.sharpness, 1.0));
    s.coefficient = s.exposure_factor * s.sharpness_factor - 1.0;
    // Step 130: the two forms of the patent.
    if (percent_)  // hundred-point scale: (q + deviation) * (1 + coefficient)
        s.second_reference = (s.density_quality + s.entropy_deviation * S) * (1.0 + s.coefficient);
    else           // unit scale: q * (1 + deviation) * (1 + coefficient)
        s.second_reference = s.density_quality * (1.0 + s.entropy_deviation) * (1.0 + s.coefficient);
    // Steps 131-132: ambient brightness -> weight coefficient pair.
    s.W1 = clamp01(evaluate(c.environment_weight, f.ambient, 0.5));
    s.W2 = 1.0 - s.W1;
    // Step 133.
    s.score = s.gated ? 0.0 : std::clamp(s.W1 * s.first_reference + s.W2 * s.second_reference, 0.0, S);
    s.normalized = s.score / S;
    s.accepted = !s.gated && s.normalized > c.threshold;
    if (!s.gated && !s.accepted)
        s.reason = fmt::format(
            "quality {:.3f} not above the threshold {:.3f}: pose/integrity part {:.3f} (weight {:.2f}), "
            "image part {:.3f} (density quality {:.3f}, entropy deviation {:+.3f}, exposure x{:.2f}, "
            "sharpness x{:.2f})",
            s.normalized, c.threshold, s.first_reference / S, s.W1, s.second_reference / S,
            s.density_quality / S, s.entropy_deviation, s.exposure_factor, s.sharpness_factor);
    return s;
}

namespace {
#define FACEADAPT_QUALITY_FEATURE_FIELDS(X)                                                      \
    X(yaw_deg) X(pitch_deg) X(roll_deg) X(deviation_deg) X(integrity) X(landmark_density)       \
    X(density) X(entropy) X(sharpness) X(exposure) X(contrast) X(ambient)
#define FACEADAPT_QUALITY_SCORE_FIELDS(X)                                                        \
    X(deviation_value) X(integrity_value) X(w1) X(w2) X(first_reference) X(density_quality)     \
    X(entropy_deviation) X(exposure_factor) X(sharpness_factor) X(coefficient)                  \
    X(second_reference) X(W1) X(W2) X(score) X(normalized)
}  // namespace

std::string to_json(const QualityScore& s) {
    nlohmann::json f, j;
#define X(name) f[#name] = s.features.name;
    FACEADAPT_QUALITY_FEATURE_FIELDS(X)
#undef X
#define X(name) j[#name] = s.name;
    FACEADAPT_QUALITY_SCORE_FIELDS(X)
#undef X
    j["features"] = f;
    j["gated"] = s.gated;
    j["accepted"] = s.accepted;
    j["reason"] = s.reason;
    return j.dump();
}

QualityScore quality_from_json(std::string_view text) {
    try {
        const auto j = nlohmann::json::parse(text);
        QualityScore s;
        const auto& f = j.at("features");
#define X(name) s.features.name = f.at(#name).get<double>();
        FACEADAPT_QUALITY_FEATURE_FIELDS(X)
#undef X
#define X(name) s.name = j.at(#name).get<double>();
        FACEADAPT_QUALITY_SCORE_FIELDS(X)
#undef X
        s.gated = j.at("gated").get<bool>();
        s.accepted = j.at("accepted").get<bool>();
        s.reason = j.at("reason").get<std::string>();
        return s;
    } catch (const nlohmann::json::exception& e) {
        throw std::invalid_argument(std::string("quality metadata is not valid JSON: ") + e.what());
    }
}

ingest::FaceObservation observation_from_still(const cv::Mat& image, const cv::Rect& bbox,
                                               const std::array<cv::Point2f, 68>& landmarks,
                                               const cv::Mat& chip_rgb) {
    if (image.empty()) throw std::invalid_argument("observation_from_still: empty image");
    cv::Mat grey;
    if (image.channels() == 3) cv::cvtColor(image, grey, cv::COLOR_BGR2GRAY);
    else grey = image;
    cv::Scalar mean, stddev;
    cv::meanStdDev(grey, mean, stddev);
    ingest::FaceObservation obs;
    obs.camera = "still";
    obs.timestamp = std::chrono::system_clock::now();
    obs.bbox = bbox;
    obs.landmarks = landmarks;
    obs.chip = chip_rgb;
    obs.frame_size = image.size();
    obs.frame_brightness = mean[0];
    obs.frame_contrast = stddev[0];
    return obs;
}

}  // namespace faceadapt::quality
