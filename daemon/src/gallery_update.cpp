// Gallery updates: see gallery_update.hpp.
#include "faceadapt/daemon/gallery_update.hpp"

#include <fmt/format.h>

namespace faceadapt::daemon {

GalleryUpdateDecision decide_gallery_update(int current_version, const nlohmann::json& current_meta,
                                            std::int64_t revision) {
    if (current_version == 0) {
        if (revision <= 0) return {false, false, "nothing enrolled and nothing released"};
        return {true, false, fmt::format("gallery revision {} and only the pretrained source model", revision)};
    }
    const nlohmann::json* shipped = current_meta.is_object() && current_meta.contains("gallery_revision")
                                        ? &current_meta["gallery_revision"]
                                        : nullptr;
    if (!shipped || !shipped->is_number_integer())
        return {true, false, fmt::format("version {} does not say which gallery it carries; the gallery is at revision {}",
                                  current_version, revision)};
    const auto had = shipped->get<std::int64_t>();
    if (had == revision) {
        if (current_meta.value("origin", std::string()).starts_with("gallery update of") &&
            !current_meta.value("published", false))
            return {true, true, fmt::format("version {} (a gallery update) was not published", current_version)};
        return {false, false, fmt::format("version {} carries gallery revision {}", current_version, had)};
    }
    return {true, false, fmt::format("version {} carries gallery revision {}, the gallery is at {}", current_version, had,
                              revision)};
}

ReleaseReport release_gallery_update(const config::Config& config, ModelRegistry& registry,
                                     const EmbeddedGallery& gallery, const OnnxExporter& exporter,
                                     publish::Publisher* publisher, const std::filesystem::path& source_model) {
    const int of = registry.current_version();
    const CopyRelease copy{of, fmt::format("gallery update of {}", of), "gallery_update_of", "gallery update",
                           {{"event", "gallery_update"},
                            {"gallery_revision", gallery.revision},
                            {"entries", gallery.names.size()}}};
    return release_copy(config, registry, copy, gallery, exporter, publisher, source_model);
}

}  // namespace faceadapt::daemon
