// IouTracker: greedy IoU association with constant-velocity prediction.
#include "faceadapt/ingest/tracker.hpp"

#include <algorithm>
#include <stdexcept>
#include <tuple>

namespace faceadapt::ingest {

double iou(const cv::Rect& a, const cv::Rect& b) {
    if (a.empty() || b.empty()) return 0.0;
    const double inter = (a & b).area();
    const double uni = double(a.area()) + double(b.area()) - inter;
    return uni > 0 ? inter / uni : 0.0;
}

double buffered_iou(const cv::Rect& a, const cv::Rect& b, double buffer) {
    auto grow = [buffer](const cv::Rect& r) {
        const int dx = cvRound(r.width * buffer), dy = cvRound(r.height * buffer);
        return cv::Rect(r.x - dx, r.y - dy, r.width + 2 * dx, r.height + 2 * dy);
    };
    return iou(grow(a), grow(b));
}

IouTracker::IouTracker(double iou_threshold, std::chrono::duration<double> max_age, double buffer)
    : iou_threshold_(iou_threshold), buffer_(buffer), max_age_(max_age) {
    if (!(buffer >= 0)) throw std::invalid_argument("IouTracker: buffer must be >= 0, got " + std::to_string(buffer));
    if (!(iou_threshold > 0 && iou_threshold < 1))
        throw std::invalid_argument("IouTracker: iou threshold must be in (0, 1), got " + std::to_string(iou_threshold));
    if (!(max_age.count() > 0))
        throw std::invalid_argument("IouTracker: max age must be > 0 s, got " + std::to_string(max_age.count()));
}

cv::Rect IouTracker::predict(const Track& track, clock::time_point time) const {
    const double dt = std::chrono::duration<double>(time - track.last_seen).count();
    if (dt <= 0) return track.box;
    return track.box + cv::Point(cvRound(track.velocity.x * dt), cvRound(track.velocity.y * dt));
}

std::vector<cv::Rect> IouTracker::predicted_boxes(clock::time_point time) const {
    std::vector<cv::Rect> out;
    out.reserve(tracks_.size());
    for (const auto& t : tracks_) out.push_back(predict(t, time));
    return out;
}

std::vector<std::int64_t> IouTracker::update(const std::vector<cv::Rect>& boxes, clock::time_point time) {
    if (time < last_time_) time = last_time_;
    last_time_ = time;

    // All (iou, track, box) pairs above the threshold, best first; take them greedily.
    std::vector<std::tuple<double, std::size_t, std::size_t>> pairs;
    for (std::size_t t = 0; t < tracks_.size(); ++t) {
        const cv::Rect predicted = predict(tracks_[t], time);
        for (std::size_t b = 0; b < boxes.size(); ++b) {
            // Compare with both the prediction and the last box: a track that stops moving
            // would otherwise overshoot.
            const double score = std::max(buffered_iou(predicted, boxes[b], buffer_),
                                          buffered_iou(tracks_[t].box, boxes[b], buffer_));
            if (score >= iou_threshold_) pairs.emplace_back(score, t, b);
        }
    }
    std::sort(pairs.begin(), pairs.end(), [](const auto& x, const auto& y) { return std::get<0>(x) > std::get<0>(y); });

    std::vector<std::int64_t> ids(boxes.size(), 0);
    std::vector<bool> track_taken(tracks_.size(), false);
    for (const auto& [score, t, b] : pairs) {
        if (track_taken[t] || ids[b] != 0) continue;
        track_taken[t] = true;
        Track& track = tracks_[t];
        const double dt = std::chrono::duration<double>(time - track.last_seen).count();
        if (dt > 0) {
            const cv::Point2d moved = (boxes[b].tl() + boxes[b].br() - track.box.tl() - track.box.br()) * 0.5;
            const cv::Point2d measured = moved / dt;
            // Smooth the velocity; the first measurement is taken as is.
            track.velocity = track.hits > 1 ? 0.5 * track.velocity + 0.5 * measured : measured;
        }
        track.box = boxes[b];
        track.last_seen = time;
        ++track.hits;
        ids[b] = track.id;
    }
    // Drop stale tracks (not the ones just matched), then open new ones.
    std::vector<Track> kept;
    kept.reserve(tracks_.size() + boxes.size());
    for (std::size_t t = 0; t < tracks_.size(); ++t)
        if (track_taken[t] || time - tracks_[t].last_seen <= max_age_) kept.push_back(tracks_[t]);
    tracks_ = std::move(kept);
    for (std::size_t b = 0; b < boxes.size(); ++b) {
        if (ids[b] != 0) continue;
        ids[b] = next_id_++;
        tracks_.push_back(Track{ids[b], boxes[b], time, {0, 0}, 1});
    }
    return ids;
}

}  // namespace faceadapt::ingest
