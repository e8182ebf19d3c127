// The enrollment gate: whether one photo may enroll a person, judged on what makes a photo
// measurably worse for recognition, with a refusal that tells the operator what to change.
//
// Why not the site-crop score ([quality], patent steps 121-133)? That score ranks a camera's
// crops against each other and is tuned on Yale B crops; applied to ordinary web photos it refused
// 24 of 50 LFW people whom the source model verifies at 98.5% (issue 14). Here each check is one
// measured feature against a bound calibrated on LFW devtest (bench/quality/bench_enroll_gate:
// the refused photos lie farther from the same person's other photos than the accepted ones);
// docs/quality.md, "Enrollment gate", has the figures.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "faceadapt/config/config.hpp"
#include "faceadapt/quality/quality.hpp"

namespace faceadapt::quality {

struct EnrollVerdict {
    bool ok = false;
    std::string reason;  // when refused: what was measured, the bound, and what to change
};

// Judges one detected face: its features (compute_features) and its box's shorter side in pixels.
// requires: features computed from the photo the face was found in; min_face_px > 0.
// ensures: ok, or a reason naming the measure, its value, the bound and the remedy.
EnrollVerdict judge_enrollment(const QualityFeatures& features, int face_side_px, int min_face_px,
                               const config::EnrollConfig& config);

// Which of a photo's detected faces is the person to enroll: the only one, or the largest when
// its box area is at least min_area_ratio times every other's (a bystander in a web photo: on LFW
// such photos are as recognisable as one-face photos). nullopt when none dominates or boxes is empty.
std::optional<std::size_t> dominant_face(const std::vector<cv::Rect>& boxes, double min_area_ratio = 2.0);

}  // namespace faceadapt::quality
