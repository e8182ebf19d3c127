// MotionRegions: motion on a small copy (MOG2 + camera-compensated frame difference) and live
// tracks -> a few full-resolution crops.
#include "faceadapt/ingest/motion_regions.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include <opencv2/calib3d.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/video/tracking.hpp>

namespace faceadapt::ingest {

std::vector<cv::Rect> merge_regions(std::vector<cv::Rect> rects, std::size_t max_count, cv::Size bounds) {
    const cv::Rect frame(cv::Point(0, 0), bounds);
    for (auto& r : rects) r &= frame;
    std::erase_if(rects, [](const cv::Rect& r) { return r.empty(); });
    max_count = std::max<std::size_t>(1, max_count);
    while (rects.size() > 1) {
        // Extra area scanned if i and j became one crop (negative: merging saves area).
        double best_extra = std::numeric_limits<double>::max();
        std::size_t bi = 0, bj = 0;
        for (std::size_t i = 0; i < rects.size(); ++i)
            for (std::size_t j = i + 1; j < rects.size(); ++j) {
                const double extra = double((rects[i] | rects[j]).area()) - rects[i].area() - rects[j].area();
                if (extra < best_extra) best_extra = extra, bi = i, bj = j;
            }
        if (best_extra > 0 && rects.size() <= max_count) break;
        rects[bi] |= rects[bj];
        rects.erase(rects.begin() + static_cast<std::ptrdiff_t>(bj));
    }
    return rects;
}

double coverage(const std::vector<cv::Rect>& rects, cv::Size bounds) {
    if (bounds.area() <= 0) return 0.0;
    double scanned = 0;
    for (const auto& r : rects) scanned += (r & cv::Rect(cv::Point(0, 0), bounds)).area();
    return std::min(1.0, scanned / bounds.area());
}

MotionRegions::MotionRegions(const MotionOptions& options) : options_(options) {
    if (options.min_face_px < 1) throw std::invalid_argument("MotionRegions: min_face_px must be >= 1");
    if (options.analysis_width < 16) throw std::invalid_argument("MotionRegions: analysis_width must be >= 16");
    if (options.max_regions == 0) throw std::invalid_argument("MotionRegions: max_regions must be >= 1");
    if (!(options.tile_faces > 0)) throw std::invalid_argument("MotionRegions: tile_faces must be > 0");
}

// `frame` shrunk to `size`, grey, blurred: what motion is measured on.
void MotionRegions::shrink(const cv::Mat& frame, cv::Mat& out, cv::Size size) {
    if (frame.channels() == 3) {
        cv::resize(frame, small_bgr_, size, 0, 0, cv::INTER_AREA);  // shrink first, then convert:
        cv::cvtColor(small_bgr_, out, cv::COLOR_BGR2GRAY);          // far less work than converting the full frame
    } else {
        cv::resize(frame, out, size, 0, 0, cv::INTER_AREA);
    }
    cv::GaussianBlur(out, out, {5, 5}, 0);  // compression noise is not motion
}

// The similarity transform taking `previous` onto `current` (2x3, CV_64F); identity when the
// scene has too little texture to tell.
cv::Mat MotionRegions::camera_motion(const cv::Mat& previous, const cv::Mat& current) const {
    const cv::Mat identity = cv::Mat::eye(2, 3, CV_64F);
    std::vector<cv::Point2f> from, to;
    cv::goodFeaturesToTrack(previous, from, 200, 0.01, 6);
    if (from.size() < 12) return identity;
    std::vector<unsigned char> status;
    std::vector<float> error;
    cv::calcOpticalFlowPyrLK(previous, current, from, to, status, error);
    std::vector<cv::Point2f> a, b;
    for (std::size_t i = 0; i < from.size(); ++i)
        if (status[i]) a.push_back(from[i]), b.push_back(to[i]);
    if (a.size() < 12) return identity;
    std::vector<unsigned char> inliers;
    cv::Mat m = cv::estimateAffinePartial2D(a, b, inliers, cv::RANSAC, 1.0);
    // The background must dominate the tracked corners; otherwise trust nothing.
    if (m.empty() || cv::countNonZero(inliers) < static_cast<int>(a.size() / 3)) return identity;
    return m;
}

std::vector<cv::Rect> MotionRegions::update(const cv::Mat& frame, const std::vector<cv::Rect>& track_boxes) {
    return update(frame, track_boxes, {});
}

std::vector<cv::Rect> MotionRegions::update(const cv::Mat& frame, const std::vector<cv::Rect>& track_boxes,
                                            const std::vector<cv::Rect>& tracked_faces) {
    if (frame.empty() || (frame.type() != CV_8UC1 && frame.type() != CV_8UC3))
        throw std::invalid_argument("MotionRegions::update: expected a non-empty 8-bit grey or BGR frame");
    const cv::Rect whole(cv::Point(0, 0), frame.size());
    const double f = double(frame.cols) / std::min(options_.analysis_width, frame.cols);  // full px per small px
    const cv::Size small_size(cvRound(frame.cols / f), cvRound(frame.rows / f));
    const bool restart = frame.size() != frame_size_ || previous_.empty();
    // Motion is searched on one frame in motion_every (tracks on every frame); the others skip
    // its analysis, and only the frame before a motion frame keeps its small copy (the one that
    // frame is differenced against): the others need no small copy at all.
    const long every = std::max(1, options_.motion_every);
    if (!restart && (frames_ + 1) % every != 0) {
        ++frames_;
        motion_searched_ = false;
        mask_ = cv::Mat::zeros(small_size, CV_8UC1);
        if ((frames_ + 1) % every == 0) shrink(frame, previous_, small_size);
        return merge_regions(track_regions(track_boxes, frame.size()), options_.max_regions, frame.size());
    }
    shrink(frame, small_, small_size);
    if (restart) {
        frame_size_ = frame.size();
        frames_ = 0;
        still_frames_ = 0;
        subtractor_.release();
    }
    motion_searched_ = true;
    if (frames_++ == 0) {
        previous_ = small_.clone();
        mask_ = cv::Mat(small_.size(), CV_8UC1, cv::Scalar(255));
        return {whole};
    }

    // Camera motion: how far the previous frame's corners moved under the fitted transform.
    const cv::Mat m = camera_motion(previous_, small_);
    double shift = 0;
    for (const cv::Point2d p : {cv::Point2d(0, 0), cv::Point2d(small_.cols, 0), cv::Point2d(0, small_.rows),
                                cv::Point2d(small_.cols, small_.rows)}) {
        const double x = m.at<double>(0, 0) * p.x + m.at<double>(0, 1) * p.y + m.at<double>(0, 2);
        const double y = m.at<double>(1, 0) * p.x + m.at<double>(1, 1) * p.y + m.at<double>(1, 2);
        shift = std::max(shift, std::hypot(x - p.x, y - p.y));
    }
    camera_moving_ = shift >= options_.still_camera_px;

    // Frame difference after warping the previous frame onto this one; the uncovered border is
    // not motion.
    cv::Mat warped, valid;
    cv::warpAffine(previous_, warped, m, small_.size(), cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar(0));
    cv::warpAffine(cv::Mat(small_.size(), CV_8UC1, cv::Scalar(255)), valid, m, small_.size(), cv::INTER_NEAREST,
                   cv::BORDER_CONSTANT, cv::Scalar(0));
    cv::absdiff(small_, warped, mask_);
    cv::threshold(mask_, mask_, options_.diff_threshold, 255, cv::THRESH_BINARY);
    mask_.setTo(0, valid == 0);

    // MOG2 holds a model of a still camera's background: restart it when the camera moves, and
    // use it once it has seen a few frames.
    if (camera_moving_) {
        subtractor_.release();
        still_frames_ = 0;
    } else {
        if (!subtractor_) subtractor_ = cv::createBackgroundSubtractorMOG2(500, 16.0, false);
        subtractor_->apply(small_, mog_mask_);
        if (++still_frames_ > 3) cv::bitwise_or(mask_, mog_mask_, mask_);
    }
    previous_ = small_.clone();

    cv::morphologyEx(mask_, mask_, cv::MORPH_OPEN, cv::getStructuringElement(cv::MORPH_RECT, {3, 3}));
    // Close the gaps inside a moving person (a difference image is mostly edges) so that the
    // top of each moving shape is its top, not the top of a fragment.
    if (options_.close_faces > 0) {
        const int k = std::max(3, cvRound(options_.close_faces * options_.min_face_px / f) | 1);
        cv::morphologyEx(mask_, mask_, cv::MORPH_CLOSE, cv::getStructuringElement(cv::MORPH_ELLIPSE, {k, k}));
    }

    // Tiles of about one face with enough motion.
    const double tile_small = std::max(4.0, options_.tile_faces * options_.min_face_px / f);
    const int cols = static_cast<int>(std::ceil(mask_.cols / tile_small));
    const int rows = static_cast<int>(std::ceil(mask_.rows / tile_small));
    auto tile_rect = [&](int c, int r) {
        const int x = static_cast<int>(c * tile_small), y = static_cast<int>(r * tile_small);
        return cv::Rect(x, y, std::min(mask_.cols, static_cast<int>((c + 1) * tile_small)) - x,
                        std::min(mask_.rows, static_cast<int>((r + 1) * tile_small)) - y);
    };
    std::vector<unsigned char> moving(static_cast<std::size_t>(cols * rows), 0);
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c) {
            const cv::Rect t = tile_rect(c, r);
            moving[std::size_t(r * cols + c)] = cv::countNonZero(mask_(t)) >= options_.min_tile_motion * t.area();
        }
    // Head band: in each tile column, the top `band` tiles of every vertical run of moving
    // tiles (a face is at the top of whatever moves with it).
    std::vector<unsigned char> head(moving.size(), 0);
    const int band = options_.head_band_faces > 0
                         ? std::max(1, static_cast<int>(std::ceil(options_.head_band_faces / options_.tile_faces)))
                         : rows;
    // A run starts a new head band only below a gap of at least one face (holes inside one
    // moving shape do not make new tops).
    const int gap = std::max(1, static_cast<int>(std::ceil(options_.head_gap_faces / options_.tile_faces)));
    // Tracked faces, grown, on the small copy: a band they touch belongs to a tracked person.
    std::vector<cv::Rect2d> tracked;
    if (options_.tracked_grow >= 0)
        for (const auto& b : tracked_faces) {
            const double gx = options_.tracked_grow * b.width, gy = options_.tracked_grow * b.height;
            tracked.emplace_back((b.x - gx) / f, (b.y - gy) / f, (b.width + 2 * gx) / f, (b.height + 2 * gy) / f);
        }
    std::vector<unsigned char> explained(moving.size(), 0);  // head tiles of tracked people
    for (int c = 0; c < cols; ++c)
        for (int r = 0, depth = band + 1, still = gap, by_track = 0; r < rows; ++r) {
            const std::size_t i = std::size_t(r * cols + c);
            if (moving[i]) {
                if (still >= gap) {
                    depth = 0;
                    // This run's head band: `band` tiles down from here, in this column.
                    const cv::Rect t = tile_rect(c, r) | tile_rect(c, std::min(rows, r + band) - 1);
                    const cv::Rect2d strip(t.x, t.y, t.width, t.height);
                    by_track = std::any_of(tracked.begin(), tracked.end(),
                                           [&](const cv::Rect2d& b) { return (b & strip).area() > 0; });
                }
                still = 0;
                head[i] = ++depth <= band;
                if (head[i] && by_track) head[i] = 0, explained[i] = 1;
            } else {
                ++still;
            }
        }
    // Head tiles are searched every frame. Other moving tiles share a budget of body_budget of
    // all tiles per frame, the longest-waiting first; none waits more than body_max_defer frames
    // (0: they wait for budget only).
    if (tile_age_.size() != moving.size()) tile_age_.assign(moving.size(), 0);
    std::vector<std::size_t> order;
    std::vector<unsigned char> selected(moving.size(), 0);
    for (std::size_t i = 0; i < moving.size(); ++i) {
        if (head[i]) selected[i] = 1, tile_age_[i] = 0;
        else if (explained[i]) tile_age_[i] = 0;
        else if (moving[i]) order.push_back(i);
        else tile_age_[i] = 0;
    }
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return tile_age_[a] > tile_age_[b]; });
    const auto budget = static_cast<std::size_t>(std::ceil(std::max(0.0, options_.body_budget) * double(moving.size())));
    std::size_t taken = 0;
    for (std::size_t i : order) {
        if (taken < budget || (options_.body_max_defer > 0 && tile_age_[i] >= options_.body_max_defer)) {
            selected[i] = 1;
            ++taken;
            tile_age_[i] = 0;
        } else {
            ++tile_age_[i];
        }
    }
    moving.swap(selected);
    // Runs of selected tiles along each tile row, grown by the margin, in frame pixels.
    const int margin = cvRound(options_.margin_faces * options_.min_face_px);
    std::vector<cv::Rect> rects;
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols;) {
            if (!moving[std::size_t(r * cols + c)]) {
                ++c;
                continue;
            }
            int end = c;
            while (end < cols && moving[std::size_t(r * cols + end)]) ++end;
            const cv::Rect s = tile_rect(c, r) | tile_rect(end - 1, r);
            rects.emplace_back(cvFloor(s.x * f) - margin, cvFloor(s.y * f) - margin, cvCeil(s.width * f) + 2 * margin,
                               cvCeil(s.height * f) + 2 * margin);
            c = end;
        }
    for (const auto& t : track_regions(track_boxes, frame.size())) rects.push_back(t);
    rects = merge_regions(std::move(rects), options_.max_regions, frame.size());
    if (coverage(rects, frame.size()) > options_.full_frame_above) return {whole};
    return rects;
}

std::vector<cv::Rect> MotionRegions::track_regions(const std::vector<cv::Rect>& track_boxes, cv::Size frame) const {
    std::vector<cv::Rect> rects;
    for (const auto& b : track_boxes) {
        const int mx = cvRound(options_.track_margin * std::max(b.width, options_.min_face_px));
        const int my = cvRound(options_.track_margin * std::max(b.height, options_.min_face_px));
        const cv::Rect r = cv::Rect(b.x - mx, b.y - my, b.width + 2 * mx, b.height + 2 * my) & cv::Rect(cv::Point(), frame);
        if (!r.empty()) rects.push_back(r);
    }
    return rects;
}

}  // namespace faceadapt::ingest
