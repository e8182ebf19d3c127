// Internal: crash-safe image files for the crop store and the gallery.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <opencv2/core.hpp>

#include "faceadapt/common/durable_file.hpp"

namespace faceadapt::quality::files {

// Temp files (debris after a crash), folder fsync and unique names come from common/.
using common::kTempSuffix;
using common::sync_directory;
using common::unique_token;

// Encodes `rgb` (8UC3 RGB or 8UC1) as PNG and writes it to `target` with
// common::write_file_atomic (durable only when do_fsync; atomic either way).
// ensures: returns the file size in bytes; on failure nothing is left at target or its temp.
// throws std::runtime_error naming the file.
std::int64_t write_png_atomic(const cv::Mat& rgb, const std::filesystem::path& target, bool do_fsync);

// Why read_rgb returned nothing: only `undecodable` says the file itself is bad (and may be
// quarantined); `unreadable` is a fault of the disk or the permissions (leave the file alone).
enum class ReadFailure { none, absent, unreadable, undecodable };

// Decodes a PNG/JPEG as RGB 8UC3; std::nullopt when the file is absent, cannot be read or does
// not decode, with the reason in *why when given.
std::optional<cv::Mat> read_rgb(const std::filesystem::path& file, ReadFailure* why = nullptr);

// Moves `file` into `quarantine_dir` under a unique name, returns the new path ("" on failure).
std::filesystem::path quarantine(const std::filesystem::path& file,
                                 const std::filesystem::path& quarantine_dir);



}  // namespace faceadapt::quality::files
