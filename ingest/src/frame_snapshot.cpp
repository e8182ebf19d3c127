// FrameSnapshots; see frame_snapshot.hpp.
#include "faceadapt/ingest/frame_snapshot.hpp"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace faceadapt::ingest {

FrameSnapshots::FrameSnapshots(Options options) : options_(options) {
    if (options_.interval.count() < 0 || options_.max_side < 16 || options_.quality < 1 || options_.quality > 100)
        throw std::invalid_argument("frame snapshots: interval >= 0, max_side >= 16, quality 1..100");
}

bool FrameSnapshots::offer(const Frame& frame) {
    if (frame.bgr.empty() || frame.bgr.type() != CV_8UC3) return false;
    {
        std::lock_guard lock(mutex_);
        const auto it = latest_.find(frame.camera);
        if (it != latest_.end() && frame.timestamp >= it->second.timestamp &&
            frame.timestamp - it->second.timestamp < options_.interval)
            return false;
    }
    // Encoded outside the lock: the workers of other cameras do not wait on it.
    const double scale = std::min(1.0, static_cast<double>(options_.max_side) / std::max(frame.bgr.cols, frame.bgr.rows));
    cv::Mat small = frame.bgr;
    if (scale < 1.0)
        cv::resize(frame.bgr, small,
                   cv::Size(std::max(1, static_cast<int>(frame.bgr.cols * scale + 0.5)),
                            std::max(1, static_cast<int>(frame.bgr.rows * scale + 0.5))),
                   0, 0, cv::INTER_AREA);
    std::vector<uchar> bytes;
    if (!cv::imencode(".jpg", small, bytes, {cv::IMWRITE_JPEG_QUALITY, options_.quality})) return false;
    FrameSnapshot snap{std::string(bytes.begin(), bytes.end()), frame.timestamp, small.cols, small.rows};
    std::lock_guard lock(mutex_);
    latest_[frame.camera] = std::move(snap);
    return true;
}

std::optional<FrameSnapshot> FrameSnapshots::latest(const std::string& camera) const {
    std::lock_guard lock(mutex_);
    const auto it = latest_.find(camera);
    if (it == latest_.end()) return std::nullopt;
    return it->second;
}

void FrameSnapshots::forget(const std::string& camera) {
    std::lock_guard lock(mutex_);
    latest_.erase(camera);
}

}  // namespace faceadapt::ingest
