// Quality features on constructed images with known answers, and the patent's steps 122-133
// on hand-computed examples in both forms of step 130.
#include <cmath>

#include <gtest/gtest.h>
#include <opencv2/calib3d.hpp>
#include <opencv2/imgproc.hpp>

#include "faceadapt/quality/quality.hpp"

namespace q = faceadapt::quality;
using faceadapt::config::QualityConfig;
using faceadapt::config::Table;

namespace {

// A textured RGB chip: smoothed Gaussian noise stretched to [0, 255] (blob corners are
// feature points, edges give the Laplacian its variance).
cv::Mat textured_chip(int size = 150) {
    cv::Mat noise(size, size, CV_32F);
    cv::RNG rng(7);
    rng.fill(noise, cv::RNG::NORMAL, 0, 1);
    cv::GaussianBlur(noise, noise, cv::Size(0, 0), 2.0);
    cv::normalize(noise, noise, 0, 255, cv::NORM_MINMAX);
    cv::Mat grey, chip;
    noise.convertTo(grey, CV_8U);
    cv::cvtColor(grey, chip, cv::COLOR_GRAY2RGB);
    return chip;
}

// 68 landmarks whose 6 pose points are the projection of the 3D mean face rotated by
// (pitch, yaw) degrees, 2 m in front of a 640x480 camera with f = 640; the rest at the nose.
std::array<cv::Point2f, 68> projected_landmarks(double yaw_deg, double pitch_deg) {
    const std::vector<std::pair<int, cv::Point3d>> model = {
        {30, {0, 0, 0}}, {8, {0, 330, 65}}, {36, {-225, -170, 135}},
        {45, {225, -170, 135}}, {48, {-150, 150, 125}}, {54, {150, 150, 125}}};
    std::vector<cv::Point3d> object;
    for (const auto& m : model) object.push_back(m.second);
    const double d2r = CV_PI / 180.0;
    cv::Matx33d R;
    cv::Rodrigues(cv::Vec3d(pitch_deg * d2r, 0, 0), R);
    cv::Matx33d Ry;
    cv::Rodrigues(cv::Vec3d(0, yaw_deg * d2r, 0), Ry);
    R = Ry * R;
    cv::Vec3d rvec;
    cv::Rodrigues(R, rvec);
    const cv::Matx33d camera(640, 0, 320, 0, 640, 240, 0, 0, 1);
    std::vector<cv::Point2d> image;
    cv::projectPoints(object, rvec, cv::Vec3d(0, 0, 3000), camera, cv::noArray(), image);
    std::array<cv::Point2f, 68> lm;
    lm.fill(cv::Point2f(static_cast<float>(image[0].x), static_cast<float>(image[0].y)));
    for (std::size_t i = 0; i < model.size(); ++i)
        lm[model[i].first] = cv::Point2f(static_cast<float>(image[i].x), static_cast<float>(image[i].y));
    return lm;
}

// Tables with round numbers for hand computation.
QualityConfig hand_config() {
    QualityConfig c;
    c.threshold = 0.5;
    c.max_deviation_deg = 45;
    c.min_integrity = 0.9;
    c.deviation_score = {{0, 1.0}, {40, 0.2}};
    c.integrity_score = {{0.9, 0.5}, {1.0, 1.0}};
    c.density_weight = {{0.0, 0.5}, {0.04, 0.7}};
    c.density_quality = {{0.0, 0.2}, {0.04, 1.0}};
    c.entropy_deviation = {{0.0, -0.5}, {8.0, 0.0}};
    c.exposure_coefficient = {{0, 0.5}, {100, 1.0}, {200, 1.0}, {255, 0.5}};
    c.sharpness_score = {{0, 0.0}, {100, 1.0}};
    c.environment_weight = {{0, 0.2}, {100, 0.6}};
    return c;
}

q::QualityFeatures hand_features() {
    q::QualityFeatures f;
    f.deviation_deg = 10;   // -> 0.8
    f.integrity = 0.95;     // -> 0.75
    f.density = 0.02;       // -> w1 0.6; density quality 0.6
    f.entropy = 6.0;        // -> -0.125
    f.exposure = 50;        // -> 0.75
    f.sharpness = 80;       // -> 0.8   (1 + c) = 0.6
    f.ambient = 50;         // -> W1 0.4
    return f;
}

}  // namespace

TEST(QualityFeatures, SharpnessSeparatesSharpFromBlurred) {
    const cv::Mat sharp = textured_chip();
    cv::Mat blurred;
    cv::GaussianBlur(sharp, blurred, cv::Size(0, 0), 3.0);
    const double vs = q::laplacian_variance(sharp), vb = q::laplacian_variance(blurred);
    EXPECT_GT(vs, 20 * vb) << "sharp " << vs << " blurred " << vb;
    EXPECT_DOUBLE_EQ(q::laplacian_variance(cv::Mat(50, 50, CV_8UC3, cv::Scalar::all(90))), 0.0);
}

TEST(QualityFeatures, EntropyKnownAnswers) {
    EXPECT_DOUBLE_EQ(q::image_entropy(cv::Mat(40, 40, CV_8UC1, cv::Scalar(7))), 0.0);
    cv::Mat halves(40, 40, CV_8UC1, cv::Scalar(0));
    halves(cv::Rect(0, 0, 20, 40)).setTo(255);
    EXPECT_NEAR(q::image_entropy(halves), 1.0, 1e-12);
    cv::Mat ramp(256, 256, CV_8UC1);
    for (int y = 0; y < 256; ++y)
        for (int x = 0; x < 256; ++x) ramp.at<unsigned char>(y, x) = static_cast<unsigned char>(x);
    EXPECT_NEAR(q::image_entropy(ramp), 8.0, 1e-12);
}

TEST(QualityFeatures, IntegrityOfAFaceCutByTheFrameEdge) {
    const cv::Size frame(640, 480);
    std::array<cv::Point2f, 68> lm;
    for (int i = 0; i < 68; ++i) lm[i] = cv::Point2f(110.0f + (i % 10) * 8.0f, 110.0f + (i / 10) * 10.0f);
    EXPECT_DOUBLE_EQ(q::face_integrity({100, 100, 100, 100}, lm, frame), 1.0);
    // Shift the face so the left half of its box and of its landmarks leaves the frame.
    std::array<cv::Point2f, 68> cut;
    for (int i = 0; i < 68; ++i) cut[i] = cv::Point2f((i % 2) ? 10.0f : -10.0f, 200.0f);
    EXPECT_DOUBLE_EQ(q::face_integrity({-50, 150, 100, 100}, cut, frame), 0.5);
    // Box fully inside but 17 landmarks (one quarter) outside the bottom edge: min of the two.
    for (int i = 0; i < 17; ++i) lm[i].y = 500.0f;
    EXPECT_DOUBLE_EQ(q::face_integrity({100, 100, 100, 100}, lm, frame), 0.75);
    EXPECT_DOUBLE_EQ(q::face_integrity({0, 0, 0, 0}, lm, frame), 0.0);
}

TEST(QualityFeatures, PoseOfFrontalAndTurnedLandmarks) {
    const cv::Size frame(640, 480);
    const auto frontal = q::estimate_pose(projected_landmarks(0, 0), frame);
    EXPECT_LT(frontal.deviation_deg, 1.0);
    EXPECT_NEAR(frontal.yaw_deg, 0.0, 1.0);
    const auto turned = q::estimate_pose(projected_landmarks(30, 0), frame);
    EXPECT_NEAR(turned.deviation_deg, 30.0, 1.0);
    EXPECT_NEAR(std::abs(turned.yaw_deg), 30.0, 1.0);
    EXPECT_NEAR(turned.pitch_deg, 0.0, 1.0);
    const auto tilted = q::estimate_pose(projected_landmarks(0, 20), frame);
    EXPECT_NEAR(tilted.deviation_deg, 20.0, 1.0);
    EXPECT_NEAR(std::abs(tilted.pitch_deg), 20.0, 1.0);
    EXPECT_THROW(q::estimate_pose(projected_landmarks(0, 0), cv::Size(0, 0)), std::invalid_argument);
}

TEST(QualityFeatures, FeaturePointDensity) {
    EXPECT_DOUBLE_EQ(q::feature_point_density(cv::Mat(150, 150, CV_8UC3, cv::Scalar::all(128))), 0.0);
    const double textured = q::feature_point_density(textured_chip());
    EXPECT_GT(textured, 0.005);
    cv::Mat blurred;
    cv::GaussianBlur(textured_chip(), blurred, cv::Size(0, 0), 4.0);
    EXPECT_LT(q::feature_point_density(blurred), textured);
}

TEST(QualityFeatures, ComputeFeaturesOfAnObservation) {
    faceadapt::ingest::FaceObservation obs;
    obs.camera = "cam1";
    obs.frame_size = {640, 480};
    obs.bbox = {200, 100, 200, 200};
    obs.landmarks = projected_landmarks(0, 0);
    obs.chip = textured_chip();
    obs.frame_brightness = 111.0;
    const auto f = q::compute_features(obs);
    EXPECT_LT(f.deviation_deg, 1.0);
    EXPECT_DOUBLE_EQ(f.integrity, 1.0);
    EXPECT_DOUBLE_EQ(f.landmark_density, 68.0 / (200.0 * 200.0));
    EXPECT_DOUBLE_EQ(f.ambient, 111.0);
    EXPECT_GT(f.sharpness, 50.0);
    EXPECT_GT(f.entropy, 1.0);
    EXPECT_GT(f.exposure, 60.0);
    EXPECT_LT(f.exposure, 200.0);
    // The same face blurred scores lower with the default tables.
    faceadapt::ingest::FaceObservation blurred = obs;
    blurred.chip = cv::Mat();  // a copy shares pixels: blur into a new buffer
    cv::GaussianBlur(obs.chip, blurred.chip, cv::Size(0, 0), 4.0);
    const q::QualityScorer scorer;
    EXPECT_LT(scorer.score(blurred).normalized, scorer.score(obs).normalized);
    obs.chip = cv::Mat();
    EXPECT_THROW(q::compute_features(obs), std::invalid_argument);
    obs.chip = cv::Mat(150, 150, CV_32FC3, cv::Scalar::all(0));
    EXPECT_THROW(q::compute_features(obs), std::invalid_argument);
}

TEST(QualityScoring, PiecewiseLinearTables) {
    const Table t = {{0, 1.0}, {10, 3.0}, {20, 2.0}};
    EXPECT_DOUBLE_EQ(q::evaluate(t, -5), 1.0);
    EXPECT_DOUBLE_EQ(q::evaluate(t, 5), 2.0);
    EXPECT_DOUBLE_EQ(q::evaluate(t, 10), 3.0);
    EXPECT_DOUBLE_EQ(q::evaluate(t, 15), 2.5);
    EXPECT_DOUBLE_EQ(q::evaluate(t, 99), 2.0);
    EXPECT_DOUBLE_EQ(q::evaluate({}, 3, 0.7), 0.7);
    EXPECT_DOUBLE_EQ(q::evaluate({{4, 9.0}}, 3), 9.0);
}

TEST(QualityScoring, UnitFormHandComputed) {
    const q::QualityScorer scorer(hand_config());
    const auto s = scorer.score(hand_features());
    EXPECT_FALSE(s.gated);
    EXPECT_NEAR(s.deviation_value, 0.8, 1e-12);                 // step 122
    EXPECT_NEAR(s.integrity_value, 0.75, 1e-12);                // step 123
    EXPECT_NEAR(s.w1, 0.6, 1e-12);                              // step 124
    EXPECT_NEAR(s.w2, 0.4, 1e-12);
    EXPECT_NEAR(s.first_reference, 0.6 * 0.8 + 0.4 * 0.75, 1e-12);  // step 125: 0.78
    EXPECT_NEAR(s.density_quality, 0.6, 1e-12);                 // step 126
    EXPECT_NEAR(s.entropy_deviation, -0.125, 1e-12);            // step 127
    EXPECT_NEAR(s.exposure_factor, 0.75, 1e-12);                // step 129
    EXPECT_NEAR(s.sharpness_factor, 0.8, 1e-12);
    EXPECT_NEAR(s.coefficient, -0.4, 1e-12);
    EXPECT_NEAR(s.second_reference, 0.6 * (1 - 0.125) * (1 - 0.4), 1e-12);  // step 130: 0.315
    EXPECT_NEAR(s.W1, 0.4, 1e-12);                              // step 132
    EXPECT_NEAR(s.score, 0.4 * 0.78 + 0.6 * 0.315, 1e-12);     // step 133: 0.501
    EXPECT_NEAR(s.normalized, 0.501, 1e-12);
    EXPECT_TRUE(s.accepted);
    EXPECT_TRUE(s.reason.empty());
}

TEST(QualityScoring, PercentFormHandComputed) {
    auto config = hand_config();
    config.coefficient_form = "percent";
    const q::QualityScorer scorer(config);
    EXPECT_DOUBLE_EQ(scorer.scale(), 100.0);
    const auto s = scorer.score(hand_features());
    EXPECT_NEAR(s.first_reference, 78.0, 1e-9);
    EXPECT_NEAR(s.density_quality, 60.0, 1e-9);
    EXPECT_NEAR(s.second_reference, (60.0 - 12.5) * (1 - 0.4), 1e-9);  // (q + deviation)(1 + c) = 28.5
    EXPECT_NEAR(s.score, 0.4 * 78.0 + 0.6 * 28.5, 1e-9);             // 48.3
    EXPECT_NEAR(s.normalized, 0.483, 1e-9);
    EXPECT_FALSE(s.accepted);  // the additive form penalises the entropy deviation more
    EXPECT_NE(s.reason.find("threshold"), std::string::npos) << s.reason;
}

TEST(QualityScoring, GateOnDeviationAndIntegrity) {
    const q::QualityScorer scorer(hand_config());
    auto f = hand_features();
    f.deviation_deg = 50;
    auto s = scorer.score(f);
    EXPECT_TRUE(s.gated);
    EXPECT_FALSE(s.accepted);
    EXPECT_EQ(s.score, 0.0);
    EXPECT_NE(s.reason.find("pose deviation"), std::string::npos) << s.reason;
    f = hand_features();
    f.integrity = 0.8;
    s = scorer.score(f);
    EXPECT_TRUE(s.gated);
    EXPECT_NE(s.reason.find("integrity"), std::string::npos) << s.reason;
    f.integrity = std::nan("");
    EXPECT_TRUE(scorer.score(f).gated);
}

TEST(QualityScoring, BadFormIsRefused) {
    auto config = hand_config();
    config.coefficient_form = "permille";
    EXPECT_THROW(q::QualityScorer{config}, std::invalid_argument);
}

TEST(QualityScoring, JsonRoundTrip) {
    const q::QualityScorer scorer(hand_config());
    const auto s = scorer.score(hand_features());
    const auto back = q::quality_from_json(q::to_json(s));
    EXPECT_DOUBLE_EQ(back.score, s.score);
    EXPECT_DOUBLE_EQ(back.second_reference, s.second_reference);
    EXPECT_DOUBLE_EQ(back.features.entropy, 6.0);
    EXPECT_EQ(back.accepted, s.accepted);
    EXPECT_THROW(q::quality_from_json("{not json"), std::invalid_argument);
    EXPECT_THROW(q::quality_from_json("{}"), std::invalid_argument);
}

TEST(QualityScoring, TunedTablesAreAValidConfigAndPreferWellExposedChips) {
    // The defaults (tuned on Yale B, docs/quality.md) survive the config round trip (valid [quality] section).
    faceadapt::config::Config config;
    config.quality = faceadapt::config::QualityConfig{};
    const auto reparsed = faceadapt::config::parse_config(faceadapt::config::to_toml(config), "tuned.toml");
    EXPECT_EQ(reparsed.quality.exposure_coefficient, config.quality.exposure_coefficient);
    EXPECT_EQ(reparsed.quality.min_integrity, config.quality.min_integrity);
    // The same frontal face, well exposed in a normal scene vs dark in a dark scene.
    faceadapt::ingest::FaceObservation bright;
    bright.frame_size = {640, 480};
    bright.bbox = {200, 100, 200, 200};
    bright.landmarks = projected_landmarks(0, 0);
    bright.chip = textured_chip();
    bright.frame_brightness = 120;
    faceadapt::ingest::FaceObservation dark = bright;
    dark.chip = cv::Mat();
    bright.chip.convertTo(dark.chip, CV_8UC3, 0.12);
    dark.frame_brightness = 15;
    const q::QualityScorer scorer(faceadapt::config::QualityConfig{});
    const auto good = scorer.score(bright), bad = scorer.score(dark);
    EXPECT_TRUE(good.accepted) << good.reason;
    EXPECT_FALSE(bad.accepted);
    EXPECT_LT(bad.exposure_factor, good.exposure_factor);
    EXPECT_LT(bad.W1, good.W1);  // in the dark the image part weighs more (step 132)
    EXPECT_NE(bad.reason.find("exposure"), std::string::npos) << bad.reason;
}
