#include "faceadapt/daemon/release.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "faceadapt/learner/embedder.hpp"
#include "faceadapt/learner/onnx_export.hpp"
#include "faceadapt/publish/keys.hpp"
#include "faceadapt/publish/package.hpp"
#include "faceadapt/publish/publisher.hpp"
#include "faceadapt/quality/gallery.hpp"

namespace fs = std::filesystem;

namespace faceadapt::daemon {
namespace {

std::map<std::string, double> numbers_of(const nlohmann::json& j, const std::string& prefix = "") {
    std::map<std::string, double> out;
    if (!j.is_object()) return out;
    for (const auto& [k, v] : j.items()) {
        if (v.is_number()) out[prefix + k] = v.get<double>();
        else if (v.is_boolean()) out[prefix + k] = v.get<bool>() ? 1.0 : 0.0;
        else if (v.is_object()) out.merge(numbers_of(v, prefix + k + "."));
    }
    return out;
}

}  // namespace

fs::path key_dir(const config::Config& config) {
    return config.publish.key_dir.empty() ? config.site.state_dir / "keys" : config.publish.key_dir;
}

EmbeddedGallery embed_gallery(const fs::path& state_dir, const fs::path& model_file, const std::string& device) {
    EmbeddedGallery out;
    quality::Gallery gallery(state_dir);
    std::vector<cv::Mat> chips;
    for (const auto& entry : gallery.entries()) {
        if (auto chip = gallery.load_chip(entry)) {
            chips.push_back(*chip);
            out.names.push_back(entry.name);
        }
    }
    if (chips.empty()) return out;
    learner::Embedder embedder(model_file, device);
    for (const auto& e : embedder.embed(chips)) out.embeddings.push_back(e);
    return out;
}

ReleaseReport release_version(const config::Config& config, ModelRegistry& registry, int version,
                              publish::Publisher* publisher, const std::vector<std::string>& doors,
                              std::optional<std::chrono::milliseconds> ack_timeout) {
    ReleaseReport report;
    report.version = version;
    const ModelVersion mv = registry.get(version);
    const publish::SigningKey key = publish::SigningKey::load(key_dir(config));

    const EmbeddedGallery embedded = embed_gallery(config.site.state_dir, mv.model_file, config.learner.device);
    publish::PackageInput input;
    // Packages carry the ONNX export (docs/package-format.md, format 2); doors need no libtorch.
    onnx::ExportOptions onnx_options;
    onnx_options.weights =
        config.publish.model_weights == "float16" ? onnx::WeightType::kFloat16 : onnx::WeightType::kFloat32;
    onnx_options.model_version = version;
    input.model_bytes = learner::export_model_file_onnx(mv.model_file, onnx_options);
    for (std::size_t i = 0; i < embedded.names.size(); ++i)
        input.gallery.entries.push_back({embedded.names[i], embedded.embeddings[i]});
    input.model_version = version;
    input.parent_version = mv.meta.value("parent_version", 0);
    input.training_metrics = numbers_of(mv.meta.value("training", nlohmann::json::object()));
    input.gate_metrics = numbers_of(mv.meta.value("gate", nlohmann::json::object()));
    input.chunk_bytes = static_cast<std::size_t>(config.publish.chunk_kib) * 1024;
    const publish::Package package = publish::build_package(input, key);
    report.gallery_entries = input.gallery.entries.size();
    fs::create_directories(registry.dir() / "packages");
    const fs::path package_file = registry.dir() / "packages" / fmt::format("{}.fapkg", version);
    package.write(package_file);

    try {
        std::unique_ptr<publish::Publisher> own;
        if (!publisher) {
            publish::PublisherOptions options;
            options.site = config.site.id;
            options.mqtt = config.mqtt;
            // Not the daemon's client id: the broker would drop one of the two sessions.
            options.mqtt.client_id = (config.mqtt.client_id.empty() ? "faceadapt-" + config.site.id
                                                                     : config.mqtt.client_id) + "-release";
            options.qos = std::max(1, config.publish.qos);
            own = std::make_unique<publish::Publisher>(options);
            publisher = own.get();
        }
        const publish::PublishReport sent = publisher->publish(package);
        report.chunks = sent.chunks;
        report.payload_bytes = sent.payload_bytes;
        report.publish_seconds = sent.seconds;
        registry.update_meta(version, {{"published", true}, {"package", package_file.string()}});
        report.published = true;
        const auto timeout = ack_timeout.value_or(
            std::chrono::milliseconds(static_cast<std::int64_t>(config.publish.ack_timeout_s * 1000)));
        const publish::AckResult acks = publisher->wait_for_acks(version, doors, timeout);
        report.acked = acks.acked;
        report.rejected = acks.rejected;
        report.missing = acks.missing;
    } catch (const std::exception& e) {
        report.error = e.what();
    }
    registry.append_history({{"event", "publish"},
                             {"version", version},
                             {"published", report.published},
                             {"chunks", report.chunks},
                             {"payload_bytes", report.payload_bytes},
                             {"gallery_entries", report.gallery_entries},
                             {"seconds", report.publish_seconds},
                             {"acked", report.acked},
                             {"rejected", report.rejected},
                             {"missing", report.missing},
                             {"error", report.error}});
    if (report.published)
        spdlog::info("publish: version {} sent ({} chunks, {} bytes, {:.2f} s); doors acked [{}] rejected [{}] "
                     "missing [{}]",
                     version, report.chunks, report.payload_bytes, report.publish_seconds,
                     fmt::join(report.acked, ","), fmt::join(report.rejected, ","), fmt::join(report.missing, ","));
    else
        spdlog::error("publish: version {} not published: {}", version, report.error);
    return report;
}

ReleaseReport rollback(const config::Config& config, ModelRegistry& registry, int to_version,
                       publish::Publisher* publisher) {
    const ModelVersion target = registry.get(to_version);
    const int from = registry.current_version();
    nlohmann::json meta = target.meta;
    meta.erase("published");
    meta.erase("package");
    meta.erase("created");
    meta["parent_version"] = from;
    meta["rollback_of"] = to_version;
    const ModelVersion added = registry.add(target.model_file, fmt::format("rollback of {}", to_version), meta);
    registry.set_current(added.version);
    registry.append_history({{"event", "rollback"}, {"from", from}, {"to", to_version}, {"version", added.version}});
    spdlog::info("rollback: version {} is a copy of {} (was {}); publishing it", added.version, to_version, from);
    return release_version(config, registry, added.version, publisher);
}

}  // namespace faceadapt::daemon
