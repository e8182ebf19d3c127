// CropStore: concurrency, crash safety (kill -9 mid-write), limits, corruption handling.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include <sqlite3.h>

#include "faceadapt/quality/crop_store.hpp"
#include "test_support.hpp"

namespace q = faceadapt::quality;
namespace fs = std::filesystem;
using faceadapt::config::StoreConfig;
using Clock = std::chrono::system_clock;

namespace {

// Small chips keep the PNGs small; `seed` varies content, the same seed gives the same bytes.
cv::Mat chip(int seed, int size = 24) {
    cv::Mat m(size, size, CV_8UC3);
    cv::RNG rng(static_cast<std::uint64_t>(seed) + 1);
    rng.fill(m, cv::RNG::UNIFORM, 0, 256);
    return m;
}

q::CropInput crop(const std::string& camera, std::int64_t track, double score, Clock::time_point ts, int seed = 0) {
    q::CropInput c;
    c.camera = camera;
    c.track_id = track;
    c.score = score;
    c.timestamp = ts;
    c.chip = chip(seed);
    c.quality_json = "{\"score\":" + std::to_string(score) + "}";
    return c;
}

StoreConfig roomy() {
    StoreConfig s;
    s.best_per_track = 1000;
    s.per_camera_quota = 1'000'000;
    s.retention_days = 30;
    s.disk_cap_mb = 10'000;
    return s;
}

std::multiset<double> scores(const std::vector<q::CropRecord>& rows) {
    std::multiset<double> out;
    for (const auto& r : rows) out.insert(r.score);
    return out;
}

// Every PNG under the store's img/ folder (relative paths), and whether any temp file is there.
std::set<fs::path> files_on_disk(const fs::path& root, bool* temp_found = nullptr) {
    std::set<fs::path> out;
    for (const auto& e : fs::recursive_directory_iterator(root / "img")) {
        if (!e.is_regular_file()) continue;
        if (e.path().string().ends_with(".tmp")) {
            if (temp_found) *temp_found = true;
        } else {
            out.insert(e.path());
        }
    }
    return out;
}

// The index and the folder agree: each row's file exists and decodes, no file lacks a row.
void expect_consistent(q::CropStore& store) {
    const auto rows = store.snapshot();
    bool temp = false;
    auto disk = files_on_disk(store.root(), &temp);
    EXPECT_FALSE(temp);
    for (const auto& r : rows) {
        ASSERT_TRUE(disk.erase(r.file)) << "row " << r.id << " without file " << r.file;
        EXPECT_EQ(static_cast<std::int64_t>(fs::file_size(r.file)), r.bytes);
    }
    EXPECT_TRUE(disk.empty()) << disk.size() << " files without a row, e.g. " << disk.begin()->string();
    EXPECT_EQ(store.verify(), 0);
}

// A temp dir on tmpfs (/dev/shm) when there is one: the 10,000-insert test exercises the
// concurrency, not the disk (bench_quality measures inserts/s with fsync on a real disk).
class ShmDir {
public:
    ShmDir() {
        const fs::path shm = "/dev/shm";
        std::error_code ec;
        if (fs::is_directory(shm, ec) && ::access(shm.c_str(), W_OK) == 0) {
            path_ = shm / ("faceadapt-test-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
            fs::create_directories(path_);
        } else {
            fallback_ = std::make_unique<faceadapt::test::TempDir>();
            path_ = fallback_->path();
        }
    }
    ~ShmDir() {
        std::error_code ec;
        if (!fallback_) fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }
private:
    fs::path path_;
    std::unique_ptr<faceadapt::test::TempDir> fallback_;
};

}  // namespace

TEST(CropStore, InsertSnapshotAndMetadata) {
    faceadapt::test::TempDir dir;
    q::CropStore store(dir.path(), roomy());
    const auto t = Clock::now();
    const auto r = store.insert(crop("cam_1", 7, 0.75, t, 3));
    EXPECT_EQ(r.outcome, q::InsertOutcome::stored);
    const auto rows = store.snapshot();
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].id, r.id);
    EXPECT_EQ(rows[0].camera, "cam_1");
    EXPECT_EQ(rows[0].track_id, 7);
    EXPECT_DOUBLE_EQ(rows[0].score, 0.75);
    EXPECT_NE(rows[0].quality_json.find("0.75"), std::string::npos);
    EXPECT_LE(std::chrono::abs(rows[0].timestamp - t), std::chrono::milliseconds(1));
    const auto back = store.load_chip(rows[0]);
    ASSERT_TRUE(back);
    EXPECT_EQ(cv::norm(*back, chip(3), cv::NORM_INF), 0.0);
    EXPECT_EQ(store.stats().crops, 1);
    EXPECT_EQ(store.stats().bytes, rows[0].bytes);
    EXPECT_EQ(store.count_after(0), 1);
    EXPECT_EQ(store.count_after(r.id), 0);
    EXPECT_THROW(store.insert(crop("bad/camera", 1, 0.5, t)), std::invalid_argument);
    auto empty = crop("cam_1", 1, 0.5, t);
    empty.chip = cv::Mat();
    EXPECT_THROW(store.insert(empty), std::invalid_argument);
    // Export for `faceadapt train --chips DIR`.
    faceadapt::test::TempDir out;
    EXPECT_EQ(store.export_snapshot(out.path()), 1u);
    EXPECT_TRUE(fs::exists(out.path() / "cam_1" / (std::to_string(r.id) + ".png")));
    std::ifstream csv(out.path() / "index.csv");
    std::string header, line;
    std::getline(csv, header);
    std::getline(csv, line);
    EXPECT_EQ(header, "id,camera,unix_ms,track,score,file");
    EXPECT_EQ(line.rfind(std::to_string(r.id) + ",cam_1,", 0), 0u) << line;
}

TEST(CropStore, ExportRecordsCopiesTheGivenOnesAndSkipsUnreadableFiles) {
    faceadapt::test::TempDir dir, out;
    q::CropStore store(dir.path(), roomy());
    for (int i = 0; i < 4; ++i) store.insert(crop(i % 2 ? "cam_b" : "cam_a", i, 0.5, Clock::now(), i));
    const auto rows = store.snapshot();
    ASSERT_EQ(rows.size(), 4u);
    std::ofstream(rows[1].file, std::ios::binary | std::ios::trunc) << std::string(rows[1].bytes, 'x');
    const auto exported = store.export_records({rows[0], rows[1], rows[3]}, out.path());
    ASSERT_EQ(exported.size(), 2u);
    EXPECT_EQ(exported[0].id, rows[0].id);
    EXPECT_EQ(exported[1].id, rows[3].id);
    EXPECT_EQ(exported[1].file, out.path() / "cam_b" / (std::to_string(rows[3].id) + ".png"));
    EXPECT_EQ(exported[1].track_id, rows[3].track_id);
    for (const auto& r : exported) EXPECT_TRUE(store.load_chip(r)) << r.file;
    EXPECT_FALSE(fs::exists(out.path() / "cam_a" / (std::to_string(rows[2].id) + ".png"))) << "not asked for";
    std::ifstream csv(out.path() / "index.csv");
    std::vector<std::string> lines;
    for (std::string line; std::getline(csv, line);) lines.push_back(line);
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[0], "id,camera,unix_ms,track,score,file");
    EXPECT_EQ(lines[2].rfind(std::to_string(rows[3].id) + ",cam_b,", 0), 0u) << lines[2];
    EXPECT_EQ(store.snapshot().size(), 3u) << "the unreadable crop was quarantined";
}

TEST(CropStore, TenThousandInsertsFromFourThreadsWithConcurrentSnapshots) {
    ShmDir dir;
    q::CropStore store(dir.path(), roomy());  // fsync on: the real code path
    constexpr int kThreads = 4, kPerThread = 2500;
    std::atomic<bool> done{false};
    std::atomic<int> snapshots{0};
    std::string reader_error;
    std::thread reader([&] {
        std::size_t last = 0;
        while (!done.load()) {
            const auto rows = store.snapshot();
            ++snapshots;
            if (rows.size() < last) reader_error = "snapshot shrank";
            for (std::size_t i = 1; i < rows.size(); ++i)
                if (rows[i].id <= rows[i - 1].id) reader_error = "ids out of order";
            // Nothing half-written is visible: every row's file is complete on disk.
            for (std::size_t i = 0; i < rows.size(); i += 97)
                if (!fs::exists(rows[i].file) ||
                    static_cast<std::int64_t>(fs::file_size(rows[i].file)) != rows[i].bytes)
                    reader_error = "row " + std::to_string(rows[i].id) + " visible before its file";
            last = rows.size();
        }
    });
    std::vector<std::thread> writers;
    const auto t0 = Clock::now();
    for (int w = 0; w < kThreads; ++w)
        writers.emplace_back([&, w] {
            for (int i = 0; i < kPerThread; ++i)
                store.insert(crop("cam" + std::to_string(w), i, 0.5, t0, i % 50));
        });
    for (auto& t : writers) t.join();
    done = true;
    reader.join();
    EXPECT_TRUE(reader_error.empty()) << reader_error;
    EXPECT_GT(snapshots.load(), 1);
    EXPECT_EQ(store.snapshot().size(), static_cast<std::size_t>(kThreads * kPerThread));
    EXPECT_EQ(store.stats().crops, kThreads * kPerThread);
    const auto elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    RecordProperty("inserts_per_s", std::to_string(static_cast<int>(kThreads * kPerThread / elapsed)));
    bool temp = false;
    EXPECT_EQ(files_on_disk(store.root(), &temp).size(), static_cast<std::size_t>(kThreads * kPerThread));
    EXPECT_FALSE(temp);
}

TEST(CropStore, KillNineMidWriteThenReopenIsConsistent) {
    faceadapt::test::TempDir dir;
    std::mt19937 rng(42);
    std::size_t previous = 0;
    for (int round = 0; round < 3; ++round) {
        const pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            // The child writes as fast as it can with fsync until it is killed.
            try {
                q::CropStore store(dir.path(), roomy());
                for (int i = 0;; ++i) store.insert(crop("door", i, 0.1 + (i % 9) / 10.0, Clock::now(), i));
            } catch (...) {
            }
            ::_exit(3);
        }
        // Let it get going, then kill it at an arbitrary moment.
        const auto deadline = Clock::now() + std::chrono::seconds(20);
        while (Clock::now() < deadline) {
            std::error_code ec;
            if (fs::exists(dir.path() / "crops" / "img" / "door", ec) &&
                std::distance(fs::directory_iterator(dir.path() / "crops" / "img" / "door"), {}) >
                    static_cast<long>(previous + 20))
                break;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 20000)(rng)));
        ASSERT_EQ(::kill(child, SIGKILL), 0);
        int status = 0;
        ::waitpid(child, &status, 0);
        ASSERT_TRUE(WIFSIGNALED(status)) << "the writer exited by itself: " << status;
        q::CropStore reopened(dir.path(), roomy());
        const auto& rep = reopened.open_report();
        EXPECT_FALSE(rep.index_quarantined);
        EXPECT_EQ(rep.rows_without_file, 0);
        expect_consistent(reopened);
        const auto rows = reopened.snapshot();
        EXPECT_GT(rows.size(), previous);
        previous = rows.size();
    }
}

TEST(CropStore, OpenRemovesDebrisOfACrash) {
    faceadapt::test::TempDir dir;
    fs::path gone;
    {
        q::CropStore store(dir.path(), roomy());
        for (int i = 0; i < 4; ++i) store.insert(crop("c1", i, 0.5, Clock::now(), i));
        gone = store.snapshot()[2].file;
    }
    const fs::path img = dir.path() / "crops" / "img" / "c1";
    std::ofstream(img / "123-1-abc.png.tmp") << "half a png";  // a crash before the rename
    cv::imwrite((img / "124-1-def.png").string(), chip(9));      // a crash before the row
    fs::remove(gone);                                           // a row whose file vanished
    q::CropStore store(dir.path(), roomy());
    EXPECT_EQ(store.open_report().temp_files_removed, 1);
    EXPECT_EQ(store.open_report().orphan_files_removed, 1);
    EXPECT_EQ(store.open_report().rows_without_file, 1);
    EXPECT_EQ(store.snapshot().size(), 3u);
    EXPECT_EQ(store.stats().crops, 3);
    expect_consistent(store);
}

TEST(CropStore, BestKPerTrack) {
    faceadapt::test::TempDir dir;
    auto limits = roomy();
    limits.best_per_track = 3;
    q::CropStore store(dir.path(), limits);
    const auto t = Clock::now();
    for (double s : {0.1, 0.5, 0.3, 0.4, 0.2}) store.insert(crop("c", 7, s, t));
    store.insert(crop("c", 8, 0.05, t));  // another track is untouched
    std::multiset<double> track7;
    for (const auto& r : store.snapshot())
        if (r.track_id == 7) track7.insert(r.score);
    EXPECT_EQ(track7, (std::multiset<double>{0.3, 0.4, 0.5}));
    EXPECT_EQ(store.insert(crop("c", 7, 0.25, t)).outcome, q::InsertOutcome::rejected_track_full);
    const auto better = store.insert(crop("c", 7, 0.45, t));
    EXPECT_EQ(better.outcome, q::InsertOutcome::stored);
    EXPECT_EQ(better.evicted, 1);
    EXPECT_EQ(scores(store.snapshot()), (std::multiset<double>{0.05, 0.4, 0.45, 0.5}));
    expect_consistent(store);
}

TEST(CropStore, PerCameraQuotaEvictsLowestScoreOldestFirst) {
    faceadapt::test::TempDir dir;
    auto limits = roomy();
    limits.per_camera_quota = 3;
    q::CropStore store(dir.path(), limits);
    const auto t = Clock::now() - std::chrono::hours(1);
    using std::chrono::seconds;
    const auto a = store.insert(crop("a", -1, 0.2, t + seconds(1))).id;   // oldest of the 0.2s
    const auto b = store.insert(crop("a", -1, 0.2, t + seconds(2))).id;
    store.insert(crop("a", -1, 0.9, t + seconds(3)));
    store.insert(crop("b", -1, 0.1, t + seconds(4)));                  // other camera: own quota
    auto r = store.insert(crop("a", -1, 0.6, t + seconds(5)));
    EXPECT_EQ(r.evicted, 1);
    std::set<std::int64_t> ids;
    for (const auto& row : store.snapshot()) ids.insert(row.id);
    EXPECT_FALSE(ids.contains(a));
    EXPECT_TRUE(ids.contains(b));
    r = store.insert(crop("a", -1, 0.7, t + seconds(6)));
    EXPECT_EQ(r.evicted, 1);
    EXPECT_EQ(scores(store.snapshot()), (std::multiset<double>{0.1, 0.6, 0.7, 0.9}));
    expect_consistent(store);
}

TEST(CropStore, RetentionInDays) {
    faceadapt::test::TempDir dir;
    auto limits = roomy();
    limits.retention_days = 1.0;
    q::CropStore store(dir.path(), limits);
    const auto now = Clock::now();
    using std::chrono::hours;
    EXPECT_EQ(store.insert(crop("c", -1, 0.9, now - hours(49))).outcome, q::InsertOutcome::rejected_too_old);
    store.insert(crop("c", -1, 0.9, now - hours(20)));
    store.insert(crop("c", -1, 0.1, now - hours(2)));
    EXPECT_EQ(store.enforce_limits(now), 0);
    EXPECT_EQ(store.enforce_limits(now + hours(6)), 1);  // the 20 h old crop is now 26 h old
    const auto rows = store.snapshot();
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_DOUBLE_EQ(rows[0].score, 0.1);
    expect_consistent(store);
}

TEST(CropStore, DiskCapEvictsLowestScoreOldestFirst) {
    faceadapt::test::TempDir dir;
    std::int64_t one = 0;
    {
        q::CropStore probe(dir.path() / "probe", roomy());
        probe.insert(crop("c", -1, 0.5, Clock::now(), 5));
        one = probe.stats().bytes;
    }
    auto limits = roomy();
    limits.disk_cap_mb = 3.5 * static_cast<double>(one) / (1024.0 * 1024.0);  // room for 3 crops
    q::CropStore store(dir.path(), limits);
    const auto t = Clock::now() - std::chrono::hours(1);
    using std::chrono::seconds;
    std::map<std::string, std::int64_t> id;
    id["a"] = store.insert(crop("c", -1, 0.5, t + seconds(1), 5)).id;
    id["b"] = store.insert(crop("c", -1, 0.2, t + seconds(2), 5)).id;
    id["c"] = store.insert(crop("c", -1, 0.9, t + seconds(3), 5)).id;
    const auto d = store.insert(crop("c", -1, 0.2, t + seconds(4), 5));  // b goes: 0.2, older than d
    id["d"] = d.id;
    EXPECT_EQ(d.evicted, 1);
    id["e"] = store.insert(crop("c", -1, 0.7, t + seconds(5), 5)).id;    // d goes
    std::set<std::int64_t> kept;
    for (const auto& r : store.snapshot()) kept.insert(r.id);
    EXPECT_EQ(kept, (std::set<std::int64_t>{id["a"], id["c"], id["e"]}));
    EXPECT_LE(store.stats().bytes, static_cast<std::int64_t>(limits.disk_cap_mb * 1024 * 1024));
    expect_consistent(store);
}

TEST(CropStore, CorruptImageIsQuarantinedNotACrash) {
    faceadapt::test::TempDir dir;
    fs::path same_size, other_size;
    {
        q::CropStore store(dir.path(), roomy());
        for (int i = 0; i < 3; ++i) store.insert(crop("c", -1, 0.5, Clock::now(), i));
        const auto rows = store.snapshot();
        // Garbage of the same size: only decoding finds it.
        const auto bytes = rows[0].bytes;
        std::ofstream(rows[0].file, std::ios::binary | std::ios::trunc) << std::string(bytes, 'x');
        same_size = rows[0].file;
        EXPECT_FALSE(store.load_chip(rows[0]));
        EXPECT_FALSE(fs::exists(same_size));
        EXPECT_EQ(store.snapshot().size(), 2u);
        other_size = rows[1].file;
    }
    std::ofstream(other_size, std::ios::binary | std::ios::trunc) << "truncated";
    q::CropStore store(dir.path(), roomy());
    EXPECT_EQ(store.open_report().files_quarantined, 1);
    EXPECT_EQ(store.snapshot().size(), 1u);
    const auto quarantined = std::distance(fs::directory_iterator(store.root() / "quarantine"), {});
    EXPECT_EQ(quarantined, 2);
    expect_consistent(store);
}

TEST(CropStore, DamagedIndexIsQuarantinedAndReplaced) {
    faceadapt::test::TempDir dir;
    {
        q::CropStore store(dir.path(), roomy());
        for (int i = 0; i < 5; ++i) store.insert(crop("c", -1, 0.5, Clock::now(), i));
    }
    const fs::path db = dir.path() / "crops" / "crops.db";
    ASSERT_TRUE(fs::exists(db));
    {
        std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(0);
        f << std::string(4096, '\x5a');
    }
    q::CropStore store(dir.path(), roomy());
    EXPECT_TRUE(store.open_report().index_quarantined);
    EXPECT_FALSE(store.open_report().index_problem.empty());
    EXPECT_TRUE(store.snapshot().empty());
    // The damaged index and its images were kept aside, and the store works again.
    bool found_db = false;
    for (const auto& e : fs::recursive_directory_iterator(store.root() / "quarantine"))
        found_db |= e.path().filename() == "crops.db";
    EXPECT_TRUE(found_db);
    EXPECT_EQ(store.insert(crop("c", -1, 0.5, Clock::now())).outcome, q::InsertOutcome::stored);
    expect_consistent(store);
}

// Issue 18: the tracker numbers tracks from 1 at every start; begin_track_run() gives each run a
// base, so three restarts (four runs) of the same camera never share a track id, and a new
// person's crops are never refused as track_full because an earlier run's track had that number.
TEST(CropStore, TrackRunsKeepTrackIdsUniqueAcrossRestarts) {
    faceadapt::test::TempDir dir;
    auto limits = roomy();
    limits.best_per_track = 3;
    std::set<std::int64_t> seen;
    std::int64_t previous_base = 0;
    for (int run = 0; run < 4; ++run) {
        q::CropStore store(dir.path(), limits);  // a fresh open: what a daemon restart does
        const std::int64_t base = store.begin_track_run("cam1");
        EXPECT_GT(base, previous_base);
        EXPECT_EQ(base % q::kTrackRunStride, 0);
        previous_base = base;
        const auto t = Clock::now();
        for (std::int64_t local = 1; local <= 2; ++local)  // the tracker's ids of this run
            for (int k = 0; k < limits.best_per_track; ++k) {
                const auto r = store.insert(crop("cam1", base + local, 0.5 + 0.1 * k, t, run * 100 + k));
                EXPECT_EQ(r.outcome, q::InsertOutcome::stored) << "run " << run << " track " << local;
            }
        for (const auto& rec : store.snapshot()) seen.insert(rec.track_id);
        EXPECT_EQ(seen.size(), static_cast<std::size_t>(2 * (run + 1)));
        expect_consistent(store);
    }
    // Each stored track belongs to exactly one run, and the runs are 1..4.
    std::set<std::int64_t> runs;
    for (auto id : seen) runs.insert(q::track_run_of(id));
    EXPECT_EQ(runs, (std::set<std::int64_t>{1, 2, 3, 4}));
}

// A crops.db from before track runs (no track_runs table, tracks 1, 2, ...) is migrated at open:
// its crops stay, and the first run starts above every track it holds.
TEST(CropStore, LegacyIndexWithoutTrackRunsIsMigrated) {
    faceadapt::test::TempDir dir;
    const auto t = Clock::now();
    {
        q::CropStore store(dir.path(), roomy());
        for (std::int64_t track : {1, 2, 3}) store.insert(crop("cam1", track, 0.5, t, int(track)));
    }
    {
        sqlite3* db = nullptr;
        ASSERT_EQ(sqlite3_open((dir.path() / "crops" / "crops.db").c_str(), &db), SQLITE_OK);
        EXPECT_EQ(sqlite3_exec(db, "DROP TABLE track_runs", nullptr, nullptr, nullptr), SQLITE_OK);
        sqlite3_close(db);
    }
    q::CropStore store(dir.path(), roomy());
    EXPECT_EQ(store.snapshot().size(), 3u);
    const std::int64_t base = store.begin_track_run("cam1");
    EXPECT_EQ(base, q::kTrackRunStride);  // run 1: the legacy crops are run 0
    EXPECT_EQ(store.insert(crop("cam1", base + 1, 0.1, t, 9)).outcome, q::InsertOutcome::stored);
    EXPECT_EQ(store.begin_track_run("cam1"), 2 * q::kTrackRunStride);
    EXPECT_EQ(store.begin_track_run("cam2"), q::kTrackRunStride);  // runs are per camera
    EXPECT_THROW(store.begin_track_run("bad/camera"), std::invalid_argument);
}
