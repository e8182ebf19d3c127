// Subcommands of the quality module:
//   enroll --name NAME IMAGE... [--config FILE | --state-dir DIR]
//       Detect + align each photo and judge it with the enrollment gate ([enroll]); then enroll
//       those that pass (back to back, so that faceadaptd ships them as one gallery update),
//       print the reason for each refusal with what to change, then one line
//       "NAME: K of N photo(s) enrolled; refused: PATH, ...". Exit 0 when every photo was
//       enrolled, 1 when any was refused (the others are enrolled), 2 for a bad config.
//   gallery list [--config FILE | --state-dir DIR]
//   gallery remove NAME [--config FILE | --state-dir DIR]   (exit 1 when NAME is not enrolled)
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <opencv2/imgcodecs.hpp>
#include <spdlog/fmt/fmt.h>

#include "commands.hpp"
#include "faceadapt/config/config.hpp"
#include "faceadapt/ingest/face_aligner.hpp"
#include "faceadapt/quality/gallery.hpp"
#include "faceadapt/quality/quality.hpp"

namespace faceadapt::tools {
namespace {

namespace cfg = faceadapt::config;

// Where the gallery lives and which tables score: --config FILE, then --state-dir DIR overrides.
struct Location {
    std::string config_file;
    std::string state_dir;
    void add_to(CLI::App* cmd) {
        cmd->add_option("--config", config_file, "Site TOML file (state_dir, [quality], [detect])")
            ->check(CLI::ExistingFile);
        cmd->add_option("--state-dir", state_dir, "State folder (overrides the config's site.state_dir)");
    }
    // The effective config; on a bad file prints the issues, sets exit code 2, returns nullopt.
    std::optional<cfg::Config> resolve(CommandResult& result) const {
        cfg::Config config;
        if (!config_file.empty()) {
            try {
                config = cfg::load_config(config_file);
            } catch (const cfg::ConfigError& e) {
                for (const auto& issue : e.issues()) std::cerr << issue.to_string() << '\n';
                result.exit_code = 2;
                return std::nullopt;
            }
        }
        if (!state_dir.empty()) config.site.state_dir = state_dir;
        return config;
    }
};

int enroll(const cfg::Config& config, const std::string& name, const std::vector<std::string>& images) {
    const quality::QualityScorer scorer(config.quality);
    quality::Gallery gallery(config.site.state_dir);
    std::unique_ptr<ingest::FaceAligner> aligner;  // ~100 MB landmark model: loaded when first needed
    // Every photo is checked (the slow part: decode, detect, score) before the first is added:
    // faceadaptd ships the gallery once its revision has held still for a tick (500 ms), so
    // adds spread over the checks shipped one enrollment as several partial updates.
    std::vector<quality::EnrollCheck> checks;
    for (const auto& path : images) {
        const cv::Mat image = cv::imread(path, cv::IMREAD_COLOR);
        if (!image.empty() && !aligner) aligner = std::make_unique<ingest::FaceAligner>(config.detect.landmarks_model);
        checks.push_back(image.empty()
                             ? quality::EnrollCheck{false, "cannot read the image (missing or not an image)", {}, {}}
                             : quality::check_enrollment_image(image, *aligner, scorer, config.detect.min_face_px,
                                                                 config.enroll));
    }
    std::vector<std::string> refused_photos;
    for (std::size_t i = 0; i < images.size(); ++i) {
        const auto& path = images[i];
        const auto& check = checks[i];
        if (!check.ok) {
            std::cout << path << ": refused: " << check.reason << '\n';
            refused_photos.push_back(path);
            continue;
        }
        const auto id = gallery.add(name, check.chip, check.score, path);
        std::cout << path << ": enrolled as " << name << " (entry " << id << ", quality "
                  << fmt::format("{:.3f}", check.score.normalized) << ")\n";
    }
    // The verdict in one line: with many photos the refusals above are easy to miss.
    const std::size_t enrolled = images.size() - refused_photos.size();
    std::cout << fmt::format("{}: {} of {} photo(s) enrolled", name, enrolled, images.size());
    if (!refused_photos.empty()) std::cout << fmt::format("; refused: {}", fmt::join(refused_photos, ", "));
    std::cout << '\n';
    return refused_photos.empty() ? 0 : 1;
}

}  // namespace

void register_quality_commands(CLI::App& app, CommandResult& result) {
    auto* enroll_cmd = app.add_subcommand("enroll", "Enroll a person from photos (one face each, good quality)");
    auto name = std::make_shared<std::string>();
    auto images = std::make_shared<std::vector<std::string>>();
    auto enroll_loc = std::make_shared<Location>();
    enroll_cmd->add_option("--name", *name, "The person's name")->required();
    enroll_cmd->add_option("IMAGE", *images, "Photos of the person")->required();
    enroll_loc->add_to(enroll_cmd);
    enroll_cmd->callback([=, &result] {
        if (auto config = enroll_loc->resolve(result)) result.exit_code = enroll(*config, *name, *images);
    });

    auto* gallery_cmd = app.add_subcommand("gallery", "List or remove enrolled people");
    gallery_cmd->require_subcommand(1);
    auto list_loc = std::make_shared<Location>();
    auto* list = gallery_cmd->add_subcommand("list", "List enrolled people and their photos");
    list_loc->add_to(list);
    list->callback([=, &result] {
        const auto config = list_loc->resolve(result);
        if (!config) return;
        const quality::Gallery gallery(config->site.state_dir);
        const auto entries = gallery.entries();
        for (const auto& n : gallery.names()) {
            int count = 0;
            double sum = 0;
            for (const auto& e : entries)
                if (e.name == n) ++count, sum += e.score;
            std::cout << fmt::format("{}\t{} photo(s)\tmean quality {:.3f}\n", n, count, sum / count);
        }
        std::cout << entries.size() << " entries, " << gallery.names().size() << " people\n";
    });
    auto remove_loc = std::make_shared<Location>();
    auto remove_name = std::make_shared<std::string>();
    auto* remove = gallery_cmd->add_subcommand("remove", "Remove a person (all their photos)");
    remove->add_option("NAME", *remove_name, "The person's name")->required();
    remove_loc->add_to(remove);
    remove->callback([=, &result] {
        const auto config = remove_loc->resolve(result);
        if (!config) return;
        quality::Gallery gallery(config->site.state_dir);
        const int n = gallery.remove(*remove_name);
        if (n == 0) {
            std::cerr << "gallery: no one named \"" << *remove_name << "\" is enrolled\n";
            result.exit_code = 1;
            return;
        }
        std::cout << "removed " << *remove_name << " (" << n << " photo(s))\n";
    });
}

}  // namespace faceadapt::tools
