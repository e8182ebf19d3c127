// The evaluate command: the training cycle's evaluation child (faceadaptd runs it; torch stays
// out of the daemon).
//   evaluate --state-dir DIR --candidate MODEL [--current MODEL|source] [--holdout FILE.json]
//            [--far F] [--door-far F] [--strangers DIR] [--config FILE] [--source] [--best MODEL]
//            [--device cpu|cuda] [--protocol-fd N]
//   For each model (current first, when given; "source" = the pretrained source model), the
//   gate's figures (daemon/gate_figures.hpp) on the enrolled gallery of DIR and the held-out
//   crops of FILE.json, and the gallery embedded by that model. A summary goes to stdout; with
//   --protocol-fd the results are "evaluation" messages of daemon/child_protocol.hpp there.
//   FILE.json is what the cycle's prepare step writes: {"crops":[{"file":PATH,"track":LABEL}],
//   "frame_crops":[{"file":PATH,"track":LABEL}], "frame_pairs":[[LABEL,LABEL],...]} (the last two
//   since issue 12: crops of tracks seen two at a time in one frame, and those track pairs).
//   Each model's figures include its operating point calibrated for --door-far (default --far),
//   a door rate, on the enrolled cross-person pairs, the frame pairs and the --strangers
//   (docs/operating-point.md); a stranger photo is used only when it passes the site's enrollment
//   check ([detect] min_face_px and [enroll] of --config, or the defaults; tools/people_folder.hpp),
//   and how many were skipped and why is logged and printed. --source and --best add the
//   pretrained source model and MODEL
//   as the gate's references (roles "source" and "best").
//   Exit codes: 0 done, 2 bad input, 1 a model that does not load.
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "people_folder.hpp"
#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/daemon/child_protocol.hpp"
#include "faceadapt/daemon/gate_figures.hpp"

namespace faceadapt::tools {
namespace {
namespace fs = std::filesystem;

struct EvaluateArgs {
    fs::path state_dir, candidate, holdout, strangers, best, config;
    std::string current, device = "cpu";
    double far = 1e-3, door_far = 0;
    bool source = false;
    int protocol_fd = -1;
};

struct HeldOut {
    std::vector<cv::Mat> chips;        // RGB 150x150
    std::vector<std::string> tracks;
    std::vector<cv::Mat> frame_chips;  // crops of tracks in same-frame pairs
    std::vector<std::string> frame_tracks;
    std::vector<std::pair<std::string, std::string>> frame_pairs;
};

// A crop file as an RGB 150x150 chip; empty when unreadable.
cv::Mat read_chip(const std::string& file) {
    cv::Mat bgr = cv::imread(file, cv::IMREAD_COLOR);
    if (bgr.empty()) return bgr;
    if (bgr.size() != cv::Size(150, 150)) cv::resize(bgr, bgr, cv::Size(150, 150));
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    return rgb;
}

// A {"file","track"} list into chips + labels; returns how many were unreadable.
std::size_t read_crops(const nlohmann::json& list, const fs::path& file, std::vector<cv::Mat>& chips,
                       std::vector<std::string>& tracks) {
    if (!list.is_array()) throw std::invalid_argument("--holdout: " + file.string() + ": a crop list is not an array");
    std::size_t unreadable = 0;
    for (const auto& c : list) {
        if (!c.is_object() || !c.contains("file") || !c["file"].is_string() || !c.contains("track") ||
            !c["track"].is_string())
            throw std::invalid_argument("--holdout: " + file.string() + ": an entry lacks \"file\" or \"track\"");
        cv::Mat rgb = read_chip(c["file"].get<std::string>());
        if (rgb.empty()) {
            ++unreadable;
            continue;
        }
        chips.push_back(rgb);
        tracks.push_back(c["track"].get<std::string>());
    }
    return unreadable;
}

// The held-out crops; an unreadable file is skipped with its label (labels stay aligned).
HeldOut read_holdout(const fs::path& file) {
    HeldOut out;
    if (file.empty()) return out;
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(common::read_file(file));
    } catch (const nlohmann::json::exception&) {
        throw std::invalid_argument("--holdout: " + file.string() + " is not JSON");
    } catch (const std::runtime_error& e) {
        throw std::invalid_argument(std::string("--holdout: ") + e.what());
    }
    if (!j.is_object() || !j.contains("crops") || !j["crops"].is_array())
        throw std::invalid_argument("--holdout: " + file.string() + " has no \"crops\" array");
    std::size_t unreadable = read_crops(j["crops"], file, out.chips, out.tracks);
    if (j.contains("frame_crops")) unreadable += read_crops(j["frame_crops"], file, out.frame_chips, out.frame_tracks);
    if (j.contains("frame_pairs")) {
        if (!j["frame_pairs"].is_array()) throw std::invalid_argument("--holdout: " + file.string() + ": frame_pairs is not an array");
        for (const auto& p : j["frame_pairs"]) {
            if (!p.is_array() || p.size() != 2 || !p[0].is_string() || !p[1].is_string())
                throw std::invalid_argument("--holdout: " + file.string() + ": a frame pair is not two track labels");
            out.frame_pairs.emplace_back(p[0].get<std::string>(), p[1].get<std::string>());
        }
    }
    if (unreadable) spdlog::warn("evaluate: {} held-out crop(s) of {} unreadable, skipped", unreadable, file.string());
    return out;
}

int run_evaluate(const EvaluateArgs& a, daemon::ProtocolWriter* protocol) {
    if (!fs::is_directory(a.state_dir)) throw std::invalid_argument("--state-dir: no such folder " + a.state_dir.string());
    const HeldOut site = read_holdout(a.holdout);
    const daemon::GalleryChips gallery = daemon::load_gallery_chips(a.state_dir);
    daemon::CalibrationData calibration;
    calibration.frame_chips = site.frame_chips;
    calibration.frame_tracks = site.frame_tracks;
    calibration.frame_pairs = site.frame_pairs;
    calibration.target_far = a.door_far > 0 ? a.door_far : a.far;
    if (!a.strangers.empty()) {
        const PhotoGate gate = PhotoGate::from(a.config.empty() ? config::Config{} : config::load_config(a.config));
        PeopleChips strangers = load_people_chips(a.strangers, "strangers", true, &gate);
        if (!strangers.skipped.empty()) std::printf("strangers: %s\n", strangers.skipped_summary().c_str());
        calibration.stranger_chips = std::move(strangers.chips);
        calibration.stranger_names = std::move(strangers.names);
    }
    std::vector<std::pair<std::string, fs::path>> models;
    if (!a.current.empty()) models.emplace_back("current", a.current == "source" ? fs::path() : fs::path(a.current));
    if (a.source && a.current != "source") models.emplace_back("source", fs::path());
    if (!a.best.empty()) models.emplace_back("best", a.best);
    models.emplace_back("candidate", a.candidate);
    for (const auto& [role, file] : models) {
        if (protocol) {
            daemon::ChildProgress p;
            p.phase = "evaluate";
            protocol->write(p);
        }
        daemon::ChildEvaluation ev =
            daemon::evaluate_model(file, a.device, gallery, site.chips, site.tracks, a.far, &calibration);
        ev.role = role;
        if (!file.empty()) ev.model = fs::absolute(file);
        std::printf("%s\n", fmt::format("{} {}: gallery {} people, TAR {:.4f}, rank-1 {:.4f}; site {} tracks, "
                                        "consistency {:.4f}, compactness {:.4f}",
                                        role, file.empty() ? "source" : file.string(), ev.figures.gallery.people,
                                        ev.figures.gallery.tar, ev.figures.gallery.rank1, ev.figures.site.groups,
                                        ev.figures.site.consistency, ev.figures.site.compactness)
                                .c_str());
        if (ev.figures.door)
            std::printf("%s\n", fmt::format("{} door: threshold {:.4f}{}, FRR {:.4f}: {}", role, ev.figures.door->point.threshold,
                                            ev.figures.door->point.calibrated ? "" : " (NOT calibrated)",
                                            ev.figures.door->point.frr, ev.figures.door->point.note)
                                        .c_str());
        std::fflush(stdout);
        if (protocol) protocol->write(ev);
    }
    return 0;
}

}  // namespace

void register_evaluate_command(CLI::App& app, CommandResult& result) {
    auto args = std::make_shared<EvaluateArgs>();
    auto* cmd = app.add_subcommand("evaluate", "Gate figures and the embedded gallery of models (the daemon's evaluation child)");
    cmd->add_option("--state-dir", args->state_dir, "The site's state folder (its enrolled gallery)")->required();
    cmd->add_option("--candidate", args->candidate, "The model to evaluate (and whose gallery a release packs)")->required();
    cmd->add_option("--current", args->current, "The model in use to compare with (a file, or 'source')");
    cmd->add_option("--holdout", args->holdout, "Held-out site crops: {\"crops\":[{\"file\":..,\"track\":..}]}");
    cmd->add_option("--far", args->far, "False-accept rate of the gallery TAR")->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--door-far", args->door_far, "Door false-accept rate to calibrate each model's threshold for "
                    "(default: --far)")->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--strangers", args->strangers, "Photos of people not enrolled: impostor pairs for the calibration")
        ->check(CLI::ExistingDirectory);
    cmd->add_option("--config", args->config, "Site config (TOML): its [detect] and [enroll] check the --strangers photos")
        ->check(CLI::ExistingFile);
    cmd->add_flag("--source", args->source, "Also evaluate the pretrained source model (role \"source\")");
    cmd->add_option("--best", args->best, "Also evaluate this model (role \"best\": the best so far)")->check(CLI::ExistingFile);
    cmd->add_option("--device", args->device, "cpu or cuda");
    cmd->add_option("--protocol-fd", args->protocol_fd, "Write the results as JSON lines (daemon/child_protocol.hpp) here")
        ->check(CLI::Range(3, 1023));
    cmd->callback([args, &result] {
        run_guarded_child(result, args->protocol_fd, [&](daemon::ProtocolWriter* protocol) { return run_evaluate(*args, protocol); });
    });
}

}  // namespace faceadapt::tools
