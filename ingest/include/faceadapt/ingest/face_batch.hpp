// detect_stills: FaceAligner over an image file or a folder tree, writing chips as PNG.
//
// WHAT THIS REPRESENTS
//   The work behind `faceadapt detect IMAGE|DIR --out DIR` (dataset preparation): every image
//   under the input (recursively; .jpg .jpeg .png .pgm .ppm .bmp .tif .tiff .webp) is detected
//   and aligned; its chip is written to the same relative path under `out`, with the extension
//   .png (identity folders are preserved). With `all_faces`, every face is written as
//   <stem>_<k>.png (k = 0 is the largest); otherwise only the largest face, as <stem>.png.
// THREAD SAFETY
//   detect_stills runs `jobs` worker threads of its own, each with its own FaceAligner (sharing
//   one LandmarkModel); the function itself may be called from any thread.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "faceadapt/ingest/face_aligner.hpp"

namespace faceadapt::ingest {

class LandmarkModel;

struct StillsJob {
    std::filesystem::path input;                 // an image file or a folder
    std::filesystem::path out;                   // created if absent
    StillOptions options;
    bool all_faces = false;
    unsigned jobs = 0;                           // 0: one per core
};

struct StillsSummary {
    std::size_t images = 0;                      // image files seen
    std::size_t found = 0;                       // images with at least one face
    std::size_t missing = 0;                     // images with no face
    std::size_t unreadable = 0;                  // files with an image extension that did not decode
    std::size_t chips = 0;                       // chip files written
    std::vector<std::filesystem::path> missing_files;     // relative to the input, sorted
    std::vector<std::filesystem::path> unreadable_files;  // relative to the input, sorted
};

// requires: job.input exists.
// ensures:  chips written as described above; returns the counts.
// throws:   std::invalid_argument naming job.input when it does not exist or is a file without
//           an image extension; std::runtime_error naming the file on a write failure.
StillsSummary detect_stills(const StillsJob& job, std::shared_ptr<const LandmarkModel> landmarks);

// True for the file extensions detect_stills reads (case-insensitive).
bool has_image_extension(const std::filesystem::path& file);

}  // namespace faceadapt::ingest
