#include "faceadapt/daemon/console_backend.hpp"

#include <algorithm>
#include <fstream>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <spdlog/spdlog.h>

#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/common/time.hpp"
#include "faceadapt/daemon/metrics.hpp"
#include "faceadapt/daemon/model_registry.hpp"
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
    if (name.empty() || name.size() > 64 || !std::all_of(name.begin(), name.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == ' ' || c == '.' || c == '_' || c == '-';
        }))
        throw std::invalid_argument("a name is 1 to 64 of letters, digits, space . _ -");
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
                                       {"source", ui::printable(source)},
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
        r.filename = ui::printable(photo.filename, 120);
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
            r.entry = gallery_->add(name, check.chip, check.score, kConsoleSource + ui::printable(by, 32) + ": " + r.filename);
            r.ok = true;
            spdlog::info("console: {} enrolled {} from {} (entry {})", ui::printable(by, 32), name, r.filename, r.entry);
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
    // The crops named for them ("must,<crop>,<name>"), and every correction naming them, go too.
    int crops_removed = 0;
    {
        std::lock_guard lock(mutex_);
        const fs::path file = constraints_file(state_dir_);
        std::ifstream in(file);
        if (in) {
            std::string kept, line;
            bool changed = false;
            while (std::getline(in, line)) {
                const bool must = line.rfind("must,", 0) == 0;
                const auto comma = line.find(',', 5);
                const bool names_them = (must && comma != std::string::npos && line.substr(comma + 1) == name) ||
                                        line.ends_with(",name:" + name);
                if (!names_them) {
                    kept += line + "\n";
                    continue;
                }
                changed = true;
                if (must) {
                    try {
                        crops_removed += store_.remove(std::stoll(line.substr(5, comma - 5))) ? 1 : 0;
                    } catch (const std::exception&) {
                    }
                }
            }
            in.close();
            if (changed) common::write_file_atomic(file, kept);
        }
    }
    if (removed > 0 || crops_removed > 0) {
        std::lock_guard lock(cache_mutex_);
        for (const auto id : ids) {
            std::string key = "g";
            key += std::to_string(id);
            jpegs_.erase(key);
        }
        spdlog::info("console: erased {} ({} gallery entries, {} crops named for them); the next gallery update ships "
                     "without them", ui::printable(name, 64), removed, crops_removed);
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
    const auto latest = store_.latest(camera, 1);
    if (latest.empty()) return std::nullopt;
    return crop_jpeg(latest.front().id);
}

fs::path SiteConsole::constraints_file(const fs::path& state_dir) { return state_dir / "console" / "constraints.csv"; }

void SiteConsole::append_constraints(const std::vector<std::string>& rows) {
    const fs::path file = constraints_file(state_dir_);
    std::lock_guard lock(mutex_);
    fs::create_directories(file.parent_path());
    const bool fresh = !fs::exists(file);
    std::string text = fresh ? "kind,a,b\n" : "";
    for (const auto& r : rows) text += r + "\n";
    std::ofstream out(file, std::ios::app);
    out << text;
    out.flush();
    if (!out) throw std::runtime_error(file.string() + ": cannot append the console's corrections");
}

json SiteConsole::unknown_faces(std::size_t max_groups) {
    // Names given to crops so far (must rows), to label the groups already named.
    std::map<std::int64_t, std::string> named;
    {
        std::lock_guard lock(mutex_);
        std::ifstream in(constraints_file(state_dir_));
        std::string line;
        while (std::getline(in, line)) {
            if (line.rfind("must,", 0) != 0) continue;
            const auto comma = line.find(',', 5);
            if (comma == std::string::npos) continue;
            try {
                named[std::stoll(line.substr(5, comma - 5))] = line.substr(comma + 1);
            } catch (const std::exception&) {
            }
        }
    }
    struct Group {
        std::string camera;
        std::int64_t track = -1;
        std::vector<const quality::CropRecord*> crops;
    };
    const auto records = store_.snapshot();
    std::map<std::pair<std::string, std::int64_t>, Group> by_track;
    std::vector<Group> singles;
    for (const auto& r : records) {
        if (r.track_id < 0) {
            singles.push_back({r.camera, -1, {&r}});
            continue;
        }
        Group& g = by_track[{r.camera, r.track_id}];
        g.camera = r.camera;
        g.track = r.track_id;
        g.crops.push_back(&r);
    }
    std::vector<Group> groups;
    groups.reserve(by_track.size() + singles.size());
    for (auto& [key, g] : by_track) groups.push_back(std::move(g));
    for (auto& g : singles) groups.push_back(std::move(g));
    // Largest first; among equals the most recent first.
    std::stable_sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) {
        if (a.crops.size() != b.crops.size()) return a.crops.size() > b.crops.size();
        return a.crops.back()->id > b.crops.back()->id;
    });
    json out = json::array();
    for (std::size_t i = 0; i < groups.size() && i < max_groups; ++i) {
        const Group& g = groups[i];
        json ids = json::array();
        std::string name;
        for (const auto* r : g.crops) {
            if (ids.size() < 8) ids.push_back(r->id);
            if (auto it = named.find(r->id); it != named.end()) name = it->second;
        }
        out.push_back({{"key", g.track >= 0 ? fmt::format("{}/{}", g.camera, g.track) : fmt::format("crop {}", g.crops[0]->id)},
                       {"camera", g.camera},
                       {"track", g.track},
                       {"track_label", g.track >= 0 ? fmt::format("track {} (run {})", g.track % quality::kTrackRunStride,
                                                                  quality::track_run_of(g.track))
                                                    : std::string("single crop")},
                       {"count", g.crops.size()},
                       {"first", common::utc_timestamp(g.crops.front()->timestamp)},
                       {"last", common::utc_timestamp(g.crops.back()->timestamp)},
                       {"crops", ids},
                       {"named", name}});
    }
    return {{"groups", out}, {"crops", records.size()}, {"group_count", groups.size()}};
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
    std::vector<std::string> rows;
    std::lock_guard lock(enroll_mutex_);
    for (const auto& r : records) {
        ui::EnrollResult e;
        e.filename = fmt::format("crop {} ({} track {})", r.id, r.camera, r.track_id);
        const auto chip = store_.load_chip(r);
        if (!chip) {
            e.reason = "the crop's file is unreadable (quarantined)";
        } else {
            quality::QualityScore score;
            score.normalized = r.score;
            e.entry = gallery_->add(name, *chip, score, kConsoleSource + ui::printable(by, 32) + ": " + e.filename);
            e.ok = true;
            rows.push_back(fmt::format("must,{},{}", r.id, name));
        }
        out.push_back(e);
    }
    if (!rows.empty()) append_constraints(rows);
    return out;
}

int SiteConsole::not_person(const std::string& name, const std::vector<std::int64_t>& crops) {
    check_person_name(name);
    if (crops.empty() || crops.size() > 200) throw std::invalid_argument("mark 1 to 200 crops");
    std::vector<std::string> rows;
    for (const auto id : crops) {
        if (!store_.find(id)) throw std::invalid_argument(fmt::format("crop {} is not stored", id));
        rows.push_back(fmt::format("cannot,{},name:{}", id, name));
    }
    append_constraints(rows);
    return static_cast<int>(rows.size());
}

}  // namespace faceadapt::daemon
