// Clustering with the site's structure (issue 15): tracks, faces that share a frame, and an
// operator's corrections, applied to the pseudo-labels of a clustering (cluster.hpp).
//
// WHAT THIS REPRESENTS
//   SiteStructure holds, per sample of a training set, its track, its time (the order within the
//   track), its frame and the operator's named group, plus the operator's "not the same person"
//   pairs. Its cannot-links are: two samples of one frame on different tracks (or without a
//   track), and the operator's pairs. Its must-links are: the crops of one track (after the
//   switch split below) and the crops of one named group.
//   apply_constraints() turns a clustering's labels into labels that respect them:
//     1. split_switched_tracks(): each track, in time order, is cut where the mean features of
//        the two parts are less similar than `threshold` (binary segmentation, recursively). The
//        label-free threshold (switch_threshold()) is a high quantile of the similarities of
//        known-different pairs: the frame cannot-links (or, with fewer than 20 of those,
//        seeded random pairs of different tracks), i.e. "the two parts look like two people".
//     2. must-link units: union-find over named groups first (highest trust), then consecutive
//        crops of each track segment; a union that would put a cannot-linked pair in one unit is
//        refused (counted).
//     3. clusters joined: two clusters holding parts of one named group are joined; parts of
//        tracks join them only when at least `min_track_links` distinct tracks link them (one
//        undetected switch must not merge two people).
//     4. every unit takes its members' majority cluster (noise members adopt it; a named group
//        that is all noise becomes a cluster of its own).
//     5. every cluster holding a cannot-linked pair is split: its units are assigned greedily
//        (largest first) to the most similar sub-cluster (cosine to the sub-cluster's
//        centroid) holding none of their cannot-links, then reassigned twice the same way;
//        sub-clusters of one sample become noise.
//   cluster_within_cannot_links() is the clustering itself with the cannot-links as a check: the
//   cannot-linked pairs are a label-free sample of different-person pairs, so the share of them
//   that DBSCAN puts in one cluster estimates how often it merges two people. When that share is
//   above `max_violation_rate`, eps is lowered in steps until it is not (semi-supervised choice of
//   DBSCAN's density, as in Lelis & Sander, ICDM 2009). Where the eps rule already keeps people
//   apart (no more than that share in one cluster), nothing changes.
//   The result never has a cannot-linked pair in one cluster. Memory O(N + pairs) (the
//   features are read, never an N x N matrix), time O(N log N + pairs) beside the features'
//   dot products of the units being split.
// THREAD SAFETY
//   Pure functions of their inputs.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "faceadapt/learner/cluster.hpp"

namespace at { class Tensor; }

namespace faceadapt::learner {

struct SiteStructure {
    std::vector<int64_t> track;    // per sample; -1 = none. Unique in the set (not per camera).
    std::vector<int64_t> time_ms;  // per sample; the order within a track (ties: sample index)
    std::vector<int64_t> frame;    // per sample; -1 = unknown. One id per (camera, frame time).
    std::vector<int64_t> named;    // per sample; -1 = none. One id per operator-given name.
    std::vector<std::pair<int64_t, int64_t>> cannot;  // operator's "not the same person" sample pairs

    int64_t size() const { return static_cast<int64_t>(track.size()); }
    // True when nothing constrains anything (no track, frame, name or pair).
    bool empty() const;
    // throws std::invalid_argument naming the field when a per-sample vector is not n long or a
    // pair is out of range or pairs a sample with itself.
    void validate(int64_t n) const;
    bool operator==(const SiteStructure&) const = default;
    // The same structure over the samples `keep` (in that order): pairs with a dropped end go.
    SiteStructure subset(const std::vector<int64_t>& keep) const;
};

struct ConstraintOptions {
    bool split_tracks = true;
    double switch_quantile = 0.95;  // of the known-different pairs' similarities
    int min_track_links = 2;        // distinct tracks needed to join two clusters
    // cluster_within_cannot_links(): the largest share of cannot-linked pairs one DBSCAN
    // clustering may put in one cluster before eps is lowered, in (0, 1]; 1 = the eps rule as is.
    double max_violation_rate = 0.01;
    int min_rate_pairs = 20;        // fewer cannot-linked pairs: too few for a rate, the eps rule as is
};

// What cluster_within_cannot_links() chose.
struct EpsChoice {
    double rule_eps = 0.0;           // the eps rule's eps
    double eps = 0.0;                // the eps used (<= rule_eps)
    int64_t pairs = 0;               // cannot-linked pairs
    int64_t rule_violations = 0;     // of them in one cluster at rule_eps
    int64_t violations = 0;          // ... at eps
    int steps = 0;                   // times eps was lowered
};

struct ConstraintReport {
    double switch_threshold = 0.0;
    int64_t track_cuts = 0;          // cuts made in tracks (likely identity switches)
    int64_t cannot_pairs = 0;        // cannot-linked sample pairs (frames + operator)
    int64_t refused_unions = 0;      // must-links dropped because they contradicted a cannot-link
    int64_t clusters_joined = 0;     // cluster joins through tracks / named groups
    int64_t clusters_split = 0;      // clusters split because they held a cannot-linked pair
    int64_t noise_adopted = 0;       // noise samples given their unit's cluster
    int64_t violations_before = 0;   // cannot-linked pairs the input labels put in one cluster
};

// Every cannot-linked pair (i < j), each once, sorted: frame pairs and the operator's.
std::vector<std::pair<int64_t, int64_t>> cannot_link_pairs(const SiteStructure& s);

// The cannot-linked pairs that `labels` put in one cluster (noise never violates).
int64_t count_violations(const std::vector<int64_t>& labels, const std::vector<std::pair<int64_t, int64_t>>& pairs);

// The similarity above which a pair of track parts counts as one person (see step 1).
// requires: features [N, D] float, rows L2-normalised; s.validate(N).
double switch_threshold(const at::Tensor& features, const SiteStructure& s, double quantile, uint64_t seed = 0);

// Step 1: new track ids (-1 kept) where each track is cut at its feature jumps; *cuts counts
// the cuts. Ids are 0..T-1 in order of each segment's first sample index.
std::vector<int64_t> split_switched_tracks(const at::Tensor& features, const SiteStructure& s, double threshold,
                                           int64_t* cuts = nullptr);

// DBSCAN as cluster_features() runs it, at the eps of `cluster.eps_rule` lowered in steps of
// 0.025 while more than `options.max_violation_rate` of the cannot-linked pairs fall in one
// cluster, never to a clustering with more than half the rows noise (the last eps before that is
// kept). With kmeans, fewer than `options.min_rate_pairs` pairs or a rate of 1: cluster_features()
// as is. The pairs left in one cluster are for apply_constraints() to split.
// requires: as cluster_features(); s.validate(N). ensures: *choice (when given) says what ran.
// throws std::invalid_argument as cluster_features() and for a rate outside (0, 1].
ClusterResult cluster_within_cannot_links(const at::Tensor& features, const ClusterOptions& cluster,
                                          const SiteStructure& s, const ConstraintOptions& options,
                                          EpsChoice* choice = nullptr);

// Steps 1-5 on `base` (a clustering of the same rows). ensures: labels 0..C-1 or -1,
// count_violations(result, cannot_link_pairs(s)) == 0. throws std::invalid_argument for sizes
// that do not match.
ClusterResult apply_constraints(const at::Tensor& features, const SiteStructure& s, const ClusterResult& base,
                                const ConstraintOptions& options, ConstraintReport* report = nullptr);

}  // namespace faceadapt::learner
