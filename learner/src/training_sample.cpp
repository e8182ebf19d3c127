// The stratified training sample; see training_sample.hpp.
#include "faceadapt/learner/training_sample.hpp"

#include <algorithm>
#include <map>
#include <numeric>
#include <tuple>

namespace faceadapt::learner {

std::vector<size_t> fair_shares(const std::vector<size_t>& sizes, size_t budget) {
    std::vector<size_t> share(sizes.size(), 0);
    std::vector<size_t> order(sizes.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return sizes[a] < sizes[b]; });
    // Smallest groups first: a group smaller than an equal part of what is left takes all of
    // it; from the first that is not, every remaining group gets the equal part, and the
    // remainder one each to groups evenly spaced among them (by index). O(G log G).
    for (size_t k = 0; k < order.size(); ++k) {
        const size_t left = order.size() - k, part = budget / left;
        if (sizes[order[k]] <= part) {
            share[order[k]] = sizes[order[k]];
            budget -= sizes[order[k]];
            continue;
        }
        std::vector<size_t> rest(order.begin() + static_cast<std::ptrdiff_t>(k), order.end());
        std::sort(rest.begin(), rest.end());
        const size_t extra = budget - part * left;
        for (size_t i : rest) share[i] = part;
        for (size_t j = 0; j < extra; ++j) ++share[rest[j * rest.size() / extra]];  // spread evenly
        break;
    }
    return share;
}

namespace {

// Picks `want` of the positions [0, n), evenly spaced (the first one included).
void evenly_spaced(const std::vector<size_t>& members, size_t want, std::vector<size_t>& out) {
    const size_t n = members.size();
    for (size_t j = 0; j < want; ++j) out.push_back(members[j * n / want]);
}

// Groups `members` (indices into keys) by a level's key, in first-seen order of sorted keys.
template <typename Key, typename KeyOf>
std::vector<std::vector<size_t>> group_by(const std::vector<size_t>& members, KeyOf key_of) {
    std::map<Key, std::vector<size_t>> groups;
    for (size_t i : members) groups[key_of(i)].push_back(i);
    std::vector<std::vector<size_t>> out;
    out.reserve(groups.size());
    for (auto& [k, v] : groups) out.push_back(std::move(v));
    return out;
}

template <typename Level>
void share_down(const std::vector<std::vector<size_t>>& groups, size_t budget, Level next) {
    std::vector<size_t> sizes;
    for (const auto& g : groups) sizes.push_back(g.size());
    const auto shares = fair_shares(sizes, budget);
    for (size_t g = 0; g < groups.size(); ++g)
        if (shares[g] > 0) next(groups[g], shares[g]);
}

}  // namespace

std::vector<size_t> stratified_sample(const std::vector<CropKey>& keys, size_t max_crops) {
    std::vector<size_t> all(keys.size());
    std::iota(all.begin(), all.end(), 0);
    if (max_crops == 0 || max_crops >= keys.size()) return all;
    std::vector<size_t> out;
    out.reserve(max_crops);
    const auto cameras = group_by<std::string>(all, [&](size_t i) { return keys[i].camera; });
    share_down(cameras, max_crops, [&](const std::vector<size_t>& camera, size_t camera_budget) {
        const auto days = group_by<int64_t>(camera, [&](size_t i) { return keys[i].day; });
        share_down(days, camera_budget, [&](const std::vector<size_t>& day, size_t day_budget) {
            // A crop without a track is its own one-crop track (keyed by its index).
            const auto tracks = group_by<std::pair<int64_t, size_t>>(day, [&](size_t i) {
                return keys[i].track >= 0 ? std::pair<int64_t, size_t>{keys[i].track, 0}
                                          : std::pair<int64_t, size_t>{-1, i};
            });
            share_down(tracks, day_budget,
                       [&](const std::vector<size_t>& track, size_t n) { evenly_spaced(track, n, out); });
        });
    });
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace faceadapt::learner
