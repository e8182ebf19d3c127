// FacePipeline: see face_pipeline.hpp. One mutex guards every queue and slot flag: a camera
// pushes a handful of frames per second, so contention is negligible, and a single condition
// variable lets any idle worker take any ready camera.
#include "faceadapt/ingest/face_pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include <spdlog/spdlog.h>

#include "faceadapt/ingest/frame_queue.hpp"

namespace faceadapt::ingest {

struct FacePipeline::Impl {
    struct Slot {
        config::CameraConfig camera;
        FrameProcessor processor;
        FrameQueue queue;
        std::unique_ptr<CameraSource> source;
        bool busy = false;              // a worker holds one of its frames
        std::uint64_t processed = 0, faces = 0, stage_errors = 0, dropped_at_stop = 0;
        double stage_seconds = 0.0;
        Slot(config::CameraConfig c, FrameProcessor p, std::size_t depth)
            : camera(std::move(c)), processor(std::move(p)), queue(depth) {}
    };

    ObservationCallback on_observation;
    std::vector<std::unique_ptr<Slot>> slots;
    std::size_t workers_wanted = 1;

    mutable std::mutex mutex;
    std::condition_variable ready;
    bool stopping = false;
    bool started = false;
    std::size_t next_slot = 0;          // round-robin start
    std::vector<std::thread> workers;
    std::mutex lifecycle;               // serialises start()/stop()

    void push(Slot& slot, Frame&& frame) {
        {
            std::lock_guard lock(mutex);
            if (stopping) return;
            slot.queue.push(std::move(frame));
        }
        ready.notify_one();
    }

    // Picks a camera with a queued frame that no other worker holds; caller holds the mutex.
    Slot* take_ready() {
        const std::size_t n = slots.size();
        for (std::size_t i = 0; i < n; ++i) {
            Slot& s = *slots[(next_slot + i) % n];
            if (!s.busy && !s.queue.empty()) {
                next_slot = (next_slot + i + 1) % n;
                s.busy = true;
                return &s;
            }
        }
        return nullptr;
    }

    void work() {
        std::unique_lock lock(mutex);
        while (true) {
            Slot* slot = nullptr;
            ready.wait(lock, [&] { return stopping || (slot = take_ready()) != nullptr; });
            if (!slot) return;  // stopping
            Frame frame = *slot->queue.pop();
            lock.unlock();

            std::vector<FaceObservation> observations;
            bool failed = false;
            const auto t0 = std::chrono::steady_clock::now();
            try {
                observations = slot->processor(frame);
            } catch (const std::exception& e) {
                failed = true;
                spdlog::error("camera '{}': face stage failed on frame {}: {}", slot->camera.id, frame.sequence,
                              e.what());
            }
            const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            for (auto& o : observations)
                if (on_observation) on_observation(std::move(o));

            lock.lock();
            slot->busy = false;
            ++slot->processed;
            slot->faces += observations.size();
            slot->stage_errors += failed ? 1 : 0;
            slot->stage_seconds += seconds;
            if (!slot->queue.empty()) ready.notify_one();  // another worker may be idle
        }
    }
};

FacePipeline::FacePipeline(std::vector<config::CameraConfig> cameras, const config::DetectConfig& detect,
                           ObservationCallback on_observation, ProcessorFactory factory)
    : impl_(std::make_unique<Impl>()) {
    if (!factory) throw std::invalid_argument("FacePipeline: no processor factory given");
    impl_->on_observation = std::move(on_observation);
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    impl_->workers_wanted = detect.workers > 0 ? static_cast<std::size_t>(detect.workers) : cores;
    std::set<std::string> ids;
    for (auto& camera : cameras) {
        if (!camera.enabled) continue;
        if (!ids.insert(camera.id).second)
            throw std::invalid_argument("FacePipeline: camera id '" + camera.id + "' given twice");
        auto slot = std::make_unique<Impl::Slot>(camera, factory(camera),
                                                 static_cast<std::size_t>(std::max(1, detect.queue_depth)));
        Impl::Slot* raw = slot.get();
        Impl* impl = impl_.get();
        slot->source = std::make_unique<CameraSource>(
            std::move(camera), [impl, raw](Frame&& frame) { impl->push(*raw, std::move(frame)); });
        impl_->slots.push_back(std::move(slot));
    }
}

FacePipeline::~FacePipeline() { stop(); }

void FacePipeline::start() {
    std::lock_guard life(impl_->lifecycle);
    if (impl_->started) return;
    {
        std::lock_guard lock(impl_->mutex);
        impl_->stopping = false;
    }
    for (std::size_t i = 0; i < impl_->workers_wanted; ++i)
        impl_->workers.emplace_back([impl = impl_.get()] { impl->work(); });
    for (auto& slot : impl_->slots) slot->source->start();
    impl_->started = true;
    spdlog::info("face pipeline: {} camera(s), {} worker(s)", impl_->slots.size(), impl_->workers.size());
}

void FacePipeline::stop() {
    std::lock_guard life(impl_->lifecycle);
    if (!impl_->started) return;
    for (auto& slot : impl_->slots) slot->source->request_stop();  // all at once
    for (auto& slot : impl_->slots) slot->source->stop();
    {
        std::lock_guard lock(impl_->mutex);
        impl_->stopping = true;
        for (auto& slot : impl_->slots) {
            slot->dropped_at_stop += slot->queue.size();
            while (slot->queue.pop()) {
            }
        }
    }
    impl_->ready.notify_all();
    for (auto& w : impl_->workers) w.join();
    impl_->workers.clear();
    impl_->started = false;
}

std::size_t FacePipeline::worker_count() const { return impl_->workers_wanted; }

std::vector<CameraPipelineStats> FacePipeline::stats() const {
    std::vector<CameraPipelineStats> out;
    out.reserve(impl_->slots.size());
    for (const auto& slot : impl_->slots) {
        CameraPipelineStats s;
        s.camera = slot->camera.id;
        s.source = slot->source->stats();
        std::lock_guard lock(impl_->mutex);
        s.processed = slot->processed;
        s.faces = slot->faces;
        s.drops = slot->queue.drops() + slot->dropped_at_stop;
        s.stage_errors = slot->stage_errors;
        s.queued = slot->queue.size();
        s.stage_seconds = slot->stage_seconds;
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace faceadapt::ingest
