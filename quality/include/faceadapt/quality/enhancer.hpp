// Enhancer: the image enhancement of claim 2 that turns the initial training set into the first
// and the second training set (two different views of the same crops).
//
// WHAT THIS REPRESENTS
//   A named pipeline of enhancement steps applied in order to an RGB chip:
//     stretch     grey-level stretch: luma percentiles [p, 100-p] mapped to [0, 255]
//     equalize    histogram equalisation of the luma (YCrCb), colour kept
//     clahe       contrast-limited adaptive equalisation of the luma
//     smooth      Gaussian smoothing (sigma)
//     bilateral   edge-preserving bilateral filter (sigma colour / space)
//     median      median filter (aperture)
//     denoise     non-local means denoising (strength h)
//   Spec text: "name[:param],name[:param],..." e.g. "stretch:1,equalize,bilateral:25".
//   first_view() and second_view() are the two default pipelines (they differ in effect).
// THREAD SAFETY
//   Immutable after construction; apply() may run on many threads at once.
#pragma once

#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace faceadapt::quality {

struct EnhanceStep {
    std::string name;     // one of the names above
    double param = 0.0;   // 0: the step's default
};

class Enhancer {
public:
    // throws std::invalid_argument naming an unknown step or a parameter out of range.
    explicit Enhancer(std::vector<EnhanceStep> steps, std::string name = "custom");
    // Parses the spec text above. throws std::invalid_argument naming the bad token.
    static Enhancer parse(const std::string& spec, std::string name = "custom");
    static Enhancer first_view();   // "stretch:1,equalize,bilateral:25"  (contrast-normalising)
    static Enhancer second_view();  // "clahe:2,median:3,denoise:7"       (local contrast, denoised)

    // requires: 8UC3 RGB (or 8UC1) image. ensures: same size and type out; input untouched.
    // throws std::invalid_argument for another type.
    cv::Mat apply(const cv::Mat& rgb) const;

    const std::vector<EnhanceStep>& steps() const { return steps_; }
    const std::string& name() const { return name_; }
    std::string spec() const;       // the spec text that parse() maps back to this pipeline

private:
    std::vector<EnhanceStep> steps_;
    std::string name_;
};

}  // namespace faceadapt::quality
