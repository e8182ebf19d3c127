// Subcommands of the publish module (docs/package-format.md, docs/mqtt.md):
//   keygen --out DIR
//     A new Ed25519 key pair: DIR/signing.key (0600) and DIR/signing.pub (pin it on the doors).
//   package --key KEYDIR --out FILE [--model MODEL] [--gallery DIR] [--version N] [--parent N]
//           [--chunk-kib K] [--metrics FILE] [--config FILE]
//           [--strangers DIR] [--far F] [--far-kind door|pair] [--threshold T]
//           [--model-format onnx|libtorch] [--weights float32|float16]
//     A signed package. Default model: the pretrained source model, shipped as its ONNX export
//     (--weights float16: half the bytes; --model-format libtorch: the model file itself, for
//     the bench-only faceadapt-door-libtorch). DIR/<name>/<images>: each
//     image's largest face is aligned and embedded with the packaged model. --metrics: a JSON
//     file {"training": {name: number}, "gate": {name: number}}. With --gallery the threshold is
//     calibrated (docs/operating-point.md) from the gallery's cross-person pairs and the
//     --strangers (target --far, a door rate by default); when the pairs cannot resolve it the
//     command refuses (exit 2) unless --threshold T says what to ship. A stranger photo is used
//     only when it passes the site's enrollment check ([detect] min_face_px, [enroll] of --config
//     or the defaults); how many were skipped and why is printed.
//   publish FILE --broker URL --site SITE [--config FILE] [--username U --password-file F]
//           [--ca F --client-cert F --client-key F] [--client-id ID] [--doors a,b --ack-timeout S]
//     Publishes and returns once the broker acknowledged every chunk; with --doors, also
//     waits for those doors to install it.
//   Flags override the config file; each command works without one.
//   Exit 0 ok, 1 runtime failure, 2 bad input.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "people_folder.hpp"
#include "faceadapt/calib/operating_point.hpp"
#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/config/config.hpp"
#include "faceadapt/learner/embedder.hpp"
#include "faceadapt/learner/model_file.hpp"
#include "faceadapt/learner/model_metadata.hpp"
#include "faceadapt/learner/onnx_export.hpp"
#include "faceadapt/learner/weights_import.hpp"
#include "faceadapt/publish/keys.hpp"
#include "faceadapt/publish/mqtt_cli.hpp"
#include "faceadapt/publish/package.hpp"
#include "faceadapt/publish/protocol.hpp"
#include "faceadapt/publish/publisher.hpp"
#include "faceadapt/common/text.hpp"

namespace faceadapt::tools {

namespace fs = std::filesystem;

namespace {

// common::read_file; a file that cannot be read is the caller's bad input (exit code 2).
std::string read_bytes(const fs::path& file) {
    try {
        return common::read_file(file);
    } catch (const std::runtime_error& e) {
        throw BadInput(std::string("cannot read ") + e.what());
    }
}

// The pretrained source model as a faceadapt model file (written to a temp file, read back).
std::string source_model_bytes() {
    auto net = learner::load_source_model();
    learner::ModelMetadata meta;
    meta.version = 0;
    meta.provenance = {{"source", "face-api 1.7.15 face_recognition_model"}};
    auto tmp = fs::temp_directory_path() / ("faceadapt-source-" + std::to_string(std::random_device{}()) + ".model");
    learner::save_model(net, meta, tmp);
    auto bytes = read_bytes(tmp);
    fs::remove(tmp);
    return bytes;
}

// The faces of a people folder (people_folder.hpp), embedded with `model` (empty: the source).
struct EmbeddedPeople {
    std::vector<std::string> names;
    std::vector<publish::Embedding> embeddings;
    std::string skipped;  // PeopleChips::skipped_summary()
};
EmbeddedPeople embed_people(const fs::path& dir, const std::optional<fs::path>& model, const std::string& what,
                            bool loose_files_are_people, const PhotoGate* gate = nullptr) {
    if (!fs::is_directory(dir)) throw BadInput(what + ": not a folder: " + dir.string());
    const PeopleChips people = load_people_chips(dir, what, loose_files_are_people, gate);
    EmbeddedPeople out;
    out.names = people.names;
    out.skipped = people.skipped_summary();
    if (people.chips.empty()) return out;
    learner::Embedder embedder(model.value_or(fs::path{}), "cpu", 32);
    for (const auto& e : embedder.embed(people.chips)) {
        publish::Embedding v;
        std::copy(e.begin(), e.end(), v.begin());
        out.embeddings.push_back(v);
    }
    return out;
}

struct CalibrationArgs {
    double far = 1e-3;
    std::string far_kind = "door";
    std::optional<double> threshold;  // --threshold: ship it (the point says what it is worth)
};

// The package's operating point from the gallery's cross-person pairs and the strangers (against
// each other and against every gallery photo); docs/operating-point.md. throws BadInput when the
// pairs cannot resolve the target and no --threshold was given.
calib::OperatingPoint package_operating_point(const EmbeddedPeople& gallery, const EmbeddedPeople& strangers,
                                              const CalibrationArgs& a) {
    calib::PairDistances pd;
    calib::add_labelled_pairs(gallery.embeddings, gallery.names, pd);
    const std::size_t enrolled_impostors = pd.impostor.size();
    calib::add_labelled_pairs(strangers.embeddings, strangers.names, pd);
    calib::add_cross_pairs(strangers.embeddings, gallery.embeddings, pd.impostor);
    calib::CalibrationRequest r;
    r.target_far = a.far;
    r.far_kind = *calib::far_kind_from_string(a.far_kind);
    r.comparisons = std::max<std::size_t>(1, gallery.embeddings.size());
    spdlog::info("calibration: {} impostor pairs ({} enrolled cross-person, {} with strangers), {} genuine pairs",
                 pd.impostor.size(), enrolled_impostors, pd.impostor.size() - enrolled_impostors, pd.genuine.size());
    if (a.threshold) return calib::at_threshold(*a.threshold, pd.impostor, pd.genuine, r);
    auto point = calib::calibrate(pd.impostor, pd.genuine, r);
    if (!point.calibrated)
        throw BadInput("package: cannot calibrate the threshold: " + point.note +
                       ". Add photos of people who are not enrolled (--strangers DIR), enroll more people, ask for a "
                       "larger --far, or give --threshold T to ship T (marked not calibrated)");
    return point;
}

}  // namespace

void register_publish_commands(CLI::App& app, CommandResult& result) {
    // keygen
    auto* keygen = app.add_subcommand("keygen", "Create an Ed25519 signing key pair for model packages");
    auto keygen_out = std::make_shared<fs::path>();
    keygen->add_option("--out", *keygen_out, "folder for signing.key (0600) and signing.pub")->required();
    keygen->callback([&result, keygen_out] {
        run_guarded(result, [&] {
            auto key = publish::SigningKey::generate();
            key.save(*keygen_out);
            std::cout << "public key " << key.public_key().hex() << " (id " << key.public_key().key_id() << ")\n"
                      << "wrote " << (*keygen_out / "signing.key").string() << " (0600) and "
                      << (*keygen_out / "signing.pub").string() << "\n";
            return 0;
        });
    });

    // package
    struct PackageArgs {
        fs::path key_dir, out, model, gallery, metrics, config;
        std::string site;
        std::int64_t version = 0, parent = -1;
        int chunk_kib = 0;
        fs::path strangers;
        std::string model_format = "onnx", weights = "float32";
        CalibrationArgs calibration;
    };
    auto pa = std::make_shared<PackageArgs>();
    auto* package = app.add_subcommand("package", "Build a signed model package (model + gallery + manifest)");
    package->add_option("--key", pa->key_dir, "key folder (signing.key); default: [publish].key_dir of --config");
    package->add_option("--out", pa->out, "package file to write")->required();
    package->add_option("--model", pa->model, "faceadapt model file (default: the pretrained source model)")->check(CLI::ExistingFile);
    package->add_option("--gallery", pa->gallery, "folder of <name>/<images> to enroll with this model")->check(CLI::ExistingDirectory);
    package->add_option("--version", pa->version, "model version (default: the model file's, at least 1)")->check(CLI::PositiveNumber);
    package->add_option("--parent", pa->parent, "parent version (default: the model file's, or version-1)");
    package->add_option("--chunk-kib", pa->chunk_kib, "MQTT chunk size in KiB (default [publish].chunk_kib = 256)")->check(CLI::Range(1, 65536));
    package->add_option("--threshold", pa->calibration.threshold, "ship this match threshold (Euclidean) instead of the "
                        "calibrated one; with --gallery the package says what it is worth")->check(CLI::Range(0.0, 10.0));
    package->add_option("--strangers", pa->strangers, "folder of photos of people NOT enrolled (<name>/<images>, or one "
                        "image per person): impostor pairs for the calibration; a photo the enrollment gate would refuse "
                        "(no single face, too small, dark, blurred, turned away) is skipped")->check(CLI::ExistingDirectory);
    package->add_option("--far", pa->calibration.far, "target false-accept rate of the calibration (default 1e-3)")
        ->check(CLI::Range(1e-9, 0.5));
    package->add_option("--far-kind", pa->calibration.far_kind, "door (default: a stranger against every gallery "
                        "entry) or pair (one comparison)")->check(CLI::IsMember({"door", "pair"}));
    package->add_option("--metrics", pa->metrics, "JSON {\"training\":{...},\"gate\":{...}} of numbers")->check(CLI::ExistingFile);
    package->add_option("--config", pa->config, "site config file")->check(CLI::ExistingFile);
    package->add_option("--site", pa->site, "the site it is for (doors of other sites refuse it); default [site].id of --config");
    package->add_option("--model-format", pa->model_format, "what the model part holds: onnx (default; the "
                        "torch-free door) or libtorch (the model file; faceadapt-door-libtorch)")
        ->check(CLI::IsMember({"onnx", "libtorch"}));
    package->add_option("--weights", pa->weights, "ONNX weight precision: float32 (default) or float16 (half the bytes)")
        ->check(CLI::IsMember({"float32", "float16"}));
    package->callback([&result, pa] {
        run_guarded(result, [&] {
            config::Config cfg;
            if (!pa->config.empty()) cfg = config::load_config(pa->config);
            auto key_dir = pa->key_dir;
            if (key_dir.empty()) key_dir = cfg.publish.key_dir.empty() ? cfg.site.state_dir / "keys" : cfg.publish.key_dir;
            auto key = publish::SigningKey::load(key_dir);

            publish::PackageInput in;
            in.site = pa->site.empty() ? cfg.site.id : pa->site;
            in.quality = cfg.quality;  // --config's [quality], or the defaults: the door's retry rule
            if (!publish::valid_topic_segment(in.site))
                throw BadInput("package: --site (or [site].id of --config) must name the site ([A-Za-z0-9_-]+), got \"" +
                               common::printable(in.site, 60) + "\"");
            std::optional<fs::path> model;
            learner::ModelMetadata meta;
            if (!pa->model.empty()) {
                model = pa->model;
                meta = learner::read_model_metadata(pa->model);  // refuses what is not a model file
            }
            if (pa->model_format == "onnx") {
                onnx::ExportOptions options;
                options.weights = pa->weights == "float16" ? onnx::WeightType::kFloat16 : onnx::WeightType::kFloat32;
                options.producer_version = FACEADAPT_VERSION;
                in.model_bytes = learner::export_model_file_onnx(model.value_or(fs::path{}), options);
            } else {
                in.model_bytes = model ? read_bytes(*model) : source_model_bytes();
                in.architecture.model_format = std::string(publish::kModelFormatLibtorch);
                in.architecture.normalization = "(rgb - [122.782,117.001,104.298]) / 256 (learner::chips_to_input)";
            }
            in.architecture.name = meta.architecture;
            in.architecture.input_width = in.architecture.input_height = meta.input_size;
            in.model_version = pa->version > 0 ? pa->version : std::max<std::int64_t>(meta.version, 1);
            in.parent_version = pa->parent >= 0 ? pa->parent
                                : (meta.parent_version >= 0 && meta.parent_version < in.model_version) ? meta.parent_version
                                                                                                       : in.model_version - 1;
            in.chunk_bytes = static_cast<std::size_t>(pa->chunk_kib > 0 ? pa->chunk_kib : cfg.publish.chunk_kib) * 1024;
            if (!pa->metrics.empty()) {
                auto j = nlohmann::json::parse(read_bytes(pa->metrics));
                in.training_metrics = j.value("training", std::map<std::string, double>{});
                in.gate_metrics = j.value("gate", std::map<std::string, double>{});
            }
            if (!pa->strangers.empty() && pa->gallery.empty()) throw BadInput("package: --strangers needs --gallery");
            in.gallery.threshold = pa->calibration.threshold.value_or(calib::kLegacyThreshold);
            if (!pa->gallery.empty()) {
                const auto people = embed_people(pa->gallery, model, "gallery", false);
                for (std::size_t i = 0; i < people.names.size(); ++i)
                    in.gallery.entries.push_back({people.names[i], people.embeddings[i]});
                // The strangers pass the site's enrollment check (people_folder.hpp: a dark or faceless
                // photo would give near-identical impostor pairs and collapse the threshold).
                const PhotoGate gate = PhotoGate::from(cfg);
                const auto strangers = pa->strangers.empty() ? EmbeddedPeople{}
                                                             : embed_people(pa->strangers, model, "strangers", true, &gate);
                if (!strangers.skipped.empty()) std::cout << "strangers: " << strangers.skipped << "\n";
                in.operating_point = package_operating_point(people, strangers, pa->calibration);
                spdlog::info("operating point: threshold {:.4f}, margin {:.4f}: {}", in.operating_point->threshold,
                             in.operating_point->margin, in.operating_point->note);
            }
            auto pkg = publish::build_package(in, key);
            pkg.write(pa->out);
            std::cout << "wrote " << pa->out.string() << ": model version " << pkg.manifest.model_version << " (parent "
                      << pkg.manifest.parent_version << "), " << pkg.manifest.payload_size << " bytes in "
                      << pkg.manifest.chunk_count() << " chunks, " << pkg.manifest.gallery_entries
                      << " gallery entries, signed by key " << pkg.manifest.key_id << "\n";
            if (pkg.manifest.operating_point)
                std::cout << "threshold " << pkg.manifest.match_threshold
                          << (pkg.manifest.calibrated() ? " (calibrated): " : " (NOT calibrated): ")
                          << pkg.manifest.operating_point->note << "\n";
            return 0;
        });
    });

    // publish
    struct PublishArgs {
        fs::path file, config;
        std::string site;
        publish::MqttOverrides mqtt;
        std::vector<std::string> doors;
        double ack_timeout_s = 0;
    };
    auto pb = std::make_shared<PublishArgs>();
    auto* pub = app.add_subcommand("publish", "Publish a signed package to the site's door controllers over MQTT");
    pub->add_option("file", pb->file, "package file")->required()->check(CLI::ExistingFile);
    pub->add_option("--site", pb->site, "site id (topic segment); default [site].id of --config");
    pub->add_option("--config", pb->config, "site config file")->check(CLI::ExistingFile);
    pub->add_option("--doors", pb->doors, "wait for these doors to install it")->delimiter(',');
    pub->add_option("--ack-timeout", pb->ack_timeout_s, "seconds to wait for door acks (default [publish].ack_timeout_s)");
    publish::add_mqtt_flags(pub, pb->mqtt);
    pub->callback([&result, pb] {
        run_guarded(result, [&] {
            config::Config cfg;
            if (!pb->config.empty()) cfg = config::load_config(pb->config);
            auto pkg = publish::Package::read(pb->file);
            publish::PublisherOptions o;
            o.site = pb->site.empty() ? cfg.site.id : pb->site;
            o.mqtt = publish::apply_overrides(cfg.mqtt, pb->mqtt);
            o.qos = std::max(1, cfg.publish.qos);
            o.republish_on_reconnect = false;
            publish::Publisher publisher(o);
            auto report = publisher.publish(pkg, [](std::size_t done, std::size_t total) {
                if (done == total || done % 20 == 0) spdlog::info("{}/{} chunks acknowledged", done, total);
            });
            std::cout << "published model version " << report.version << " to site " << o.site << ": " << report.chunks
                      << " chunks, " << report.payload_bytes << " bytes, " << report.restarts << " restarts, "
                      << report.seconds << " s\n";
            if (pb->doors.empty()) return 0;
            auto timeout = pb->ack_timeout_s > 0 ? pb->ack_timeout_s : cfg.publish.ack_timeout_s;
            auto acks = publisher.wait_for_acks(report.version, pb->doors,
                                                std::chrono::milliseconds(static_cast<long>(timeout * 1000)));
            for (const auto& d : acks.acked) std::cout << "door " << d << ": installed version " << report.version << "\n";
            for (const auto& d : acks.rejected) {
                const auto& st = acks.states[d];
                const auto& why = st.refused_version == report.version ? st.refused_reason : st.error;
                std::cout << "door " << d << ": REJECTED: " << common::printable(why, 1000) << "\n";
            }
            for (const auto& d : acks.missing) std::cout << "door " << d << ": no ack within " << timeout << " s\n";
            return acks.all_acked() ? 0 : 1;
        });
    });
}

}  // namespace faceadapt::tools
