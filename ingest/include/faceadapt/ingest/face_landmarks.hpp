// LandmarkModel and extract_face_chip: dlib's 68-point landmark predictor and the chip
// alignment the source model was trained on, behind OpenCV types.
//
// WHAT THIS REPRESENTS
//   LandmarkModel is the loaded shape_predictor_68_face_landmarks.dat (~100 MB in memory).
//   Load it once and share it (std::shared_ptr<const LandmarkModel>) between the FaceAligner
//   and the per-camera FaceStages.
// THREAD SAFETY
//   LandmarkModel::fit is const and safe to call from many threads at once (dlib documents
//   shape_predictor so). extract_face_chip is a pure function.
#pragma once

#include <array>
#include <filesystem>
#include <memory>

#include <opencv2/core.hpp>

namespace faceadapt::ingest {

using Landmarks68 = std::array<cv::Point2f, 68>;  // iBUG 68-point layout

class LandmarkModel {
public:
    // /usr/share/dlib/shape_predictor_68_face_landmarks.dat
    static std::filesystem::path default_path();

    // throws std::runtime_error naming `file` when it is missing, unreadable or not a
    //        68-point dlib shape predictor.
    explicit LandmarkModel(const std::filesystem::path& file = default_path());
    ~LandmarkModel();
    LandmarkModel(LandmarkModel&&) noexcept;
    LandmarkModel& operator=(LandmarkModel&&) noexcept;

    // requires: image is CV_8UC1 (grey) or CV_8UC3 (BGR); box in image pixels (it may reach
    //           outside the image).
    // ensures:  the 68 landmarks in image pixels.
    // throws:   std::invalid_argument on an empty image or another pixel type.
    Landmarks68 fit(const cv::Mat& image, const cv::Rect& box) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// requires: image is CV_8UC1 (grey) or CV_8UC3 (BGR); landmarks in image pixels.
// ensures:  returns the 150x150 CV_8UC3 chip in R,G,B order, extracted exactly as
//           dlib::extract_image_chip(img, dlib::get_face_chip_details(shape, 150, 0.25));
//           parts outside the image are black.
// throws:   std::invalid_argument on an empty image or another pixel type.
cv::Mat extract_face_chip(const cv::Mat& image, const Landmarks68& landmarks);

inline constexpr int kChipSize = 150;
inline constexpr double kChipPadding = 0.25;

}  // namespace faceadapt::ingest
