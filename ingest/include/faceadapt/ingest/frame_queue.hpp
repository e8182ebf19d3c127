// FrameQueue: a bounded FIFO of Frames that drops the OLDEST frame when full.
//
// WHAT THIS REPRESENTS
//   The per-camera hand-off buffer between a CameraSource and the face workers. A slow face
//   stage never blocks a camera: a push into a full queue evicts the oldest frame and counts
//   it in drops(). Live video wants the freshest pictures, so old ones go first.
// THREAD SAFETY
//   Not thread-safe (thread-compatible): FacePipeline guards its queues with its own mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>

#include "faceadapt/ingest/frame.hpp"

namespace faceadapt::ingest {

class FrameQueue {
public:
    // requires: capacity >= 1. throws std::invalid_argument otherwise.
    explicit FrameQueue(std::size_t capacity);

    // ensures: frame is the newest element; when the queue was full, the oldest frame was
    //          removed first and drops() rose by one. Returns true when a frame was dropped.
    bool push(Frame frame);
    // ensures: the oldest frame, removed from the queue; std::nullopt when empty.
    std::optional<Frame> pop();

    std::size_t size() const { return frames_.size(); }
    bool empty() const { return frames_.empty(); }
    std::size_t capacity() const { return capacity_; }
    std::uint64_t drops() const { return drops_; }      // frames evicted since construction
    std::uint64_t pushed() const { return pushed_; }    // frames pushed since construction
    // ensures: empty(); the removed frames are counted as drops.
    void clear();

private:
    std::size_t capacity_;
    std::deque<Frame> frames_;
    std::uint64_t drops_ = 0;
    std::uint64_t pushed_ = 0;
};

}  // namespace faceadapt::ingest
