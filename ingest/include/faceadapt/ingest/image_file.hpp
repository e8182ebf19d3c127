// Reading image files from outside with bounds: the size is checked from the header before any
// pixel is decoded.
//
// WHAT THIS REPRESENTS
//   cv::imread decodes whatever a file's header announces (a 656 KB PNG announcing 15000x15000
//   took 886 MB before the caller could refuse it), and OpenCV's own pixel limit is a
//   process-wide environment variable read once (OPENCV_IO_MAX_IMAGE_PIXELS, default 2^30), so
//   it cannot bound one call. read_image_size() parses the header of the formats that
//   has_image_extension() accepts (PNG, JPEG, BMP, PGM/PPM/PBM, TIFF, WebP) by their magic bytes
//   (hand-written: OpenCV 4.6 has no public header-only reader); read_image_bounded() reads the
//   file (at most max_file_bytes), checks that size against the limits and only then decodes it
//   with cv::imdecode.
// THREAD SAFETY
//   Pure functions (read_image_bounded reads the file system); safe from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include <opencv2/core/mat.hpp>

namespace faceadapt::ingest {

struct ImageSize {
    int64_t width = 0, height = 0;
};

// The width and height stated by the header at the start of `bytes`, or nullopt when the format
// is not one of the above or the header is cut short or malformed. Never decodes pixels.
std::optional<ImageSize> read_image_size(std::string_view bytes);

struct ImageLimits {
    std::uintmax_t max_file_bytes = 64u << 20;  // the file itself
    int64_t max_side = 16384;                   // width and height each
    int64_t max_pixels = 40'000'000;            // width x height
    int64_t exact_width = 0, exact_height = 0;  // > 0: the image must be exactly this size
};

struct BoundedImage {
    cv::Mat bgr;        // 8-bit BGR; empty when refused
    std::string error;  // why it was refused (names the file); empty on success
};

// Reads and decodes `file` as 8-bit BGR after checking its header against `limits`.
// ensures: on success error is empty and bgr has the header's size; otherwise bgr is empty and
//          error says why (unreadable, too large a file, unknown format, bad header, too many
//          pixels, wrong size, decoding failed). Never throws for a bad file.
BoundedImage read_image_bounded(const std::filesystem::path& file, const ImageLimits& limits);

}  // namespace faceadapt::ingest
