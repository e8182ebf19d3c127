// FrameSnapshots: each camera's latest full picture as a small JPEG in memory (the console's
// camera snapshot).
//
// WHAT THIS REPRESENTS
//   offer() sees every frame a camera's worker takes (faceadaptd wraps the camera's
//   FrameProcessor with it); at most once per Options::interval per camera it keeps that frame,
//   downscaled so that neither side is over Options::max_side (aspect kept), as a JPEG of
//   Options::quality. latest() hands a copy of the camera's kept snapshot forward. Memory: one
//   JPEG per camera (a 640 x 360 picture is ~40 KB); forget() drops a camera's. Nothing is
//   written to disk.
// THREAD SAFETY
//   Every member may be called from any thread (offer from several workers at once).
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "faceadapt/ingest/frame.hpp"

namespace faceadapt::ingest {

struct FrameSnapshot {
    std::string jpeg;                                  // JPEG bytes
    std::chrono::system_clock::time_point timestamp;  // the frame's
    int width = 0, height = 0;                         // of the JPEG
};

class FrameSnapshots {
public:
    struct Options {
        std::chrono::milliseconds interval{2000};
        int max_side = 640;
        int quality = 80;
    };
    FrameSnapshots() : FrameSnapshots(Options{}) {}
    // requires: interval >= 0, max_side >= 16, quality in [1, 100] (else std::invalid_argument).
    explicit FrameSnapshots(Options options);

    // Keeps `frame` as its camera's snapshot when the last one is at least `interval` old (by
    // the frames' own timestamps, or the camera has none). Returns whether it did. A frame that
    // is empty, not CV_8UC3, or fails to encode is skipped (false).
    bool offer(const Frame& frame);
    std::optional<FrameSnapshot> latest(const std::string& camera) const;
    void forget(const std::string& camera);

private:
    Options options_;
    mutable std::mutex mutex_;
    std::map<std::string, FrameSnapshot> latest_;  // guarded by mutex_
};

}  // namespace faceadapt::ingest
