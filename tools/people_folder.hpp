// Faces of people from a folder, for the gallery and the strangers of a calibration.
//   DIR/<name>/<images>: one person per folder; with loose_files_are_people, an image directly in
//   DIR is a person of its own (a folder of strangers' badge photos). Each image's largest face
//   is detected and aligned (ingest::FaceAligner); unreadable images and images without a face
//   are skipped with a warning naming the file.
// THREAD SAFETY
//   One call at a time per thread (each call makes its own aligner).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace faceadapt::tools {

struct PeopleChips {
    std::vector<std::string> names;  // names[i] is chips[i]'s person
    std::vector<cv::Mat> chips;      // RGB 150x150
    std::size_t people = 0;          // people with at least one usable image
};

// `what` names the folder in messages ("gallery", "strangers").
// throws std::invalid_argument when dir is not a folder.
PeopleChips load_people_chips(const std::filesystem::path& dir, const std::string& what, bool loose_files_are_people);

}  // namespace faceadapt::tools
