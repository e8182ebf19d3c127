// FaceAligner: dlib HOG frontal detection + 68-point landmarks + alignment of still images.
//
// WHAT THIS REPRESENTS
//   The face stage for single images (enrollment, `faceadapt detect`, `embed --images`,
//   dataset preparation). Each face found is aligned to the 150x150 RGB chip of
//   dlib::get_face_chip_details(shape, 150, 0.25), the alignment the source model was trained on.
// THREAD SAFETY
//   detect() is const and safe to call from several threads (dlib's detector is guarded by a
//   mutex, so calls are serialised): use one FaceAligner per thread for parallel work.
#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <vector>

#include <opencv2/core.hpp>

namespace faceadapt::ingest {

class LandmarkModel;  // face_landmarks.hpp

struct AlignedFace {
    cv::Rect bbox;                               // detector box, in input image pixels
    std::array<cv::Point2f, 68> landmarks{};     // in input image pixels
    cv::Mat chip;                                // 150x150 CV_8UC3, RGB channel order
    double detection_score = 0.0;                // HOG detector confidence
};

struct StillOptions {
    // Images whose shorter side is below this are upsampled (x2 steps) before detecting
    // (ORL's 92x112 photos need it).
    int upsample_below_px = 300;
    // When nothing is found: retry on a copy padded by half its width with black and
    // histogram-equalised (tight crops such as Yale B need it).
    bool pad_and_equalize_retry = true;
    int min_face_px = 0;                         // drop faces whose box side is smaller
};

class FaceAligner {
public:
    static std::filesystem::path default_landmarks_model();  // /usr/share/dlib/shape_predictor_68_face_landmarks.dat
    // throws std::runtime_error naming the file when the landmark model cannot be read.
    explicit FaceAligner(const std::filesystem::path& landmarks_model = default_landmarks_model());
    // Shares an already loaded landmark model (~100 MB) with other aligners / face stages.
    // throws std::invalid_argument when `landmarks` is null.
    explicit FaceAligner(std::shared_ptr<const LandmarkModel> landmarks);
    ~FaceAligner();
    FaceAligner(FaceAligner&&) noexcept;
    FaceAligner& operator=(FaceAligner&&) noexcept;

    // requires: image is CV_8UC3 BGR or CV_8UC1 grey.
    // ensures:  faces sorted by box area, largest first; empty when none is found.
    // throws:   std::invalid_argument on an empty image or another pixel type.
    // (Calls from several threads on one aligner are serialised by a mutex; use one per thread
    //  for parallel work.)
    std::vector<AlignedFace> detect(const cv::Mat& image, const StillOptions& options = {}) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace faceadapt::ingest
