// Subcommands of the daemon module: `faceadapt models list|rollback`.
#include <cmath>
#include <iostream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "people_folder.hpp"
#include "faceadapt/config/config.hpp"
#include "faceadapt/daemon/model_registry.hpp"
#include "faceadapt/daemon/gate_figures.hpp"
#include "faceadapt/daemon/release.hpp"
#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/learner/model_file.hpp"
#include "faceadapt/learner/onnx_export.hpp"
#include "faceadapt/learner/weights_import.hpp"

namespace faceadapt::tools {
namespace {

struct ModelsArgs {
    std::filesystem::path config_file;
    int version = 0;
    bool json = false;
};

// Loads the config for a models subcommand; on ConfigError prints the issues and returns false.
bool load(const ModelsArgs& args, config::Config& out, CommandResult& result) {
    try {
        out = config::load_config(args.config_file);
        return true;
    } catch (const config::ConfigError& e) {
        for (const auto& issue : e.issues()) std::cerr << issue.to_string() << '\n';
        result.exit_code = 2;
        return false;
    }
}

void list_models(const ModelsArgs& args, CommandResult& result) {
    config::Config cfg;
    if (!load(args, cfg, result)) return;
    daemon::ModelRegistry registry(cfg.site.state_dir / "models");
    const int current = registry.current_version();
    if (args.json) {
        nlohmann::json out{{"current", current}, {"previous", registry.previous_version()}, {"versions", nlohmann::json::array()}};
        for (const auto& v : registry.list()) out["versions"].push_back(v.meta);
        std::cout << out.dump(2) << '\n';
        return;
    }
    std::cout << fmt::format("{:>3} {:>7} {:<20} {:<9} {:<22} {}\n", "", "VERSION", "CREATED", "PUBLISHED", "ORIGIN", "GATE");
    std::cout << fmt::format("{:>3} {:>7} {:<20} {:<9} {:<22} {}\n", current == 0 ? "*" : "", 0, "-", "-",
                             "pretrained source", "-");
    for (const auto& v : registry.list()) {
        std::string gate = "-";
        if (v.meta.contains("gate")) {
            const auto& c = v.meta["gate"]["candidate"];
            const bool g = c["gallery"].value("evaluated", false), s = c["site"].value("evaluated", false);
            gate = fmt::format("gallery {} site {}",
                               g ? fmt::format("tar {:.3f} rank1 {:.3f}", c["gallery"].value("tar", 0.0),
                                               c["gallery"].value("rank1", 0.0))
                                 : std::string("-"),
                               s ? fmt::format("consistency {:.3f} compactness {:.3f}",
                                               c["site"].value("consistency", 0.0), c["site"].value("compactness", 0.0))
                                 : std::string("-"));
            if (c.contains("door") && c["door"].is_object()) {  // the operating point it shipped with (issue 12)
                const auto& d = c["door"];
                auto num = [&](const char* k) { return d.contains(k) && d[k].is_number() ? d[k].get<double>() : NAN; };
                gate += fmt::format(" door threshold {:.4f} frr {:.3f} {}-far<={:.2g} ({} pairs){}", num("threshold"),
                                    num("frr"), d.value("far_kind", "?"),
                                    d.value("far_kind", "") == "pair" ? num("pair_far_bound") : num("door_far_bound"),
                                    d.value("impostor_pairs", 0), d.value("calibrated", false) ? "" : " NOT calibrated");
            }
        }
        std::cout << fmt::format("{:>3} {:>7} {:<20} {:<9} {:<22} {}\n", v.version == current ? "*" : "", v.version,
                                 v.meta.value("created", std::string{"?"}), v.published() ? "yes" : "no", v.origin(),
                                 gate);
    }
}

// The release's ONNX export in this process (the CLI links the learner).
void in_process_onnx_export(const std::filesystem::path& model_file, int version, const std::string& weights,
                            const std::filesystem::path& out) {
    onnx::ExportOptions options;
    options.weights = weights == "float16" ? onnx::WeightType::kFloat16 : onnx::WeightType::kFloat32;
    options.model_version = version;
    common::write_file_atomic(out, learner::export_model_file_onnx(model_file, options));
}

void rollback(const ModelsArgs& args, CommandResult& result) {
    config::Config cfg;
    if (!load(args, cfg, result)) return;
    daemon::ModelRegistry registry(cfg.site.state_dir / "models");
    if (args.version < 0 || (args.version != 0 && !registry.contains(args.version))) {
        // The versions there as runs ("0 (pretrained source), 3..5, 8"): retention removes old ones.
        std::string there = "0 (pretrained source)";
        const auto versions = registry.list();
        for (std::size_t i = 0; i < versions.size();) {
            std::size_t j = i;
            while (j + 1 < versions.size() && versions[j + 1].version == versions[j].version + 1) ++j;
            there += j == i ? fmt::format(", {}", versions[i].version)
                            : fmt::format(", {}..{}", versions[i].version, versions[j].version);
            i = j + 1;
        }
        std::cerr << fmt::format("models rollback: version {} is not in {}; versions there: {} "
                                 "(see `faceadapt models list`)\n",
                                 args.version, registry.dir().string(), there);
        result.exit_code = 2;
        return;
    }
    // Version 0, the pretrained source, is never stored: write it as a model file first.
    std::filesystem::path source_model;
    if (args.version == 0) {
        source_model = registry.dir() / "source.model";
        learner::FaceResNet source = cfg.learner.weights_dir.empty()
                                         ? learner::load_source_model()
                                         : learner::import_face_api_weights(cfg.learner.weights_dir);
        learner::ModelMetadata meta;
        meta.provenance = {{"source", "pretrained source (faceadapt models rollback 0)"}};
        learner::save_model(source, meta, source_model);
    }
    // The gallery the package carries, embedded by the model rolled back to (in this process:
    // the CLI links the learner, faceadaptd does not).
    // Calibrated for [gate] door_far on the enrolled cross-person pairs and [gate] strangers_dir.
    daemon::CalibrationData calibration;
    calibration.target_far = daemon::target_door_far(cfg.gate);
    if (!cfg.gate.strangers_dir.empty()) {
        const PhotoGate gate = PhotoGate::from(cfg);  // the site's enrollment check (people_folder.hpp)
        PeopleChips strangers = load_people_chips(cfg.gate.strangers_dir, "strangers", true, &gate);
        if (!strangers.skipped.empty()) std::cout << "strangers: " << strangers.skipped_summary() << "\n";
        calibration.stranger_chips = std::move(strangers.chips);
        calibration.stranger_names = std::move(strangers.names);
    }
    const daemon::EmbeddedGallery gallery = daemon::embed_gallery(
        cfg.site.state_dir, args.version == 0 ? std::filesystem::path() : registry.get(args.version).model_file,
        cfg.learner.device, &calibration);
    if (gallery.operating_point)
        std::cout << "operating point: threshold " << gallery.operating_point->threshold << ": "
                  << gallery.operating_point->note << "\n";
    const daemon::ReleaseReport r =
        daemon::rollback(cfg, registry, args.version, gallery, in_process_onnx_export, nullptr, source_model);
    if (!source_model.empty()) std::filesystem::remove(source_model);  // copied into versions/
    std::cout << fmt::format("rolled back to version {} as new version {}: {}\n", args.version, r.version,
                             r.published ? fmt::format("published; doors acked [{}] rejected [{}] missing [{}]",
                                                       fmt::join(r.acked, ","), fmt::join(r.rejected, ","),
                                                       fmt::join(r.missing, ","))
                                         : "NOT published: " + r.error);
    result.exit_code = r.published ? 0 : 1;
}

}  // namespace

void register_daemon_commands(CLI::App& app, CommandResult& result) {
    auto args = std::make_shared<ModelsArgs>();
    auto* models = app.add_subcommand("models", "List the site's model versions or roll back to one");
    models->require_subcommand(1);
    auto* list = models->add_subcommand("list", "List model versions (* marks the current one)");
    list->add_option("--config,-c", args->config_file, "Site TOML file")->required();
    list->add_flag("--json", args->json, "Print JSON");
    list->callback([args, &result] { list_models(*args, result); });
    auto* back = models->add_subcommand(
        "rollback", "Make VERSION current again: it is registered as a new version and published to the doors");
    back->add_option("--config,-c", args->config_file, "Site TOML file")->required();
    // Checked in rollback(): CLI::PositiveNumber's refusal printed a range of 300 digits.
    back->add_option("VERSION", args->version, "A version from `faceadapt models list` (0: the pretrained source)")
        ->required();
    back->callback([args, &result] { rollback(*args, result); });
}

}  // namespace faceadapt::tools
