// Frame: one decoded, sampled camera picture on its way from a CameraSource to the face stage.
//
// WHAT THIS REPRESENTS
//   A full-resolution BGR picture (CV_8UC3) from camera `camera`, taken at wall-clock
//   `timestamp`; `sequence` counts the frames that camera delivered since its source started.
// THREAD SAFETY
//   A value type; cv::Mat shares pixel data on copy. A CameraSource hands each Frame over with
//   its own pixel buffer (never a view of a GStreamer buffer), so it may outlive the pipeline.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <opencv2/core.hpp>

namespace faceadapt::ingest {

struct Frame {
    std::string camera;                                  // camera id from the config
    std::chrono::system_clock::time_point timestamp;     // when the frame was sampled
    std::uint64_t sequence = 0;                          // per-camera frame number, from 0
    std::uint64_t stream = 0;                            // the source's connection it came from (+1 at each)
    cv::Mat bgr;                                         // CV_8UC3, B,G,R channel order
};

}  // namespace faceadapt::ingest
