// Daemon: faceadaptd, the long-running service that wires the modules together.
//
// WHAT THIS REPRESENTS
//   cameras (one ingest::FacePipeline per enabled camera, so one can be added, removed or
//   changed without touching the others) -> quality::QualityScorer -> quality::CropStore;
//   a scheduler (scheduler.hpp) that starts a TrainingCycle (training_cycle.hpp: prepare ->
//   train -> evaluate -> gate -> release, its children `faceadapt train|evaluate` supervised
//   here with the [learner] limits) on the learner thread; the model registry
//   (model_registry.hpp) and the release to the doors (release.hpp) it uses; the metrics
//   endpoint (metrics_server.hpp) and sd_notify (sd_notify.hpp). Daemon keeps the cameras, the
//   reload, the metrics and the main loop; torch never runs in this process.
//   Cycle bookkeeping lives in <state_dir>/models/cycle.json (the cycle in progress, saved after
//   each step: resumed at that step after a crash or a stop) and scheduler.json (when the last
//   cycle ended, the last crop id it saw).
//
//   Signals (run() waits for them with sigtimedwait; block_signals() must have blocked them in
//   every thread first):
//     SIGTERM / SIGINT: STOPPING=1; cameras stopped (their workers finish the frame in hand,
//       so store writes complete); a training child gets SIGTERM (it checkpoints) and SIGKILL
//       after stop_grace; run() returns 0 within ~10 s.
//     SIGHUP: the config file is loaded again. Invalid: every issue is logged, the running
//       config is kept. Valid: cameras added, removed or changed are started, stopped or
//       restarted; unchanged cameras keep running; [quality], [learner], [gate], [publish],
//       [mqtt] apply from then on; site.state_dir and [metrics] need a restart (logged).
// THREAD SAFETY
//   Construct and run() on one thread; request_stop()/request_reload() from any thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>

#include "faceadapt/config/config.hpp"

namespace faceadapt::daemon {

class MetricsRegistry;

struct DaemonOptions {
    std::filesystem::path config_file;
    // The `faceadapt` executable run as the training child. Empty: [learner] trainer, else next
    // to faceadaptd, then ../tools/faceadapt (build tree), then `faceadapt` on PATH. A bare name
    // is looked up on PATH. The Daemon constructor throws std::runtime_error naming the path
    // and the errno text when the result is not an executable regular file.
    std::filesystem::path trainer;
    std::chrono::milliseconds tick{500};       // main loop period (watchdog, metrics, scheduler)
    std::chrono::milliseconds stop_grace{7000};  // SIGTERM -> SIGKILL for the training child
};

class Daemon {
public:
    // Loads the config. throws config::ConfigError (every issue) or std::runtime_error naming
    // the state folder when it cannot be created.
    explicit Daemon(DaemonOptions options);
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    // Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (call in main() before any other
    // thread starts, so that every thread inherits the mask and run() receives them).
    static void block_signals();

    // Starts everything, serves until stopped. Returns the process exit code (0: clean stop,
    // 1: could not start, e.g. the metrics port is taken).
    int run();
    void request_stop();
    void request_reload();

    const MetricsRegistry& metrics() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace faceadapt::daemon
