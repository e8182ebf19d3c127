// LandmarkModel, extract_face_chip and the private HOG detector wrapper.
#include "faceadapt/ingest/face_landmarks.hpp"

#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>

#include <dlib/image_processing.h>
#include <dlib/opencv/cv_image.h>
#include <opencv2/imgproc.hpp>

#include "face_hog.hpp"

namespace faceadapt::ingest {
namespace detail {

void require_grey_or_bgr(const cv::Mat& image, std::string_view who) {
    if (image.empty())
        throw std::invalid_argument(std::string(who) + ": empty image");
    if (image.type() != CV_8UC1 && image.type() != CV_8UC3)
        throw std::invalid_argument(std::string(who) + ": expected an 8-bit grey or BGR image, got " +
                                    std::to_string(image.channels()) + " channel(s) of depth " +
                                    std::to_string(image.depth()));
}

cv::Rect to_cv(const dlib::rectangle& r) {
    return {static_cast<int>(r.left()), static_cast<int>(r.top()), static_cast<int>(r.width()),
            static_cast<int>(r.height())};
}

dlib::rectangle to_dlib(const cv::Rect& r) {
    return {r.x, r.y, r.x + r.width - 1, r.y + r.height - 1};
}

HogFaceDetector::HogFaceDetector() : detector_(dlib::get_frontal_face_detector()) {}

std::vector<ScoredBox> HogFaceDetector::detect(const cv::Mat& image, double scale) {
    require_grey_or_bgr(image, "HogFaceDetector::detect");
    if (!(scale > 0)) throw std::invalid_argument("HogFaceDetector::detect: scale must be > 0");
    cv::Mat work = image;
    if (scale != 1.0)
        cv::resize(image, work, cv::Size(), scale, scale, scale > 1 ? cv::INTER_LINEAR : cv::INTER_AREA);
    std::vector<dlib::rect_detection> dets;
    if (work.type() == CV_8UC1)
        detector_(dlib::cv_image<unsigned char>(work), dets);
    else
        detector_(dlib::cv_image<dlib::bgr_pixel>(work), dets);
    std::vector<ScoredBox> out;
    out.reserve(dets.size());
    for (const auto& d : dets) {
        const cv::Rect r = to_cv(d.rect);
        const cv::Rect mapped(cvRound(r.x / scale), cvRound(r.y / scale), cvRound(r.width / scale),
                              cvRound(r.height / scale));
        out.push_back({mapped, d.detection_confidence});
    }
    return out;
}

namespace {
template <typename Pixel>
Landmarks68 fit_on(const dlib::shape_predictor& sp, const cv::Mat& image, const cv::Rect& box) {
    const dlib::full_object_detection shape = sp(dlib::cv_image<Pixel>(image), to_dlib(box));
    Landmarks68 out{};
    for (unsigned long i = 0; i < 68; ++i)
        out[i] = cv::Point2f(static_cast<float>(shape.part(i).x()), static_cast<float>(shape.part(i).y()));
    return out;
}

template <typename Pixel>
cv::Mat chip_from(const cv::Mat& image, const dlib::full_object_detection& shape) {
    dlib::matrix<dlib::rgb_pixel> chip;
    dlib::extract_image_chip(dlib::cv_image<Pixel>(image), dlib::get_face_chip_details(shape, kChipSize, kChipPadding),
                             chip);
    cv::Mat out(static_cast<int>(chip.nr()), static_cast<int>(chip.nc()), CV_8UC3);
    for (long r = 0; r < chip.nr(); ++r)
        std::memcpy(out.ptr(static_cast<int>(r)), &chip(r, 0), static_cast<std::size_t>(chip.nc()) * 3);
    return out;
}
}  // namespace
}  // namespace detail

struct LandmarkModel::Impl {
    dlib::shape_predictor predictor;
};

std::filesystem::path LandmarkModel::default_path() {
    return "/usr/share/dlib/shape_predictor_68_face_landmarks.dat";
}

LandmarkModel::LandmarkModel(const std::filesystem::path& file) : impl_(std::make_unique<Impl>()) {
    std::ifstream in(file, std::ios::binary);
    if (!in)
        throw std::runtime_error("landmark model " + file.string() +
                                 ": cannot open (install dlib's shape_predictor_68_face_landmarks.dat)");
    try {
        dlib::deserialize(impl_->predictor, in);
    } catch (const std::exception& e) {
        throw std::runtime_error("landmark model " + file.string() + ": not a dlib shape predictor (" + e.what() + ")");
    }
    if (impl_->predictor.num_parts() != 68)
        throw std::runtime_error("landmark model " + file.string() + ": has " +
                                 std::to_string(impl_->predictor.num_parts()) + " parts, expected 68");
}

LandmarkModel::~LandmarkModel() = default;
LandmarkModel::LandmarkModel(LandmarkModel&&) noexcept = default;
LandmarkModel& LandmarkModel::operator=(LandmarkModel&&) noexcept = default;

Landmarks68 LandmarkModel::fit(const cv::Mat& image, const cv::Rect& box) const {
    detail::require_grey_or_bgr(image, "LandmarkModel::fit");
    return image.type() == CV_8UC1 ? detail::fit_on<unsigned char>(impl_->predictor, image, box)
                                   : detail::fit_on<dlib::bgr_pixel>(impl_->predictor, image, box);
}

cv::Mat extract_face_chip(const cv::Mat& image, const Landmarks68& landmarks) {
    detail::require_grey_or_bgr(image, "extract_face_chip");
    std::vector<dlib::point> parts;
    parts.reserve(landmarks.size());
    // dlib's shape predictor yields integer points; rounding keeps the chip identical to dlib's.
    for (const auto& p : landmarks) parts.emplace_back(std::lround(p.x), std::lround(p.y));
    dlib::rectangle rect;
    for (const auto& p : parts) rect += p;
    const dlib::full_object_detection shape(rect, parts);
    return image.type() == CV_8UC1 ? detail::chip_from<unsigned char>(image, shape)
                                   : detail::chip_from<dlib::bgr_pixel>(image, shape);
}

}  // namespace faceadapt::ingest
