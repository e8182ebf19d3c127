#include "people_folder.hpp"

#include <algorithm>
#include <stdexcept>

#include <opencv2/imgcodecs.hpp>
#include <spdlog/spdlog.h>

#include "faceadapt/ingest/face_aligner.hpp"
#include "faceadapt/ingest/face_batch.hpp"
#include "faceadapt/common/text.hpp"

namespace faceadapt::tools {

namespace fs = std::filesystem;

PeopleChips load_people_chips(const fs::path& dir, const std::string& what, bool loose_files_are_people) {
    if (!fs::is_directory(dir)) throw std::invalid_argument(what + ": not a folder: " + dir.string());
    std::vector<std::pair<std::string, std::vector<fs::path>>> people;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.is_directory()) {
            std::vector<fs::path> files;
            for (const auto& f : fs::directory_iterator(e.path()))
                if (f.is_regular_file() && ingest::has_image_extension(f.path())) files.push_back(f.path());
            std::sort(files.begin(), files.end());
            people.emplace_back(e.path().filename().string(), files);
        } else if (loose_files_are_people && e.is_regular_file() && ingest::has_image_extension(e.path())) {
            people.emplace_back(e.path().filename().string(), std::vector<fs::path>{e.path()});
        }
    }
    std::sort(people.begin(), people.end());
    ingest::FaceAligner aligner;
    PeopleChips out;
    for (const auto& [person, files] : people) {
        std::size_t found = 0;
        for (const auto& f : files) {
            cv::Mat image = cv::imread(f.string(), cv::IMREAD_COLOR);
            if (image.empty()) {
                spdlog::warn("{}: {} is not a readable image; skipped", what, common::printable(f.string()));
                continue;
            }
            auto faces = aligner.detect(image);
            if (faces.empty()) {
                spdlog::warn("{}: no face in {}; skipped", what, common::printable(f.string()));
                continue;
            }
            out.chips.push_back(faces.front().chip);
            out.names.push_back(person);
            ++found;
        }
        if (found == 0) spdlog::warn("{}: no usable image for {}", what, common::printable(person, 80));
        out.people += found > 0;
    }
    spdlog::info("{}: {} faces of {} people", what, out.chips.size(), out.people);
    return out;
}

}  // namespace faceadapt::tools
