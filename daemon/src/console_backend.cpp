#include "faceadapt/daemon/console_backend.hpp"

#include <algorithm>
#include <numeric>
#include <set>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <spdlog/spdlog.h>

#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/common/site_files.hpp"
#include "faceadapt/common/text.hpp"
#include "faceadapt/common/time.hpp"
#include "faceadapt/daemon/metrics.hpp"
#include "faceadapt/daemon/model_registry.hpp"
#include "faceadapt/daemon/training_cycle.hpp"
#include "faceadapt/ingest/face_aligner.hpp"
#include "faceadapt/ingest/image_file.hpp"
#include "faceadapt/quality/crop_store.hpp"
#include "faceadapt/quality/gallery.hpp"
#include "faceadapt/quality/quality.hpp"
#include "faceadapt/ui/audit.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

namespace faceadapt::daemon {
namespace {

constexpr std::size_t kJpegCache = 4096;
constexpr auto kRateWindow = std::chrono::seconds(60);
// The source recorded for a console enrollment: "console <user>: <file name>".
constexpr const char* kConsoleSource = "console ";

std::string label(const Labels& labels, const std::string& key) {
    for (const auto& [k, v] : labels)
        if (k == key) return v;
    return {};
}

std::optional<std::string> jpeg_of(const cv::Mat& rgb) {
    if (rgb.empty()) return std::nullopt;
    cv::Mat bgr;
    cv::cvtColor(rgb, bgr, rgb.channels() == 1 ? cv::COLOR_GRAY2BGR : cv::COLOR_RGB2BGR);
    std::vector<uchar> out;
    if (!cv::imencode(".jpg", bgr, out, {cv::IMWRITE_JPEG_QUALITY, 85})) return std::nullopt;
    return std::string(out.begin(), out.end());
}

// A photo uploaded to the console, decoded after its header passed the bounds (no pixels are
// decoded for a "decompression bomb").
void check_person_name(const std::string& name) {
    if (!common::valid_person_name(name)) throw std::invalid_argument("a name is 1 to 64 of letters, digits, space . _ -");
}

cv::Mat decode_upload(const std::string& bytes, std::string& error) {
    const ingest::ImageLimits limits;
    if (bytes.size() > limits.max_file_bytes) {
        error = "the file is larger than 64 MiB";
        return {};
    }
    const auto size = ingest::read_image_size(bytes);
    if (!size) {
        error = "not a JPEG, PNG, BMP, TIFF, WebP or PNM image";
        return {};
    }
    if (size->width > limits.max_side || size->height > limits.max_side ||
        size->width * size->height > limits.max_pixels) {
        error = fmt::format("the image is {}x{}: at most {} pixels a side and {} in all", size->width, size->height,
                            limits.max_side, limits.max_pixels);
        return {};
    }
    const std::vector<uchar> buffer(bytes.begin(), bytes.end());
    cv::Mat image = cv::imdecode(buffer, cv::IMREAD_COLOR);
    if (image.empty()) error = "the image does not decode";
    return image;
}

}  // namespace

SiteConsole::SiteConsole(const fs::path& state_dir, quality::CropStore& store, const MetricsRegistry& metrics,
                         SiteConsoleHooks hooks)
    : state_dir_(state_dir), store_(store), metrics_(metrics), hooks_(std::move(hooks)),
      gallery_(std::make_unique<quality::Gallery>(state_dir)),
      registry_(std::make_unique<ModelRegistry>(state_dir / "models")) {}

SiteConsole::~SiteConsole() = default;

void SiteConsole::sample() {
    const auto now = SteadyClock::now();
    std::map<std::string, Point> points;
    for (const auto& [labels, v] : metrics_.samples("faceadapt_camera_decoded_frames_total"))
        points[label(labels, "camera")].decoded = v;
    for (const auto& [labels, v] : metrics_.samples("faceadapt_camera_faces_total"))
        points[label(labels, "camera")].faces = v;
    const double progress = metrics_.value("faceadapt_training_progress");
    std::lock_guard lock(mutex_);
    if (progress <= 0 || progress >= 1 || progress < last_progress_) {
        progress_start_.reset();
        eta_s_ = -1;
    }
    if (progress > 0 && progress < 1) {
        if (!progress_start_) progress_start_ = std::make_pair(now, progress);
        const double done = progress - progress_start_->second;
        const double elapsed = std::chrono::duration<double>(now - progress_start_->first).count();
        eta_s_ = done > 0 ? elapsed * (1 - progress) / done : -1;
    }
    last_progress_ = progress;
    for (auto& [camera, p] : points) {
        p.t = now;
        auto& series = rates_[camera];
        series.push_back(p);
        while (series.size() > 2 && now - series[1].t >= kRateWindow) series.pop_front();
    }
    std::erase_if(rates_, [&](const auto& kv) { return !points.count(kv.first); });
}

json SiteConsole::overview() {
    const config::Config cfg = hooks_.config();
    std::map<std::string, json> cameras;
    for (const auto& [labels, v] : metrics_.samples("faceadapt_camera_state"))
        if (v > 0.5) cameras[label(labels, "camera")]["state"] = label(labels, "state");
    for (const auto& [labels, v] : metrics_.samples("faceadapt_camera_reconnects_total"))
        cameras[label(labels, "camera")]["reconnects"] = static_cast<std::int64_t>(v);
    for (const auto& [labels, v] : metrics_.samples("faceadapt_camera_faults_total"))
        cameras[label(labels, "camera")]["faults"] = static_cast<std::int64_t>(v);
    {
        std::lock_guard lock(mutex_);
        for (const auto& [camera, series] : rates_) {
            if (series.size() < 2 || !cameras.count(camera)) continue;
            const double dt = std::chrono::duration<double>(series.back().t - series.front().t).count();
            if (dt <= 0) continue;
            cameras[camera]["fps"] = std::max(0.0, (series.back().decoded - series.front().decoded) / dt);
            cameras[camera]["faces_per_min"] = std::max(0.0, 60 * (series.back().faces - series.front().faces) / dt);
        }
    }
    json cams = json::array();
    int up = 0;
    for (auto& [id, c] : cameras) {
        if (id.empty()) continue;
        c["id"] = id;
        if (!c.contains("state")) c["state"] = "unknown";
        up += c["state"] == "streaming";
        json crops = json::array();
        try {
            for (const auto& r : store_.latest(id, 8)) crops.push_back(r.id);
        } catch (const std::exception& e) {
            spdlog::debug("console: latest crops of {}: {}", id, e.what());
        }
        c["latest_crops"] = crops;
        // The time of the camera's latest full frame (the page's snapshot), null when none yet.
        const auto frame = hooks_.frame ? hooks_.frame(id) : std::nullopt;
        c["snapshot"] = frame ? json(common::utc_timestamp(frame->time)) : json(nullptr);
        for (const char* k : {"fps", "faces_per_min"})
            if (!c.contains(k)) c[k] = 0.0;
        cams.push_back(c);
    }
    const auto st = store_.stats();
    int current = 0;
    double eta_s = -1;
    {
        std::lock_guard lock(mutex_);
        current = registry_->current_version();
        eta_s = eta_s_;
    }
    std::int64_t revision = 0;
    try {
        revision = gallery_->revision();
    } catch (const std::exception&) {
    }
    const std::string training = hooks_.trainer_status ? hooks_.trainer_status() : "idle";
    return {{"site", cfg.site.id},
            {"status", fmt::format("cameras {}/{} up, {} crops stored, model v{}, training: {}", up, cams.size(),
                                   st.crops, current, training)},
            {"cameras", cams},
            {"store",
             {{"crops", st.crops},
              {"bytes", st.bytes},
              {"max_bytes", cfg.store.disk_cap_mb * 1024 * 1024},
              {"max_per_camera", cfg.store.per_camera_quota},
              {"retention_days", cfg.store.retention_days},
              {"best_per_track", cfg.store.best_per_track}}},
            {"model",
             {{"current", current},
              {"training", training},
              {"progress", metrics_.value("faceadapt_training_progress")},
              {"eta_s", eta_s},
              {"gallery_revision", revision}}},
            {"doors", hooks_.doors ? hooks_.doors() : json::array()}};
}

json SiteConsole::people() {
    json list = json::array();
    json* person = nullptr;
    for (const auto& e : gallery_->entries()) {
        if (!person || (*person)["name"] != e.name) {
            list.push_back({{"name", e.name}, {"photos", json::array()}});
            person = &list.back();
        }
        std::string by, source = e.source;
        if (source.rfind(kConsoleSource, 0) == 0) {
            const auto colon = source.find(": ");
            by = source.substr(8, colon == std::string::npos ? std::string::npos : colon - 8);
            source = colon == std::string::npos ? "" : source.substr(colon + 2);
        }
        (*person)["photos"].push_back({{"id", e.id},
                                       {"enrolled", common::utc_timestamp(e.enrolled)},
                                       {"source", common::printable(source)},
                                       {"by", by.empty() ? "command line" : by},
                                       {"score", e.score}});
    }
    return {{"people", list}};
}

std::vector<ui::EnrollResult> SiteConsole::enroll(const std::string& name, const std::vector<ui::UploadedPhoto>& photos,
                                                  const std::string& by) {
    check_person_name(name);
    const config::Config cfg = hooks_.config();
    const quality::QualityScorer scorer(cfg.quality);
    std::vector<ui::EnrollResult> out;
    std::lock_guard lock(enroll_mutex_);
    for (const auto& photo : photos) {
        ui::EnrollResult r;
        r.filename = common::printable(photo.filename, 120);
        std::string error;
        const cv::Mat image = decode_upload(photo.bytes, error);
        if (image.empty()) {
            r.reason = error;
            out.push_back(r);
            continue;
        }
        if (!aligner_) aligner_ = std::make_unique<ingest::FaceAligner>(cfg.detect.landmarks_model);
        const auto check = quality::check_enrollment_image(image, *aligner_, scorer, cfg.detect.min_face_px, cfg.enroll);
        if (!check.ok) {
            r.reason = check.reason;
        } else {
            r.entry = gallery_->add(name, check.chip, check.score, kConsoleSource + common::printable(by, 32) + ": " + r.filename);
            r.ok = true;
            spdlog::info("console: {} enrolled {} from {} (entry {})", common::printable(by, 32), name, r.filename, r.entry);
        }
        out.push_back(r);
    }
    return out;
}

int SiteConsole::erase(const std::string& name) {
    std::vector<std::int64_t> ids;
    for (const auto& e : gallery_->entries())
        if (e.name == name) ids.push_back(e.id);
    const int removed = gallery_->remove(name);
    // The crops named for them ("must,<crop>,<name>"), every correction naming them and every
    // merge of those crops go too.
    int crops_removed = 0;
    {
        std::lock_guard lock(mutex_);
        const fs::path file = constraints_file(state_dir_);
        common::OperatorConstraints c = common::read_constraints(file);
        std::set<std::int64_t> theirs;
        for (const auto& [crop, n] : c.must)
            if (n == name) theirs.insert(crop);
        const auto rows = c.rows();
        std::erase_if(c.must, [&](const auto& m) { return m.second == name; });
        std::erase_if(c.cannot, [&](const auto& p) { return p.first.name == name || p.second.name == name; });
        std::erase_if(c.same, [&](const auto& p) { return theirs.count(p.first) || theirs.count(p.second); });
        for (const auto crop : theirs) crops_removed += store_.remove(crop) ? 1 : 0;
        if (c.rows() != rows) common::write_constraints(file, c);
    }
    if (removed > 0 || crops_removed > 0) {
        std::lock_guard lock(cache_mutex_);
        for (const auto id : ids) {
            std::string key = "g";
            key += std::to_string(id);
            jpegs_.erase(key);
        }
        spdlog::info("console: erased {} ({} gallery entries, {} crops named for them); the next gallery update ships "
                     "without them", common::printable(name, 64), removed, crops_removed);
    }
    return removed;
}

bool SiteConsole::remove_photo(std::int64_t entry_id) {
    const bool removed = gallery_->remove_entry(entry_id);
    if (removed) {
        std::string key = "g";
        key += std::to_string(entry_id);
        std::lock_guard lock(cache_mutex_);
        jpegs_.erase(key);
    }
    return removed;
}

json SiteConsole::models() {
    std::lock_guard lock(mutex_);
    json versions = json::array();
    for (const auto& v : registry_->list())
        versions.push_back({{"version", v.version},
                            {"origin", v.origin()},
                            {"created", v.meta.value("created", std::string{})},
                            {"published", v.published()},
                            {"meta", v.meta}});
    auto history = registry_->history();
    if (history.size() > 200) history.erase(history.begin(), history.end() - 200);
    return {{"current", registry_->current_version()},
            {"previous", registry_->previous_version()},
            {"versions", versions},
            {"history", history}};
}

std::string SiteConsole::rollback(int version) {
    {
        std::lock_guard lock(mutex_);
        if (version < 0 || (version > 0 && !registry_->contains(version)))
            throw std::invalid_argument(fmt::format("version {} is not stored (see the Models page)", version));
        if (version == registry_->current_version())
            throw std::invalid_argument(fmt::format("version {} is already current", version));
    }
    if (!hooks_.rollback) throw std::invalid_argument("rollback is not available");
    return hooks_.rollback(version);
}

std::optional<std::string> SiteConsole::cached_jpeg(const std::string& key,
                                                    const std::function<std::optional<std::string>()>& make) {
    {
        std::lock_guard lock(cache_mutex_);
        if (auto it = jpegs_.find(key); it != jpegs_.end()) return it->second;
    }
    auto jpeg = make();
    if (!jpeg) return std::nullopt;
    std::lock_guard lock(cache_mutex_);
    if (jpegs_.emplace(key, *jpeg).second) jpeg_order_.push_back(key);
    while (jpeg_order_.size() > kJpegCache) {
        jpegs_.erase(jpeg_order_.front());
        jpeg_order_.pop_front();
    }
    return jpeg;
}

std::optional<std::string> SiteConsole::crop_jpeg(std::int64_t crop_id) {
    return cached_jpeg("c" + std::to_string(crop_id), [&]() -> std::optional<std::string> {
        const auto record = store_.find(crop_id);
        if (!record) return std::nullopt;
        const auto chip = store_.load_chip(*record);
        return chip ? jpeg_of(*chip) : std::nullopt;
    });
}

std::optional<std::string> SiteConsole::gallery_jpeg(std::int64_t entry_id) {
    return cached_jpeg("g" + std::to_string(entry_id), [&]() -> std::optional<std::string> {
        for (const auto& e : gallery_->entries())
            if (e.id == entry_id) {
                const auto chip = gallery_->load_chip(e);
                return chip ? jpeg_of(*chip) : std::nullopt;
            }
        return std::nullopt;
    });
}

std::optional<std::string> SiteConsole::snapshot_jpeg(const std::string& camera) {
    if (!hooks_.frame) return std::nullopt;
    auto frame = hooks_.frame(camera);
    if (!frame) return std::nullopt;
    return std::move(frame->jpeg);
}

fs::path SiteConsole::constraints_file(const fs::path& state_dir) { return state_dir / "console" / "constraints.csv"; }

void SiteConsole::add_constraints(const common::OperatorConstraints& add) {
    const fs::path file = constraints_file(state_dir_);
    std::lock_guard lock(mutex_);
    fs::create_directories(file.parent_path());
    common::OperatorConstraints c = common::read_constraints(file);
    if (c.rows() + add.rows() > common::kMaxConstraintRows)
        throw std::invalid_argument("the corrections file is full (1000000 rows): nothing recorded");
    c.must.insert(c.must.end(), add.must.begin(), add.must.end());
    c.cannot.insert(c.cannot.end(), add.cannot.begin(), add.cannot.end());
    c.same.insert(c.same.end(), add.same.begin(), add.same.end());
    common::write_constraints(file, c);
}

std::shared_ptr<const SiteConsole::Clustering> SiteConsole::latest_clustering() {
    const fs::path file = latest_clustering_file(state_dir_ / "models");
    std::error_code ec;
    const auto mtime = fs::last_write_time(file, ec);
    std::lock_guard lock(mutex_);
    if (ec) {
        clustering_.reset();
        return nullptr;
    }
    if (clustering_ && clustering_->mtime == mtime) return clustering_;
    try {
        auto c = std::make_shared<Clustering>();
        c->mtime = mtime;
        for (const auto& a : common::read_clustering(file)) c->cluster[a.crop] = a.cluster;
        c->time = common::utc_timestamp(std::chrono::file_clock::to_sys(mtime));
        clustering_ = std::move(c);
    } catch (const std::exception& e) {
        spdlog::warn("console: the latest clustering is not used: {}", e.what());
        clustering_.reset();
    }
    return clustering_;
}

json SiteConsole::unknown_faces(std::size_t max_groups) {
    common::OperatorConstraints corrections;
    {
        std::lock_guard lock(mutex_);
        try {
            corrections = common::read_constraints(constraints_file(state_dir_));
        } catch (const std::exception& e) {
            spdlog::warn("console: {}", e.what());
        }
    }
    // Names given to crops so far (must rows), to label the groups already named.
    std::map<std::int64_t, std::string> named;
    for (const auto& [crop, name] : corrections.must) named[crop] = name;
    const auto clustering = latest_clustering();
    const auto records = store_.snapshot();

    // Units: a track (camera + track id) or an untracked crop. A unit goes to the cluster most of
    // its clustered crops are in (a track is never split); a unit none of whose crops is in the
    // clustering (newer crops) or whose crops are all noise stays a group of its own.
    std::vector<std::size_t> unit_of(records.size());
    std::map<std::pair<std::string, std::int64_t>, std::size_t> track_unit;
    std::vector<std::map<std::int64_t, int>> votes;
    for (std::size_t i = 0; i < records.size(); ++i) {
        const auto& r = records[i];
        std::size_t u = votes.size();
        if (r.track_id >= 0) u = track_unit.emplace(std::pair{r.camera, r.track_id}, votes.size()).first->second;
        if (u == votes.size()) votes.emplace_back();
        unit_of[i] = u;
        if (clustering)
            if (auto it = clustering->cluster.find(r.id); it != clustering->cluster.end() && it->second >= 0)
                ++votes[u][it->second];
    }
    // Group of each unit: one per cluster (the majority vote), else one per unit.
    std::vector<std::size_t> group_of_unit(votes.size());
    std::vector<std::int64_t> group_cluster;  // -1: a unit's own group
    std::map<std::int64_t, std::size_t> cluster_group;
    for (std::size_t u = 0; u < votes.size(); ++u) {
        std::int64_t best = -1;
        int best_n = 0;
        for (const auto& [cl, n] : votes[u])
            if (n > best_n) best = cl, best_n = n;
        if (best >= 0) {
            const auto [it, fresh] = cluster_group.emplace(best, group_cluster.size());
            if (fresh) group_cluster.push_back(best);
            group_of_unit[u] = it->second;
        } else {
            group_of_unit[u] = group_cluster.size();
            group_cluster.push_back(-1);
        }
    }
    // The operator's merges ("same" rows) join the groups holding their crops.
    std::vector<std::size_t> parent(group_cluster.size());
    std::iota(parent.begin(), parent.end(), std::size_t{0});
    auto find = [&](std::size_t x) {
        while (parent[x] != x) x = parent[x] = parent[parent[x]];
        return x;
    };
    std::unordered_map<std::int64_t, std::size_t> index_of;
    for (std::size_t i = 0; i < records.size(); ++i) index_of[records[i].id] = i;
    for (const auto& [a, b] : corrections.same) {
        const auto ia = index_of.find(a), ib = index_of.find(b);
        if (ia == index_of.end() || ib == index_of.end()) continue;
        parent[find(group_of_unit[unit_of[ia->second]])] = find(group_of_unit[unit_of[ib->second]]);
    }
    struct Group {
        std::vector<std::size_t> members;  // record indexes, in store order
        std::set<std::size_t> units;
        std::set<std::int64_t> clusters;
        bool merged = false;
    };
    std::map<std::size_t, Group> by_root;
    for (std::size_t i = 0; i < records.size(); ++i) {
        const std::size_t g = group_of_unit[unit_of[i]], root = find(g);
        Group& group = by_root[root];
        group.members.push_back(i);
        group.units.insert(unit_of[i]);
        if (group_cluster[g] >= 0) group.clusters.insert(group_cluster[g]);
    }
    std::vector<Group*> groups;
    groups.reserve(by_root.size());
    for (auto& [root, g] : by_root) {
        std::set<std::size_t> joined;  // the groups the operator's merges joined into this one
        for (const auto u : g.units) joined.insert(group_of_unit[u]);
        g.merged = joined.size() > 1;
        groups.push_back(&g);
    }
    // Largest first; among equals the most recent first.
    std::stable_sort(groups.begin(), groups.end(), [&](const Group* a, const Group* b) {
        if (a->members.size() != b->members.size()) return a->members.size() > b->members.size();
        return records[a->members.back()].id > records[b->members.back()].id;
    });
    json out = json::array();
    for (std::size_t gi = 0; gi < groups.size() && gi < max_groups; ++gi) {
        const Group& g = *groups[gi];
        const auto& first = records[g.members.front()];
        // Sample crops: round-robin over the group's units (tracks), so that a merged or
        // clustered group shows each of its tracks.
        std::map<std::size_t, std::vector<std::size_t>> per_unit;
        for (const auto i : g.members) per_unit[unit_of[i]].push_back(i);
        json ids = json::array();
        for (std::size_t k = 0; ids.size() < 8; ++k) {
            bool any = false;
            for (const auto& [u, list] : per_unit)
                if (k < list.size() && ids.size() < 8) {
                    ids.push_back(records[list[k]].id);
                    any = true;
                }
            if (!any) break;
        }
        std::string name;
        std::set<std::string> cameras;
        auto t_first = first.timestamp, t_last = first.timestamp;
        for (const auto i : g.members) {
            const auto& r = records[i];
            if (auto it = named.find(r.id); it != named.end()) name = it->second;
            cameras.insert(r.camera);
            t_first = std::min(t_first, r.timestamp);
            t_last = std::max(t_last, r.timestamp);
        }
        const bool one_track = g.units.size() == 1 && first.track_id >= 0;
        std::string key, label;
        if (!g.clusters.empty()) {
            key = fmt::format("cluster {}", *g.clusters.begin());
            label = fmt::format("{} {} · {} track(s)", g.clusters.size() > 1 ? "clusters" : "cluster",
                                fmt::join(g.clusters, ", "), g.units.size());
        } else if (one_track) {
            key = fmt::format("{}/{}", first.camera, first.track_id);
            label = fmt::format("track {} (run {})", first.track_id % quality::kTrackRunStride,
                                quality::track_run_of(first.track_id));
        } else {
            key = fmt::format("crop {}", first.id);
            label = g.units.size() > 1 ? fmt::format("{} track(s)", g.units.size()) : std::string("single crop");
        }
        if (g.merged) label += " · merged";
        out.push_back({{"key", key},
                       {"ref", first.id},
                       {"camera", fmt::format("{}", fmt::join(cameras, ", "))},
                       {"track", one_track ? first.track_id : -1},
                       {"tracks", g.units.size()},
                       {"clusters", g.clusters},
                       {"merged", g.merged},
                       {"track_label", label},
                       {"count", g.members.size()},
                       {"first", common::utc_timestamp(t_first)},
                       {"last", common::utc_timestamp(t_last)},
                       {"crops", ids},
                       {"named", name}});
    }
    json clustered = nullptr;
    if (clustering) clustered = {{"crops", clustering->cluster.size()}, {"time", clustering->time}};
    return {{"groups", out}, {"crops", records.size()}, {"group_count", groups.size()}, {"clustering", clustered}};
}

std::vector<ui::EnrollResult> SiteConsole::name_crops(const std::string& name, const std::vector<std::int64_t>& crops,
                                                      const std::string& by) {
    check_person_name(name);
    if (crops.empty() || crops.size() > 200) throw std::invalid_argument("name 1 to 200 crops");
    std::vector<quality::CropRecord> records;
    for (const auto id : crops) {
        auto r = store_.find(id);
        if (!r) throw std::invalid_argument(fmt::format("crop {} is not stored", id));
        records.push_back(*r);
    }
    std::vector<ui::EnrollResult> out;
    common::OperatorConstraints rows;
    std::lock_guard lock(enroll_mutex_);
    for (const auto& r : records) {
        ui::EnrollResult e;
        e.filename = r.track_id >= 0 ? fmt::format("crop {} ({} track {}, run {})", r.id, r.camera,
                                                   r.track_id % quality::kTrackRunStride, quality::track_run_of(r.track_id))
                                     : fmt::format("crop {} ({}, no track)", r.id, r.camera);
        const auto chip = store_.load_chip(r);
        if (!chip) {
            e.reason = "the crop's file is unreadable (quarantined)";
        } else {
            quality::QualityScore score;
            score.normalized = r.score;
            e.entry = gallery_->add(name, *chip, score, kConsoleSource + common::printable(by, 32) + ": " + e.filename);
            e.ok = true;
            rows.must.emplace_back(r.id, name);
        }
        out.push_back(e);
    }
    if (!rows.empty()) add_constraints(rows);
    return out;
}

int SiteConsole::not_person(const std::string& name, const std::vector<std::int64_t>& crops) {
    check_person_name(name);
    if (crops.empty() || crops.size() > 200) throw std::invalid_argument("mark 1 to 200 crops");
    common::OperatorConstraints rows;
    for (const auto id : crops) {
        if (!store_.find(id)) throw std::invalid_argument(fmt::format("crop {} is not stored", id));
        rows.cannot.emplace_back(common::ConstraintRef{id, {}}, common::ConstraintRef{-1, name});
    }
    add_constraints(rows);
    return static_cast<int>(rows.rows());
}

int SiteConsole::merge_groups(const std::vector<std::int64_t>& crops) {
    if (crops.size() < 2 || crops.size() > 20) throw std::invalid_argument("merge 2 to 20 groups (one crop of each)");
    common::OperatorConstraints rows;
    for (const auto id : crops)
        if (!store_.find(id)) throw std::invalid_argument(fmt::format("crop {} is not stored", id));
    for (std::size_t i = 1; i < crops.size(); ++i)
        if (crops[i] != crops[0]) rows.same.emplace_back(crops[0], crops[i]);
    if (rows.empty()) throw std::invalid_argument("the groups to merge are one group");
    add_constraints(rows);
    return static_cast<int>(rows.rows());
}

}  // namespace faceadapt::daemon
