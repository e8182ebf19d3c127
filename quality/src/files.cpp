#include "files.hpp"


#include <stdexcept>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <spdlog/fmt/fmt.h>

namespace faceadapt::quality::files {
namespace fs = std::filesystem;

std::int64_t write_png_atomic(const cv::Mat& rgb, const fs::path& target, bool do_fsync) {
    if (rgb.empty()) throw std::invalid_argument(target.string() + ": empty image");
    cv::Mat bgr;
    if (rgb.channels() == 3) cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
    else bgr = rgb;
    std::vector<unsigned char> png;
    if (!cv::imencode(".png", bgr, png, {cv::IMWRITE_PNG_COMPRESSION, 1}))
        throw std::runtime_error(target.string() + ": PNG encoding failed");
    common::write_file_atomic(
        target, std::string_view(reinterpret_cast<const char*>(png.data()), png.size()),
        {.fsync = do_fsync});
    return static_cast<std::int64_t>(png.size());
}

std::optional<cv::Mat> read_rgb(const fs::path& file, ReadFailure* why) {
    auto fail = [why](ReadFailure f) -> std::optional<cv::Mat> {
        if (why) *why = f;
        return std::nullopt;
    };
    if (why) *why = ReadFailure::none;
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) return fail(ec ? ReadFailure::unreadable : ReadFailure::absent);
    // Read the bytes first: cv::imread cannot tell "cannot read" from "does not decode".
    std::string bytes;
    try {
        bytes = common::read_file(file);
    } catch (const std::exception&) {
        return fail(ReadFailure::unreadable);
    }
    cv::Mat bgr;
    try {
        bgr = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8UC1, bytes.data()), cv::IMREAD_COLOR);
    } catch (const cv::Exception&) {
        return fail(ReadFailure::undecodable);
    }
    if (bgr.empty()) return fail(ReadFailure::undecodable);
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    return rgb;
}

fs::path quarantine(const fs::path& file, const fs::path& quarantine_dir) {
    std::error_code ec;
    fs::create_directories(quarantine_dir, ec);
    const fs::path target = quarantine_dir / (unique_token() + "-" + file.filename().string());
    fs::rename(file, target, ec);
    if (ec) return {};
    sync_directory(quarantine_dir);
    return target;
}


}  // namespace faceadapt::quality::files
