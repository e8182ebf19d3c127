#include "faceadapt/ingest/frame_queue.hpp"

#include <stdexcept>
#include <string>

namespace faceadapt::ingest {

FrameQueue::FrameQueue(std::size_t capacity) : capacity_(capacity) {
    if (capacity == 0) throw std::invalid_argument("FrameQueue: capacity must be >= 1, got 0");
}

bool FrameQueue::push(Frame frame) {
    bool dropped = false;
    if (frames_.size() >= capacity_) {
        frames_.pop_front();
        ++drops_;
        dropped = true;
    }
    frames_.push_back(std::move(frame));
    ++pushed_;
    return dropped;
}

std::optional<Frame> FrameQueue::pop() {
    if (frames_.empty()) return std::nullopt;
    Frame frame = std::move(frames_.front());
    frames_.pop_front();
    return frame;
}

void FrameQueue::clear() {
    drops_ += frames_.size();
    frames_.clear();
}

}  // namespace faceadapt::ingest
