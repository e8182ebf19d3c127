#include "people_folder.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <spdlog/spdlog.h>

#include "faceadapt/common/text.hpp"
#include "faceadapt/ingest/face_aligner.hpp"
#include "faceadapt/ingest/face_batch.hpp"
#include "faceadapt/quality/gallery.hpp"
#include "faceadapt/quality/quality.hpp"

namespace faceadapt::tools {

namespace fs = std::filesystem;

namespace {

// A reason's kind for the summary: its words before the measured figures ("the face is too dark
// (brightness 12 ...)" -> "the face is too dark"; "2 faces found, none ..." -> "several faces").
std::string reason_kind(const std::string& reason) {
    if (reason.find("faces found") != std::string::npos) return "several faces";
    const auto end = reason.find_first_of("(:;,");
    std::string k = reason.substr(0, end);
    while (!k.empty() && k.back() == ' ') k.pop_back();
    return k;
}

}  // namespace

std::string PeopleChips::skipped_summary() const {
    if (skipped.empty()) return "";
    std::map<std::string, std::size_t> kinds;
    for (const auto& s : skipped) ++kinds[reason_kind(s.reason)];
    std::string out = fmt::format("{} of {} photos skipped:", skipped.size(), photos);
    const char* sep = " ";
    for (const auto& [kind, n] : kinds) out += fmt::format("{}{} {}", sep, n, kind), sep = ", ";
    return out;
}

PeopleChips load_people_chips(const fs::path& dir, const std::string& what, bool loose_files_are_people,
                              const PhotoGate* gate) {
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
    std::optional<quality::QualityScorer> scorer;
    if (gate) scorer.emplace(gate->quality);
    PeopleChips out;
    auto skip = [&](const fs::path& f, std::string reason) {
        spdlog::warn("{}: {}: {}; skipped", what, common::printable(f.string()), reason);
        out.skipped.push_back({f, std::move(reason)});
    };
    for (const auto& [person, files] : people) {
        std::size_t found = 0;
        for (const auto& f : files) {
            ++out.photos;
            cv::Mat image = cv::imread(f.string(), cv::IMREAD_COLOR);
            if (image.empty()) {
                skip(f, "not a readable image");
                continue;
            }
            if (gate) {
                const auto check = quality::check_enrollment_image(image, aligner, *scorer, gate->min_face_px, gate->enroll);
                if (!check.ok) {
                    skip(f, check.reason);
                    continue;
                }
                out.chips.push_back(check.chip);
            } else {
                auto faces = aligner.detect(image);
                if (faces.empty()) {
                    skip(f, "no face found");
                    continue;
                }
                out.chips.push_back(faces.front().chip);
            }
            out.names.push_back(person);
            ++found;
        }
        if (found == 0 && files.size() != 1) spdlog::warn("{}: no usable image for {}", what, common::printable(person, 80));
        out.people += found > 0;
    }
    if (!out.skipped.empty()) spdlog::warn("{}: {}", what, out.skipped_summary());
    spdlog::info("{}: {} faces of {} people", what, out.chips.size(), out.people);
    return out;
}

}  // namespace faceadapt::tools
