// FaceAligner: HOG detection + 68 landmarks + 150x150 chip alignment of still images.
#include "faceadapt/ingest/face_aligner.hpp"

#include <algorithm>
#include <mutex>

#include <opencv2/imgproc.hpp>

#include "face_hog.hpp"
#include "faceadapt/ingest/face_landmarks.hpp"

namespace faceadapt::ingest {

struct FaceAligner::Impl {
    std::shared_ptr<const LandmarkModel> landmarks;
    // dlib's detector keeps scratch state: detect() is const, so the detector is guarded.
    mutable std::mutex detector_mutex;
    mutable detail::HogFaceDetector detector;

    // One detection pass; `pad` pixels of black on every side, `equalize` for the detector's copy.
    std::vector<AlignedFace> pass(const cv::Mat& image, const StillOptions& options, int pad, bool equalize) const {
        cv::Mat base = image;
        if (pad > 0) cv::copyMakeBorder(image, base, pad, pad, pad, pad, cv::BORDER_CONSTANT, cv::Scalar::all(0));
        int scale = 1;
        while (scale < 16 && std::min(base.rows, base.cols) * scale < options.upsample_below_px) scale *= 2;
        cv::Mat scaled = base;
        if (scale > 1) cv::resize(base, scaled, cv::Size(), scale, scale, cv::INTER_LINEAR);
        cv::Mat probe = scaled;
        if (equalize) {
            if (scaled.channels() == 3) cv::cvtColor(scaled, probe, cv::COLOR_BGR2GRAY);
            else probe = scaled.clone();
            cv::equalizeHist(probe, probe);
        }
        std::vector<detail::ScoredBox> boxes;
        {
            std::lock_guard lock(detector_mutex);
            boxes = detector.detect(probe);
        }
        std::vector<AlignedFace> faces;
        for (const auto& b : boxes) {
            AlignedFace face;
            const auto points = landmarks->fit(probe, b.box);
            face.chip = extract_face_chip(scaled, points);  // integer landmarks, exact dlib alignment
            for (std::size_t i = 0; i < points.size(); ++i)
                face.landmarks[i] = cv::Point2f(points[i].x / scale - pad, points[i].y / scale - pad);
            face.bbox = cv::Rect(cvRound(double(b.box.x) / scale) - pad, cvRound(double(b.box.y) / scale) - pad,
                                 cvRound(double(b.box.width) / scale), cvRound(double(b.box.height) / scale));
            face.detection_score = b.score;
            if (std::min(face.bbox.width, face.bbox.height) < options.min_face_px) continue;
            faces.push_back(std::move(face));
        }
        return faces;
    }
};

std::filesystem::path FaceAligner::default_landmarks_model() { return LandmarkModel::default_path(); }

FaceAligner::FaceAligner(const std::filesystem::path& landmarks_model)
    : FaceAligner(std::make_shared<const LandmarkModel>(landmarks_model)) {}

FaceAligner::FaceAligner(std::shared_ptr<const LandmarkModel> landmarks) : impl_(std::make_unique<Impl>()) {
    if (!landmarks) throw std::invalid_argument("FaceAligner: null landmark model");
    impl_->landmarks = std::move(landmarks);
}

FaceAligner::~FaceAligner() = default;
FaceAligner::FaceAligner(FaceAligner&&) noexcept = default;
FaceAligner& FaceAligner::operator=(FaceAligner&&) noexcept = default;

std::vector<AlignedFace> FaceAligner::detect(const cv::Mat& image, const StillOptions& options) const {
    detail::require_grey_or_bgr(image, "FaceAligner::detect");
    auto faces = impl_->pass(image, options, 0, false);
    if (faces.empty() && options.pad_and_equalize_retry)
        faces = impl_->pass(image, options, image.cols / 2, true);
    std::stable_sort(faces.begin(), faces.end(),
                     [](const AlignedFace& a, const AlignedFace& b) { return a.bbox.area() > b.bbox.area(); });
    return faces;
}

}  // namespace faceadapt::ingest
