// Evaluation of embeddings against ground-truth identities (torch-free).
//
// WHAT THIS REPRESENTS
//   The figures by which a model (source, candidate, adapted) is judged:
//   - verification over ALL genuine (same identity) and impostor pairs of a labelled set, with
//     the Euclidean distance of raw embeddings: TAR at FAR 1e-3 / 1e-4 and pair accuracy at the
//     fixed 0.6 threshold;
//   - LFW-style 10-fold accuracy on a given list of pairs;
//   - leave-one-out rank-1 identification;
//   - clustering quality of (pseudo-)labels against truth: pairwise and BCubed P/R/F, NMI.
//   Definitions are written at each function; the tests check them on hand-computed cases.
// THREAD SAFETY
//   Pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "faceadapt/learner/embedding.hpp"

namespace faceadapt::learner {

// --- verification over all pairs ------------------------------------------------------------
struct VerificationResult {
    std::size_t genuine_pairs = 0;
    std::size_t impostor_pairs = 0;
    double tar_at_far_1e3 = 0.0;
    double tar_at_far_1e4 = 0.0;
    // Balanced accuracy at distance < 0.6: 0.5 * (genuine accepted + impostors rejected).
    double pair_accuracy = 0.0;
    double mean_genuine_distance = 0.0;
    double mean_impostor_distance = 0.0;
};

// TAR at a target FAR from pair distances: with k = floor(far * impostors), the threshold t is
// the (k+1)-th smallest impostor distance and a pair is accepted when its distance is < t (so
// at most k impostors are accepted, ties rejected); TAR = accepted genuine / genuine.
// Returns 0 when there are no genuine pairs; 1 when there are no impostor pairs.
double tar_at_far(std::vector<float> genuine, std::vector<float> impostor, double far);

// requires: embeddings.size() == labels.size(); labels >= 0.
// ensures:  every unordered pair i<j is genuine when labels match, impostor otherwise.
VerificationResult verify_all_pairs(const std::vector<Embedding>& embeddings,
                                    const std::vector<int>& labels,
                                    double threshold = 0.6);

// --- given pairs, LFW protocol --------------------------------------------------------------
struct Pair {
    std::size_t a = 0, b = 0;  // indices into the embeddings
    bool same = false;
};

struct PairsResult {
    std::size_t pairs = 0;
    double accuracy = 0.0;       // mean over folds of each fold's test accuracy
    double accuracy_std = 0.0;   // standard deviation over folds
    double mean_threshold = 0.0; // mean of the per-fold thresholds
};

// requires: every pair index < embeddings.size(); pairs.size() >= folds >= 2.
// ensures:  fold of pair i = i mod folds (pairsDevTest.txt lists 500 same then 500 different;
//           View 2 lists 10 sets of 300+300: both give balanced folds). For each fold, the
//           distance threshold that maximises accuracy on the other folds (candidates: midpoints
//           of consecutive sorted training distances, plus both ends) is applied to it
//           (same when distance < threshold).
// throws:   std::invalid_argument for an out-of-range index or too few pairs.
PairsResult pairs_accuracy(const std::vector<Embedding>& embeddings, const std::vector<Pair>& pairs,
                           int folds = 10);

// --- identification -------------------------------------------------------------------------
struct Rank1Result {
    std::size_t queries = 0;  // samples whose identity has at least one other sample
    double rank1 = 0.0;       // fraction whose nearest other sample (Euclidean) has their label
};

// Leave-one-out rank-1: each sample is a query against all the others. Samples that are the
// only one of their identity are not queries (they still serve as distractors).
Rank1Result rank1_leave_one_out(const std::vector<Embedding>& embeddings, const std::vector<int>& labels);

// --- clustering quality ---------------------------------------------------------------------
struct ClusteringQuality {
    double pairwise_precision = 0.0, pairwise_recall = 0.0, pairwise_f = 0.0;
    double bcubed_precision = 0.0, bcubed_recall = 0.0, bcubed_f = 0.0;
    double nmi = 0.0;
    std::size_t clusters = 0;  // distinct predicted labels other than -1
    std::size_t noise = 0;     // samples predicted -1
};

// requires: truth.size() == predicted.size(); truth >= 0; predicted >= 0 or -1 (noise).
// ensures:  every noise sample counts as a singleton cluster of its own.
//   pairwise: over unordered pairs, P = |same cluster AND same truth| / |same cluster|,
//             R = |same cluster AND same truth| / |same truth|, a 0/0 ratio is 1 (so all-noise
//             against real identities gives P 1, R 0, F 0), F = 2PR/(P+R) (0 when P+R = 0).
//   BCubed:   per sample, P = |its cluster with its label| / |its cluster|,
//             R = |its cluster with its label| / |its label|, averaged over samples; F harmonic.
//   NMI:      I(T;C) / ((H(T) + H(C)) / 2) (arithmetic mean, sklearn's default); 1 when both
//             entropies are 0.
ClusteringQuality clustering_quality(const std::vector<int>& truth, const std::vector<int>& predicted);

struct ClusterOptions;  // cluster.hpp

// Clusters the L2-normalised embeddings the way the co-training does (cluster_features with
// `options`) and scores the result against `truth` with clustering_quality.
// throws: as cluster_features (e.g. fewer rows than k1 + 1 for dbscan).
ClusteringQuality cluster_and_score(const std::vector<Embedding>& embeddings, const std::vector<int>& truth,
                                    const ClusterOptions& options);

}  // namespace faceadapt::learner
