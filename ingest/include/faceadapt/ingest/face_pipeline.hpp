// FacePipeline: cameras -> bounded per-camera queues -> a pool of face workers -> observations.
//
// WHAT THIS REPRESENTS
//   One CameraSource per enabled camera. Each sampled Frame goes into that camera's FrameQueue
//   (capacity DetectConfig::queue_depth; when full the OLDEST frame is dropped and counted).
//   A pool of workers (DetectConfig::workers, 0 = one per core) takes frames from the queues
//   round-robin and runs the camera's FrameProcessor (normally its ingest::FaceStage, see
//   face_stage_factory()); a camera's frames are processed by one worker at a time, in order,
//   so per-camera state (tracker, motion model) needs no lock. Every FaceObservation produced
//   goes to the observation callback.
// THREAD SAFETY
//   start(), stop() and stats() may be called from any thread. The observation callback is
//   called from the worker threads, for several cameras at once: it must be thread-safe.
//   Processors are called for one camera by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "faceadapt/config/config.hpp"
#include "faceadapt/ingest/camera_source.hpp"
#include "faceadapt/ingest/face_observation.hpp"
#include "faceadapt/ingest/frame.hpp"

namespace faceadapt::ingest {

class LandmarkModel;  // face_landmarks.hpp

// Turns one camera's frames into observations. Called by one thread at a time per camera;
// may throw (the pipeline counts and logs the error and carries on with the next frame).
using FrameProcessor = std::function<std::vector<FaceObservation>(const Frame&)>;
// Makes the processor of one camera (called once per camera by the FacePipeline constructor).
using ProcessorFactory = std::function<FrameProcessor(const config::CameraConfig&)>;

// The production processor: one ingest::FaceStage per camera, with the camera's min_face_px
// (or detect.min_face_px when the camera leaves it 0).
// throws (when a processor is made) what FaceStage throws, e.g. a missing landmark model.
// Copies of the returned factory share one landmark model (~100 MB), loaded on first use.
ProcessorFactory face_stage_factory(const config::DetectConfig& detect);
// Same, with a landmark model already loaded (to share it between several FacePipelines).
// throws std::invalid_argument when `landmarks` is null.
ProcessorFactory face_stage_factory(const config::DetectConfig& detect, std::shared_ptr<const LandmarkModel> landmarks);

struct CameraPipelineStats {
    std::string camera;
    CameraStats source;               // state, sampled/decoded frames, reconnects, last error
    std::uint64_t processed = 0;      // frames through the processor
    std::uint64_t faces = 0;          // observations handed to the callback
    std::uint64_t drops = 0;          // frames evicted from the full queue, or left at stop()
    std::uint64_t stage_errors = 0;   // frames whose processor threw
    std::size_t queued = 0;           // frames waiting now
    double stage_seconds = 0.0;       // wall time spent in the processor
};

class FacePipeline {
public:
    using ObservationCallback = std::function<void(FaceObservation&&)>;

    // Makes a source and a processor per enabled camera (nothing runs until start()).
    // requires: camera ids unique.
    // throws:   std::invalid_argument naming a camera (bad URL, duplicate id), or what the
    //           factory throws.
    FacePipeline(std::vector<config::CameraConfig> cameras, const config::DetectConfig& detect,
                 ObservationCallback on_observation, ProcessorFactory factory);
    ~FacePipeline();  // stop()s
    FacePipeline(const FacePipeline&) = delete;
    FacePipeline& operator=(const FacePipeline&) = delete;

    // Starts the workers, then the cameras. Idempotent.
    void start();
    // Stops the cameras (all asked at once, then joined), lets each worker finish the frame it
    // holds, discards queued frames (counted as drops) and joins the workers. No callback runs
    // after it returns. Idempotent.
    void stop();

    std::size_t worker_count() const;
    std::vector<CameraPipelineStats> stats() const;   // in configuration order

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace faceadapt::ingest
