#include "faceadapt/daemon/release.hpp"

#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/publish/keys.hpp"
#include "faceadapt/publish/package.hpp"
#include "faceadapt/publish/publisher.hpp"

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

fs::path onnx_export_file(const ModelRegistry& registry, int version, const std::string& weights) {
    return registry.dir() / "onnx" / fmt::format("{}-{}.onnx", version, weights);
}

fs::path key_dir(const config::Config& config) {
    return config.publish.key_dir.empty() ? config.site.state_dir / "keys" : config.publish.key_dir;
}

ReleaseReport release_version(const config::Config& config, ModelRegistry& registry, int version,
                              const EmbeddedGallery& embedded, const OnnxExporter& exporter,
                              publish::Publisher* publisher, const std::vector<std::string>& doors,
                              std::optional<std::chrono::milliseconds> ack_timeout) {
    ReleaseReport report;
    report.version = version;
    const ModelVersion mv = registry.get(version);
    const publish::SigningKey key = publish::SigningKey::load(key_dir(config));

    publish::PackageInput input;
    input.site = config.site.id;
    // Packages carry the ONNX export (docs/package-format.md, format 2); doors need no libtorch.
    const fs::path onnx_file = onnx_export_file(registry, version, config.publish.model_weights);
    if (!fs::exists(onnx_file)) {
        fs::create_directories(onnx_file.parent_path());
        exporter(mv.model_file, version, config.publish.model_weights, onnx_file);
    }
    input.model_bytes = common::read_file(onnx_file);
    for (std::size_t i = 0; i < embedded.names.size(); ++i)
        input.gallery.entries.push_back({embedded.names[i], embedded.embeddings[i]});
    // The model's calibrated operating point for this gallery (docs/operating-point.md); without
    // one (a rollback from the CLI, an evaluation child before issue 12) the legacy 0.6.
    input.operating_point = embedded.operating_point;
    // The crop store's rule, so the door asks a face the store would not keep to retry, as the
    // calibration's pairs were faces the store kept (docs/operating-point.md, section 3).
    input.quality = config.quality;
    if (!input.operating_point) spdlog::warn("publish: version {} carries no calibrated operating point (threshold {})", version, input.gallery.threshold);
    input.model_version = version;
    input.parent_version = mv.meta.value("parent_version", 0);
    input.training_metrics = numbers_of(mv.meta.value("training", nlohmann::json::object()));
    input.gate_metrics = numbers_of(mv.meta.value("gate", nlohmann::json::object()));
    input.chunk_bytes = static_cast<std::size_t>(config.publish.chunk_kib) * 1024;
    const publish::Package package = publish::build_package(input, key);
    // Which gallery the doors will hold: faceadaptd ships a gallery update once it moves on.
    if (embedded.revision >= 0 && mv.meta.value("gallery_revision", std::int64_t{-1}) != embedded.revision)
        registry.update_meta(version, {{"gallery_revision", embedded.revision}});
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
                             {"gallery_revision", embedded.revision},
                             {"threshold", package.manifest.match_threshold},
                             {"calibrated", package.manifest.calibrated()},
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

ReleaseReport release_copy(const config::Config& config, ModelRegistry& registry, const CopyRelease& copy,
                           const EmbeddedGallery& gallery, const OnnxExporter& exporter, publish::Publisher* publisher,
                           const fs::path& source_model) {
    ModelVersion target;
    if (copy.of_version == 0) {
        if (source_model.empty())
            throw std::invalid_argument(fmt::format("{}: version 0 (the pretrained source) needs its model file",
                                                    copy.origin));
        target.model_file = source_model;
        target.meta = {{"origin", "pretrained source"}};
    } else {
        target = registry.get(copy.of_version);
    }
    const int from = registry.current_version();
    nlohmann::json meta = target.meta;
    for (const char* k : {"published", "package", "created", "gallery_revision", "rollback_of", "gallery_update_of"})
        meta.erase(k);
    meta["parent_version"] = from;
    meta[copy.meta_key] = copy.of_version;
    // Set at once (not only by the release): a watcher never sees the new current without it.
    if (gallery.revision >= 0) meta["gallery_revision"] = gallery.revision;
    const ModelVersion added = registry.add(target.model_file, copy.origin, meta);
    registry.set_current(added.version);
    nlohmann::json record = copy.history;
    record["from"] = from;
    record["version"] = added.version;
    registry.append_history(std::move(record));
    spdlog::info("{}: version {} is a copy of {} (was {}); publishing it", copy.log_name, added.version,
                 copy.of_version, from);
    return release_version(config, registry, added.version, gallery, exporter, publisher);
}

ReleaseReport rollback(const config::Config& config, ModelRegistry& registry, int to_version,
                       const EmbeddedGallery& gallery, const OnnxExporter& exporter, publish::Publisher* publisher,
                       const fs::path& source_model) {
    const CopyRelease copy{to_version, fmt::format("rollback of {}", to_version), "rollback_of", "rollback",
                           {{"event", "rollback"}, {"to", to_version}}};
    return release_copy(config, registry, copy, gallery, exporter, publisher, source_model);
}

}  // namespace faceadapt::daemon
