// Subcommands of the publish module (docs/package-format.md, docs/mqtt.md):
//   keygen --out DIR
//     A new Ed25519 key pair: DIR/signing.key (0600) and DIR/signing.pub (pin it on the doors).
//   package --key KEYDIR --out FILE [--model MODEL] [--gallery DIR] [--version N] [--parent N]
//           [--chunk-kib K] [--threshold T] [--metrics FILE] [--config FILE]
//           [--model-format onnx|libtorch] [--weights float32|float16]
//     A signed package. Default model: the pretrained source model, shipped as its ONNX export
//     (--weights float16: half the bytes; --model-format libtorch: the model file itself, for
//     the bench-only faceadapt-door-libtorch). DIR/<name>/<images>: each
//     image's largest face is aligned and embedded with the packaged model. --metrics: a JSON
//     file {"training": {name: number}, "gate": {name: number}}.
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
#include <opencv2/imgcodecs.hpp>
#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/config/config.hpp"
#include "faceadapt/ingest/face_aligner.hpp"
#include "faceadapt/ingest/face_batch.hpp"
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
#include "faceadapt/publish/text.hpp"

namespace faceadapt::tools {

namespace fs = std::filesystem;

namespace {

struct BadInput : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

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

// DIR/<name>/<images>: one gallery entry per image with a face (its largest face).
publish::Gallery build_gallery(const fs::path& dir, const std::optional<fs::path>& model, double threshold) {
    if (!fs::is_directory(dir)) throw BadInput("gallery: not a folder: " + dir.string());
    ingest::FaceAligner aligner;
    std::vector<cv::Mat> chips;
    std::vector<std::string> names;
    std::vector<fs::path> people;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_directory()) people.push_back(e.path());
    std::sort(people.begin(), people.end());
    for (const auto& person : people) {
        std::vector<fs::path> files;
        for (const auto& e : fs::directory_iterator(person))
            if (e.is_regular_file() && ingest::has_image_extension(e.path())) files.push_back(e.path());
        std::sort(files.begin(), files.end());
        std::size_t found = 0;
        for (const auto& f : files) {
            cv::Mat image = cv::imread(f.string(), cv::IMREAD_COLOR);
            if (image.empty()) {
                spdlog::warn("gallery: {} is not a readable image; skipped", f.string());
                continue;
            }
            auto faces = aligner.detect(image);
            if (faces.empty()) {
                spdlog::warn("gallery: no face in {}; skipped", f.string());
                continue;
            }
            chips.push_back(faces.front().chip);
            names.push_back(person.filename().string());
            ++found;
        }
        if (found == 0) spdlog::warn("gallery: no usable image for {}", person.filename().string());
    }
    publish::Gallery gallery;
    gallery.threshold = threshold;
    if (chips.empty()) return gallery;
    learner::Embedder embedder(model.value_or(fs::path{}), "cpu", 32);
    auto embeddings = embedder.embed(chips);
    for (std::size_t i = 0; i < chips.size(); ++i) gallery.entries.push_back({names[i], embeddings[i]});
    spdlog::info("gallery: {} entries for {} people", gallery.entries.size(), people.size());
    return gallery;
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
        std::string model_format = "onnx", weights = "float32";
        double threshold = 0.6;
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
    package->add_option("--threshold", pa->threshold, "match threshold (Euclidean) carried by the package")->check(CLI::Range(0.0, 10.0));
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
            if (!publish::valid_topic_segment(in.site))
                throw BadInput("package: --site (or [site].id of --config) must name the site ([A-Za-z0-9_-]+), got \"" +
                               publish::printable(in.site, 60) + "\"");
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
            if (!pa->gallery.empty()) in.gallery = build_gallery(pa->gallery, model, pa->threshold);
            in.gallery.threshold = pa->threshold;
            auto pkg = publish::build_package(in, key);
            pkg.write(pa->out);
            std::cout << "wrote " << pa->out.string() << ": model version " << pkg.manifest.model_version << " (parent "
                      << pkg.manifest.parent_version << "), " << pkg.manifest.payload_size << " bytes in "
                      << pkg.manifest.chunk_count() << " chunks, " << pkg.manifest.gallery_entries
                      << " gallery entries, signed by key " << pkg.manifest.key_id << "\n";
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
                std::cout << "door " << d << ": REJECTED: " << publish::printable(why, 1000) << "\n";
            }
            for (const auto& d : acks.missing) std::cout << "door " << d << ": no ack within " << timeout << " s\n";
            return acks.all_acked() ? 0 : 1;
        });
    });
}

}  // namespace faceadapt::tools
