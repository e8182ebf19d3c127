// RtspTestServer in-process (bad input, port in use, stop), the `faceadapt rtsp-serve` command,
// and what cameras write to the log (once per condition, credentials masked).
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <atomic>
#include <fstream>

#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "faceadapt/ingest/camera_source.hpp"
#include "faceadapt/ingest/rtsp_test_server.hpp"
#include "test_stream_support.hpp"
#include "test_support.hpp"

extern char** environ;

namespace faceadapt::test {
namespace {

using namespace std::chrono_literals;
using ingest::CameraSource;
using ingest::CameraState;
using ingest::Frame;
using ingest::RtspMount;
using ingest::RtspServerOptions;
using ingest::RtspTestServer;

RtspServerOptions one_mount(const std::filesystem::path& source, int port = 0) {
    RtspServerOptions o;
    o.port = port;
    RtspMount m;
    m.source = source;
    m.fps = 10;
    m.width = 640;
    m.height = 360;
    o.mounts.push_back(m);
    return o;
}

void expect_invalid(const RtspServerOptions& options, const std::string& must_mention) {
    try {
        RtspTestServer server(options);
        FAIL() << "expected std::invalid_argument mentioning " << must_mention;
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find(must_mention), std::string::npos) << e.what();
    }
}

TEST(RtspTestServer, RejectsBadSourcesNamingThem) {
    TempDir dir;
    const auto empty = dir.path() / "empty";
    std::filesystem::create_directory(empty);
    expect_invalid(one_mount(empty), empty.string());
    const auto text = dir.path() / "notes.mp4";
    std::ofstream(text) << "not a video\n";
    auto opts = one_mount(text);
    opts.mounts[0].width = 0;
    opts.mounts[0].height = 0;
    expect_invalid(opts, text.string());
    expect_invalid(one_mount(dir.path() / "missing.mp4"), "missing.mp4");
    expect_invalid(RtspServerOptions{}, "no mount");
}

TEST(RtspTestServer, RejectsBadOptions) {
    FACEADAPT_REQUIRE_PATH(demo_photos_dir());
    auto opts = one_mount(demo_photos_dir());
    opts.mounts[0].path = "cam";
    expect_invalid(opts, "'/'");
    opts = one_mount(demo_photos_dir());
    opts.mounts[0].width = 641;
    expect_invalid(opts, "even");
    opts = one_mount(demo_photos_dir());
    opts.username = "only-user";
    expect_invalid(opts, "password");
    opts = one_mount(demo_photos_dir());
    opts.mounts.push_back(opts.mounts[0]);
    expect_invalid(opts, "twice");
}

TEST(RtspTestServer, BusyPortIsAClearError) {
    FACEADAPT_REQUIRE_PATH(demo_photos_dir());
    RtspTestServer first(one_mount(demo_photos_dir()));
    first.start();
    ASSERT_GT(first.port(), 0);
    RtspTestServer second(one_mount(demo_photos_dir(), first.port()));
    try {
        second.start();
        FAIL() << "expected std::runtime_error";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(std::to_string(first.port())), std::string::npos) << e.what();
    }
}

TEST(RtspTestServer, InProcessServerStreamsAndStopsPromptly) {
    FACEADAPT_REQUIRE_PATH(demo_photos_dir());
    RtspTestServer server(one_mount(demo_photos_dir()));
    server.start();
    std::atomic<int> frames{0};
    cv::Size size;
    CameraSource camera(test_camera("inproc", server.url("/cam")), [&](Frame&& f) {
        size = f.bgr.size();
        ++frames;
    });
    camera.start();
    ASSERT_TRUE(wait_until([&] { return frames >= 3; }, 15s)) << camera.stats().last_error;
    EXPECT_EQ(size, cv::Size(640, 360));
    const auto t0 = std::chrono::steady_clock::now();
    server.stop();
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 3.0);
    EXPECT_TRUE(wait_until([&] { return camera.stats().state != CameraState::streaming; }, 5s))
        << "the camera notices its server went away";
}

// Captures what spdlog's default logger writes while alive.
class LogCapture {
public:
    LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000)) {
        spdlog::default_logger()->sinks().push_back(sink_);
    }
    ~LogCapture() {
        auto& sinks = spdlog::default_logger()->sinks();
        sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    }
    std::vector<std::string> lines_with(const std::string& text) const {
        std::vector<std::string> out;
        for (auto& l : sink_->last_formatted())
            if (l.find(text) != std::string::npos) out.push_back(l);
        return out;
    }
    std::string all() const {
        std::string out;
        for (auto& l : sink_->last_formatted()) out += l;
        return out;
    }

private:
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};

TEST(CameraLog, EachConditionIsLoggedOnceAndCredentialsAreMasked) {
    FACEADAPT_REQUIRE_PATH(demo_photos_dir());
    LogCapture log;
    ServerProcess server({{"source", demo_photos_dir().string()}, {"fps", "10"}, {"size", "640x360"},
                          {"user", "viewer"}, {"password", "s3cret-pw"}});
    server.start();
    const std::string port = std::to_string(server.port());
    // Credentials inside the URL, as many NVR configs have them.
    std::atomic<int> frames{0};
    CameraSource good(test_camera("inurl", "rtsp://viewer:s3cret-pw@127.0.0.1:" + port + "/cam"),
                      [&](Frame&&) { ++frames; });
    auto bad_cfg = test_camera("badurl", "rtsp://viewer:wr0ng-pw@127.0.0.1:" + port + "/cam");
    bad_cfg.backoff_initial_s = 0.1;
    bad_cfg.backoff_max_s = 0.2;
    CameraSource bad(bad_cfg, [](Frame&&) {});
    good.start();
    bad.start();
    ASSERT_TRUE(wait_until([&] { return frames >= 2 && bad.stats().faults >= 5; }, 15s))
        << good.stats().last_error << " / faults " << bad.stats().faults;
    good.stop();
    bad.stop();
    EXPECT_EQ(log.lines_with("'badurl'").size(), 2u) << "one warning for 5+ failures, one 'stopped':\n" << log.all();
    EXPECT_EQ(log.lines_with("'inurl'").size(), 2u) << "'streaming' and 'stopped':\n" << log.all();
    EXPECT_EQ(log.all().find("s3cret-pw"), std::string::npos) << log.all();
    EXPECT_EQ(log.all().find("wr0ng-pw"), std::string::npos) << log.all();
    EXPECT_EQ(bad.stats().last_error.find("wr0ng-pw"), std::string::npos) << bad.stats().last_error;
}

// Secrets in the URL's query (rtsp://host/live?user=admin&password=...) are masked in every
// log line and in last_error, like a password in the userinfo (issue 13, class 10). Nothing
// listens on the port: each attempt fails and is logged.
TEST(CameraLog, SecretsInTheQueryStringAreMasked) {
    LogCapture log;
    const std::string port = std::to_string(free_loopback_port());
    auto cfg = test_camera("querycam", "rtsp://127.0.0.1:" + port + "/live?user=admin&password=q5ecret-pw&token=t0ken-x");
    cfg.backoff_initial_s = 0.1;
    cfg.backoff_max_s = 0.2;
    CameraSource camera(cfg, [](Frame&&) {});
    camera.start();
    ASSERT_TRUE(wait_until([&] { return camera.stats().faults >= 5; }, 15s)) << camera.stats().last_error;
    camera.stop();
    EXPECT_FALSE(log.lines_with("'querycam'").empty()) << log.all();
    EXPECT_NE(log.all().find("password=***"), std::string::npos) << log.all();
    for (const char* secret : {"q5ecret-pw", "t0ken-x"}) {
        EXPECT_EQ(log.all().find(secret), std::string::npos) << log.all();
        EXPECT_EQ(camera.stats().last_error.find(secret), std::string::npos) << camera.stats().last_error;
    }
}

// The real command-line tool, when it is built (`make test` builds everything first).
std::filesystem::path faceadapt_tool() { return binary_dir() / "tools" / "faceadapt"; }

TEST(RtspServeCommand, ServesAFolderUntilSigterm) {
    FACEADAPT_REQUIRE_PATH(demo_photos_dir());
    if (!std::filesystem::exists(faceadapt_tool())) GTEST_SKIP() << faceadapt_tool() << " is not built";
    const std::string port = std::to_string(free_loopback_port());
    std::vector<std::string> words{faceadapt_tool().string(), "rtsp-serve", "--port", port, "--mount", "/door",
                                   "--fps", "10", "--size", "640x360", demo_photos_dir().string()};
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    ASSERT_EQ(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ), 0);
    std::atomic<int> frames{0};
    CameraSource camera(test_camera("cli", "rtsp://127.0.0.1:" + port + "/door"), [&](Frame&&) { ++frames; });
    camera.start();
    EXPECT_TRUE(wait_until([&] { return frames >= 3; }, 20s)) << camera.stats().last_error;
    camera.stop();
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
}

TEST(RtspServeCommand, BadSourceExitsWithTwo) {
    if (!std::filesystem::exists(faceadapt_tool())) GTEST_SKIP() << faceadapt_tool() << " is not built";
    std::string out;
    const int rc = run_command(faceadapt_tool().string() + " rtsp-serve --port 0 /nonexistent/clip.mp4", &out);
    EXPECT_EQ(rc, 2) << out;
    EXPECT_NE(out.find("/nonexistent/clip.mp4"), std::string::npos) << out;
}

}  // namespace
}  // namespace faceadapt::test
