// A training snapshot's site structure; see site_snapshot.hpp.
#include "faceadapt/learner/site_snapshot.hpp"

#include <map>
#include <numeric>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace faceadapt::learner {

SiteStructure site_structure(const std::vector<SnapshotRow>& rows, const OperatorConstraints& c, StructureCounts* out) {
    StructureCounts counts;
    SiteStructure s;
    const auto n = static_cast<int64_t>(rows.size());
    s.track.assign(n, -1);
    s.time_ms.assign(n, 0);
    s.frame.assign(n, -1);
    s.named.assign(n, -1);
    std::map<std::pair<std::string, int64_t>, int64_t> tracks, frames;
    std::map<int64_t, int64_t> frame_size;
    std::unordered_map<int64_t, std::vector<int64_t>> by_id;
    for (int64_t i = 0; i < n; ++i) {
        const auto& r = rows[i];
        by_id[r.id].push_back(i);
        s.time_ms[i] = r.unix_ms;
        if (r.track >= 0) s.track[i] = tracks.emplace(std::pair{r.camera, r.track}, tracks.size()).first->second;
        if (r.unix_ms > 0) {
            s.frame[i] = frames.emplace(std::pair{r.camera, r.unix_ms}, frames.size()).first->second;
            ++frame_size[s.frame[i]];
        }
    }
    counts.tracks = static_cast<int64_t>(tracks.size());
    counts.frames = static_cast<int64_t>(frames.size());
    for (const auto& [f, size] : frame_size) counts.shared_frames += size >= 2;
    std::map<std::string, int64_t> names;
    std::map<std::string, std::vector<int64_t>> named_members;
    for (const auto& [crop, name] : c.must) {
        const auto it = by_id.find(crop);
        if (it == by_id.end()) {
            ++counts.unknown_ids;
            continue;
        }
        const int64_t g = names.emplace(name, names.size()).first->second;
        for (int64_t i : it->second) {
            s.named[i] = g;
            named_members[name].push_back(i);
            ++counts.must;
        }
    }
    // "same" rows: union-find over the rows (the crops of one named group start as one); every
    // row in a linked set gets that set's group (two names merged by the operator become one).
    if (!c.same.empty()) {
        std::vector<int64_t> parent(n);
        std::iota(parent.begin(), parent.end(), int64_t{0});
        auto find = [&](int64_t x) {
            while (parent[x] != x) x = parent[x] = parent[parent[x]];
            return x;
        };
        auto unite = [&](int64_t x, int64_t y) { parent[find(x)] = find(y); };
        std::vector<char> linked(n, 0);
        std::map<int64_t, int64_t> first_of_group;
        for (int64_t i = 0; i < n; ++i)
            if (s.named[i] >= 0) {
                linked[i] = 1;
                const auto [it, fresh] = first_of_group.emplace(s.named[i], i);
                if (!fresh) unite(i, it->second);
            }
        for (const auto& [a, b] : c.same) {
            const auto ia = by_id.find(a), ib = by_id.find(b);
            if (ia == by_id.end() || ib == by_id.end()) {
                ++counts.unknown_ids;
                continue;
            }
            ++counts.same;
            for (const auto* rows_of : {&ia->second, &ib->second})
                for (int64_t i : *rows_of) {
                    unite(i, ia->second.front());
                    linked[i] = 1;
                }
        }
        std::map<int64_t, int64_t> group_of_root;
        for (int64_t i = 0; i < n; ++i)
            if (linked[i]) s.named[i] = group_of_root.emplace(find(i), group_of_root.size()).first->second;
    }
    auto members = [&](const ConstraintRef& r) -> std::vector<int64_t> {
        if (r.crop >= 0) {
            const auto it = by_id.find(r.crop);
            if (it == by_id.end()) return {};
            return it->second;
        }
        const auto it = named_members.find(r.name);
        return it == named_members.end() ? std::vector<int64_t>{} : it->second;
    };
    for (const auto& [a, b] : c.cannot) {
        const auto ma = members(a), mb = members(b);
        if (ma.empty() || mb.empty()) {
            ++counts.unknown_ids;
            continue;
        }
        if (static_cast<int64_t>(s.cannot.size() + ma.size() * mb.size()) > kMaxCannotPairs)
            throw std::invalid_argument("constraints: the cannot-links expand to more than 10000000 crop pairs");
        for (int64_t x : ma)
            for (int64_t y : mb)
                if (x != y) s.cannot.emplace_back(x, y);
    }
    counts.cannot_pairs = static_cast<int64_t>(s.cannot.size());
    if (out) *out = counts;
    return s;
}

}  // namespace faceadapt::learner
