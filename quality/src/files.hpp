// Internal: crash-safe image files for the crop store and the gallery.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <opencv2/core.hpp>

namespace faceadapt::quality::files {

// The suffix of a file being written; such files are debris after a crash.
inline constexpr const char* kTempSuffix = ".tmp";

// Encodes `rgb` (8UC3 RGB or 8UC1) as PNG and writes it to `target` crash-safely:
// <target>.tmp, write, fsync, rename over target, fsync the directory (fsync only when do_fsync).
// ensures: returns the file size in bytes; on failure nothing is left at target or its temp.
// throws std::runtime_error naming the file.
std::int64_t write_png_atomic(const cv::Mat& rgb, const std::filesystem::path& target, bool do_fsync);

// Decodes a PNG/JPEG as RGB 8UC3; std::nullopt when the file is absent or does not decode.
std::optional<cv::Mat> read_rgb(const std::filesystem::path& file);

// Moves `file` into `quarantine_dir` under a unique name, returns the new path ("" on failure).
std::filesystem::path quarantine(const std::filesystem::path& file,
                                 const std::filesystem::path& quarantine_dir);

// fsync of a directory (makes renames/unlinks inside it durable). Errors are ignored.
void sync_directory(const std::filesystem::path& dir);

// A name fragment unique for this process and call: <pid hex><counter hex><random hex>.
std::string unique_token();

}  // namespace faceadapt::quality::files
