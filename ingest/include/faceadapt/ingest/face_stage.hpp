// FaceStage: one camera's frames -> FaceObservations (detect, landmark, align, track).
//
// WHAT THIS REPRESENTS
//   The per-camera state of the face stage: a dlib HOG detector, the MOG2 motion gate
//   (MotionRegions), the IoU tracker, and a (shared) 68-point landmark model. process() runs
//   HOG only inside the motion regions (every size; the head bands of people whose face was
//   matched on the previous frame are left to their track regions) and the regions around live
//   tracks (sizes within MotionOptions::track_scale of the track's; a track unmatched for longer
//   than MotionOptions::track_grace_s only on motion frames), or on the whole frame when
//   DetectConfig::motion_gating is false, at the scale the smallest wanted face needs (HOG finds
//   ~80 px faces at the scale it runs on: the frame is resized by 80 / min_face_px). Gated, the
//   regions are searched on the whole frame's own HOG pyramid (ingest/src/region_hog.hpp), so a
//   face found there is the face full-frame HOG finds, box and score;
//   fits landmarks at full resolution, extracts the 150x150 RGB chip of
//   get_face_chip_details(shape, 150, 0.25) and gives each face a per-camera track id.
// THREAD SAFETY
//   Not thread-safe: one FaceStage per camera, whose frames one thread at a time processes
//   (the worker pool serialises a camera's frames). The LandmarkModel may be shared by all.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "faceadapt/config/config.hpp"
#include "faceadapt/ingest/face_observation.hpp"
#include "faceadapt/ingest/motion_regions.hpp"

namespace faceadapt::ingest {

class LandmarkModel;
class IouTracker;

// What the last process() call did (for metrics and the benchmark).
struct FaceStageStats {
    std::size_t regions = 0;       // crops HOG ran on
    double coverage = 0.0;         // fraction of the frame those crops cover
    std::size_t faces = 0;         // observations returned
    std::vector<cv::Rect> crops;   // the crops, in frame pixels
};

class FaceStage {
public:
    // min_face_px: smallest face side wanted in frame pixels; 0 uses detect.min_face_px.
    // Loads its own landmark model from detect.landmarks_model.
    // throws: std::runtime_error naming the landmark model file when it cannot be read;
    //         std::invalid_argument when the effective min_face_px < 1.
    FaceStage(std::string camera_id, const config::DetectConfig& detect, int min_face_px);
    // Same, sharing an already loaded landmark model (load it once for all cameras).
    // throws std::invalid_argument when `landmarks` is null.
    FaceStage(std::string camera_id, const config::DetectConfig& detect, int min_face_px,
              std::shared_ptr<const LandmarkModel> landmarks);
    // Same, with tuned motion-gate options (their min_face_px is replaced by this stage's).
    FaceStage(std::string camera_id, const config::DetectConfig& detect, int min_face_px,
              std::shared_ptr<const LandmarkModel> landmarks, MotionOptions motion);
    ~FaceStage();
    FaceStage(FaceStage&&) noexcept;
    FaceStage& operator=(FaceStage&&) noexcept;

    // requires: bgr_frame is CV_8UC3 BGR (CV_8UC1 grey accepted too) at full resolution.
    // ensures:  one observation per face found whose box side >= min_face_px, each with camera,
    //           timestamp = ts, track_id (>= 1), bbox and landmarks in frame pixels, the chip,
    //           frame size and the frame's luma mean/stddev; sorted by track id.
    // throws:   std::invalid_argument naming the camera on an empty frame or another type.
    std::vector<FaceObservation> process(const cv::Mat& bgr_frame, std::chrono::system_clock::time_point ts);

    // The camera's stream started again (a reconnection): every live track ends, so that no
    // track spans two streams (issue 18); track ids go on, never reused.
    void new_stream();

    const std::string& camera() const;
    int min_face_px() const;
    const FaceStageStats& last_stats() const;
    const IouTracker& tracker() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace faceadapt::ingest
