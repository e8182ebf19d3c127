// Private to ingest: dlib's HOG frontal face detector behind OpenCV types.
#pragma once

#include <string_view>
#include <vector>

#include <opencv2/core.hpp>

#include <dlib/image_processing/frontal_face_detector.h>

namespace faceadapt::ingest::detail {

struct ScoredBox {
    cv::Rect box;        // image pixels
    double score = 0.0;  // HOG detector confidence
};

// Throws std::invalid_argument naming `who` when `image` is empty or neither 8UC1 nor 8UC3.
void require_grey_or_bgr(const cv::Mat& image, std::string_view who);

// WHAT THIS REPRESENTS
//   One dlib frontal_face_detector (HOG, 80x80 window, 6/5 pyramid).
// THREAD SAFETY
//   Not thread-safe (dlib's detector keeps scratch state): one per thread / camera.
class HogFaceDetector {
public:
    HogFaceDetector();
    // requires: image CV_8UC1 or CV_8UC3 (BGR); scale > 0.
    // ensures:  runs the detector on `image` resized by `scale` (HOG finds faces of ~80 px at
    //           the scale it runs on, so scale = 80 / smallest wanted face side) and returns
    //           boxes mapped back to `image` pixels.
    std::vector<ScoredBox> detect(const cv::Mat& image, double scale = 1.0);

private:
    dlib::frontal_face_detector detector_;
};

// Converts a dlib rectangle to cv::Rect and back.
cv::Rect to_cv(const dlib::rectangle& r);
dlib::rectangle to_dlib(const cv::Rect& r);

}  // namespace faceadapt::ingest::detail
