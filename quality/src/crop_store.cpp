// CropStore: see crop_store.hpp for the on-disk layout and the crash-safety argument.
#include "faceadapt/quality/crop_store.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <stdexcept>
#include <unordered_set>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "files.hpp"
#include "sqlite.hpp"

namespace faceadapt::quality {
namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;

namespace {

constexpr const char* kCropStoreSchema = R"sql(
CREATE TABLE IF NOT EXISTS crops(
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  camera  TEXT    NOT NULL,
  ts_ms   INTEGER NOT NULL,
  track   INTEGER NOT NULL,
  score   REAL    NOT NULL,
  file    TEXT    NOT NULL UNIQUE,
  bytes   INTEGER NOT NULL,
  quality TEXT    NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS crops_track  ON crops(camera, track, score, ts_ms);
CREATE INDEX IF NOT EXISTS crops_camera ON crops(camera, score, ts_ms);
CREATE INDEX IF NOT EXISTS crops_rank   ON crops(score, ts_ms);
CREATE INDEX IF NOT EXISTS crops_ts     ON crops(ts_ms);
CREATE TABLE IF NOT EXISTS track_runs(
  camera     TEXT    NOT NULL,
  run        INTEGER NOT NULL,
  started_ms INTEGER NOT NULL,
  PRIMARY KEY(camera, run));
)sql";
// track_runs came with issue 18; an older crops.db gets the table (empty) at open. Its crops'
// tracks (1, 2, ... of every run) all read as run 0, and begin_track_run() starts above them.

constexpr const char* kColumns = "id, camera, ts_ms, track, score, file, bytes, quality";

std::int64_t to_ms(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
Clock::time_point from_ms(std::int64_t ms) {
    return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(ms)));
}

bool valid_camera(const std::string& id) {
    static const std::regex re("[A-Za-z0-9_-]{1,64}");
    return std::regex_match(id, re);
}

// A row chosen for eviction.
struct Victim {
    std::int64_t id;
    std::string camera;
    std::string file;   // relative to root
    std::int64_t bytes;
};

}  // namespace

struct CropStore::Impl {
    fs::path root, db_file, img_dir, quarantine_dir;
    config::StoreConfig limits;
    Options options;
    OpenReport report;

    mutable std::mutex mutex;                    // guards writer and the counters
    std::unique_ptr<sql::Database> writer;
    std::map<std::string, std::int64_t> camera_counts;
    std::int64_t total_bytes = 0;
    std::int64_t total_rows = 0;

    std::int64_t cap_bytes() const { return static_cast<std::int64_t>(limits.disk_cap_mb * 1024.0 * 1024.0); }
    double retention_ms() const { return limits.retention_days * 86400.0 * 1000.0; }

    void open_index();
    void quarantine_index(const std::string& problem);
    void repair();
    void load_counters();
    std::vector<Victim> select_victims(sql::Statement& st);
    void delete_rows(const std::vector<Victim>& victims);
    void unlink_files(const std::vector<Victim>& victims);
    std::vector<Victim> evict_locked(const std::string& camera, std::int64_t track, Clock::time_point now);
    void quarantine_record(std::int64_t id, const fs::path& file, const std::string& why);
    static CropRecord read_record(const sql::Statement& st, const fs::path& root);
};

CropRecord CropStore::Impl::read_record(const sql::Statement& st, const fs::path& root) {
    CropRecord r;
    r.id = st.column_int(0);
    r.camera = st.column_text(1);
    r.timestamp = from_ms(st.column_int(2));
    r.track_id = st.column_int(3);
    r.score = st.column_double(4);
    r.file = root / st.column_text(5);
    r.bytes = st.column_int(6);
    r.quality_json = st.column_text(7);
    return r;
}

void CropStore::Impl::open_index() {
    writer = std::make_unique<sql::Database>(db_file, sql::Database::Mode::read_write_create);
    writer->exec("PRAGMA journal_mode=WAL");
    writer->exec(options.fsync ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=OFF");
    const std::string check = writer->quick_check();
    if (check != "ok") throw sql::SqliteError(db_file.string() + ": integrity check failed: " + check, 11);
    writer->exec(kCropStoreSchema);
}

void CropStore::Impl::quarantine_index(const std::string& problem) {
    spdlog::error("crop store {}: index damaged ({}); moving it and its images to {}", db_file.string(),
                  problem, quarantine_dir.string());
    writer.reset();
    const fs::path dest = quarantine_dir / ("index-" + files::unique_token());
    fs::create_directories(dest);
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm"}) {
        const fs::path f = db_file.string() + suffix;
        if (fs::exists(f, ec)) fs::rename(f, dest / f.filename(), ec);
    }
    if (fs::exists(img_dir, ec)) fs::rename(img_dir, dest / "img", ec);
    if (ec) throw std::runtime_error(db_file.string() + ": cannot quarantine the damaged index: " + ec.message());
    fs::create_directories(img_dir);
    report.index_quarantined = true;
    report.index_problem = problem;
}

void CropStore::Impl::repair() {
    // 1. Debris of crashed writers: temp files.
    std::set<std::string> on_disk;
    std::error_code ec;
    // An unreadable folder must stop the repair: with a partial listing every row whose file was
    // not seen would be dropped as "without file".
    auto listing_failed = [&] {
        throw std::runtime_error(img_dir.string() + ": cannot list the crop images (" + ec.message() +
                                 "); the crop store was left untouched");
    };
    for (auto it = fs::recursive_directory_iterator(img_dir, ec); it != fs::recursive_directory_iterator();
         it.increment(ec)) {
        if (ec) listing_failed();
        if (!it->is_regular_file()) continue;
        const fs::path p = it->path();
        if (p.string().ends_with(files::kTempSuffix)) {
            fs::remove(p, ec);
            ++report.temp_files_removed;
        } else {
            on_disk.insert(p.string().substr(root.string().size() + 1));  // "img/<camera>/<file>"
        }
    }
    if (ec) listing_failed();
    // 2. Rows without files, files whose size disagrees with the index.
    std::vector<Victim> missing;
    std::vector<std::pair<Victim, fs::path>> damaged;
    {
        sql::Statement st(*writer, "SELECT id, camera, file, bytes FROM crops");
        while (st.step()) {
            Victim v{st.column_int(0), st.column_text(1), st.column_text(2), st.column_int(3)};
            auto found = on_disk.find(v.file);
            if (found == on_disk.end()) {
                missing.push_back(v);
                continue;
            }
            on_disk.erase(found);
            const fs::path full = root / v.file;
            const auto size = fs::file_size(full, ec);
            if (ec) {  // listed a moment ago: a fault of the disk, not a damaged crop
                spdlog::warn("crop store {}: cannot read the size of {} ({}); left as it is", root.string(),
                             full.string(), ec.message());
                continue;
            }
            if (static_cast<std::int64_t>(size) != v.bytes) damaged.emplace_back(v, full);
        }
    }
    std::vector<Victim> drop = missing;
    for (const auto& [v, full] : damaged) drop.push_back(v);
    if (!drop.empty()) {
        sql::Transaction tx(*writer, true);
        delete_rows(drop);
        tx.commit();
    }
    report.rows_without_file = static_cast<int>(missing.size());
    for (const auto& [v, full] : damaged) {
        files::quarantine(full, quarantine_dir);
        ++report.files_quarantined;
    }
    // 3. Files without rows (written, renamed, but the row never committed).
    for (const auto& rel : on_disk) {
        fs::remove(root / rel, ec);
        ++report.orphan_files_removed;
    }
    if (report.temp_files_removed || report.orphan_files_removed || report.rows_without_file ||
        report.files_quarantined)
        spdlog::warn("crop store {}: repaired at open: {} temp files and {} orphan files removed, {} rows "
                     "without file dropped, {} damaged files quarantined",
                     root.string(), report.temp_files_removed, report.orphan_files_removed,
                     report.rows_without_file, report.files_quarantined);
}

void CropStore::Impl::load_counters() {
    camera_counts.clear();
    total_bytes = 0;
    total_rows = 0;
    sql::Statement st(*writer, "SELECT camera, COUNT(*), COALESCE(SUM(bytes),0) FROM crops GROUP BY camera");
    while (st.step()) {
        camera_counts[st.column_text(0)] = st.column_int(1);
        total_rows += st.column_int(1);
        total_bytes += st.column_int(2);
    }
}

std::vector<Victim> CropStore::Impl::select_victims(sql::Statement& st) {
    std::vector<Victim> out;
    while (st.step()) out.push_back({st.column_int(0), st.column_text(1), st.column_text(2), st.column_int(3)});
    st.reset();
    return out;
}

// Deletes rows inside the caller's transaction (or its own) and updates the counters.
void CropStore::Impl::delete_rows(const std::vector<Victim>& victims) {
    sql::Statement del(*writer, "DELETE FROM crops WHERE id = ?");
    for (const auto& v : victims) {
        del.bind(1, v.id);
        del.run();
        if (writer->changes() > 0) {
            --camera_counts[v.camera];
            --total_rows;
            total_bytes -= v.bytes;
        }
    }
}

void CropStore::Impl::unlink_files(const std::vector<Victim>& victims) {
    std::error_code ec;
    for (const auto& v : victims) fs::remove(root / v.file, ec);
}

// Within the writer's transaction: picks and deletes the rows that break a limit.
std::vector<Victim> CropStore::Impl::evict_locked(const std::string& camera, std::int64_t track,
                                                  Clock::time_point now) {
    std::vector<Victim> all;
    auto take = [&](std::vector<Victim> v) {
        delete_rows(v);
        all.insert(all.end(), v.begin(), v.end());
    };
    // Best K per track.
    if (track >= 0) {
        sql::Statement st(*writer,
                          "SELECT id, camera, file, bytes FROM crops WHERE camera = ? AND track = ? "
                          "ORDER BY score DESC, ts_ms DESC LIMIT -1 OFFSET ?");
        st.bind(1, camera).bind(2, track).bind(3, static_cast<std::int64_t>(limits.best_per_track));
        take(select_victims(st));
    }
    // Per-camera quota.
    if (const auto excess = camera.empty() ? 0 : camera_counts[camera] - limits.per_camera_quota; excess > 0) {
        sql::Statement st(*writer,
                          "SELECT id, camera, file, bytes FROM crops WHERE camera = ? "
                          "ORDER BY score ASC, ts_ms ASC LIMIT ?");
        st.bind(1, camera).bind(2, excess);
        take(select_victims(st));
    }
    // Retention.
    {
        sql::Statement st(*writer, "SELECT id, camera, file, bytes FROM crops WHERE ts_ms < ?");
        st.bind(1, to_ms(now) - static_cast<std::int64_t>(retention_ms()));
        take(select_victims(st));
    }
    // Disk cap: lowest score first, oldest first among equals.
    while (total_bytes > cap_bytes() && total_rows > 0) {
        sql::Statement st(*writer, "SELECT id, camera, file, bytes FROM crops ORDER BY score ASC, ts_ms ASC LIMIT 32");
        std::vector<Victim> batch;
        std::int64_t over = total_bytes - cap_bytes();
        for (auto& v : select_victims(st)) {
            if (over <= 0) break;
            over -= v.bytes;
            batch.push_back(std::move(v));
        }
        if (batch.empty()) break;
        take(batch);
    }
    return all;
}

void CropStore::Impl::quarantine_record(std::int64_t id, const fs::path& file, const std::string& why) {
    spdlog::error("crop store {}: crop {} ({}) {}; quarantined", root.string(), id, file.string(), why);
    {
        std::lock_guard lock(mutex);
        sql::Statement st(*writer, "SELECT id, camera, file, bytes FROM crops WHERE id = ?");
        st.bind(1, id);
        auto v = select_victims(st);
        sql::Transaction tx(*writer, true);
        delete_rows(v);
        tx.commit();
    }
    files::quarantine(file, quarantine_dir);
}

CropStore::CropStore(const fs::path& state_dir, config::StoreConfig limits)
    : CropStore(state_dir, limits, Options{}) {}

CropStore::CropStore(const fs::path& state_dir, config::StoreConfig limits, Options options)
    : impl_(std::make_unique<Impl>()) {
    auto& d = *impl_;
    d.root = state_dir / "crops";
    d.db_file = d.root / "crops.db";
    d.img_dir = d.root / "img";
    d.quarantine_dir = d.root / "quarantine";
    d.limits = limits;
    d.options = options;
    std::error_code ec;
    fs::create_directories(d.img_dir, ec);
    if (ec) throw std::runtime_error(d.img_dir.string() + ": cannot create the crop store folder: " + ec.message());
    fs::create_directories(d.quarantine_dir, ec);
    try {
        d.open_index();
    } catch (const sql::SqliteError& e) {
        // Only SQLite's own verdict that the file is damaged moves it aside. A full disk, an I/O
        // error, a lock or a permission problem says nothing about the file: quarantining then
        // would throw away a good store (issue 13, class 4), so stop and touch nothing.
        if (!e.corruption())
            throw std::runtime_error(std::string(e.what()) +
                                     "; the crop store was left untouched (nothing moved or deleted): "
                                     "free disk space, fix the permissions or stop the other process "
                                     "holding it, then start again");
        d.quarantine_index(e.what());
        d.open_index();  // a fresh index; throws if even that fails
    }
    d.repair();
    d.load_counters();
}

CropStore::~CropStore() = default;

const OpenReport& CropStore::open_report() const { return impl_->report; }
const fs::path& CropStore::root() const { return impl_->root; }

InsertResult CropStore::insert(const CropInput& crop) {
    auto& d = *impl_;
    if (crop.chip.empty()) throw std::invalid_argument("crop store: empty chip for camera " + crop.camera);
    if (!valid_camera(crop.camera))
        throw std::invalid_argument("crop store: camera id \"" + crop.camera + "\" is not [A-Za-z0-9_-]{1,64}");
    const auto now = Clock::now();
    InsertResult result;
    const std::int64_t ts = to_ms(crop.timestamp);
    if (ts < to_ms(now) - static_cast<std::int64_t>(d.retention_ms())) {
        result.outcome = InsertOutcome::rejected_too_old;
        return result;
    }
    // Cheap pre-check so that a full track does not cost a file write.
    if (crop.track_id >= 0) {
        std::lock_guard lock(d.mutex);
        sql::Statement st(*d.writer,
                          "SELECT COUNT(*), MIN(score) FROM crops WHERE camera = ? AND track = ?");
        st.bind(1, crop.camera).bind(2, crop.track_id);
        if (st.step() && st.column_int(0) >= d.limits.best_per_track && crop.score <= st.column_double(1)) {
            result.outcome = InsertOutcome::rejected_track_full;
            return result;
        }
    }
    // The file first (outside the lock: writers fsync in parallel), then the row.
    const fs::path rel = fs::path("img") / crop.camera /
                         fmt::format("{}-{}-{}.png", ts, crop.track_id, files::unique_token());
    const fs::path full = d.root / rel;
    std::error_code ec;
    if (!fs::is_directory(full.parent_path(), ec)) {
        fs::create_directories(full.parent_path(), ec);
        if (ec) throw std::runtime_error(full.parent_path().string() + ": cannot create: " + ec.message());
        if (d.options.fsync) files::sync_directory(d.img_dir);
    }
    const std::int64_t bytes = files::write_png_atomic(crop.chip, full, d.options.fsync);
    std::vector<Victim> evicted;
    try {
        std::lock_guard lock(d.mutex);
        sql::Transaction tx(*d.writer, true);
        sql::Statement ins(*d.writer,
                           "INSERT INTO crops(camera, ts_ms, track, score, file, bytes, quality) "
                           "VALUES(?,?,?,?,?,?,?)");
        ins.bind(1, crop.camera).bind(2, ts).bind(3, crop.track_id).bind(4, crop.score)
            .bind(5, rel.string()).bind(6, bytes).bind(7, crop.quality_json);
        ins.run();
        result.id = d.writer->last_insert_rowid();
        ++d.camera_counts[crop.camera];
        ++d.total_rows;
        d.total_bytes += bytes;
        evicted = d.evict_locked(crop.camera, crop.track_id, now);
        tx.commit();
    } catch (...) {
        fs::remove(full, ec);
        std::lock_guard lock(d.mutex);
        d.load_counters();  // the rolled-back transaction's counter changes are void
        throw;
    }
    d.unlink_files(evicted);
    result.evicted = static_cast<int>(evicted.size());
    return result;
}

std::int64_t CropStore::begin_track_run(const std::string& camera) {
    auto& d = *impl_;
    if (!valid_camera(camera))
        throw std::invalid_argument("crop store: camera id \"" + camera + "\" is not [A-Za-z0-9_-]{1,64}");
    std::lock_guard lock(d.mutex);
    sql::Transaction tx(*d.writer, true);
    std::int64_t run = 0;
    {
        sql::Statement st(*d.writer, "SELECT COALESCE(MAX(run), 0) FROM track_runs WHERE camera = ?");
        st.bind(1, camera);
        if (st.step()) run = st.column_int(0);
    }
    {
        // Crops of runs older than the table (or of a table lost with a replaced index).
        sql::Statement st(*d.writer, "SELECT COALESCE(MAX(track), 0) FROM crops WHERE camera = ?");
        st.bind(1, camera);
        if (st.step()) run = std::max(run, track_run_of(st.column_int(0)));
    }
    ++run;
    sql::Statement ins(*d.writer, "INSERT INTO track_runs(camera, run, started_ms) VALUES(?,?,?)");
    ins.bind(1, camera).bind(2, run).bind(3, to_ms(Clock::now()));
    ins.run();
    tx.commit();  // durable (synchronous=NORMAL in WAL survives a process crash) before any track uses it
    return run * kTrackRunStride;
}

int CropStore::enforce_limits(Clock::time_point now) {
    auto& d = *impl_;
    std::vector<Victim> evicted;
    {
        std::lock_guard lock(d.mutex);
        sql::Transaction tx(*d.writer, true);
        try {
            // Track and camera limits are kept at insert; retention and the cap depend on time/config.
            evicted = d.evict_locked("", -1, now);
            tx.commit();
        } catch (...) {
            d.load_counters();
            throw;
        }
    }
    d.unlink_files(evicted);
    return static_cast<int>(evicted.size());
}

std::vector<CropRecord> CropStore::snapshot() const {
    const auto& d = *impl_;
    sql::Database reader(d.db_file, sql::Database::Mode::read_only);
    sql::Transaction tx(reader, false);
    sql::Statement st(reader, std::string("SELECT ") + kColumns + " FROM crops ORDER BY id");
    std::vector<CropRecord> out;
    while (st.step()) out.push_back(Impl::read_record(st, d.root));
    tx.commit();
    return out;
}

std::vector<CropRecord> CropStore::latest(const std::string& camera, std::size_t n) const {
    const auto& d = *impl_;
    sql::Database reader(d.db_file, sql::Database::Mode::read_only);
    sql::Statement st(reader, std::string("SELECT ") + kColumns + " FROM crops" +
                                  (camera.empty() ? "" : " WHERE camera = ?") + " ORDER BY id DESC LIMIT ?");
    int i = 1;
    if (!camera.empty()) st.bind(i++, camera);
    st.bind(i, static_cast<std::int64_t>(n));
    std::vector<CropRecord> out;
    while (st.step()) out.push_back(Impl::read_record(st, d.root));
    return out;
}

std::optional<CropRecord> CropStore::find(std::int64_t id) const {
    const auto& d = *impl_;
    sql::Database reader(d.db_file, sql::Database::Mode::read_only);
    sql::Statement st(reader, std::string("SELECT ") + kColumns + " FROM crops WHERE id = ?");
    st.bind(1, id);
    if (!st.step()) return std::nullopt;
    return Impl::read_record(st, d.root);
}

std::int64_t CropStore::count_after(std::int64_t after_id) const {
    sql::Database reader(impl_->db_file, sql::Database::Mode::read_only);
    sql::Statement st(reader, "SELECT COUNT(*) FROM crops WHERE id > ?");
    st.bind(1, after_id);
    return st.step() ? st.column_int(0) : 0;
}

StoreStats CropStore::stats() const {
    std::lock_guard lock(impl_->mutex);
    return {impl_->total_rows, impl_->total_bytes};
}

std::optional<cv::Mat> CropStore::load_chip(const CropRecord& record) const {
    files::ReadFailure why{};
    if (auto chip = files::read_rgb(record.file, &why)) return chip;
    if (why == files::ReadFailure::undecodable)
        impl_->quarantine_record(record.id, record.file, "does not decode as an image");
    else if (why == files::ReadFailure::unreadable)
        spdlog::warn("crop store {}: crop {} ({}) cannot be read now (disk or permission fault); left as it is",
                     impl_->root.string(), record.id, record.file.string());
    else
        spdlog::info("crop store {}: crop {} is gone ({}): evicted since the snapshot (normal)",
                     impl_->root.string(), record.id, record.file.string());
    return std::nullopt;
}

int CropStore::verify() {
    int bad = 0;
    for (const auto& r : snapshot()) {
        files::ReadFailure why{};
        if (!files::read_rgb(r.file, &why) && why == files::ReadFailure::undecodable) {
            impl_->quarantine_record(r.id, r.file, "does not decode as an image");
            ++bad;
        }
    }
    return bad;
}

std::size_t CropStore::export_snapshot(const fs::path& dir) const { return export_records(snapshot(), dir).size(); }

std::vector<CropRecord> CropStore::export_records(const std::vector<CropRecord>& records, const fs::path& dir) const {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw std::runtime_error(dir.string() + ": cannot create the export folder: " + ec.message());
    std::ofstream index(dir / "index.csv");
    if (!index) throw std::runtime_error((dir / "index.csv").string() + ": cannot write");
    index << "id,camera,unix_ms,track,score,file\n";
    std::vector<CropRecord> exported;
    for (const auto& r : records) {
        const auto chip = load_chip(r);
        if (!chip) continue;
        const fs::path rel = fs::path(r.camera) / fmt::format("{}.png", r.id);
        fs::create_directories(dir / r.camera, ec);
        fs::copy_file(r.file, dir / rel, fs::copy_options::overwrite_existing, ec);
        if (ec) throw std::runtime_error((dir / rel).string() + ": copy failed: " + ec.message());
        index << r.id << ',' << r.camera << ',' << to_ms(r.timestamp) << ',' << r.track_id << ','
              << fmt::format("{:.6f}", r.score) << ',' << rel.string() << '\n';
        exported.push_back(r);
        exported.back().file = dir / rel;
    }
    index.flush();
    if (!index) throw std::runtime_error((dir / "index.csv").string() + ": write failed");
    return exported;
}

bool CropStore::remove(std::int64_t id) {
    auto& d = *impl_;
    std::vector<Victim> v;
    {
        std::lock_guard lock(d.mutex);
        sql::Statement st(*d.writer, "SELECT id, camera, file, bytes FROM crops WHERE id = ?");
        st.bind(1, id);
        v = d.select_victims(st);
        if (v.empty()) return false;
        sql::Transaction tx(*d.writer, true);
        d.delete_rows(v);
        tx.commit();
    }
    d.unlink_files(v);
    return true;
}

}  // namespace faceadapt::quality
