// The evaluate command: the training cycle's evaluation child (faceadaptd runs it; torch stays
// out of the daemon).
//   evaluate --state-dir DIR --candidate MODEL [--current MODEL|source] [--holdout FILE.json]
//            [--far F] [--device cpu|cuda] [--protocol-fd N]
//   For each model (current first, when given; "source" = the pretrained source model), the
//   gate's figures (daemon/gate_figures.hpp) on the enrolled gallery of DIR and the held-out
//   crops of FILE.json, and the gallery embedded by that model. A summary goes to stdout; with
//   --protocol-fd the results are "evaluation" messages of daemon/child_protocol.hpp there.
//   FILE.json is what the cycle's prepare step writes: {"crops":[{"file":PATH,"track":LABEL}]}.
//   Exit codes: 0 done, 2 bad input, 1 a model that does not load.
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/daemon/child_protocol.hpp"
#include "faceadapt/daemon/gate_figures.hpp"

namespace faceadapt::tools {
namespace {
namespace fs = std::filesystem;

struct EvaluateArgs {
    fs::path state_dir, candidate, holdout;
    std::string current, device = "cpu";
    double far = 1e-3;
    int protocol_fd = -1;
};

struct HeldOut {
    std::vector<cv::Mat> chips;        // RGB 150x150
    std::vector<std::string> tracks;
};

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
    std::size_t unreadable = 0;
    for (const auto& c : j["crops"]) {
        if (!c.is_object() || !c.contains("file") || !c["file"].is_string() || !c.contains("track") ||
            !c["track"].is_string())
            throw std::invalid_argument("--holdout: " + file.string() + ": an entry lacks \"file\" or \"track\"");
        cv::Mat bgr = cv::imread(c["file"].get<std::string>(), cv::IMREAD_COLOR);
        if (bgr.empty()) {
            ++unreadable;
            continue;
        }
        if (bgr.size() != cv::Size(150, 150)) cv::resize(bgr, bgr, cv::Size(150, 150));
        cv::Mat rgb;
        cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
        out.chips.push_back(rgb);
        out.tracks.push_back(c["track"].get<std::string>());
    }
    if (unreadable) spdlog::warn("evaluate: {} held-out crop(s) of {} unreadable, skipped", unreadable, file.string());
    return out;
}

int run_evaluate(const EvaluateArgs& a, daemon::ProtocolWriter* protocol) {
    if (!fs::is_directory(a.state_dir)) throw std::invalid_argument("--state-dir: no such folder " + a.state_dir.string());
    const HeldOut site = read_holdout(a.holdout);
    const daemon::GalleryChips gallery = daemon::load_gallery_chips(a.state_dir);
    std::vector<std::pair<std::string, fs::path>> models;
    if (!a.current.empty()) models.emplace_back("current", a.current == "source" ? fs::path() : fs::path(a.current));
    models.emplace_back("candidate", a.candidate);
    for (const auto& [role, file] : models) {
        if (protocol) {
            daemon::ChildProgress p;
            p.phase = "evaluate";
            protocol->write(p);
        }
        daemon::ChildEvaluation ev = daemon::evaluate_model(file, a.device, gallery, site.chips, site.tracks, a.far);
        ev.role = role;
        if (!file.empty()) ev.model = fs::absolute(file);
        std::printf("%s\n", fmt::format("{} {}: gallery {} people, TAR {:.4f}, rank-1 {:.4f}; site {} tracks, "
                                        "consistency {:.4f}, compactness {:.4f}",
                                        role, file.empty() ? "source" : file.string(), ev.figures.gallery.people,
                                        ev.figures.gallery.tar, ev.figures.gallery.rank1, ev.figures.site.groups,
                                        ev.figures.site.consistency, ev.figures.site.compactness)
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
    cmd->add_option("--device", args->device, "cpu or cuda");
    cmd->add_option("--protocol-fd", args->protocol_fd, "Write the results as JSON lines (daemon/child_protocol.hpp) here")
        ->check(CLI::Range(3, 1023));
    cmd->callback([args, &result] {
        run_guarded_child(result, args->protocol_fd, [&](daemon::ProtocolWriter* protocol) { return run_evaluate(*args, protocol); });
    });
}

}  // namespace faceadapt::tools
