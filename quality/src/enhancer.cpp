// Enhancer: the two enhanced training views of claim 2. See enhancer.hpp.
#include "faceadapt/quality/enhancer.hpp"

#include <algorithm>
#include <map>
#include <sstream>
#include <stdexcept>

#include <opencv2/imgproc.hpp>
#include <opencv2/photo.hpp>
#include <spdlog/fmt/fmt.h>

namespace faceadapt::quality {
namespace {

struct StepInfo {
    double default_param;
    double min_param, max_param;
};

const std::map<std::string, StepInfo>& step_table() {
    static const std::map<std::string, StepInfo> table = {
        {"stretch", {1.0, 0.0, 20.0}},     // percent clipped at each end
        {"equalize", {0.0, 0.0, 0.0}},
        {"clahe", {2.0, 0.5, 40.0}},       // clip limit
        {"smooth", {1.0, 0.1, 10.0}},      // Gaussian sigma (px)
        {"bilateral", {25.0, 1.0, 200.0}}, // sigma colour (sigma space = 5 px)
        {"median", {3.0, 3.0, 15.0}},      // aperture (odd)
        {"denoise", {7.0, 1.0, 50.0}},     // non-local means strength h
    };
    return table;
}

// Applies `f` to the luma channel of an RGB image, keeping colour (YCrCb).
template <class F>
cv::Mat on_luma(const cv::Mat& img, F&& f) {
    if (img.channels() == 1) {
        cv::Mat out;
        f(img, out);
        return out;
    }
    cv::Mat ycc;
    cv::cvtColor(img, ycc, cv::COLOR_RGB2YCrCb);
    std::vector<cv::Mat> ch;
    cv::split(ycc, ch);
    cv::Mat y;
    f(ch[0], y);
    ch[0] = y;
    cv::merge(ch, ycc);
    cv::Mat out;
    cv::cvtColor(ycc, out, cv::COLOR_YCrCb2RGB);
    return out;
}

// Grey-level stretch: the p-th and (100-p)-th luma percentiles map to 0 and 255.
void stretch(const cv::Mat& grey, cv::Mat& out, double p) {
    int hist[256] = {};
    for (int y = 0; y < grey.rows; ++y) {
        const auto* row = grey.ptr<unsigned char>(y);
        for (int x = 0; x < grey.cols; ++x) ++hist[row[x]];
    }
    const double n = static_cast<double>(grey.total());
    int lo = 0, hi = 255;
    for (double acc = 0; lo < 255 && (acc += hist[lo]) <= n * p / 100.0;) ++lo;
    for (double acc = 0; hi > 0 && (acc += hist[hi]) <= n * p / 100.0;) --hi;
    if (hi <= lo) {
        out = grey.clone();
        return;
    }
    const double scale = 255.0 / (hi - lo);
    grey.convertTo(out, CV_8U, scale, -lo * scale);
}

cv::Mat apply_step(const cv::Mat& img, const EnhanceStep& s) {
    cv::Mat out;
    if (s.name == "stretch") return on_luma(img, [&](const cv::Mat& g, cv::Mat& o) { stretch(g, o, s.param); });
    if (s.name == "equalize") return on_luma(img, [](const cv::Mat& g, cv::Mat& o) { cv::equalizeHist(g, o); });
    if (s.name == "clahe")
        return on_luma(img, [&](const cv::Mat& g, cv::Mat& o) {
            cv::createCLAHE(s.param, cv::Size(8, 8))->apply(g, o);
        });
    if (s.name == "smooth") {
        cv::GaussianBlur(img, out, cv::Size(0, 0), s.param);
    } else if (s.name == "bilateral") {
        cv::bilateralFilter(img, out, 5, s.param, 5.0);
    } else if (s.name == "median") {
        cv::medianBlur(img, out, static_cast<int>(s.param) | 1);
    } else if (s.name == "denoise") {
        // Non-local means on the luma only, 3x3 patches searched in 7x7: ~15x cheaper than the
        // colour version with OpenCV's default windows, which matters over thousands of crops.
        const float h = static_cast<float>(s.param);
        return on_luma(img, [h](const cv::Mat& g, cv::Mat& o) { cv::fastNlMeansDenoising(g, o, h, 3, 7); });
    }
    return out;
}

}  // namespace

Enhancer::Enhancer(std::vector<EnhanceStep> steps, std::string name)
    : steps_(std::move(steps)), name_(std::move(name)) {
    for (auto& s : steps_) {
        const auto it = step_table().find(s.name);
        if (it == step_table().end())
            throw std::invalid_argument("enhancer " + name_ + ": unknown step \"" + s.name +
                                        "\" (stretch, equalize, clahe, smooth, bilateral, median, denoise)");
        if (s.param == 0.0) s.param = it->second.default_param;
        if (it->second.max_param > 0 && (s.param < it->second.min_param || s.param > it->second.max_param))
            throw std::invalid_argument(fmt::format("enhancer {}: step {} parameter {} outside [{}, {}]", name_,
                                                    s.name, s.param, it->second.min_param, it->second.max_param));
    }
}

Enhancer Enhancer::parse(const std::string& spec, std::string name) {
    std::vector<EnhanceStep> steps;
    std::stringstream ss(spec);
    std::string token;
    while (std::getline(ss, token, ',')) {
        token.erase(0, token.find_first_not_of(" \t"));
        token.erase(token.find_last_not_of(" \t") + 1);
        if (token.empty()) continue;
        EnhanceStep step;
        const auto colon = token.find(':');
        step.name = token.substr(0, colon);
        if (colon != std::string::npos) {
            try {
                std::size_t used = 0;
                step.param = std::stod(token.substr(colon + 1), &used);
                if (used != token.size() - colon - 1) throw std::invalid_argument("trailing text");
            } catch (const std::exception&) {
                throw std::invalid_argument("enhancer " + name + ": bad parameter in \"" + token + "\"");
            }
        }
        steps.push_back(step);
    }
    return Enhancer(std::move(steps), std::move(name));
}

Enhancer Enhancer::first_view() { return parse("stretch:1,equalize,bilateral:25", "first"); }
Enhancer Enhancer::second_view() { return parse("clahe:2,median:3,denoise:7", "second"); }

cv::Mat Enhancer::apply(const cv::Mat& rgb) const {
    if (rgb.empty() || rgb.depth() != CV_8U || (rgb.channels() != 3 && rgb.channels() != 1))
        throw std::invalid_argument("enhancer " + name_ + ": expected a non-empty 8UC3 RGB or 8UC1 image");
    cv::Mat img = rgb.clone();
    for (const auto& s : steps_) img = apply_step(img, s);
    return img;
}

std::string Enhancer::spec() const {
    std::string out;
    for (const auto& s : steps_) {
        if (!out.empty()) out += ',';
        out += s.name;
        if (step_table().at(s.name).max_param > 0) out += fmt::format(":{}", s.param);
    }
    return out;
}

}  // namespace faceadapt::quality
