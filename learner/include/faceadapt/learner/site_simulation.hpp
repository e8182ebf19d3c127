// A simulated site from a labelled set (issue 15): tracks, identity switches and shared frames,
// so that constraints can be measured honestly on data whose truth is known.
//
// WHAT THIS REPRESENTS
//   simulate_site() takes one identity per sample, each identity's samples in file-name order
//   (the order of the indices), and makes:
//   - tracks of min_track..max_track consecutive samples of one identity (the next ones in that
//     identity's order); with probability switch_rate a track switches identity at a random
//     point and continues with the next samples of another identity (a tracker's identity
//     switch);
//   - scenes of min_frame_tracks..max_frame_tracks tracks whose identities are all different,
//     seen at once by one camera: the j-th crop of each track of a scene is in the scene's j-th
//     frame (same camera, same unix_ms). A track that finds no partner within the next 64 is
//     alone in its scene.
//   Every sample is used once. The labels are used only to build this (and by the caller to
//   score); nothing here is given to the trainer but tracks, cameras and times.
//   Deterministic in (identities, options).
// THREAD SAFETY
//   Pure function.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "faceadapt/learner/site_snapshot.hpp"

namespace faceadapt::learner {

struct SimulationOptions {
    double switch_rate = 0.0;   // in [0, 1]
    uint64_t seed = 0;
    int min_track = 3, max_track = 8;
    int min_frame_tracks = 2, max_frame_tracks = 4;
    int cameras = 2;
    int64_t start_ms = 1'700'000'000'000;  // the first scene's time
    int64_t frame_ms = 200;                // between a track's crops
    int64_t scene_ms = 60'000;             // between scenes
    // throws std::invalid_argument naming the field.
    void validate() const;
};

struct SimulatedSite {
    std::vector<int64_t> track;        // per sample: 1..T
    std::vector<int64_t> unix_ms;      // per sample
    std::vector<std::string> camera;   // per sample: cam0, cam1, ...
    std::vector<int64_t> order;        // the samples in time order (camera, then track, to break ties)
    int64_t tracks = 0, switched = 0;  // tracks made; of them with an identity switch
    int64_t scenes = 0, shared_frames = 0;  // scenes; frames holding 2 or more crops
};

// requires: identity.size() >= 1, identities >= 0. throws std::invalid_argument otherwise.
SimulatedSite simulate_site(const std::vector<int64_t>& identity, const SimulationOptions& options);

// The snapshot rows of a simulated site in time order (site.order): row k is sample order[k],
// id k + 1, its camera, time and track, score 1, file files[sample].
// requires: files.size() == the number of samples. throws std::invalid_argument otherwise.
std::vector<SnapshotRow> simulated_rows(const SimulatedSite& site, const std::vector<std::filesystem::path>& files);

}  // namespace faceadapt::learner
