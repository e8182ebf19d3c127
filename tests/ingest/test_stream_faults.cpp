// CameraSource under real faults: a killed and restarted server, a closed port, a wrong mount,
// wrong credentials, a file that is not a video. Small stall/backoff settings keep them fast.
#include <atomic>
#include <fstream>

#include <gtest/gtest.h>

#include "faceadapt/ingest/camera_source.hpp"
#include "test_stream_support.hpp"
#include "test_support.hpp"

namespace faceadapt::test {
namespace {

using namespace std::chrono_literals;
using ingest::CameraSource;
using ingest::CameraState;
using ingest::CameraStats;
using ingest::Frame;

bool streaming(const CameraSource& c) { return c.stats().state == CameraState::streaming; }

std::map<std::string, std::string> slideshow(std::map<std::string, std::string> extra = {}) {
    extra["source"] = demo_photos_dir().string();
    extra["fps"] = "10";
    extra["size"] = "640x360";
    return extra;
}

TEST(CameraFaults, KilledServerIsReconnectedOnceWhileAnotherCameraKeepsFlowing) {
    FACEADAPT_REQUIRE_PATH(demo_photos_dir());
    ServerProcess server_a(slideshow());
    ServerProcess server_b(slideshow());
    server_a.start();
    server_b.start();
    std::atomic<int> frames_a{0}, frames_b{0};
    CameraSource cam_a(test_camera("a", server_a.url()), [&](Frame&&) { ++frames_a; });
    CameraSource cam_b(test_camera("b", server_b.url()), [&](Frame&&) { ++frames_b; });
    cam_a.start();
    cam_b.start();
    ASSERT_TRUE(wait_until([&] { return streaming(cam_a) && streaming(cam_b); }, 15s))
        << cam_a.stats().last_error << " / " << cam_b.stats().last_error;

    server_a.kill();
    const int b_at_kill = frames_b;
    // The camera notices (error or stall) and backs off.
    ASSERT_TRUE(wait_until([&] { return cam_a.stats().state != CameraState::streaming; }, 5s));
    // Wait for what must happen during the outage: camera a retries (two faults at least) and
    // camera b goes on delivering (15 frames, ~3 s at 5 fps), never blocked by a.
    EXPECT_TRUE(wait_until([&] { return cam_a.stats().faults >= 2 && frames_b - b_at_kill >= 15; }, 30s))
        << "faults of a " << cam_a.stats().faults << ", frames of b since the kill " << frames_b - b_at_kill;
    const CameraStats during = cam_a.stats();
    EXPECT_NE(during.state, CameraState::streaming);
    EXPECT_FALSE(during.last_error.empty());
    EXPECT_GE(during.faults, 2u) << "it kept retrying while the server was down";
    EXPECT_EQ(during.reconnects, 0u);
    EXPECT_GE(frames_b - b_at_kill, 15) << "camera b stopped while a was down";
    EXPECT_EQ(cam_b.stats().faults, 0u) << cam_b.stats().last_error;

    server_a.start();  // same port
    const auto back = std::chrono::steady_clock::now();
    ASSERT_TRUE(wait_until([&] { return streaming(cam_a); }, 10s)) << cam_a.stats().last_error;
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - back).count();
    // Picked up within one backoff step (max 1 s + 20%) plus connection set-up.
    EXPECT_LT(took, 1.2 + 3.0);
    const int a_back = frames_a;
    ASSERT_TRUE(wait_until([&] { return frames_a >= a_back + 3; }, 5s));
    EXPECT_EQ(cam_a.stats().reconnects, 1u);
    EXPECT_EQ(cam_b.stats().reconnects, 0u);
}

TEST(CameraFaults, HungServerIsAStallAndTheCameraRecoversWhenItResumes) {
    FACEADAPT_REQUIRE_PATH(demo_photos_dir());
    ServerProcess server(slideshow());
    server.start();
    std::atomic<int> frames{0};
    auto cfg = test_camera("hung", server.url());
    cfg.stall_timeout_s = 1.5;
    CameraSource camera(cfg, [&](Frame&&) { ++frames; });
    camera.start();
    ASSERT_TRUE(wait_until([&] { return streaming(camera) && frames >= 2; }, 15s)) << camera.stats().last_error;
    // (A slow first connection on a loaded machine may already have counted as a fault.)
    const auto faults_before = camera.stats().faults;
    const auto reconnects_before = camera.stats().reconnects;
    server.freeze();  // connection open, no data: only the stall watchdog can tell
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(wait_until([&] { return camera.stats().faults > faults_before; }, 6s));
    const double noticed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_GE(noticed, 1.0);
    EXPECT_LT(noticed, 1.5 + 1.5);
    EXPECT_NE(camera.stats().last_error.find("stalled"), std::string::npos) << camera.stats().last_error;
    server.thaw();
    ASSERT_TRUE(wait_until([&] { return streaming(camera); }, 10s)) << camera.stats().last_error;
    const int back = frames;
    EXPECT_TRUE(wait_until([&] { return frames >= back + 3; }, 5s));
    EXPECT_EQ(camera.stats().reconnects, reconnects_before + 1);
}

// Waits for `camera` to fail at least `faults` times; returns the stats then.
CameraStats expect_failing(CameraSource& camera, std::uint64_t faults, std::chrono::milliseconds timeout) {
    EXPECT_TRUE(wait_until([&] { return camera.stats().faults >= faults; }, timeout))
        << "faults " << camera.stats().faults << ", state " << ingest::to_string(camera.stats().state);
    const CameraStats s = camera.stats();
    EXPECT_NE(s.state, CameraState::streaming);
    EXPECT_EQ(s.frames, 0u);
    EXPECT_EQ(s.reconnects, 0u);
    return s;
}

TEST(CameraFaults, ClosedPortBacksOffExponentially) {
    auto cfg = test_camera("nobody", "rtsp://127.0.0.1:" + std::to_string(free_loopback_port()) + "/cam");
    cfg.backoff_initial_s = 0.1;
    cfg.backoff_max_s = 0.8;
    CameraSource camera(cfg, [](Frame&&) {});
    const auto t0 = std::chrono::steady_clock::now();
    camera.start();
    const CameraStats s = expect_failing(camera, 5, 10s);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // 4 waits of ~0.1, 0.2, 0.4, 0.8 s (+-20%) separate 5 faults: backoff, not a busy loop.
    EXPECT_GT(elapsed, 0.8 * (0.1 + 0.2 + 0.4 + 0.8) - 0.05);
    EXPECT_NEAR(s.backoff_s, 0.8, 0.8 * 0.21) << "capped at backoff_max_s";
    EXPECT_NE(s.last_error.find("Could not"), std::string::npos) << s.last_error;
    EXPECT_GE(s.attempts, 5u);
    const auto t1 = std::chrono::steady_clock::now();
    camera.stop();
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count(), 2.0);
    EXPECT_EQ(camera.stats().state, CameraState::stopped);
}

TEST(CameraFaults, WrongMountIsAClearErrorState) {
    FACEADAPT_REQUIRE_PATH(demo_photos_dir());
    ServerProcess server(slideshow());
    server.start();
    CameraSource camera(test_camera("wrong-mount", "rtsp://127.0.0.1:" + std::to_string(server.port()) + "/nope"),
                        [](Frame&&) {});
    camera.start();
    const CameraStats s = expect_failing(camera, 2, 10s);
    EXPECT_NE(s.last_error.find("Not Found"), std::string::npos) << s.last_error;
}

TEST(CameraFaults, WrongCredentialsFailAndNeverLeakThePassword) {
    FACEADAPT_REQUIRE_PATH(demo_photos_dir());
    ServerProcess server(slideshow({{"user", "viewer"}, {"password", "right-secret"}}));
    server.start();
    auto wrong = test_camera("wrong-pass", server.url());
    wrong.username = "viewer";
    wrong.password = config::Secret("wrong-secret");
    auto none = test_camera("no-pass", server.url());
    auto right = test_camera("right-pass", server.url());
    right.username = "viewer";
    right.password = config::Secret("right-secret");
    CameraSource cam_wrong(wrong, [](Frame&&) {});
    CameraSource cam_none(none, [](Frame&&) {});
    std::atomic<int> frames{0};
    CameraSource cam_right(right, [&](Frame&&) { ++frames; });
    cam_wrong.start();
    cam_none.start();
    cam_right.start();
    for (auto* cam : {&cam_wrong, &cam_none}) {
        const CameraStats s = expect_failing(*cam, 2, 10s);
        EXPECT_NE(s.last_error.find("Unauthorized"), std::string::npos) << cam->id() << ": " << s.last_error;
        EXPECT_EQ(s.last_error.find("secret"), std::string::npos) << s.last_error;
    }
    EXPECT_TRUE(wait_until([&] { return frames >= 3; }, 10s)) << cam_right.stats().last_error;
    EXPECT_EQ(cam_right.stats().faults, 0u) << cam_right.stats().last_error;
}

TEST(CameraFaults, FileThatIsNotAVideoIsAClearErrorState) {
    TempDir dir;
    const auto text = dir.path() / "notes.mp4";
    std::ofstream(text) << "this is not a video, just text pretending to be one\n";
    CameraSource camera(test_camera("notvideo", "file://" + text.string()), [](Frame&&) {});
    camera.start();
    const CameraStats s = expect_failing(camera, 2, 10s);
    EXPECT_FALSE(s.last_error.empty());
    EXPECT_EQ(s.decoded, 0u);
}

TEST(CameraFaults, MissingFileIsAClearErrorState) {
    CameraSource camera(test_camera("gone", "file:///nonexistent/faceadapt/clip.mp4"), [](Frame&&) {});
    camera.start();
    const CameraStats s = expect_failing(camera, 2, 10s);
    EXPECT_NE(s.last_error.find("not found"), std::string::npos) << s.last_error;
}

}  // namespace
}  // namespace faceadapt::test
