// The bounded, stratified training sample: which of a store's crops one training run uses.
//
// WHAT THIS REPRESENTS
//   A site's store can hold far more crops than a run can afford (memory, clustering time), and
//   most of them come from a few busy cameras, days and long tracks. stratified_sample() keeps
//   at most `max_crops` of them, spread fairly by level: the budget is shared equally between
//   cameras (a camera with fewer crops than its share keeps them all and the rest goes to the
//   others: water-filling), each camera's share between its days (UTC), each day's between its
//   tracks, and each track's crops are taken evenly spaced along the track's order (its crops'
//   order in the input). Crops without a track (track < 0) count as one-crop tracks.
//   Deterministic: no randomness, the same input gives the same sample.
// THREAD SAFETY
//   Pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace faceadapt::learner {

struct CropKey {
    std::string camera;
    int64_t day = 0;     // UTC day number (unix seconds / 86400); 0 when unknown
    int64_t track = -1;  // tracker id within the camera; < 0 unknown
};

// Water-filling: shares `budget` between groups of the given sizes as equally as possible,
// no group getting more than its size. ensures: result[i] <= sizes[i]; the sum is
// min(budget, sum of sizes); the groups that are not full differ by at most 1, the extra ones
// going to groups evenly spaced by index (so one-crop groups are sampled evenly along the input).
std::vector<size_t> fair_shares(const std::vector<size_t>& sizes, size_t budget);

// The indices (ascending) of at most max_crops entries of `keys`, spread as described above.
// max_crops == 0 or >= keys.size() keeps every index.
std::vector<size_t> stratified_sample(const std::vector<CropKey>& keys, size_t max_crops);

}  // namespace faceadapt::learner
