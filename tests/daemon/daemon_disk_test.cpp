// faceadaptd started with its state disk 100% full (a real small tmpfs): it must stop with a
// clear message and lose zero crops, then start normally once space is back (issue 13, class 4).
#include <csignal>
#include <fstream>

#include <gtest/gtest.h>

#include "daemon_process.hpp"
#include "faceadapt/quality/crop_store.hpp"
#include "small_mount.hpp"
#include "test_support.hpp"

using namespace faceadapt;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

fs::path faceadaptd_exe() { return test::binary_dir() / "daemon" / "faceadaptd"; }

config::StoreConfig roomy() {
    config::StoreConfig s;
    s.best_per_track = 1000;
    s.per_camera_quota = 1'000'000;
    s.retention_days = 30;
    s.disk_cap_mb = 10'000;
    return s;
}

std::vector<std::int64_t> crop_ids(const fs::path& state) {
    std::vector<std::int64_t> ids;
    quality::CropStore store(state, roomy());
    for (const auto& r : store.snapshot()) ids.push_back(r.id);
    return ids;
}

std::size_t count_files(const fs::path& dir) {
    std::size_t n = 0;
    if (!fs::exists(dir)) return 0;
    for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
    return n;
}

}  // namespace

TEST(DaemonFullDisk, StartOnAFullStateDiskStopsClearlyAndLosesNoCrop) {
    ASSERT_TRUE(fs::exists(faceadaptd_exe())) << faceadaptd_exe() << " is not built";
    test::SmallMount disk(4096);
    FACEADAPT_REQUIRE_MOUNT(disk);
    const fs::path state = disk.path() / "state";
    constexpr int kCrops = 30;
    {
        quality::CropStore store(state, roomy());
        for (int i = 0; i < kCrops; ++i) {
            quality::CropInput c;
            c.camera = "door";
            c.track_id = i;
            c.score = 0.6;
            c.timestamp = std::chrono::system_clock::now();
            c.chip = cv::Mat(32, 32, CV_8UC3, cv::Scalar(i, 2 * i, 3 * i));
            ASSERT_EQ(store.insert(c).outcome, quality::InsertOutcome::stored);
        }
    }
    const auto ids_before = crop_ids(state);
    ASSERT_EQ(ids_before.size(), static_cast<std::size_t>(kCrops));
    const fs::path images = state / "crops" / "img";
    ASSERT_EQ(count_files(images), static_cast<std::size_t>(kCrops));

    test::TempDir dir;  // the site file lives off the full disk
    const fs::path site = dir.path() / "site.toml";
    std::ofstream(site) << "[site]\nid = \"disk\"\nstate_dir = \"" << state.string() << "\"\n"
                        << "[mqtt]\nbroker = \"tcp://127.0.0.1:1\"\n"
                        << "[metrics]\nlisten = \"127.0.0.1:" << test::free_loopback_port() << "\"\n";
    ASSERT_GT(disk.fill(), 0u);
    ASSERT_EQ(disk.available(), 0u);
    {
        test::Process daemon({faceadaptd_exe().string(), "--config", site.string()});
        const auto exit = daemon.wait_exit(60s);
        ASSERT_TRUE(exit) << "faceaadaptd kept running on a full state disk:\n" << daemon.output();
        EXPECT_FALSE(exit->signaled);
        EXPECT_NE(exit->exit_code, 0) << daemon.output();
        EXPECT_TRUE(daemon.has_line("cannot start.*left untouched")) << daemon.output();
        EXPECT_TRUE(daemon.has_line("No space left on device")) << daemon.output();
    }
    EXPECT_EQ(count_files(images), static_cast<std::size_t>(kCrops)) << "crops lost on the full disk";
    EXPECT_EQ(count_files(state / "crops" / "quarantine"), 0u) << "nothing may be quarantined";

    disk.free();
    {
        test::Process daemon({faceadaptd_exe().string(), "--config", site.string()});
        ASSERT_TRUE(daemon.wait_for_line("faceadaptd: ready", 60s)) << daemon.output();
        EXPECT_FALSE(daemon.has_line("quarantin")) << daemon.output();
        daemon.signal(SIGTERM);
        const auto exit = daemon.wait_exit(30s);
        ASSERT_TRUE(exit) << daemon.output();
        EXPECT_EQ(exit->exit_code, 0) << daemon.output();
    }
    EXPECT_EQ(crop_ids(state), ids_before) << "zero crops lost";
}
