// IouTracker: per-camera face tracks from per-frame detection boxes.
//
// WHAT THIS REPRESENTS
//   Greedy IoU association of one frame's boxes with the live tracks of one camera. Each track
//   predicts its box at the frame time from its last matches (constant velocity). Boxes are
//   compared by buffered IoU: both boxes grown by `buffer` of their side on every side first,
//   so that a face moving most of its width between two frames (a walker crossing near the
//   camera at 5 fps) still overlaps its track before the track has a velocity. A box matches
//   the track with the highest score >= iou_threshold (best pairs first); an unmatched box
//   starts a new track with the next id; a track not matched for longer than max_age is dropped.
//   Track ids start at 1 and are never reused within one tracker.
// THREAD SAFETY
//   Not thread-safe: one tracker per camera, used by one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include <opencv2/core.hpp>

namespace faceadapt::ingest {

// Intersection over union of two boxes; 0 when either is empty.
double iou(const cv::Rect& a, const cv::Rect& b);
// IoU of the two boxes after growing each by `buffer` of its width/height on every side.
double buffered_iou(const cv::Rect& a, const cv::Rect& b, double buffer);

struct Track {
    std::int64_t id = 0;
    cv::Rect box;                                    // last matched box
    std::chrono::system_clock::time_point last_seen; // time of the last match
    cv::Point2d velocity{0, 0};                      // box centre, pixels per second
    int hits = 0;                                    // frames matched
};

class IouTracker {
public:
    using clock = std::chrono::system_clock;

    // requires: 0 < iou_threshold < 1, max_age > 0, buffer >= 0. throws std::invalid_argument
    //           otherwise.
    IouTracker(double iou_threshold, std::chrono::duration<double> max_age, double buffer = 0.5);

    // requires: frame times do not go backwards (an earlier time is treated as the last one).
    // ensures:  returns one track id per box, in the order of `boxes`; no id twice.
    //           Tracks unmatched for longer than max_age at `time` are removed.
    std::vector<std::int64_t> update(const std::vector<cv::Rect>& boxes, clock::time_point time);

    // Where each live track's box is expected at `time` (constant-velocity prediction).
    std::vector<cv::Rect> predicted_boxes(clock::time_point time) const;

    const std::vector<Track>& tracks() const { return tracks_; }

    // Ends every live track (the camera's stream started again: no face of the new stream
    // continues a track of the old one); the ids go on from where they were, never reused.
    void end_all_tracks() { tracks_.clear(); }

private:
    cv::Rect predict(const Track& track, clock::time_point time) const;

    double iou_threshold_;
    double buffer_;
    std::chrono::duration<double> max_age_;
    std::vector<Track> tracks_;
    std::int64_t next_id_ = 1;
    clock::time_point last_time_{};
};

}  // namespace faceadapt::ingest
