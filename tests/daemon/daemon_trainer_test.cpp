// faceadaptd's trainer (issue 18, item 4), with the real executable: one it cannot execute stops
// the start with its path and errno; a cycle whose child fails is retried after its own doubling
// backoff ([learner] retry_minutes), not after interval_hours.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "daemon_process.hpp"
#include "faceadapt/daemon/model_registry.hpp"
#include "faceadapt/quality/crop_store.hpp"
#include "test_support.hpp"

using namespace faceadapt;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

fs::path faceadaptd_exe() { return test::binary_dir() / "daemon" / "faceadaptd"; }

// A site without a running camera or broker; `learner` is appended to [learner], `rest` at the end.
fs::path write_site(const fs::path& dir, const std::string& learner, int metrics_port = 0,
                    const std::string& rest = "") {
    const fs::path site = dir / "site.toml";
    std::ofstream(site) << "[site]\nid = \"trainer\"\nstate_dir = \"" << (dir / "state").string() << "\"\n"
                        << "[learner]\n" << learner << "[mqtt]\nbroker = \"tcp://127.0.0.1:1\"\n"
                        << "[metrics]\nlisten = \"127.0.0.1:"
                        << (metrics_port ? metrics_port : test::free_loopback_port()) << "\"\n" << rest;
    return site;
}

fs::path write_script(const fs::path& p, const std::string& body, fs::perms perms) {
    std::ofstream(p) << "#!/bin/sh\n" << body;
    fs::permissions(p, perms);
    return p;
}

// The exit of a faceadaptd that must refuse to start, with its output.
std::pair<daemon::TrainingResult, std::string> refused_start(std::vector<std::string> argv) {
    test::Process d(std::move(argv));
    const auto exit = d.wait_exit(60s);
    EXPECT_TRUE(exit) << "faceadaptd kept running:\n" << d.output();
    return {exit.value_or(daemon::TrainingResult{}), d.output()};
}

}  // namespace

TEST(DaemonTrainer, OneThatCannotBeExecutedStopsTheStartWithItsPathAndErrno) {
    ASSERT_TRUE(fs::exists(faceadaptd_exe())) << faceadaptd_exe() << " is not built";
    test::TempDir dir;
    // [learner] trainer: a script without the execute bit.
    const fs::path plain = write_script(dir.path() / "faceadapt-noexec", "exit 0\n",
                                        fs::perms::owner_read | fs::perms::owner_write);
    const fs::path site = write_site(dir.path(), "trainer = \"" + plain.string() + "\"\n");
    auto [exit, out] = refused_start({faceadaptd_exe().string(), "--config", site.string()});
    EXPECT_FALSE(exit.signaled);
    EXPECT_EQ(exit.exit_code, 1) << out;
    // Root may execute any file with an x bit; without one, access(X_OK) fails even for root.
    EXPECT_NE(out.find("trainer " + plain.string() + ": cannot be executed: Permission denied (errno 13)"),
              std::string::npos) << out;
    EXPECT_EQ(out.find("ready"), std::string::npos) << out;

    // --trainer overrides the file, and a missing one says so.
    const fs::path missing = dir.path() / "no" / "faceadapt";
    std::tie(exit, out) = refused_start({faceadaptd_exe().string(), "--config", site.string(), "--trainer",
                                         missing.string()});
    EXPECT_EQ(exit.exit_code, 1) << out;
    EXPECT_NE(out.find("trainer " + missing.string() + ": cannot be executed: No such file or directory (errno 2)"),
              std::string::npos) << out;

    // A folder is not a trainer.
    std::tie(exit, out) = refused_start({faceadaptd_exe().string(), "--config", site.string(), "--trainer",
                                         dir.path().string()});
    EXPECT_EQ(exit.exit_code, 1) << out;
    EXPECT_NE(out.find("not a regular file"), std::string::npos) << out;
}

TEST(DaemonTrainer, AFailedCycleIsRetriedAfterItsOwnDoublingBackoffNotTheInterval) {
    ASSERT_TRUE(fs::exists(faceadaptd_exe())) << faceadaptd_exe() << " is not built";
    test::TempDir dir;
    {
        quality::CropStore store(dir.path() / "state", config::StoreConfig{});
        for (int i = 0; i < 4; ++i) {
            quality::CropInput c;
            c.camera = "door";
            c.track_id = i;
            c.score = 0.6;
            c.chip = cv::Mat(32, 32, CV_8UC3, cv::Scalar(i, 2 * i, 3 * i));
            ASSERT_EQ(store.insert(c).outcome, quality::InsertOutcome::stored);
        }
    }
    // Each run appends its start time (ms) to runs.log, then crashes.
    const fs::path crash = write_script(dir.path() / "crash-trainer.sh",
                                        "echo $(date +%s%3N) >> \"$(dirname \"$0\")/runs.log\"\necho boom >&2\nexit 3\n",
                                        fs::perms::owner_all);
    // interval_hours 100: only the retry backoff (1.2 s, 2.4 s, then the 3.6 s cap) can start them.
    // A disabled camera too (issue 18, item 6): it shows in the metrics and the status as disabled.
    const int port = test::free_loopback_port();
    const fs::path site = write_site(dir.path(), "interval_hours = 100\nmin_new_crops = 0\nretry_minutes = 0.02\n"
                                                 "retry_max_hours = 0.001\ntrainer = \"" + crash.string() + "\"\n",
                                     port, "[[camera]]\nid = \"off\"\nurl = \"rtsp://127.0.0.1:1/x\"\nenabled = false\n");
    test::Process d({faceadaptd_exe().string(), "--config", site.string()});
    auto runs = [&] {
        std::vector<long long> t;
        std::ifstream in(dir.path() / "runs.log");
        for (long long v; in >> v;) t.push_back(v);
        return t;
    };
    ASSERT_TRUE(test::eventually([&] { return runs().size() >= 4; }, 90s)) << d.output();
    EXPECT_TRUE(d.has_line("scheduler: cycle .* failed \\(1 in a row\\); retrying in 1 s")) << d.output();
    EXPECT_TRUE(d.has_line("scheduler: cycle .* failed \\(3 in a row\\); retrying in 4 s")) << d.output();
    EXPECT_TRUE(d.has_line("retry after 2 failed cycle\\(s\\)")) << d.output();
    EXPECT_TRUE(d.has_line("camera off: disabled in .* \\(enabled = false\\); not started")) << d.output();
    const std::string m = test::fetch_metrics(port);
    EXPECT_EQ(test::metric_value(m, "faceadapt_camera_state", "camera=\"off\",state=\"disabled\""), 1.0) << m;
    EXPECT_EQ(test::metric_value(m, "faceadapt_camera_up", "camera=\"off\""), 0.0) << m;
    const auto t = runs();
    // Each retry waited at least its backoff after the failure before it (the child exits at once).
    EXPECT_GE(t[1] - t[0], 1200);
    EXPECT_GE(t[2] - t[1], 2400);
    EXPECT_GE(t[3] - t[2], 3600);
    // scheduler.json keeps the count across a restart; the crop mark did not move.
    const auto j = nlohmann::json::parse(std::ifstream(dir.path() / "state" / "models" / "scheduler.json"));
    EXPECT_GE(j.value("failed_cycles", 0), 3);
    EXPECT_EQ(j.value("last_crop_id", -1), 0);
    d.signal(SIGTERM);
    const auto r = d.wait_exit(30s);
    ASSERT_TRUE(r) << d.output();
    EXPECT_TRUE(r->ok()) << r->describe();
}
