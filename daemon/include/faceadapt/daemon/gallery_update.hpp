// Gallery updates: enrolling or removing a person reaches the doors without a training cycle.
//
// WHAT THIS REPRESENTS
//   `faceadapt enroll` and `faceadapt gallery remove` change quality::Gallery, whose revision
//   (a counter SQLite triggers raise in the same transaction) says that it changed. Every
//   release records the revision of the gallery it packed in the version's meta.json
//   ("gallery_revision"). faceadaptd watches the revision (Gallery::read_revision, every 2 s
//   while no cycle runs); once it has moved past the current version's and stayed put for one
//   look (an enrollment of several photos ships once), it asks decide_gallery_update and runs
//   release_gallery_update: the current model is registered again as a new version (origin
//   "gallery update of N"; versions are strictly increasing per site, so the doors take it like
//   any package), with the gallery embedded by that model (an evaluation child: no torch in the
//   daemon), signed, published and acknowledged like every release. docs/operations.md,
//   "Enrolling and removing people", is the operator's side.
// THREAD SAFETY
//   Free functions; run release_gallery_update where the daemon runs its other releases (the
//   learner thread), never beside another release of the same registry.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "faceadapt/daemon/release.hpp"

namespace faceadapt::daemon {

struct GalleryUpdateDecision {
    bool update = false;
    bool republish = false;  // with update: publish the current version again, no new version
    std::string reason;      // for the log: why (not)
};

// Whether the doors need a gallery update. `current_version`: the registry's current version
// (0: the pretrained source, nothing released yet); `current_meta`: its meta.json (ignored for
// 0); `revision`: the gallery's revision now. Pure.
//   - version 0: an update once anything was ever enrolled (revision > 0);
//   - otherwise: when the meta has no gallery_revision (a release from before revisions) or
//     one different from `revision`;
//   - republish: the current version is a gallery update (origin "gallery update of N") that
//     carries `revision` but whose publication failed (no broker, ack wait cut short...).
GalleryUpdateDecision decide_gallery_update(int current_version, const nlohmann::json& current_meta,
                                            std::int64_t revision);

// Registers the current version's model (source_model when the current version is 0: the
// caller writes that file) as a new version "gallery update of <current>" carrying `gallery`
// (embedded by that model; its revision recorded), makes it current and releases it
// (release_version: ONNX export, sign, publish, wait for acks). History record
// {"event":"gallery_update","from":N,"version":M,"gallery_revision":R,"entries":E}.
// throws as release_copy.
ReleaseReport release_gallery_update(const config::Config& config, ModelRegistry& registry,
                                     const EmbeddedGallery& gallery, const OnnxExporter& exporter,
                                     publish::Publisher* publisher, const std::filesystem::path& source_model = {});

}  // namespace faceadapt::daemon
