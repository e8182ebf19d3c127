// faceadapt-door: the door-controller agent (docs/mqtt.md, docs/package-format.md).
//   run --broker URL (--site SITE | --config FILE) --door ID --pubkey FILE --dir DIR [--username U --password-file F]
//       [--ca F --client-cert F --client-key F] [--client-id ID] [--allow-rollback] [--config FILE]
//     Receives, verifies, installs and acknowledges model packages until SIGINT/SIGTERM.
//   status --dir DIR [--json]        the installed version (and the one kept before it)
//   install FILE --dir DIR --pubkey FILE --site SITE [--allow-rollback]   offline install of a package file
//   rollback --dir DIR               operator rollback to the previous version
//   match IMAGE... --dir DIR [--threads N] [--repeat N] [--json] [--no-quality-gate]
//                                    detect, align, score the face by the crop store's quality rule (the
//                                    site's [quality] the package carries, else the defaults)
//                                    ("retry" for a face the site would not store), embed with the
//                                    installed model, and decide by the package's operating point
//                                    (docs/operating-point.md section 3): one line (--json: one JSON
//                                    object) per image
//   Exit 0 ok (match: a decision for every image), 1 runtime failure (match: no face in an image, or a
//   face to retry), 2 bad input.
//
// The embedding backend is chosen at link time (door_embedder.hpp). The default build runs the
// package's ONNX model with OpenCV DNN (faceadapt/onnx/dnn_embedder.hpp) and links no libtorch:
// it needs OpenCV, dlib, Paho MQTT and libsodium only. Linked with door_embedder_libtorch.cpp (the
// bench-only `faceadapt-door-libtorch`) it runs the libtorch model file of format-1 style packages instead,
// as the door did before issue 16. Each build accepts only the model format it can run.
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <spdlog/spdlog.h>

#include "faceadapt/common/log_format.hpp"
#include "faceadapt/config/config.hpp"
#include "faceadapt/ingest/face_aligner.hpp"
#include "faceadapt/publish/door_agent.hpp"
#include "faceadapt/publish/door_match.hpp"
#include "faceadapt/publish/mqtt_cli.hpp"
#include "faceadapt/config/quality_json.hpp"
#include "faceadapt/publish/operating_point_json.hpp"
#include "faceadapt/common/text.hpp"
#include "faceadapt/quality/quality.hpp"

#include "door_embedder.hpp"

namespace fs = std::filesystem;
namespace fp = faceadapt::publish;
namespace fc = faceadapt::common;

namespace {

// throws std::invalid_argument when this build cannot run a model of `format`.
void require_runnable(const std::string& format, const std::string& what) {
    const auto runs = faceadapt::tools::DoorEmbedder::model_format();
    if (format != runs)
        throw std::invalid_argument(what + " carries model format \"" + format.substr(0, 64) + "\"; this door runs \"" +
                                    std::string(runs) + "\"");
}

int run_agent(fp::DoorAgentOptions options) {
    // SIGINT/SIGTERM are taken by sigwait below; block them before any thread starts.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    fp::DoorAgent agent(options);
    agent.start();
    spdlog::info("door {} of site {}: running (installed version {})", options.door, options.site,
                 agent.state().installed_version);
    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("door {}: stopping on signal {}", options.door, sig);
    agent.stop();
    return 0;
}

// A damaged folder is reported, not an error: the agent repairs it with the next package.
int status(const fs::path& dir, bool json) {
    auto folder = fp::inspect_install_folder(dir, true);
    const auto& installed = folder.installed;
    if (json) {
        nlohmann::json j = {{"dir", dir.string()}, {"installed_version", installed ? installed->version : 0}};
        if (!folder.damage.empty()) {
            j["damage"] = folder.damage;
            j["version_floor"] = folder.version_floor;
        }
        if (installed) {
            j["previous_version"] = installed->previous_version;
            j["refuse_up_to"] = installed->refuse_up_to;
            j["installed_at"] = fc::printable(installed->installed_at);
            j["created"] = fc::printable(installed->manifest.created);
            j["gallery_entries"] = installed->manifest.gallery_entries;
            j["match_threshold"] = installed->manifest.match_threshold;
            j["match_margin"] = installed->manifest.decision_margin();
            j["calibrated"] = installed->manifest.calibrated();
            if (installed->manifest.operating_point)
                j["operating_point"] = fp::to_json(*installed->manifest.operating_point);
            // The face-quality rule `match` applies: the package's [quality], or the defaults.
            j["quality_rule"] = installed->manifest.quality_rule_origin();
            j["quality"] = faceadapt::config::quality_to_json(installed->manifest.quality_rule());
            j["key_id"] = fc::printable(installed->manifest.key_id);
            j["site"] = fc::printable(installed->manifest.site);
            j["model_file"] = installed->model_file.string();
        }
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    if (!folder.damage.empty())
        std::cout << "the install folder is DAMAGED: " << folder.damage << "\n"
                  << "the door agent installs the next package it receives (version >= " << folder.version_floor << ")\n";
    if (!installed) {
        if (folder.damage.empty()) std::cout << "no model installed in " << dir.string() << "\n";
        return 0;
    }
    std::cout << "installed version " << installed->version << " (previous " << installed->previous_version << ")\n"
              << "installed at " << fc::printable(installed->installed_at) << ", created "
              << fc::printable(installed->manifest.created) << "\n"
              << "gallery " << installed->manifest.gallery_entries << " entries, threshold "
              << installed->manifest.match_threshold << (installed->manifest.calibrated() ? " (calibrated)" : " (NOT calibrated)")
              << ", signed by key " << fc::printable(installed->manifest.key_id)
              << " for site " << fc::printable(installed->manifest.site) << "\n"
              << "face quality: " << (installed->manifest.quality ? "the site's [quality], from the package" : "the [quality] defaults")
              << ": a face scoring at or below " << installed->manifest.quality_rule().threshold
              << ", or outside its pose and integrity gates, is asked to retry\n";
    return 0;
}

long peak_rss_kb() {
    rusage usage{};
    return getrusage(RUSAGE_SELF, &usage) == 0 ? usage.ru_maxrss : -1;
}

struct MatchArgs {
    std::vector<fs::path> images;
    fs::path dir, landmarks = faceadapt::ingest::FaceAligner::default_landmarks_model();
    int threads = 0;   // 0: every core
    int repeat = 1;    // embed the chip this many times (timing)
    bool json = false;
    bool quality_gate = true;  // "retry" for a face the crop store's quality rule would not keep
};

// One decision per image, by the installed package's threshold and margin (calib::decide).
int match(const MatchArgs& a) {
    using Clock = std::chrono::steady_clock;
    auto installed = fp::read_installed(a.dir);
    if (!installed) throw std::runtime_error("no model installed in " + a.dir.string());
    require_runnable(installed->manifest.architecture.model_format,
                     "installed version " + std::to_string(installed->version));
    const auto gallery = fp::load_installed_gallery(*installed);  // checks model + gallery hashes
    const double margin = installed->manifest.decision_margin();
    const bool calibrated = installed->manifest.calibrated();
    // To stderr: stdout carries one decision line per image. Packages before issue 12 carry no
    // point and keep their output as it was.
    if (installed->manifest.operating_point && !calibrated)
        std::cerr << "warning: installed version " << installed->version << ": its threshold " << gallery.threshold
                  << " is not calibrated (" << fc::printable(installed->manifest.operating_point->note, 300) << ")\n";
    std::vector<cv::Mat> images;
    for (const auto& file : a.images) {
        images.push_back(cv::imread(file.string(), cv::IMREAD_COLOR));
        if (images.back().empty()) throw std::invalid_argument(file.string() + ": not a readable image");
    }
    const int threads = a.threads > 0 ? a.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const auto t0 = Clock::now();
    const faceadapt::tools::DoorEmbedder embedder(installed->model_file, threads);
    const auto t1 = Clock::now();
    faceadapt::ingest::FaceAligner aligner(a.landmarks);
    // The crop store's rule: the site's [quality] the package carries (the [quality] defaults for
    // a package before it). The calibration's same-frame pairs are crops the store kept, so its
    // FAR holds for faces it would keep (docs/operating-point.md, section 3).
    const faceadapt::quality::QualityScorer scorer{installed->manifest.quality_rule()};
    const char* quality_rule = installed->manifest.quality_rule_origin();
    auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
    int rc = 0;
    for (std::size_t i = 0; i < images.size(); ++i) {
        const auto s0 = Clock::now();
        auto faces = aligner.detect(images[i]);
        const auto s1 = Clock::now();
        if (faces.empty()) {
            rc = 1;
            if (a.json)
                std::cout << nlohmann::json{{"image", a.images[i].string()}, {"decision", "no_face"}, {"matched", false},
                                            {"threshold", gallery.threshold}, {"margin", margin},
                                            {"calibrated", calibrated}, {"reason", "no face found"}}
                                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                          << "\n";
            else
                std::cout << "no face found in " << a.images[i].string() << "\n";
            continue;
        }
        const auto& face = faces.front();
        std::optional<double> quality;  // the face's score, when the gate is on
        if (a.quality_gate) {
            const auto q = scorer.score(faceadapt::quality::observation_from_still(images[i], face.bbox, face.landmarks, face.chip));
            if (!q.accepted) {
                rc = 1;
                const std::string reason = "the crop store would not keep this face (" + fc::printable(q.reason, 300) + ")";
                if (a.json)
                    std::cout << nlohmann::json{{"image", a.images[i].string()}, {"decision", "retry"}, {"matched", false},
                                                {"threshold", gallery.threshold}, {"margin", margin},
                                                {"calibrated", calibrated}, {"reason", reason},
                                                {"quality", q.normalized}, {"quality_threshold", scorer.config().threshold},
                                                {"quality_rule", quality_rule}}
                                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                              << "\n";
                else
                    std::cout << "retry " << a.images[i].string() << ": " << reason << "\n";
                continue;
            }
            quality = q.normalized;
        }
        fp::Embedding embedding = embedder.embed(face.chip);
        const auto s2 = Clock::now();
        for (int r = 1; r < a.repeat; ++r) embedding = embedder.embed(face.chip);
        const auto s3 = Clock::now();
        const auto d = fp::decide_probe(gallery, margin, embedding);
        // Names come from the package: never raw to a terminal (JSON escapes control characters;
        // invalid UTF-8, refused at install anyway, is replaced).
        const auto name = fc::printable(d.identity);
        if (a.json) {
            nlohmann::json j = {{"image", a.images[i].string()}, {"decision", faceadapt::calib::to_string(d.decision)},
                                {"matched", d.accepted()}, {"identity", d.identity}, {"name", d.identity},
                                {"distance", d.distance}, {"threshold", d.threshold}, {"margin", d.margin},
                                {"calibrated", calibrated}, {"reason", d.reason},
                                {"model_version", installed->version},
                                {"model_format", installed->manifest.architecture.model_format},
                                {"threads", threads}, {"load_ms", ms(t1 - t0)}, {"detect_align_ms", ms(s1 - s0)},
                                {"first_embed_ms", ms(s2 - s1)},
                                {"embed_ms", a.repeat > 1 ? ms(s3 - s2) / (a.repeat - 1) : ms(s2 - s1)},
                                {"max_rss_kb", peak_rss_kb()}};
            if (!d.second_identity.empty()) {
                j["second_identity"] = d.second_identity;
                j["second_distance"] = d.second_distance;
            }
            if (quality) {
                j["quality"] = *quality;
                j["quality_threshold"] = scorer.config().threshold;
                j["quality_rule"] = quality_rule;
            }
            if (!std::isfinite(d.distance)) j["distance"] = nullptr;
            std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
        } else if (d.accepted()) {
            std::cout << name << " " << d.distance << "\n";
        } else if (d.decision == faceadapt::calib::Decision::ambiguous) {
            std::cout << "ambiguous " << d.distance << " (" << name << " or " << fc::printable(d.second_identity) << ")\n";
        } else {
            std::cout << "unknown " << d.distance << (name.empty() ? "" : " (nearest " + name + ")") << "\n";
        }
    }
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    spdlog::set_pattern(faceadapt::common::log_pattern(), spdlog::pattern_time_type::utc);
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_ERROR);  // no raw OpenCV warnings
    CLI::App app{"faceadapt-door: receives, verifies, installs and matches with signed face models"};
    app.require_subcommand(1);
    int exit_code = 0;
    auto guarded = [&exit_code](auto&& body) {
        try {
            exit_code = body();
        } catch (const faceadapt::config::ConfigError& e) {
            for (const auto& issue : e.issues()) spdlog::error("{}", issue.to_string());
            exit_code = 2;
        } catch (const std::invalid_argument& e) {
            spdlog::error("{}", e.what());
            exit_code = 2;
        } catch (const std::exception& e) {
            spdlog::error("{}", e.what());
            exit_code = 1;
        }
    };

    // run
    fp::DoorAgentOptions agent;
    fp::MqttOverrides mqtt;
    fs::path pubkey, config_file;
    auto* run = app.add_subcommand("run", "Run the agent until SIGINT/SIGTERM");
    run->add_option("--site", agent.site, "site id (default: [site] id of --config)");
    run->add_option("--door", agent.door, "this door's id ([A-Za-z0-9_-]+)")->required();
    run->add_option("--pubkey", pubkey, "the site's signing.pub (pinned)")->required()->check(CLI::ExistingPath);
    run->add_option("--dir", agent.dir, "model folder")->required();
    fp::add_mqtt_flags(run, mqtt);
    run->add_flag("--allow-rollback", agent.allow_rollback, "accept versions older than the installed one");
    run->add_option("--config", config_file, "site config file ([mqtt] section, [site] id)")->check(CLI::ExistingFile);
    run->callback([&] {
        guarded([&] {
            faceadapt::config::MqttConfig base;
            if (!config_file.empty()) {
                const auto site_config = faceadapt::config::load_config(config_file);
                base = site_config.mqtt;
                if (agent.site.empty()) agent.site = site_config.site.id;  // --site overrides
            }
            if (agent.site.empty()) throw std::invalid_argument("run: no site: give --site or --config FILE");
            agent.mqtt = fp::apply_overrides(base, mqtt);
            agent.public_key = fp::load_public_key(pubkey);
            agent.model_formats = {std::string(faceadapt::tools::DoorEmbedder::model_format())};
            return run_agent(agent);
        });
    });

    // status
    fs::path status_dir;
    bool status_json = false;
    auto* st = app.add_subcommand("status", "Print the installed model version");
    st->add_option("--dir", status_dir, "model folder")->required();
    st->add_flag("--json", status_json, "JSON output");
    st->callback([&] { guarded([&] { return status(status_dir, status_json); }); });

    // install
    fs::path install_file, install_dir, install_key;
    std::string install_site;
    bool install_rollback = false;
    auto* inst = app.add_subcommand("install", "Verify and install a package file (offline)");
    inst->add_option("file", install_file, "package file")->required()->check(CLI::ExistingFile);
    inst->add_option("--dir", install_dir, "model folder")->required();
    inst->add_option("--pubkey", install_key, "the site's signing.pub")->required()->check(CLI::ExistingPath);
    inst->add_option("--site", install_site, "this door's site (packages signed for another site are refused)")->required();
    inst->add_flag("--allow-rollback", install_rollback, "accept a version older than the installed one");
    inst->callback([&] {
        guarded([&] {
            const auto package = fp::Package::read(install_file);
            const auto key = fp::load_public_key(install_key);
            require_runnable(fp::verify_package(package, key).architecture.model_format, install_file.string());
            auto installed = fp::install_package(install_dir, package, key, install_site, install_rollback);
            std::cout << "installed version " << installed.version << " (previous " << installed.previous_version << ")\n";
            return 0;
        });
    });

    // rollback
    fs::path rollback_dir;
    auto* rb = app.add_subcommand("rollback", "Operator rollback to the previous version");
    rb->add_option("--dir", rollback_dir, "model folder")->required();
    rb->callback([&] {
        guarded([&] {
            auto installed = fp::rollback_installed(rollback_dir);
            std::cout << "installed version " << installed.version << "; versions up to " << installed.refuse_up_to
                      << " are refused from now on\n";
            return 0;
        });
    });

    // match
    MatchArgs ma;
    auto* m = app.add_subcommand("match", "Who is in each IMAGE, by the installed model, gallery and operating point");
    m->add_option("images", ma.images, "image files")->required()->check(CLI::ExistingFile);
    m->add_option("--dir", ma.dir, "model folder")->required();
    m->add_option("--landmarks", ma.landmarks, "dlib 68-point landmark model")->check(CLI::ExistingFile);
    m->add_option("--threads", ma.threads, "embedding threads (default: every core)")->check(CLI::Range(1, 256));
    m->add_option("--repeat", ma.repeat, "embed the face this many times (timing; default 1)")->check(CLI::Range(1, 10000));
    m->add_flag("--json", ma.json, "one JSON object per image: decision, identity, distance, threshold, margin, reason, timings");
    m->add_flag("--no-quality-gate", [&](std::int64_t) { ma.quality_gate = false; },
                "decide on every face found, also one the crop store would not keep (the rule before the gate)");
    m->callback([&] { guarded([&] { return match(ma); }); });

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    return exit_code;
}
