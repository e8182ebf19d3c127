// FaceObservation: one detected, landmarked and aligned face from one camera frame.
//
// WHAT THIS REPRESENTS
//   The hand-off from ingest's face stage to quality scoring and the crop store.
//   `chip` is the 150x150 RGB (8UC3, R,G,B channel order) chip extracted with
//   dlib::get_face_chip_details(shape, 150, 0.25), the alignment the source model was trained on.
//   Coordinates (bbox, landmarks) are in full-resolution frame pixels.
// THREAD SAFETY
//   A value type; cv::Mat shares pixel data on copy, so clone() the chip before mutating it.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

#include <opencv2/core.hpp>

namespace faceadapt::ingest {

struct FaceObservation {
    std::string camera;                                  // camera id from the config
    std::chrono::system_clock::time_point timestamp;     // frame wall-clock time
    std::int64_t track_id = -1;                          // per-camera IoU track id
    cv::Rect bbox;                                       // detector box in frame pixels
    std::array<cv::Point2f, 68> landmarks{};             // iBUG 68-point layout, frame pixels
    cv::Mat chip;                                        // 150x150 CV_8UC3, RGB
    cv::Size frame_size;                                 // full frame size
    double frame_brightness = 0.0;                       // mean luma of the frame, 0..255
    double frame_contrast = 0.0;                         // stddev of luma of the frame
};

}  // namespace faceadapt::ingest
