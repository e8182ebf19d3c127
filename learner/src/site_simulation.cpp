// A simulated site from a labelled set; see site_simulation.hpp.
#include "faceadapt/learner/site_simulation.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>
#include <tuple>

namespace faceadapt::learner {

void SimulationOptions::validate() const {
    auto bad = [](const std::string& m) { throw std::invalid_argument("site simulation: " + m); };
    if (!(switch_rate >= 0.0 && switch_rate <= 1.0)) bad("switch_rate must be in [0, 1]");
    if (min_track < 1 || max_track < min_track) bad("track lengths must be 1 <= min_track <= max_track");
    if (min_frame_tracks < 1 || max_frame_tracks < min_frame_tracks)
        bad("frame track counts must be 1 <= min_frame_tracks <= max_frame_tracks");
    if (cameras < 1) bad("cameras must be >= 1");
    if (frame_ms < 1 || scene_ms <= frame_ms * max_track) bad("scene_ms must exceed frame_ms * max_track");
}

SimulatedSite simulate_site(const std::vector<int64_t>& identity, const SimulationOptions& o) {
    o.validate();
    if (identity.empty()) throw std::invalid_argument("site simulation: no samples");
    std::map<int64_t, std::deque<int64_t>> queues;
    for (int64_t i = 0; i < static_cast<int64_t>(identity.size()); ++i) {
        if (identity[i] < 0) throw std::invalid_argument("site simulation: a negative identity");
        queues[identity[i]].push_back(i);
    }
    std::mt19937_64 rng(o.seed ^ 0x517E51ull);
    auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
    std::vector<int64_t> live;  // identities with samples left
    for (const auto& [id, q] : queues) live.push_back(id);
    auto take = [&](int64_t id, int64_t count, std::vector<int64_t>& out) {
        auto& q = queues[id];
        for (int64_t k = 0; k < count && !q.empty(); ++k) out.push_back(q.front()), q.pop_front();
        if (q.empty()) live.erase(std::find(live.begin(), live.end(), id));
    };
    SimulatedSite site;
    std::vector<std::vector<int64_t>> tracks;
    std::vector<std::set<int64_t>> ids_of;
    while (!live.empty()) {
        const int64_t id = live[uniform(0, static_cast<int64_t>(live.size()) - 1)];
        const int64_t length = uniform(o.min_track, o.max_track);
        std::vector<int64_t> t;
        std::set<int64_t> ids{id};
        const bool switches = std::uniform_real_distribution<double>(0, 1)(rng) < o.switch_rate && length >= 2;
        if (switches && live.size() >= 2) {
            const int64_t at = uniform(1, length - 1);
            take(id, at, t);
            std::vector<int64_t> others;
            for (int64_t x : live)
                if (x != id) others.push_back(x);
            const int64_t other = others[uniform(0, static_cast<int64_t>(others.size()) - 1)];
            take(other, length - static_cast<int64_t>(t.size()), t);
            ids.insert(other);
            ++site.switched;
        } else {
            take(id, length, t);
        }
        tracks.push_back(std::move(t));
        ids_of.push_back(std::move(ids));
    }
    site.tracks = static_cast<int64_t>(tracks.size());
    // Scenes: tracks in a random order, each scene filled from the next 64 unplaced tracks
    // whose identities are all new to it.
    std::vector<int64_t> order(tracks.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<char> placed(tracks.size(), 0);
    const auto n = static_cast<int64_t>(identity.size());
    site.track.assign(n, 0);
    site.unix_ms.assign(n, 0);
    site.camera.assign(n, "");
    for (size_t a = 0; a < order.size(); ++a) {
        if (placed[order[a]]) continue;
        std::vector<int64_t> scene{order[a]};
        placed[order[a]] = 1;
        std::set<int64_t> seen = ids_of[order[a]];
        const int64_t want = uniform(o.min_frame_tracks, o.max_frame_tracks);
        for (size_t b = a + 1; b < order.size() && b <= a + 64 && static_cast<int64_t>(scene.size()) < want; ++b) {
            const int64_t t = order[b];
            if (placed[t] || std::any_of(ids_of[t].begin(), ids_of[t].end(), [&](int64_t x) { return seen.count(x); }))
                continue;
            scene.push_back(t);
            placed[t] = 1;
            seen.insert(ids_of[t].begin(), ids_of[t].end());
        }
        const int64_t k = site.scenes++;
        const std::string camera = "cam" + std::to_string(k % o.cameras);
        const int64_t base = o.start_ms + k * o.scene_ms;
        size_t longest = 0;
        for (int64_t t : scene) {
            longest = std::max(longest, tracks[t].size());
            for (size_t j = 0; j < tracks[t].size(); ++j) {
                const int64_t i = tracks[t][j];
                site.track[i] = t + 1;
                site.unix_ms[i] = base + static_cast<int64_t>(j) * o.frame_ms;
                site.camera[i] = camera;
            }
        }
        for (size_t j = 0; j < longest; ++j) {
            int64_t in_frame = 0;
            for (int64_t t : scene) in_frame += tracks[t].size() > j;
            site.shared_frames += in_frame >= 2;
        }
    }
    site.order.resize(n);
    std::iota(site.order.begin(), site.order.end(), 0);
    std::sort(site.order.begin(), site.order.end(), [&](int64_t a, int64_t b) {
        return std::tie(site.unix_ms[a], site.camera[a], site.track[a], a) <
               std::tie(site.unix_ms[b], site.camera[b], site.track[b], b);
    });
    return site;
}

std::vector<SnapshotRow> simulated_rows(const SimulatedSite& site, const std::vector<std::filesystem::path>& files) {
    if (files.size() != site.order.size()) throw std::invalid_argument("simulated_rows: one file per sample needed");
    std::vector<SnapshotRow> rows;
    rows.reserve(files.size());
    for (size_t k = 0; k < site.order.size(); ++k) {
        const int64_t i = site.order[k];
        rows.push_back({static_cast<int64_t>(k) + 1, site.camera[i], site.unix_ms[i], site.track[i], 1.0, files[i]});
    }
    return rows;
}

}  // namespace faceadapt::learner
