// FaceStage: motion-gated HOG + landmarks + alignment + IoU tracking for one camera.
#include "faceadapt/ingest/face_stage.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include <opencv2/imgproc.hpp>

#include "face_hog.hpp"
#include "region_hog.hpp"
#include "faceadapt/ingest/face_landmarks.hpp"
#include "faceadapt/ingest/motion_regions.hpp"
#include "faceadapt/ingest/tracker.hpp"

namespace faceadapt::ingest {
namespace {

constexpr double kHogNativeFacePx = 80.0;  // dlib's frontal detector window

int effective_min_face(const config::DetectConfig& detect, int min_face_px) {
    const int px = min_face_px > 0 ? min_face_px : detect.min_face_px;
    if (px < 1) throw std::invalid_argument("FaceStage: min_face_px must be >= 1, got " + std::to_string(px));
    return px;
}

// `r` (frame pixels) on the image HOG runs on (frame resized by `scale`), grown to whole pixels.
cv::Rect to_work(const cv::Rect& r, double scale) {
    if (scale == 1.0) return r;
    const cv::Point tl(cvFloor(r.x * scale), cvFloor(r.y * scale));
    const cv::Point br(cvCeil(r.br().x * scale), cvCeil(r.br().y * scale));
    return {tl, br};
}

}  // namespace

struct FaceStage::Impl {
    std::string camera;
    int min_face_px;
    bool motion_gating;
    std::shared_ptr<const LandmarkModel> landmarks;
    detail::HogFaceDetector detector;  // whole frame (motion_gating = false)
    detail::RegionHog region_detector;  // motion-gated: the whole frame's detections in the regions
    double track_scale;                 // MotionOptions::track_scale
    double track_grace_s;               // MotionOptions::track_grace_s
    MotionRegions motion;
    IouTracker tracker;
    FaceStageStats stats;
    cv::Mat grey, work;
    std::chrono::system_clock::time_point last_ts{};  // the previous frame's (tracks matched then are current)
    bool has_last = false;

    Impl(std::string camera_id, const config::DetectConfig& detect, int min_face,
         std::shared_ptr<const LandmarkModel> model, MotionOptions motion_options)
        : camera(std::move(camera_id)),
          min_face_px(min_face),
          motion_gating(detect.motion_gating),
          landmarks(std::move(model)),
          track_scale(motion_options.track_scale),
          track_grace_s(motion_options.track_grace_s),
          motion((motion_options.min_face_px = min_face, motion_options)),
          tracker(detect.track_iou, std::chrono::duration<double>(detect.track_max_age_s)) {
        if (!landmarks) throw std::invalid_argument("FaceStage " + camera + ": null landmark model");
    }
};

FaceStage::FaceStage(std::string camera_id, const config::DetectConfig& detect, int min_face_px)
    : FaceStage(std::move(camera_id), detect, min_face_px,
                std::make_shared<const LandmarkModel>(detect.landmarks_model)) {}

FaceStage::FaceStage(std::string camera_id, const config::DetectConfig& detect, int min_face_px,
                     std::shared_ptr<const LandmarkModel> landmarks)
    : FaceStage(std::move(camera_id), detect, min_face_px, std::move(landmarks), MotionOptions{}) {}

FaceStage::FaceStage(std::string camera_id, const config::DetectConfig& detect, int min_face_px,
                     std::shared_ptr<const LandmarkModel> landmarks, MotionOptions motion)
    : impl_(std::make_unique<Impl>(std::move(camera_id), detect, effective_min_face(detect, min_face_px),
                                   std::move(landmarks), motion)) {}

FaceStage::~FaceStage() = default;
FaceStage::FaceStage(FaceStage&&) noexcept = default;
FaceStage& FaceStage::operator=(FaceStage&&) noexcept = default;

const std::string& FaceStage::camera() const { return impl_->camera; }
int FaceStage::min_face_px() const { return impl_->min_face_px; }
const FaceStageStats& FaceStage::last_stats() const { return impl_->stats; }
const IouTracker& FaceStage::tracker() const { return impl_->tracker; }

void FaceStage::new_stream() {
    impl_->tracker.end_all_tracks();
    impl_->has_last = false;
}

std::vector<FaceObservation> FaceStage::process(const cv::Mat& frame, std::chrono::system_clock::time_point ts) {
    Impl& s = *impl_;
    detail::require_grey_or_bgr(frame, "FaceStage " + s.camera + ": frame");
    if (frame.channels() == 3) cv::cvtColor(frame, s.grey, cv::COLOR_BGR2GRAY);
    else s.grey = frame;

    cv::Scalar mean, stddev;
    cv::meanStdDev(s.grey, mean, stddev);

    const cv::Rect whole(cv::Point(0, 0), frame.size());
    // Gated: the regions with motion, searched for every face size, and the regions around live
    // tracks, searched for faces near the track's size (MotionOptions::track_scale).
    std::vector<cv::Rect> regions{whole};
    std::vector<std::pair<cv::Rect, cv::Rect>> tracked;  // (region, predicted box)
    if (s.motion_gating) {
        // Faces matched on the previous frame explain their person's motion: their track regions
        // search them, the motion search need not (MotionOptions::tracked_grow).
        const auto predicted = s.tracker.predicted_boxes(ts);
        std::vector<cv::Rect> current;
        for (std::size_t t = 0; t < predicted.size(); ++t)
            if (s.has_last && s.tracker.tracks()[t].last_seen == s.last_ts) current.push_back(predicted[t]);
        regions = s.motion.update(s.grey, {}, current);
        const bool whole_frame = regions.size() == 1 && regions[0] == whole;
        // A track unmatched for longer than track_grace_s (its face turned away, or left) is
        // searched on motion frames only.
        for (std::size_t t = 0; t < predicted.size() && !whole_frame; ++t) {
            const std::chrono::duration<double> unmatched = ts - s.tracker.tracks()[t].last_seen;
            if (s.track_grace_s >= 0 && !s.motion.motion_searched() && unmatched.count() > s.track_grace_s) continue;
            for (const auto& r : s.motion.track_regions({predicted[t]}, frame.size())) {
                // Inside a motion region, every face size is searched already.
                if (std::any_of(regions.begin(), regions.end(), [&](const cv::Rect& m) { return (m & r) == r; })) continue;
                tracked.emplace_back(r, predicted[t]);
            }
        }
    }
    s.last_ts = ts;
    s.has_last = true;

    // HOG at the scale min_face_px needs. Gated, it runs only inside the regions but finds there
    // what the whole frame's run finds (same pyramid pixels, same cell grid; RegionHog).
    const double scale = kHogNativeFacePx / s.min_face_px;
    std::vector<detail::ScoredBox> found;
    if (!s.motion_gating) {
        found = s.detector.detect(s.grey, scale);
    } else if (!regions.empty() || !tracked.empty()) {
        // The same resize HogFaceDetector::detect applies to the whole frame.
        if (scale == 1.0) s.work = s.grey;
        else cv::resize(s.grey, s.work, cv::Size(), scale, scale, scale > 1 ? cv::INTER_LINEAR : cv::INTER_AREA);
        std::vector<detail::HogRegion> work_regions;
        for (const auto& r : regions) work_regions.push_back({to_work(r, scale)});
        for (const auto& [r, box] : tracked) {
            detail::HogRegion h{to_work(r, scale)};
            if (s.track_scale > 1) {
                const double side = std::min(box.width, box.height) * scale;
                h.min_box_px = side / s.track_scale;
                h.max_box_px = side * s.track_scale;
            }
            work_regions.push_back(h);
            regions.push_back(r);
        }
        found = s.region_detector.detect(s.work, work_regions, s.min_face_px * scale);
        for (auto& b : found)
            b.box = cv::Rect(cvRound(b.box.x / scale), cvRound(b.box.y / scale), cvRound(b.box.width / scale),
                             cvRound(b.box.height / scale));
    }
    std::erase_if(found, [&](const auto& b) { return std::min(b.box.width, b.box.height) < s.min_face_px; });

    std::vector<cv::Rect> boxes;
    boxes.reserve(found.size());
    for (const auto& b : found) boxes.push_back(b.box);
    const auto ids = s.tracker.update(boxes, ts);

    std::vector<FaceObservation> out;
    out.reserve(found.size());
    for (std::size_t i = 0; i < found.size(); ++i) {
        FaceObservation o;
        o.camera = s.camera;
        o.timestamp = ts;
        o.track_id = ids[i];
        o.bbox = found[i].box;
        o.landmarks = s.landmarks->fit(s.grey, found[i].box);
        o.chip = extract_face_chip(frame, o.landmarks);
        o.frame_size = frame.size();
        o.frame_brightness = mean[0];
        o.frame_contrast = stddev[0];
        out.push_back(std::move(o));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.track_id < b.track_id; });
    s.stats = {regions.size(), coverage(regions, frame.size()), out.size(), regions};
    return out;
}

}  // namespace faceadapt::ingest
