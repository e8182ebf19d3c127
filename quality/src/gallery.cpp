// Gallery and the enrollment policy. See gallery.hpp.
#include "faceadapt/quality/gallery.hpp"

#include <mutex>
#include <regex>
#include <set>
#include <stdexcept>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "faceadapt/common/text.hpp"
#include "faceadapt/ingest/face_aligner.hpp"
#include "faceadapt/quality/enroll_gate.hpp"
#include "files.hpp"
#include "sqlite.hpp"

namespace faceadapt::quality {
namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;

namespace {
constexpr const char* kGallerySchema = R"sql(
CREATE TABLE IF NOT EXISTS gallery(
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  name        TEXT    NOT NULL,
  file        TEXT    NOT NULL UNIQUE,
  score       REAL    NOT NULL,
  source      TEXT    NOT NULL,
  enrolled_ms INTEGER NOT NULL,
  quality     TEXT    NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS gallery_name ON gallery(name);
CREATE TABLE IF NOT EXISTS revision(id INTEGER PRIMARY KEY CHECK(id = 1), value INTEGER NOT NULL);
INSERT OR IGNORE INTO revision(id, value) VALUES(1, 0);
CREATE TRIGGER IF NOT EXISTS gallery_revision_insert AFTER INSERT ON gallery
  BEGIN UPDATE revision SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS gallery_revision_delete AFTER DELETE ON gallery
  BEGIN UPDATE revision SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS gallery_revision_update AFTER UPDATE ON gallery
  BEGIN UPDATE revision SET value = value + 1 WHERE id = 1; END;
)sql";
// A chip is written (temp file, then renamed) before its row commits: another process (the
// daemon's evaluation child) opening the gallery meanwhile must not take it for debris.
constexpr auto kDebrisAge = std::chrono::minutes(2);
}  // namespace

struct Gallery::Impl {
    fs::path root, img_dir;
    mutable std::mutex mutex;
    std::unique_ptr<sql::Database> db;
};

Gallery::Gallery(const fs::path& state_dir) : impl_(std::make_unique<Impl>()) {
    auto& d = *impl_;
    d.root = state_dir / "gallery";
    d.img_dir = d.root / "img";
    std::error_code ec;
    fs::create_directories(d.img_dir, ec);
    if (ec) throw std::runtime_error(d.img_dir.string() + ": cannot create the gallery folder: " + ec.message());
    d.db = std::make_unique<sql::Database>(d.root / "gallery.db", sql::Database::Mode::read_write_create);
    d.db->exec("PRAGMA journal_mode=WAL");
    d.db->exec(kGallerySchema);
    // Debris of an interrupted enrollment: temp files and chips whose row never committed.
    std::set<std::string> known;
    {
        sql::Statement st(*d.db, "SELECT file FROM gallery");
        while (st.step()) known.insert(st.column_text(0));
    }
    const auto now = fs::file_time_type::clock::now();
    for (const auto& e : fs::directory_iterator(d.img_dir, ec)) {
        const auto name = e.path().filename().string();
        std::error_code tec;
        const auto mtime = fs::last_write_time(e.path(), tec);
        if (tec || now - mtime < kDebrisAge) continue;  // possibly an enrollment in progress elsewhere
        if (name.ends_with(files::kTempSuffix) || !known.contains(name)) {
            spdlog::warn("gallery {}: removing unindexed file {}", d.root.string(), e.path().string());
            fs::remove(e.path(), ec);
        }
    }
}

Gallery::~Gallery() = default;

std::int64_t Gallery::add(const std::string& name, const cv::Mat& chip_rgb, const QualityScore& score,
                          const std::string& source) {
    static const std::regex re("[A-Za-z0-9 ._-]{1,64}");
    if (!std::regex_match(name, re) || name.front() == ' ' || name.front() == '.')
        throw std::invalid_argument("gallery: name \"" + name + "\" must be 1-64 of [A-Za-z0-9 ._-]");
    if (chip_rgb.empty()) throw std::invalid_argument("gallery: empty chip for " + name);
    auto& d = *impl_;
    const std::string file = fmt::format("{}-{}.png", files::unique_token(), Clock::now().time_since_epoch().count());
    files::write_png_atomic(chip_rgb, d.img_dir / file, true);
    std::lock_guard lock(d.mutex);
    sql::Statement st(*d.db, "INSERT INTO gallery(name, file, score, source, enrolled_ms, quality) VALUES(?,?,?,?,?,?)");
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
    st.bind(1, name).bind(2, file).bind(3, score.normalized).bind(4, source)
        .bind(5, static_cast<std::int64_t>(ms)).bind(6, to_json(score));
    try {
        st.run();
    } catch (...) {
        std::error_code ec;
        fs::remove(d.img_dir / file, ec);
        throw;
    }
    return d.db->last_insert_rowid();
}

std::vector<GalleryEntry> Gallery::entries() const {
    auto& d = *impl_;
    std::lock_guard lock(d.mutex);
    sql::Statement st(*d.db,
                      "SELECT id, name, file, score, source, enrolled_ms, quality FROM gallery ORDER BY name, id");
    std::vector<GalleryEntry> out;
    while (st.step()) {
        GalleryEntry e;
        e.id = st.column_int(0);
        e.name = st.column_text(1);
        e.file = d.img_dir / st.column_text(2);
        e.score = st.column_double(3);
        e.source = st.column_text(4);
        e.enrolled = Clock::time_point(std::chrono::duration_cast<Clock::duration>(
            std::chrono::milliseconds(st.column_int(5))));
        e.quality_json = st.column_text(6);
        out.push_back(std::move(e));
    }
    return out;
}

std::int64_t Gallery::revision() const {
    auto& d = *impl_;
    std::lock_guard lock(d.mutex);
    sql::Statement st(*d.db, "SELECT value FROM revision WHERE id = 1");
    return st.step() ? st.column_int(0) : 0;
}

std::int64_t Gallery::read_revision(const fs::path& state_dir) {
    const fs::path file = state_dir / "gallery" / "gallery.db";
    if (!fs::exists(file)) return 0;
    sql::Database db(file, sql::Database::Mode::read_only);
    {
        sql::Statement has(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'revision'");
        if (!has.step() || has.column_int(0) == 0) return 0;  // not opened by this version yet
    }
    sql::Statement st(db, "SELECT value FROM revision WHERE id = 1");
    return st.step() ? st.column_int(0) : 0;
}

std::vector<std::string> Gallery::names() const {
    std::vector<std::string> out;
    for (const auto& e : entries())
        if (out.empty() || out.back() != e.name) out.push_back(e.name);
    return out;
}

int Gallery::remove(const std::string& name) {
    auto& d = *impl_;
    std::vector<std::string> files_to_remove;
    {
        std::lock_guard lock(d.mutex);
        sql::Transaction tx(*d.db, true);
        sql::Statement sel(*d.db, "SELECT file FROM gallery WHERE name = ?");
        sel.bind(1, name);
        while (sel.step()) files_to_remove.push_back(sel.column_text(0));
        sql::Statement del(*d.db, "DELETE FROM gallery WHERE name = ?");
        del.bind(1, name);
        del.run();
        tx.commit();
    }
    std::error_code ec;
    for (const auto& f : files_to_remove) fs::remove(d.img_dir / f, ec);
    return static_cast<int>(files_to_remove.size());
}

bool Gallery::remove_entry(std::int64_t id) {
    auto& d = *impl_;
    std::string file;
    {
        std::lock_guard lock(d.mutex);
        sql::Transaction tx(*d.db, true);
        sql::Statement sel(*d.db, "SELECT file FROM gallery WHERE id = ?");
        sel.bind(1, id);
        if (!sel.step()) return false;
        file = sel.column_text(0);
        sql::Statement del(*d.db, "DELETE FROM gallery WHERE id = ?");
        del.bind(1, id);
        del.run();
        tx.commit();
    }
    std::error_code ec;
    fs::remove(d.img_dir / file, ec);
    return true;
}

std::optional<cv::Mat> Gallery::load_chip(const GalleryEntry& entry) const {
    auto chip = files::read_rgb(entry.file);
    if (!chip) spdlog::error("gallery: chip {} of {} is missing or corrupt", common::printable(entry.file.string()),
                                common::printable(entry.name));
    return chip;
}

EnrollCheck check_enrollment_image(const cv::Mat& image, const ingest::FaceAligner& aligner,
                                   const QualityScorer& scorer, int min_face_px, const config::EnrollConfig& gate) {
    EnrollCheck out;
    if (image.empty()) {
        out.reason = "the image is empty or could not be decoded";
        return out;
    }
    const auto faces = aligner.detect(image);
    if (faces.empty()) {
        out.reason = "no face found";
        return out;
    }
    std::vector<cv::Rect> boxes;
    for (const auto& f : faces) boxes.push_back(f.bbox);
    const auto chosen = dominant_face(boxes);
    if (!chosen) {
        out.reason = fmt::format("{} faces found, none clearly the largest; an enrollment photo must show one person "
                                 "(crop it to the person)",
                                 faces.size());
        return out;
    }
    const auto& face = faces[*chosen];
    out.chip = face.chip;
    out.score = scorer.score(observation_from_still(image, face.bbox, face.landmarks, face.chip));
    const auto verdict = judge_enrollment(out.score.features, std::min(face.bbox.width, face.bbox.height),
                                          min_face_px, gate);
    if (!verdict.ok) {
        out.reason = verdict.reason;
        return out;
    }
    out.ok = true;
    return out;
}

}  // namespace faceadapt::quality
