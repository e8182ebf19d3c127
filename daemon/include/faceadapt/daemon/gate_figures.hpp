// Gate figures measured with a model: the torch side of the promotion gate.
//
// WHAT THIS REPRESENTS
//   What `faceadapt evaluate` (the evaluation child of the training cycle) computes for one
//   model: the enrolled gallery's and the held-out site crops' figures (gate.hpp says what each
//   figure is) and the gallery embedded by that model (what a release packs). Part of the
//   library faceadapt_daemon_eval, which links the learner (torch); faceadaptd does not link it.
// THREAD SAFETY
//   Free functions without shared state; the Embedder they create uses torch's thread pool.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "faceadapt/daemon/child_protocol.hpp"
#include "faceadapt/daemon/gate.hpp"
#include "faceadapt/learner/embedding.hpp"

namespace faceadapt::daemon {

// `labels[i]` is row i's person (gallery) or track (site). Site rows are L2-normalised inside.
// requires: labels.size() == rows.size(). throws std::invalid_argument on a size mismatch.
GalleryFigures evaluate_gallery(const std::vector<learner::Embedding>& rows,
                                const std::vector<std::string>& labels, double far);
SiteFigures evaluate_site(const std::vector<learner::Embedding>& rows, const std::vector<std::string>& labels);

// The enrolled gallery of state_dir (quality::Gallery): its chips and their names.
struct GalleryChips {
    std::vector<std::string> names;
    std::vector<cv::Mat> chips;  // RGB 150x150
    std::int64_t revision = 0;   // quality::Gallery::revision(), read before the entries
};
GalleryChips load_gallery_chips(const std::filesystem::path& state_dir);

// One model's figures and embedded gallery. `model_file` empty: the pretrained source model.
// site_chips[i] has the track label site_tracks[i]. Embeds 64 chips at a time.
// throws std::runtime_error naming the model file when it does not load;
//        std::invalid_argument when site_chips and site_tracks differ in size.
ChildEvaluation evaluate_model(const std::filesystem::path& model_file, const std::string& device,
                               const GalleryChips& gallery, const std::vector<cv::Mat>& site_chips,
                               const std::vector<std::string>& site_tracks, double far);

// The gallery embedded by `model_file` (empty: the source model); what a rollback packs.
EmbeddedGallery embed_gallery(const std::filesystem::path& state_dir, const std::filesystem::path& model_file,
                              const std::string& device);

}  // namespace faceadapt::daemon
