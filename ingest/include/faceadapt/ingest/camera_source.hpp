// CameraSource: one camera's GStreamer pipeline, kept alive through faults, delivering
// sampled BGR frames.
//
// WHAT THIS REPRESENTS
//   One configured camera (config::CameraConfig). For rtsp:// and rtsps:// URLs the pipeline is
//   rtspsrc (protocols from `transport`, `latency_ms`, user-id/user-pw from username/password)
//   ! decodebin ! videoconvert ! appsink; for file:// URLs uridecodebin ! videoconvert ! appsink
//   (files loop: EOS seeks back to the start, and play at their own frame rate).
//   The appsink (drop=true, max-buffers=1, sync=false) takes the decoder's own raw format;
//   only the frames sampled at `detect_fps` are converted to BGR and passed to the callback.
//
//   Every camera runs its own GMainLoop thread with the bus watch, a stall watchdog and the
//   reconnect timer, so one camera's faults never slow another. States:
//     connecting  -> pipeline built and set PLAYING, no frame yet
//     streaming   -> frames arrive
//     backing_off -> after an ERROR, an EOS from a live camera, a stall (no frame for
//                    `stall_timeout_s`, also while connecting) or a failed start: the pipeline
//                    is torn down and rebuilt after backoff_initial_s * 2^k (capped at
//                    backoff_max_s, +-20% jitter), forever; k returns to 0 once frames flow.
//     stopped     -> after stop()
//   Each change of condition is logged once (not once per retry) with the camera id and the
//   URL with credentials masked (config::mask_url_credentials); passwords never reach logs.
// THREAD SAFETY
//   start(), stop() and stats() may be called from any thread. The frame callback runs on a
//   GStreamer streaming thread of this camera; it must not block (push into a queue and return)
//   and must not call stop().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "faceadapt/config/config.hpp"
#include "faceadapt/ingest/frame.hpp"

namespace faceadapt::ingest {

enum class CameraState { connecting, streaming, backing_off, stopped };

// "connecting", "streaming", "backing_off", "stopped".
const char* to_string(CameraState state);

struct CameraStats {
    CameraState state = CameraState::stopped;
    std::uint64_t frames = 0;          // frames sampled and handed to the callback
    std::uint64_t decoded = 0;         // frames that reached the appsink (before sampling)
    std::uint64_t reconnects = 0;      // times the camera streamed again after a fault
    std::uint64_t attempts = 0;        // pipelines built (first connection and every retry)
    std::uint64_t faults = 0;          // errors, stalls, unexpected EOS, failed starts
    std::string last_error;            // text of the latest fault ("" before any)
    double backoff_s = 0.0;            // delay of the current / last backoff step
};

class CameraSource {
public:
    using FrameCallback = std::function<void(Frame&&)>;

    // requires: camera.url is rtsp://, rtsps:// or file://; camera.detect_fps > 0.
    // throws:   std::invalid_argument naming the camera for an unsupported URL scheme,
    //           std::runtime_error when GStreamer cannot be initialised.
    // ensures:  stats().state == stopped; nothing runs until start().
    CameraSource(config::CameraConfig camera, FrameCallback on_frame);
    ~CameraSource();  // stop()s
    CameraSource(const CameraSource&) = delete;
    CameraSource& operator=(const CameraSource&) = delete;

    // Starts the camera thread; the first connection attempt begins at once. Idempotent.
    void start();
    // Asks the camera to stop without waiting (stop() then finishes quickly).
    void request_stop();
    // Stops: tears down the pipeline and joins the camera thread; no callback runs after it
    // returns. Idempotent. ensures: stats().state == stopped.
    void stop();

    const std::string& id() const;
    CameraStats stats() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// The delay before retry number `failures` (1 = first retry): initial * 2^(failures-1),
// capped at max, times a uniform factor in [1-jitter, 1+jitter] drawn from `unit_random`
// (a value in [0,1)). Exposed for tests.
double backoff_delay_s(double initial_s, double max_s, std::uint64_t failures, double unit_random,
                       double jitter = 0.2);

}  // namespace faceadapt::ingest
