// CameraSource on real streams: the RTSP test camera (slideshow and looped video) on loopback,
// and file:// cameras.
#include <atomic>
#include <mutex>

#include <gst/gst.h>
#include <gtest/gtest.h>
#include <opencv2/core.hpp>

#include "faceadapt/ingest/camera_source.hpp"
#include "test_stream_support.hpp"
#include "test_support.hpp"

namespace faceadapt::test {
namespace {

using namespace std::chrono_literals;
using ingest::CameraSource;
using ingest::CameraState;
using ingest::Frame;

// Collects what a camera delivers.
struct FrameLog {
    std::mutex mutex;
    std::vector<std::chrono::steady_clock::time_point> arrivals;
    std::vector<std::uint64_t> sequences;
    cv::Mat last;
    std::string camera;
    void operator()(Frame&& f) {
        std::lock_guard lock(mutex);
        arrivals.push_back(std::chrono::steady_clock::now());
        sequences.push_back(f.sequence);
        camera = f.camera;
        last = f.bgr;
    }
    std::size_t count() {
        std::lock_guard lock(mutex);
        return arrivals.size();
    }
};

// Measures the sampled frame rate over `window` once the camera streams, and checks it is
// within 25% of `fps`; returns the last frame.
cv::Mat expect_rate(CameraSource& camera, FrameLog& log, double fps, std::chrono::milliseconds window) {
    EXPECT_TRUE(wait_until([&] { return camera.stats().state == CameraState::streaming && log.count() >= 2; }, 15s))
        << "state " << ingest::to_string(camera.stats().state) << ", error: " << camera.stats().last_error;
    const std::size_t before = log.count();
    std::this_thread::sleep_for(window);
    const std::size_t got = log.count() - before;
    const double expected = fps * std::chrono::duration<double>(window).count();
    EXPECT_GE(got, expected * 0.75) << "sampled " << got << " frames in the window, expected ~" << expected;
    EXPECT_LE(got, expected * 1.25 + 1) << "sampled " << got << " frames in the window, expected ~" << expected;
    std::lock_guard lock(log.mutex);
    for (std::size_t i = 1; i < log.sequences.size(); ++i) EXPECT_EQ(log.sequences[i], log.sequences[i - 1] + 1);
    return log.last;
}

// Streams `server_args` into one camera, checks the sampled rate over `window` and the frame
// size; returns the last frame.
cv::Mat expect_stream(std::map<std::string, std::string> server_args, config::CameraConfig camera_config,
                      std::chrono::milliseconds window, cv::Size size) {
    ServerProcess server(std::move(server_args));
    server.start();
    camera_config.url = server.url();
    FrameLog log;
    CameraSource camera(camera_config, std::ref(log));
    camera.start();
    cv::Mat last = expect_rate(camera, log, camera_config.detect_fps, window);
    EXPECT_EQ(last.type(), CV_8UC3);
    EXPECT_EQ(last.size(), size);
    EXPECT_EQ(log.camera, camera_config.id);
    const auto s = camera.stats();
    EXPECT_EQ(s.reconnects, 0u);
    EXPECT_EQ(s.faults, 0u) << s.last_error;
    EXPECT_GT(s.decoded, s.frames) << "the stream runs faster than detect_fps: most frames are not sampled";
    camera.stop();
    EXPECT_EQ(camera.stats().state, CameraState::stopped);
    return last;
}

TEST(CameraSource, SlideshowStreamYieldsFramesAtDetectFps) {
    FACEADAPT_REQUIRE_PATH(demo_photos_dir());
    cv::Mat last = expect_stream({{"source", demo_photos_dir().string()}, {"fps", "15"}, {"size", "1280x720"}},
                                 test_camera("door", "", 5.0), 3s, {1280, 720});
    cv::Scalar mean, stddev;
    cv::meanStdDev(last, mean, stddev);
    EXPECT_GT(stddev[0], 10.0) << "the frame looks blank: the photos did not come through";
}

TEST(CameraSource, UdpTransportStreamsToo) {
    FACEADAPT_REQUIRE_PATH(demo_photos_dir());
    auto cfg = test_camera("udp", "", 5.0);
    cfg.transport = "udp";
    expect_stream({{"source", demo_photos_dir().string()}, {"fps", "10"}, {"size", "640x360"}}, cfg, 2s, {640, 360});
}

TEST(CameraSource, WalkersVideoStreamYieldsFullHdFrames) {
    FACEADAPT_REQUIRE_PATH(walkers_video());
    expect_stream({{"source", walkers_video().string()}}, test_camera("hall", "", 4.0), 3s, {1920, 1080});
}

// Writes a short H.264 MP4 (test pattern) with GStreamer.
void write_test_video(const std::filesystem::path& file, int frames) {
    gst_init(nullptr, nullptr);
    const std::string desc = "videotestsrc num-buffers=" + std::to_string(frames) +
                             " pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! "
                             "x264enc speed-preset=ultrafast ! mp4mux ! filesink location=\"" + file.string() + "\"";
    GError* error = nullptr;
    GstElement* p = gst_parse_launch(desc.c_str(), &error);
    ASSERT_EQ(error, nullptr) << error->message;
    gst_element_set_state(p, GST_STATE_PLAYING);
    GstBus* bus = gst_element_get_bus(p);
    GstMessage* m = gst_bus_timed_pop_filtered(bus, 20 * GST_SECOND,
                                               static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(GST_MESSAGE_TYPE(m), GST_MESSAGE_EOS);
    gst_message_unref(m);
    gst_object_unref(bus);
    gst_element_set_state(p, GST_STATE_NULL);
    gst_object_unref(p);
}

TEST(CameraSource, FileCameraLoopsAtItsOwnFrameRate) {
    TempDir dir;
    const auto file = dir.path() / "one-second.mp4";
    write_test_video(file, 25);  // 1 s at 25 fps
    FrameLog log;
    CameraSource camera(test_camera("file", "file://" + file.string(), 10.0), std::ref(log));
    camera.start();
    // 3 s of frames from a 1 s file: it looped (twice), still at ~10 sampled fps.
    expect_rate(camera, log, 10.0, 3s);
    const auto s = camera.stats();
    EXPECT_EQ(s.faults, 0u) << s.last_error;
    EXPECT_EQ(s.state, CameraState::streaming);
    EXPECT_GE(s.decoded, 60u) << "25 fps for > 3 s";
    EXPECT_LE(s.decoded, 150u) << "a file plays at its own rate, not as fast as it decodes";
}

// rtsp-serve loops a 1 s clip: passed through as H.264, and transcoded to another size.
TEST(CameraSource, LoopedClipStreamsSeamlesslyPassedThroughOrTranscoded) {
    TempDir dir;
    const auto file = dir.path() / "one-second.mp4";
    write_test_video(file, 25);
    ServerProcess passthrough({{"source", file.string()}});
    ServerProcess transcoded({{"source", file.string()}, {"size", "160x120"}, {"fps", "25"}});
    passthrough.start();
    transcoded.start();
    FrameLog log_a, log_b;
    CameraSource a(test_camera("loop-h264", passthrough.url(), 5.0), std::ref(log_a));
    CameraSource b(test_camera("loop-x264", transcoded.url(), 5.0), std::ref(log_b));
    a.start();
    b.start();
    // 3.5 s of a 1 s clip: three loops, at the stream's own 25 fps, without a fault.
    expect_rate(a, log_a, 5.0, 3500ms);
    const auto sa = a.stats(), sb = b.stats();
    EXPECT_EQ(sa.faults, 0u) << sa.last_error;
    EXPECT_EQ(sb.faults, 0u) << sb.last_error;
    EXPECT_EQ(sb.state, CameraState::streaming);
    EXPECT_GE(sa.decoded, static_cast<std::uint64_t>(3.5 * 25 * 0.8));
    EXPECT_GE(sb.decoded, static_cast<std::uint64_t>(3.5 * 25 * 0.8));
    std::lock_guard lock_a(log_a.mutex), lock_b(log_b.mutex);
    EXPECT_EQ(log_a.last.size(), cv::Size(320, 240));
    EXPECT_EQ(log_b.last.size(), cv::Size(160, 120));
}

TEST(CameraSource, RejectsUnsupportedUrlNamingTheCamera) {
    try {
        CameraSource camera(test_camera("lobby", "http://127.0.0.1:1/x"), [](Frame&&) {});
        FAIL() << "expected std::invalid_argument";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("lobby"), std::string::npos) << e.what();
    }
}

TEST(CameraSource, BackoffDoublesToItsCapWithTwentyPercentJitter) {
    using ingest::backoff_delay_s;
    EXPECT_DOUBLE_EQ(backoff_delay_s(1.0, 60.0, 1, 0.5), 1.0);
    EXPECT_DOUBLE_EQ(backoff_delay_s(1.0, 60.0, 2, 0.5), 2.0);
    EXPECT_DOUBLE_EQ(backoff_delay_s(1.0, 60.0, 4, 0.5), 8.0);
    EXPECT_DOUBLE_EQ(backoff_delay_s(1.0, 60.0, 7, 0.5), 60.0);
    EXPECT_DOUBLE_EQ(backoff_delay_s(1.0, 60.0, 1000, 0.5), 60.0);
    EXPECT_DOUBLE_EQ(backoff_delay_s(1.0, 60.0, 1, 0.0), 0.8);
    EXPECT_NEAR(backoff_delay_s(1.0, 60.0, 1, 0.999999), 1.2, 1e-5);
    EXPECT_DOUBLE_EQ(backoff_delay_s(1.0, 60.0, 100, 0.0), 48.0);
}

}  // namespace
}  // namespace faceadapt::test
