// Promotion gate: is a candidate model not worse than the current one?
//
// WHAT THIS REPRESENTS
//   The figures of one model on the two evaluation sets, and the decision that compares a
//   candidate's figures with the current model's:
//     - the enrolled gallery (labelled): verification TAR at the configured FAR over all pairs
//       and leave-one-out rank-1 identification (learner/eval.hpp: Euclidean distance of raw
//       embeddings), both only when at least two people have at least two images each;
//     - a held-out slice of recent site crops (unlabelled; crops of one track are one person):
//       consistency = the fraction of crops whose nearest other crop is of the same track, and
//       compactness = the mean over crops of (cosine to its own track's centroid - the highest
//       cosine to another track's centroid).
//   The candidate is promoted only when every figure that both models have is no worse than
//   the current's minus the GateConfig tolerance (max_tar_drop, max_rank1_drop,
//   max_compactness_drop for both site figures), and at least one figure was measured.
//   Non-finite figures refuse. The reasons name every check with both values.
//   The figures are measured in the evaluation child (gate_figures.hpp, `faceadapt evaluate`):
//   this header and faceadaptd need no torch.
// THREAD SAFETY
//   Pure functions.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace faceadapt::config {
struct GateConfig;
}

namespace faceadapt::daemon {

struct GalleryFigures {
    int people = 0;                 // people with >= 2 images (the ones evaluated)
    int images = 0;
    bool evaluated = false;         // false: fewer than 2 people with >= 2 images
    double tar = 0.0;               // true-accept rate at `far`
    double far = 0.0;               // the false-accept rate asked for
    double rank1 = 0.0;             // leave-one-out rank-1 identification
};

struct SiteFigures {
    int crops = 0;
    int groups = 0;                 // tracks with >= 2 crops
    bool evaluated = false;         // false: fewer than 2 such tracks
    double consistency = 0.0;
    double compactness = 0.0;
};

struct ModelFigures {
    GalleryFigures gallery;
    SiteFigures site;
};

struct GateDecision {
    bool promote = false;
    std::vector<std::string> checks;   // one line per comparison made, with both values
    std::vector<std::string> reasons;  // why refused (empty when promoted)
};

GateDecision decide(const ModelFigures& current, const ModelFigures& candidate, const config::GateConfig& gate);

nlohmann::json to_json(const GalleryFigures& g);
nlohmann::json to_json(const SiteFigures& s);
nlohmann::json to_json(const ModelFigures& f);
nlohmann::json to_json(const GateDecision& d);

}  // namespace faceadapt::daemon
