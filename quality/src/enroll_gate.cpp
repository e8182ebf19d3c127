#include "faceadapt/quality/enroll_gate.hpp"

#include <spdlog/fmt/fmt.h>

namespace faceadapt::quality {

EnrollVerdict judge_enrollment(const QualityFeatures& f, int face_side_px, int min_face_px,
                               const config::EnrollConfig& c) {
    EnrollVerdict v;
    if (face_side_px < min_face_px)
        v.reason = fmt::format("the face is too small: {} px, below the minimum of {} px; use a photo taken closer "
                               "or at a higher resolution",
                               face_side_px, min_face_px);
    else if (!(f.integrity >= c.min_integrity))
        v.reason = fmt::format("the face is cut by the photo's edge (integrity {:.2f}, minimum {:.2f}); use a photo "
                               "showing the whole face",
                               f.integrity, c.min_integrity);
    else if (!(f.deviation_deg <= c.max_deviation_deg))
        v.reason = fmt::format("the face is turned away: {:.0f} deg from frontal (yaw {:.0f}, pitch {:.0f}; maximum "
                               "{:.0f}); use a photo facing the camera",
                               f.deviation_deg, f.yaw_deg, f.pitch_deg, c.max_deviation_deg);
    else if (!(f.sharpness >= c.min_sharpness))
        v.reason = fmt::format("the photo is blurred (sharpness {:.0f}, minimum {:.0f}); use a sharper photo "
                               "(steady camera, in focus, not enlarged)",
                               f.sharpness, c.min_sharpness);
    else if (!(f.exposure >= c.min_exposure))
        v.reason = fmt::format("the face is too dark (brightness {:.0f} of 255, minimum {:.0f}); use a photo in "
                               "better light",
                               f.exposure, c.min_exposure);
    else if (!(f.exposure <= c.max_exposure))
        v.reason = fmt::format("the face is overexposed (brightness {:.0f} of 255, maximum {:.0f}); use a photo "
                               "without glare or flash",
                               f.exposure, c.max_exposure);
    else
        v.ok = true;
    return v;
}

std::optional<std::size_t> dominant_face(const std::vector<cv::Rect>& boxes, double min_area_ratio) {
    if (boxes.empty()) return std::nullopt;
    std::size_t best = 0;
    for (std::size_t i = 1; i < boxes.size(); ++i)
        if (boxes[i].area() > boxes[best].area()) best = i;
    for (std::size_t i = 0; i < boxes.size(); ++i)
        if (i != best && static_cast<double>(boxes[best].area()) < min_area_ratio * boxes[i].area()) return std::nullopt;
    return best;
}

}  // namespace faceadapt::quality
