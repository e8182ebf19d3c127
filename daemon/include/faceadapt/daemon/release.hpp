// Release: turning a registered model version into a signed package on the site's doors.
//
// WHAT THIS REPRESENTS
//   The steps shared by the daemon (after the gate promotes a candidate) and by
//   `faceadapt models rollback`: take the enrolled gallery embedded by the version's model
//   (faceadaptd gets it from its evaluation child, the CLI from gate_figures.hpp embed_gallery:
//   no torch here), build and sign the package (publish::build_package with the key in [publish] key_dir),
//   keep it as <models>/packages/<N>.fapkg, send it (publish::Publisher: chunks first, the
//   retained manifest last, so an interrupted publish never names a half-sent version), wait
//   for the doors' acknowledgements, mark the version published in its meta.json and append a
//   "publish" record to history.jsonl.
// THREAD SAFETY
//   Free functions; do not release two versions of one registry at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "faceadapt/config/config.hpp"
#include "faceadapt/daemon/child_protocol.hpp"
#include "faceadapt/daemon/model_registry.hpp"

namespace faceadapt::publish {
class Publisher;
}

namespace faceadapt::daemon {

struct ReleaseReport {
    int version = 0;
    std::size_t gallery_entries = 0;
    std::size_t chunks = 0;
    std::uint64_t payload_bytes = 0;
    double publish_seconds = 0;
    std::vector<std::string> acked, rejected, missing;  // doors
    bool published = false;
    std::string error;                                   // when !published
};

// The key folder: [publish] key_dir, or <state_dir>/keys.
std::filesystem::path key_dir(const config::Config& config);

// Writes the ONNX export (docs/door-integration.md) of `model_file` (empty: the pretrained source
// model) with `weights` ("float32" | "float16") and ONNX model_version `version` to `out`,
// durably. faceadaptd runs it as a child (`faceadapt export`), so the daemon never loads torch;
// the CLI calls learner::export_model_file_onnx in-process.
// throws std::runtime_error naming the model file when the export fails.
using OnnxExporter = std::function<void(const std::filesystem::path& model_file, int version,
                                        const std::string& weights, const std::filesystem::path& out)>;

// Where `version`'s ONNX export with `weights` is kept: <models>/onnx/<version>-<weights>.onnx.
std::filesystem::path onnx_export_file(const ModelRegistry& registry, int version, const std::string& weights);

// Builds, signs, writes and publishes `version` (which must be in `registry`) with `gallery`
// (the enrolled gallery embedded by that version's model). The package's model part is the
// version's ONNX export with [publish] model_weights, made by `exporter` when not kept yet.
// `publisher` may be null: one is connected for this call from config.mqtt.
// `doors`: the doors to wait for (empty: every door that has reported a state); the wait is
// [publish] ack_timeout_s at most, and `ack_timeout` when given.
// ensures: never throws for a broker/door problem (reported in ReleaseReport::error);
//          throws std::runtime_error naming the file for a missing key or model.
ReleaseReport release_version(const config::Config& config, ModelRegistry& registry, int version,
                              const EmbeddedGallery& gallery, const OnnxExporter& exporter,
                              publish::Publisher* publisher, const std::vector<std::string>& doors = {},
                              std::optional<std::chrono::milliseconds> ack_timeout = std::nullopt);

// A version registered as a copy of `of_version`'s model, then released like any new version:
// what a rollback and a gallery update (gallery_update.hpp) have in common.
struct CopyRelease {
    int of_version = 0;          // 0: the pretrained source (source_model names its file)
    std::string origin;          // meta.json "origin", e.g. "rollback of 3"
    std::string meta_key;        // meta.json member set to of_version, e.g. "rollback_of"
    std::string log_name;        // log line prefix, e.g. "rollback"
    nlohmann::json history;      // history.jsonl record; "from" and "version" are added
};
// Registers the copy with of_version's meta (figures, parent_version = the current version,
// gallery_revision = gallery.revision), makes it current, appends the history record and
// releases it with `gallery` (embedded by of_version's model).
// throws std::out_of_range when of_version (> 0) is not stored; std::invalid_argument for 0
//        without source_model.
ReleaseReport release_copy(const config::Config& config, ModelRegistry& registry, const CopyRelease& copy,
                           const EmbeddedGallery& gallery, const OnnxExporter& exporter, publish::Publisher* publisher,
                           const std::filesystem::path& source_model = {});

// Rollback: registers a copy of `to_version`'s model as a new version (origin "rollback of N"),
// makes it current, records a "rollback" history line and releases it like any new version,
// with `gallery` embedded by to_version's model. to_version 0 is the pretrained source model,
// which is never stored: `source_model` must then name a model file of it (the CLI writes one
// with the learner; faceadaptd does not link torch); it is copied in like any other model.
// throws std::out_of_range when to_version (> 0) is not stored; std::invalid_argument for 0
//        without source_model.
ReleaseReport rollback(const config::Config& config, ModelRegistry& registry, int to_version,
                       const EmbeddedGallery& gallery, const OnnxExporter& exporter, publish::Publisher* publisher,
                       const std::filesystem::path& source_model = {});

}  // namespace faceadapt::daemon
