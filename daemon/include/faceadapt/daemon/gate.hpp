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
//   The door's figures (issue 12, docs/operating-point.md section 5): each model at its OWN
//   calibrated operating point (calib::calibrate on the enrolled cross-person pairs, the
//   same-frame pairs of the crop store and the strangers): the candidate is refused when its
//   point is not calibrated ([gate] require_calibrated), when its measured FAR at its shipped
//   threshold exceeds the target, or when its FRR at the target FAR rose more than
//   [gate] max_frr_rise above the current model's, the best model's so far or the source
//   model's (the references, so small losses within tolerance cannot compound, issue 18 item 7).
//   Every other figure is compared with the references too. A figure that cannot discriminate
//   (too few pairs, both at the ceiling) is said so in the checks.
//   The figures are measured in the evaluation child (gate_figures.hpp, `faceadapt evaluate`):
//   this header and faceadaptd need no torch.
// THREAD SAFETY
//   Pure functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "faceadapt/calib/operating_point.hpp"

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

// Where the impostor and genuine pairs of a calibration came from.
struct PairSources {
    std::size_t enrolled_impostor = 0;    // enrolled photos of different names
    std::size_t same_frame_impostor = 0;  // crops of two tracks in one frame of one camera
    std::size_t stranger_impostor = 0;    // strangers_dir against the gallery and each other
    std::size_t enrolled_genuine = 0;     // enrolled photos of one name
    std::size_t track_genuine = 0;        // two crops of one held-out track (different moments)
};

// The model at its own calibrated operating point (what its package would ship).
struct DoorFigures {
    calib::OperatingPoint point;
    PairSources sources;
    // The measured FAR at point.threshold, of the target's kind (door: over point.comparisons).
    double measured_far() const;
};

struct ModelFigures {
    GalleryFigures gallery;
    SiteFigures site;
    std::optional<DoorFigures> door;      // absent: not measured (a child before issue 12)
};

// A model the candidate is also compared with, measured on the same data in the same child.
struct GateReference {
    std::string name;                     // "best so far (version 3)", "source model"
    ModelFigures figures;
};

struct GateDecision {
    bool promote = false;
    std::vector<std::string> checks;   // one line per comparison made, with both values
    std::vector<std::string> reasons;  // why refused (empty when promoted)
};

GateDecision decide(const ModelFigures& current, const ModelFigures& candidate, const config::GateConfig& gate,
                    const std::vector<GateReference>& references = {});

// The door FAR the shipped threshold is calibrated for: [gate] door_far, or far when it is 0.
double target_door_far(const config::GateConfig& gate);

nlohmann::json to_json(const GalleryFigures& g);
nlohmann::json to_json(const SiteFigures& s);
nlohmann::json to_json(const ModelFigures& f);
nlohmann::json to_json(const DoorFigures& d);
nlohmann::json to_json(const GateDecision& d);

}  // namespace faceadapt::daemon
