// CropStore on a real, small tmpfs filled to 100%: a full disk is a fault to wait out, never a
// reason to quarantine or drop crops (issue 13, class 4).
#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "faceadapt/quality/crop_store.hpp"
#include "small_mount.hpp"

namespace q = faceadapt::quality;
namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;

namespace {

faceadapt::config::StoreConfig roomy() {
    faceadapt::config::StoreConfig s;
    s.best_per_track = 1000;
    s.per_camera_quota = 1'000'000;
    s.retention_days = 30;
    s.disk_cap_mb = 10'000;
    return s;
}

q::CropInput crop(int seed) {
    q::CropInput c;
    c.camera = "door";
    c.track_id = -1;
    c.score = 0.5 + seed * 0.001;
    c.timestamp = Clock::now();
    c.chip = cv::Mat(24, 24, CV_8UC3);
    cv::RNG rng(static_cast<std::uint64_t>(seed) + 1);
    rng.fill(c.chip, cv::RNG::UNIFORM, 0, 256);
    return c;
}

std::string bytes_of(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

// Every regular file under the store's img/ and quarantine/ folders with its content, and the
// index file's content: what a full disk must not change.
std::map<std::string, std::string> store_files(const fs::path& root) {
    std::map<std::string, std::string> out;
    for (const char* sub : {"img", "quarantine"}) {
        if (!fs::exists(root / sub)) continue;
        for (const auto& e : fs::recursive_directory_iterator(root / sub))
            if (e.is_regular_file()) out[fs::relative(e.path(), root).string()] = bytes_of(e.path());
    }
    out["crops.db"] = bytes_of(root / "crops.db");
    return out;
}

std::size_t count_images(const fs::path& root) {
    std::size_t n = 0;
    for (const auto& e : fs::recursive_directory_iterator(root / "img")) n += e.is_regular_file() ? 1 : 0;
    return n;
}

constexpr int kCrops = 25;

// Creates the store under `state` with kCrops crops and closes it; returns their ids.
std::vector<std::int64_t> store_with_crops(const fs::path& state) {
    q::CropStore store(state, roomy());
    for (int i = 0; i < kCrops; ++i)
        if (store.insert(crop(i)).outcome != q::InsertOutcome::stored) ADD_FAILURE() << "crop " << i << " not stored";
    std::vector<std::int64_t> ids;
    for (const auto& r : store.snapshot()) ids.push_back(r.id);
    return ids;
}

}  // namespace

TEST(CropStoreFullDisk, OpeningOnAFullDiskStopsWithAClearErrorAndLosesNoCrop) {
    faceadapt::test::SmallMount disk(2048);
    FACEADAPT_REQUIRE_MOUNT(disk);
    const fs::path state = disk.path() / "state";
    const std::vector<std::int64_t> ids_before = store_with_crops(state);
    const fs::path root = state / "crops";
    ASSERT_EQ(ids_before.size(), static_cast<std::size_t>(kCrops));
    ASSERT_EQ(count_images(root), static_cast<std::size_t>(kCrops));
    const auto before = store_files(root);

    ASSERT_GT(disk.fill(), 0u);
    ASSERT_EQ(disk.available(), 0u) << "the disk is 100% full";
    // Several attempts, as a daemon restarted by systemd would make.
    int refused = 0;
    for (int attempt = 0; attempt < 3; ++attempt) {
        try {
            q::CropStore store(state, roomy());
            // Opening may succeed where SQLite needs no new page; then nothing may be lost either.
            EXPECT_EQ(store.snapshot().size(), static_cast<std::size_t>(kCrops));
            EXPECT_FALSE(store.open_report().index_quarantined) << store.open_report().index_problem;
        } catch (const std::runtime_error& e) {
            const std::string what = e.what();
            ++refused;
            EXPECT_NE(what.find("crops.db"), std::string::npos) << what;
            EXPECT_NE(what.find("left untouched"), std::string::npos) << what;
            EXPECT_NE(what.find("No space left on device"), std::string::npos) << what;
        }
        EXPECT_EQ(count_images(root), static_cast<std::size_t>(kCrops)) << "attempt " << attempt;
        EXPECT_TRUE(!fs::exists(root / "quarantine") || fs::is_empty(root / "quarantine"))
            << "nothing quarantined on attempt " << attempt;
    }
    EXPECT_GT(refused, 0) << "opening never failed: the full disk was not exercised";
    // Untouched: every image and the index, byte for byte (the -wal/-shm side files aside).
    EXPECT_TRUE(store_files(root) == before) << "the store changed on the full disk";

    disk.free();
    q::CropStore store(state, roomy());
    EXPECT_FALSE(store.open_report().index_quarantined);
    std::vector<std::int64_t> ids_after;
    for (const auto& r : store.snapshot()) ids_after.push_back(r.id);
    EXPECT_EQ(ids_after, ids_before) << "zero crops lost";
    EXPECT_EQ(store.verify(), 0);
    EXPECT_EQ(store.insert(crop(1000)).outcome, q::InsertOutcome::stored);
}

TEST(CropStoreFullDisk, InsertOnAFullDiskFailsCleanlyAndTheStoreWorksWhenSpaceIsBack) {
    faceadapt::test::SmallMount disk(2048);
    FACEADAPT_REQUIRE_MOUNT(disk);
    const fs::path state = disk.path() / "state";
    q::CropStore store(state, roomy());
    for (int i = 0; i < kCrops; ++i) ASSERT_EQ(store.insert(crop(i)).outcome, q::InsertOutcome::stored);
    ASSERT_GT(disk.fill(), 0u);
    int failed = 0;
    for (int i = 0; i < 5; ++i) {
        try {
            store.insert(crop(100 + i));
        } catch (const std::runtime_error& e) {
            ++failed;
            EXPECT_NE(std::string(e.what()).find("No space left on device"), std::string::npos) << e.what();
        }
    }
    EXPECT_EQ(failed, 5) << "no insert fits on a 100% full disk";
    EXPECT_EQ(store.stats().crops, kCrops);
    EXPECT_EQ(store.snapshot().size(), static_cast<std::size_t>(kCrops));
    EXPECT_EQ(count_images(store.root()), static_cast<std::size_t>(kCrops)) << "no partial file left";
    disk.free();
    EXPECT_EQ(store.insert(crop(200)).outcome, q::InsertOutcome::stored);
    EXPECT_EQ(store.stats().crops, kCrops + 1);
    EXPECT_EQ(store.verify(), 0);
}

// A read-only filesystem (EROFS on every write, as after an ext4 error remount): the same rule.
TEST(CropStoreFullDisk, OpeningOnAReadOnlyFilesystemStopsAndTouchesNothing) {
    faceadapt::test::SmallMount disk(2048);
    FACEADAPT_REQUIRE_MOUNT(disk);
    const fs::path state = disk.path() / "state";
    const std::vector<std::int64_t> ids_before = store_with_crops(state);
    const fs::path root = state / "crops";
    const auto before = store_files(root);
    disk.set_read_only(true);
    try {
        q::CropStore store(state, roomy());
        EXPECT_EQ(store.snapshot().size(), static_cast<std::size_t>(kCrops));
        EXPECT_FALSE(store.open_report().index_quarantined);
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("left untouched"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(store_files(root) == before) << "the store changed on the read-only filesystem";
    disk.set_read_only(false);
    q::CropStore store(state, roomy());
    std::vector<std::int64_t> ids_after;
    for (const auto& r : store.snapshot()) ids_after.push_back(r.id);
    EXPECT_EQ(ids_after, ids_before);
}
